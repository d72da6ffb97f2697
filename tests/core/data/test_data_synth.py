"""The synthetic scene: both readers load it back exactly, and its pixels are where they claim."""

import json
import time

import numpy as np
import pytest

from cgc_core.data import load_scene
from cgc_core.data.colmap import read_colmap_scene, write_colmap_model
from cgc_core.data.nerfstudio import read_nerfstudio_scene
from cgc_core.data.synth import (
    FIRST_OBJECT_ID,
    TABLE_HALF_EXTENT,
    TABLE_ID,
    TABLE_TOP_Z,
    backproject_valid,
    make_synthetic_scene,
    orbit_cameras,
    project,
    synth_command,
)
from cgc_core.io import read_label_png, read_rgb

ORBIT_KEYS = ("seed", "width", "height", "n_train", "n_test")


def assert_same_cameras(got, expected):
    assert [c.name for c in got] == [c.name for c in expected]
    for a, b in zip(got, expected):
        assert (a.width, a.height) == (b.width, b.height)
        np.testing.assert_allclose(a.K, b.K, atol=1e-6)
        np.testing.assert_allclose(a.cam_to_world, b.cam_to_world, atol=1e-6)


def test_both_readers_return_the_generator_cameras(synth_root, synth_args):
    expected, test_names = orbit_cameras(synth_root, **{k: synth_args[k] for k in ORBIT_KEYS})
    nerfstudio = read_nerfstudio_scene(synth_root)
    colmap = read_colmap_scene(synth_root)
    assert_same_cameras(nerfstudio.cameras, expected)
    assert_same_cameras(colmap.cameras, expected)
    for scene in (nerfstudio, colmap):
        assert scene.test_names == test_names
        assert sorted(scene.train_names + scene.test_names) == sorted(c.name for c in expected)
    # Both point clouds are the same back-projected depth (the PLY stores float32).
    np.testing.assert_allclose(nerfstudio.points, colmap.points, atol=1e-5)
    np.testing.assert_array_equal(nerfstudio.point_colors, colmap.point_colors)
    assert load_scene(synth_root).cameras[0].depth_path is not None  # nerfstudio wins


def test_test_views_are_interleaved_and_not_train_poses(synth_root):
    scene = load_scene(synth_root)
    names = [c.name for c in scene.cameras]
    positions = [names.index(n) for n in scene.test_names]
    assert positions[0] > 0 and positions[-1] < len(names) - 1
    assert all(b - a > 1 for a, b in zip(positions, positions[1:]))
    train_centres = np.array([c.cam_to_world[:3, 3] for c in scene.train_cameras])
    for cam in scene.test_cameras:
        assert np.linalg.norm(train_centres - cam.cam_to_world[:3, 3], axis=1).min() > 0.05


def test_colmap_text_and_binary_models_are_identical(synth_root, tmp_path):
    scene = read_colmap_scene(synth_root)
    loaded = {}
    for kind, binary in (("bin", True), ("txt", False)):
        root = tmp_path / kind
        (root / "images").mkdir(parents=True)
        for cam in scene.cameras:
            (root / "images" / cam.image_path.name).write_bytes(cam.image_path.read_bytes())
        write_colmap_model(root / "sparse" / "0", scene.cameras, scene.points, scene.point_colors,
                           binary=binary)
        assert any((root / "sparse" / "0").glob(f"cameras.{kind}"))
        loaded[kind] = read_colmap_scene(root)
    assert_same_cameras(loaded["txt"].cameras, loaded["bin"].cameras)
    assert_same_cameras(loaded["bin"].cameras, scene.cameras)
    np.testing.assert_allclose(loaded["txt"].points, loaded["bin"].points, atol=1e-9)
    np.testing.assert_array_equal(loaded["txt"].point_colors, loaded["bin"].point_colors)


def test_depth_of_flat_surfaces_lands_on_their_planes(synth_root):
    """Back-projected floor and table-top pixels lie on z = 0 and the table top within 2 mm.

    Sensitive to the half-pixel convention: an intrinsics error of half a pixel tilts these
    oblique planes by centimetres (measured when the convention was set up).
    """
    scene = load_scene(synth_root)
    for cam in scene.cameras:
        depth = scene.load_depth(cam)
        instances = read_label_png(synth_root / "instances" / f"{cam.name}.png")
        world, flat = backproject_valid(cam, depth)
        label = instances.ravel()[flat]
        floor_z = world[label == 1, 2]
        # Table pixels include its legs (far below the top) and its 5 cm edge faces, which lie
        # on the rim of the top rectangle: keep the top's interior.
        table = world[label == TABLE_ID]
        top = table[np.all(np.abs(table[:, :2]) < np.array(TABLE_HALF_EXTENT) - 0.02, axis=1)
                    & (table[:, 2] > TABLE_TOP_Z - 0.1)]
        assert len(top) > 0.5 * len(table)
        assert np.abs(top[:, 2] - TABLE_TOP_Z).max() < 2e-3
        if floor_z.size:
            assert np.abs(floor_z).max() < 2e-3


