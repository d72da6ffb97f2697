"""Robot conditions: the corruptions measure what they claim, and the families that use them
corrupt only what a sensor or SLAM would give (training RGB, depth and poses)."""

import json

import numpy as np
import pytest

from cgc_core.data import load_scene
from cgc_core.data.sensor_noise import (
    depth_noise,
    exposure_and_noise,
    hole_clusters,
    perturb_pose,
    pose_error,
)
from cgc_core.data.synth import look_at, make_synthetic_scene, orbit_cameras, scene_family
from cgc_core.io import read_label_png, read_rgb

ROBOT_VIEWS = dict(width=128, height=96, n_train=8, n_test=2)


def test_pose_error_has_the_asked_rms_and_keeps_the_camera_centre_for_rotation():
    rng = np.random.default_rng(0)
    c2w = look_at(np.array([0.8, 0.3, 1.4]), np.array([0.0, 0.0, 0.6]))
    errors = np.array([pose_error(perturb_pose(c2w, 0.5, 0.005, rng), c2w)
                       for _ in range(4000)])
    rms = np.sqrt(np.mean(errors ** 2, axis=0))
    assert rms[0] == pytest.approx(0.5, rel=0.05)
    assert rms[1] == pytest.approx(0.005, rel=0.05)
    # Isotropic 3-D errors: the median is about 0.89 of the RMS.
    assert np.median(errors[:, 0]) == pytest.approx(0.888 * 0.5, rel=0.06)
    rotated = perturb_pose(c2w, 0.5, 0.0, rng)
    np.testing.assert_allclose(rotated[:3, 3], c2w[:3, 3], atol=1e-12)  # about the centre
    np.testing.assert_allclose(rotated[:3, :3] @ rotated[:3, :3].T, np.eye(3), atol=1e-12)
    assert pose_error(rotated, c2w)[0] > 0
    # Random axes: the camera-frame rotation axes cover all directions about evenly.
    axes = []
    for _ in range(600):
        relative = c2w[:3, :3].T @ perturb_pose(c2w, 0.5, 0.0, rng)[:3, :3]
        axis = np.array([relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0],
                         relative[1, 0] - relative[0, 1]])
        axes.append(np.abs(axis) / np.linalg.norm(axis))
    assert np.allclose(np.mean(axes, axis=0), 0.5, atol=0.05)


def test_exposure_gains_stay_within_bounds_and_noise_has_the_asked_sigma():
    grey = np.full((60, 80, 3), 128, dtype=np.uint8)
    gains = []
    for k in range(300):
        image, drawn = exposure_and_noise(grey, np.random.default_rng([1, k]), exposure=0.12)
        gains.append(drawn["gain"])
        assert image.dtype == np.uint8 and np.all(image == np.round(128 * drawn["gain"]))
    assert min(gains) >= 0.88 and max(gains) <= 1.12
    assert min(gains) < 0.9 and max(gains) > 1.1  # the whole range is used
    noisy, drawn = exposure_and_noise(grey, np.random.default_rng(2), noise_sigma=3.0)
    assert drawn["gain"] == 1.0
    assert np.std(noisy.astype(float) - 128) == pytest.approx(3.0, rel=0.05)
    bright = np.full((40, 40, 3), 254, dtype=np.uint8)
    clipped, _ = exposure_and_noise(bright, np.random.default_rng(3), noise_sigma=3.0)
    assert clipped.max() == 255 and clipped.min() > 200  # clipped to uint8, not wrapped
    balanced, drawn = exposure_and_noise(grey, np.random.default_rng(4), white_balance=0.03)
    assert all(0.97 <= b <= 1.03 for b in drawn["white_balance"])
    assert len(np.unique(balanced.reshape(-1, 3), axis=0)) == 1  # one factor per channel


@pytest.mark.parametrize("z", [0.6, 1.0, 1.5])
def test_depth_noise_grows_with_z_squared(z):
    depth = np.full((200, 200), z, dtype=np.float32)
    noisy = depth_noise(depth, np.random.default_rng(5), sigma_at_1m=0.0025)
    assert np.all(noisy > 0)
    assert np.std(noisy - z) == pytest.approx(0.0025 * z ** 2, rel=0.05)
    assert abs(np.mean(noisy - z)) < 0.0025 * z ** 2 * 0.05


def test_depth_holes_are_two_percent_partly_clustered_and_on_edges():
    depth = np.full((240, 320), 1.2, dtype=np.float32)
    depth[80:160, 100:220] = 0.8  # a box in front: two depth edges
    depth[:20] = 0.0  # sky: already invalid, not counted
    valid = depth > 0
    noisy = depth_noise(depth, np.random.default_rng(6), 0.0025, hole_fraction=0.02)
    holes = valid & (noisy == 0)
    assert holes.sum() == round(0.02 * valid.sum())
    assert np.all(noisy[~valid] == 0)
    sizes = hole_clusters(holes)
    assert sizes.max() >= 9 and (sizes == 1).sum() > 0.1 * holes.sum()  # blobs and singles
    assert sizes[sizes >= 5].sum() > 0.25 * holes.sum()  # clustered, not only salt noise
    edge = np.zeros_like(valid)
    edge[79:81, 100:220] = edge[159:161, 100:220] = True
    edge[80:160, 99:101] = edge[80:160, 219:221] = True
    # Edge pixels lose depth far more often than the rest.
    assert holes[edge].mean() > 10 * holes[~edge & valid].mean()


def test_the_robot_families_take_the_seeds_after_merges():
    names = [scene_family(seed).name for seed in (499, 500, 600, 700, 800, 900, 1000, 1099)]
    assert names == ["merges", "clutter", "pose", "photometric", "depth_noise", "low", "robot",
                     "robot"]
    assert scene_family(1100).name == "changes"  # after the robot family: a changing table
    robot = scene_family(1000)
    assert (robot.pose_rot_deg, robot.pose_trans_m, robot.exposure, robot.image_noise,
            robot.depth_noise_at_1m, robot.depth_hole_fraction, robot.n_train) == (
        0.5, 0.005, 0.12, 3.0, 0.0025, 0.02, 60)
    assert robot.n_objects_range == (8, 12) and robot.elevation_deg == (20.0, 45.0)
    # Each condition alone: the other families leave the others off.
    assert scene_family(600).exposure == 0 and scene_family(700).pose_rot_deg == 0
    assert scene_family(500).depth_noise_at_1m == 0 and scene_family(800).n_train == 40


def read_depth_m(path) -> np.ndarray:
    return read_label_png(path).astype(np.float64) / 1000.0


def assert_pairs_touch_and_the_rest_stand_apart(info: dict) -> None:
    """Touching pairs 0-1 cm apart (footprints), every other pair of objects at least 1 cm."""
    assert all(0 <= p["gap"] <= 0.01 for p in info["pairs"])
    footprints = {o["name"]: (np.array(o["aabb"][0][:2]), np.array(o["aabb"][1][:2]))
                  for o in info["objects"]}
    paired = {frozenset(p["objects"]) for p in info["pairs"]}
    for a in footprints:
        for b in footprints:
            if a < b:
                (lo_a, hi_a), (lo_b, hi_b) = footprints[a], footprints[b]
                gap = np.linalg.norm(np.maximum(np.maximum(lo_a - hi_b, lo_b - hi_a), 0.0))
                assert gap <= 0.01 + 1e-6 if frozenset((a, b)) in paired else gap >= 0.01 - 1e-6


@pytest.mark.slow
def test_a_table_with_no_room_left_for_a_close_pair_still_makes_a_scene(tmp_path):
    """Seed 1006 draws a close pair after the table has filled up: its two objects go on free
    spots of their own (`cgc synth --seed 1006` used to fail with "could not place a close
    pair")."""
    root = make_synthetic_scene(tmp_path, seed=1006, **ROBOT_VIEWS)
    info = json.loads((root / "synth.json").read_text())
    placed = {o["name"] for o in info["objects"]}
    assert 8 <= len(placed) <= 12
    assert 1 <= len(info["pairs"]) < len(placed) // 2
    assert_pairs_touch_and_the_rest_stand_apart(info)