def test_object_depth_projects_onto_the_same_object_in_other_views(synth_root):
    scene = load_scene(synth_root)
    cams = scene.cameras
    hits = total = 0
    for a, b in zip(cams, cams[3:] + cams[:3]):
        inst_a = read_label_png(synth_root / "instances" / f"{a.name}.png")
        inst_b = read_label_png(synth_root / "instances" / f"{b.name}.png")
        depth_b = scene.load_depth(b)
        world, flat = backproject_valid(a, scene.load_depth(a))
        label = inst_a.ravel()[flat]
        keep = label >= FIRST_OBJECT_ID
        uv, z = project(b, world[keep])
        col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        inside = (z > 0) & (col >= 0) & (col < b.width) & (row >= 0) & (row < b.height)
        col, row, z, label = col[inside], row[inside], z[inside], label[keep][inside]
        # Only points B actually sees (not occluded there): its depth agrees to 5 mm.
        seen = np.abs(depth_b[row, col] - z) < 5e-3
        hits += int((inst_b[row[seen], col[seen]] == label[seen]).sum())
        total += int(seen.sum())
    assert total > 500
    assert hits / total > 0.97


def test_instance_masks_line_up_with_image_colours(synth_root):
    """Each object's pixels differ in colour from a thin ring just outside its mask."""
    from scipy import ndimage

    scene = load_scene(synth_root)
    contrasts = []
    for cam in scene.cameras:
        image = scene.load_image(cam).astype(float)
        instances = read_label_png(synth_root / "instances" / f"{cam.name}.png")
        for obj in np.unique(instances[instances >= FIRST_OBJECT_ID]):
            mask = instances == obj
            core = ndimage.binary_erosion(mask, iterations=1)
            ring = ndimage.binary_dilation(mask, iterations=2) & ~ndimage.binary_dilation(mask)
            if core.sum() < 30 or ring.sum() < 30:
                continue
            contrasts.append(np.abs(image[core].mean(0) - image[ring].mean(0)).max())
    assert len(contrasts) > 10
    assert np.median(contrasts) > 25


def test_ground_truth_and_prompts_match_the_instances(synth_root):
    from cgc_core.data.ground_truth import load_gt_masks, load_prompts

    scene = load_scene(synth_root)
    names = json.loads((synth_root / "objects.json").read_text())
    ids = {name: int(i) for i, name in names.items()}
    gt = load_gt_masks(synth_root)
    assert set(gt) <= set(scene.test_names) and gt
    for frame, objects in gt.items():
        instances = read_label_png(synth_root / "instances" / f"{frame}.png")
        for name, mask in objects.items():
            assert mask.sum() >= 100
            np.testing.assert_array_equal(mask, instances == ids[name])
    prompts = load_prompts(synth_root / "prompts.json")
    assert {p.id for p in prompts} == {n for i, n in names.items() if int(i) >= FIRST_OBJECT_ID}
    for prompt in prompts:
        assert prompt.frame in scene.train_names
        instances = read_label_png(synth_root / "instances" / f"{prompt.frame}.png")
        col, row = int(prompt.point[0]), int(prompt.point[1])
        # "Well inside": the whole 3x3 neighbourhood belongs to the object.
        patch = instances[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]
        assert np.all(patch == ids[prompt.id])


def test_inconsistent_masks_are_written_for_every_frame(synth_root):
    scene = load_scene(synth_root)
    for cam in scene.cameras:
        masks = read_label_png(synth_root / "masks_inconsistent" / f"{cam.name}.png")
        assert masks.shape == (cam.height, cam.width) and masks.max() > 2


def test_generation_is_deterministic_and_seeded(tmp_path, capsys):
    args = dict(width=48, height=36, n_train=3, n_test=1, n_objects=4)
    start = time.perf_counter()
    synth_command(tmp_path / "a", seed=5, **args)
    assert time.perf_counter() - start < 10
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"wrote {tmp_path / 'a'}: 3 train + 1 test views at 48x36")
    make_synthetic_scene(tmp_path / "b", seed=5, **args)
    make_synthetic_scene(tmp_path / "c", seed=6, **args)
    for sub in ("images", "instances", "masks_inconsistent", "depth"):
        for file in (tmp_path / "a" / sub).iterdir():
            same = tmp_path / "b" / sub / file.name
            np.testing.assert_array_equal(read_label_png(file) if sub != "images" else
                                          read_rgb(file),
                                          read_label_png(same) if sub != "images" else
                                          read_rgb(same))
    a = json.loads((tmp_path / "a" / "synth.json").read_text())
    c = json.loads((tmp_path / "c" / "synth.json").read_text())
    assert a["objects"] != c["objects"]


def test_too_many_objects_is_refused(tmp_path):
    with pytest.raises(ValueError, match="n_objects"):
        make_synthetic_scene(tmp_path, n_objects=99)