@pytest.mark.slow
def test_robot_scene_corrupts_only_what_sensors_and_slam_give(tmp_path, monkeypatch):
    """A robot-family scene against the exact renders of its own cameras: training images,
    depth and poses are corrupted as asked; instances, masks, test views and the ground truth
    are exact; poses_true.json holds the exact poses; the prior cloud uses the given poses."""
    root = make_synthetic_scene(tmp_path, seed=1003, **ROBOT_VIEWS)
    info = json.loads((root / "synth.json").read_text())
    assert info["family"] == "robot" and 8 <= len(info["objects"]) <= 12
    assert len(info["pairs"]) >= 3
    assert_pairs_touch_and_the_rest_stand_apart(info)
    sensor = info["sensor"]
    assert sensor["pose_rot_deg"] == 0.5 and sensor["depth_hole_fraction"] == 0.02
    truth, test_names = orbit_cameras(root, 1003, **ROBOT_VIEWS)
    true_poses = json.loads((root / "poses_true.json").read_text())
    scene = load_scene(root)
    assert scene.test_names == test_names
    for cam, exact in zip(scene.cameras, truth):
        np.testing.assert_allclose(true_poses[cam.name], exact.cam_to_world, atol=1e-12)
        rot, trans = pose_error(cam.cam_to_world, exact.cam_to_world)
        if cam.name in test_names:
            assert rot < 1e-6 and trans < 1e-6
            assert cam.name not in sensor["frames"]
        else:
            record = sensor["frames"][cam.name]
            assert rot == pytest.approx(record["rot_error_deg"], abs=1e-5)
            assert trans == pytest.approx(record["trans_error_m"], abs=1e-7)
            assert rot > 0 and trans > 0 and rot < 3 and trans < 0.03
            assert 0.88 <= record["gain"] <= 1.12
    # The same seed with the corruptions switched off is what an exact sensor gives: compare.
    from cgc_core.data import synth

    exact_family = synth.Family("robot", **{
        k: v for params in synth.ROBOT_CONDITIONS.values() for k, v in params.items()
        if k in ("n_objects_range", "n_touching", "pair_gap", "gap", "spread", "small_size",
                 "n_split", "min_gt_pixels", "elevation_deg", "distance", "n_train", "room",
                 "cloud_radius")})
    monkeypatch.setattr(synth, "FAMILIES", synth.FAMILIES[:10] + (exact_family,))
    clean = make_synthetic_scene(tmp_path / "clean", seed=1003, **ROBOT_VIEWS)
    assert not (clean / "poses_true.json").exists()
    for sub in ("instances", "masks_inconsistent"):
        for file in sorted((root / sub).glob("*.png")):
            np.testing.assert_array_equal(read_label_png(file),
                                          read_label_png(clean / sub / file.name))
    for file in sorted((root / "test_mask").glob("*/*.png")):
        np.testing.assert_array_equal(read_label_png(file),
                                      read_label_png(clean / file.relative_to(root)))
    assert (root / "prompts.json").read_text() == (clean / "prompts.json").read_text()
    for cam in scene.cameras:
        rgb, exact_rgb = read_rgb(cam.image_path), read_rgb(clean / "images" / cam.image_path.name)
        depth = read_depth_m(cam.depth_path)
        exact_depth = read_depth_m(clean / "depth" / cam.depth_path.name)
        if cam.name in test_names:
            np.testing.assert_array_equal(rgb, exact_rgb)
            np.testing.assert_array_equal(depth, exact_depth)
            continue
        gain = sensor["frames"][cam.name]["gain"]
        ratio = rgb[exact_rgb > 40].astype(float).mean() / exact_rgb[exact_rgb > 40].mean()
        assert ratio == pytest.approx(gain, abs=0.04)
        valid = exact_depth > 0
        holes = valid & (depth == 0)
        assert holes.sum() / valid.sum() == pytest.approx(0.02, abs=0.002)
        # Far pixels only, where the noise (>= 1.6 mm) dwarfs the PNG's 1 mm steps.
        far = valid & (depth > 0) & (exact_depth > 0.8)
        error = (depth - exact_depth)[far] / exact_depth[far] ** 2
        assert np.std(error) == pytest.approx(0.0025, rel=0.15)
