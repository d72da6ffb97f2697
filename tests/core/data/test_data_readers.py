"""Scene readers on hand-made files: axis conventions, splits, and one clear error per bad input."""

import json
import warnings

import numpy as np
import pytest

from cgc_core.data import SceneError, load_scene
from cgc_core.data.colmap import read_colmap_scene
from cgc_core.data.nerfstudio import write_point_ply
from cgc_core.data.synth import project
from cgc_core.io import DataError, write_depth_png, write_rgb

W, H = 8, 6


def make_images(root, names, size=(W, H)):
    for name in names:
        write_rgb(root / "images" / f"{name}.png", np.zeros((size[1], size[0], 3), np.uint8))


def write_transforms(root, meta):
    (root / "transforms.json").write_text(json.dumps(meta))


def opengl_frame(name, position, **extra):
    """A frame whose OpenGL camera has identity rotation (looking down world -z) at `position`."""
    c2w = np.eye(4)
    c2w[:3, 3] = position
    return {"file_path": f"images/{name}.png", "transform_matrix": c2w.tolist(), **extra}


@pytest.fixture
def nerfstudio_root(tmp_path):
    make_images(tmp_path, ["a", "b"])
    write_transforms(tmp_path, {"fl_x": 10.0, "fl_y": 12.0, "cx": 4.0, "cy": 3.0, "w": W, "h": H,
                                "frames": [opengl_frame("a", [0, 0, 5]),
                                           opengl_frame("b", [1, 0, 5])]})
    return tmp_path


def test_nerfstudio_opengl_pose_becomes_opencv(nerfstudio_root):
    scene = load_scene(nerfstudio_root)
    cam = scene.camera("a")
    # OpenGL looks down its -z; the same camera in OpenCV axes looks down its +z = world -z.
    np.testing.assert_allclose(cam.cam_to_world[:3, 2], [0, 0, -1])
    np.testing.assert_allclose(cam.cam_to_world[:3, 1], [0, -1, 0])  # image down = world -y
    np.testing.assert_allclose(cam.cam_to_world[:3, 3], [0, 0, 5])
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    uv, z = project(cam, points)
    np.testing.assert_allclose(z, [5, 5, 5])
    np.testing.assert_allclose(uv[0], [4.0, 3.0])              # the principal point
    np.testing.assert_allclose(uv[1], [4.0 + 10.0 / 5, 3.0])   # world +x: to the right
    np.testing.assert_allclose(uv[2], [4.0, 3.0 - 12.0 / 5])   # world +y (OpenGL up): upwards
    assert (cam.fx, cam.fy, cam.width, cam.height) == (10.0, 12.0, W, H)
    assert scene.cameras[1].name == "b"


def test_nerfstudio_per_frame_intrinsics_split_depth_and_points(tmp_path):
    make_images(tmp_path, ["a", "b", "c"])
    write_depth_png(tmp_path / "depth" / "a.png", np.full((H, W), 1.25))
    write_point_ply(tmp_path / "cloud.ply", np.array([[1.0, 2.0, 3.0]]), np.array([[9, 8, 7]]))
    frames = [opengl_frame("a", [0, 0, 1], depth_file_path="depth/a.png"),
              opengl_frame("b", [0, 0, 2], fl_x=20.0),
              opengl_frame("c", [0, 0, 3])]
    write_transforms(tmp_path, {"fl_x": 10.0, "w": W, "h": H, "frames": frames,
                                "ply_file_path": "cloud.ply",
                                "train_filenames": ["./images/a.png", "images/c.png"],
                                "test_filenames": ["images/b.png"]})
    scene = load_scene(tmp_path)
    assert scene.train_names == ["a", "c"] and scene.test_names == ["b"]
    assert scene.camera("b").fx == 20.0 and scene.camera("b").fy == 20.0
    assert (scene.camera("a").cx, scene.camera("a").cy) == (W / 2, H / 2)
    np.testing.assert_allclose(scene.load_depth("a"), 1.25)
    assert scene.load_depth("b") is None
    assert scene.load_image("c").shape == (H, W, 3)
    np.testing.assert_allclose(scene.points, [[1, 2, 3]])
    np.testing.assert_array_equal(scene.point_colors, [[9, 8, 7]])


def test_default_split_is_every_eighth_frame(tmp_path):
    names = [f"f{i:02d}" for i in range(17)]
    make_images(tmp_path, names)
    write_transforms(tmp_path, {"fl_x": 10.0, "w": W, "h": H,
                                "frames": [opengl_frame(n, [0, 0, 1]) for n in names]})
    scene = load_scene(tmp_path)
    assert scene.test_names == ["f00", "f08", "f16"]
    assert len(scene.train_names) == 14


def test_test_mask_folders_define_the_split(tmp_path):
    names = ["a", "b", "c"]
    make_images(tmp_path, names)
    write_transforms(tmp_path, {"fl_x": 10.0, "w": W, "h": H,
                                "frames": [opengl_frame(n, [0, 0, 1]) for n in names]})
    (tmp_path / "test_mask" / "b").mkdir(parents=True)
    scene = load_scene(tmp_path)
    assert scene.test_names == ["b"] and scene.train_names == ["a", "c"]


def write_colmap_text(root, model="PINHOLE", params="10 12 4 3", images=("a.png",)):
    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    (sparse / "cameras.txt").write_text(f"1 {model} {W} {H} {params}\n")
    # Image a: world-to-camera = rotation of 90 degrees about x (qw = qx = sqrt(1/2)), t = (1,2,3).
    lines = "".join(f"{i + 1} 0.7071067811865476 0.7071067811865476 0 0 1 2 3 1 {name}\n\n"
                    for i, name in enumerate(images))
    (sparse / "images.txt").write_text(lines)
    (sparse / "points3D.txt").write_text("7 0.5 0.25 2 200 100 50 0.1\n")
    make_images(root, [n.rsplit(".", 1)[0] for n in images])


def test_colmap_world_to_camera_is_inverted(tmp_path):
    write_colmap_text(tmp_path)
    scene = load_scene(tmp_path)
    cam = scene.camera("a")
    w2c = np.eye(4)
    w2c[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]
    w2c[:3, 3] = [1, 2, 3]
    np.testing.assert_allclose(cam.cam_to_world, np.linalg.inv(w2c), atol=1e-12)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (10, 12, 4, 3)
    np.testing.assert_allclose(scene.points, [[0.5, 0.25, 2]])
    np.testing.assert_array_equal(scene.point_colors, [[200, 100, 50]])
    assert scene.test_names == ["a"]  # one image: frame 0 is the every-8th test view


def test_colmap_split_file(tmp_path):
    write_colmap_text(tmp_path, images=("a.png", "b.png", "c.png"))
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a", "c"], "test": ["b"]}))
    scene = read_colmap_scene(tmp_path)
    assert scene.train_names == ["a", "c"] and scene.test_names == ["b"]
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a", "zz"], "test": []}))
    with pytest.raises(SceneError, match="split.json.*'zz'"):
        read_colmap_scene(tmp_path)


def test_colmap_distortion_gives_a_lens_and_zero_distortion_none(tmp_path):
    write_colmap_text(tmp_path, model="SIMPLE_RADIAL", params="10 4 3 0.05")
    cam = load_scene(tmp_path).camera("a")
    assert cam.lens is not None and cam.lens.model == "opencv"
    assert cam.lens.coeffs == (0.05, 0.0, 0.0, 0.0)
    assert (cam.lens.fx, cam.lens.fy, cam.lens.cx, cam.lens.cy) == (10, 10, 4, 3)
    assert (cam.width, cam.height) == (W, H)
    write_colmap_text(tmp_path, model="SIMPLE_RADIAL", params="10 4 3 0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero distortion: a pinhole, nothing to warn about
        cam = load_scene(tmp_path).camera("a")
    assert cam.lens is None and (cam.fx, cam.fy, cam.cx, cam.cy) == (10, 10, 4, 3)


@pytest.mark.parametrize("model, params, lens_model, coeffs", [
    ("RADIAL", "10 4 3 0.05 -0.01", "opencv", (0.05, -0.01, 0.0, 0.0)),
    ("OPENCV", "10 11 4 3 0.05 -0.01 0.001 0.002", "opencv", (0.05, -0.01, 0.001, 0.002)),
    ("FULL_OPENCV", "10 11 4 3 0.05 -0.01 0.001 0.002 0.003 0.1 0.02 0.03", "opencv",
     (0.05, -0.01, 0.001, 0.002, 0.003, 0.1, 0.02, 0.03)),
    ("OPENCV_FISHEYE", "10 11 4 3 0.05 -0.01 0.002 0.001", "fisheye",
     (0.05, -0.01, 0.002, 0.001)),
])
def test_colmap_lens_models(tmp_path, model, params, lens_model, coeffs):
    write_colmap_text(tmp_path, model=model, params=params)
    lens = load_scene(tmp_path).camera("a").lens
    assert lens.model == lens_model
    np.testing.assert_allclose(lens.coeffs, coeffs)


def test_transforms_lens_models(nerfstudio_root):
    meta = json.loads((nerfstudio_root / "transforms.json").read_text())
    meta.update(k1=0.05, k2=-0.01, p1=0.001, p2=0.002)
    write_transforms(nerfstudio_root, meta)
    lens = load_scene(nerfstudio_root).camera("a").lens
    assert lens.model == "opencv" and lens.coeffs == (0.05, -0.01, 0.001, 0.002)
    meta.update(camera_model="OPENCV_FISHEYE", k3=0.003, k4=0.004)
    write_transforms(nerfstudio_root, meta)
    lens = load_scene(nerfstudio_root).camera("a").lens
    assert lens.model == "fisheye" and lens.coeffs == (0.05, -0.01, 0.003, 0.004)
    image = load_scene(nerfstudio_root).load_image("a")  # the raw 8x6 file, undistorted
    assert image.shape == (H, W, 3)


# --- bad inputs: SceneError (a DataError), one line, naming the file -----------------------------

def assert_scene_error(root, *fragments):
    with pytest.raises(SceneError) as info:
        load_scene(root)
    message = str(info.value)
    assert isinstance(info.value, DataError) and "\n" not in message
    for fragment in fragments:
        assert str(fragment) in message, message


def test_missing_folder_and_empty_folder(tmp_path):
    assert_scene_error(tmp_path / "nope", tmp_path / "nope")
    assert_scene_error(tmp_path, tmp_path, "transforms.json", "sparse")


def test_corrupt_transforms_json(nerfstudio_root):
    (nerfstudio_root / "transforms.json").write_text('{"frames": [')
    assert_scene_error(nerfstudio_root, nerfstudio_root / "transforms.json", "JSON")


def test_transforms_without_poses(nerfstudio_root):
    write_transforms(nerfstudio_root, {"fl_x": 10.0, "w": W, "h": H, "frames": []})
    assert_scene_error(nerfstudio_root, nerfstudio_root / "transforms.json", "no frames")
    write_transforms(nerfstudio_root, {"fl_x": 10.0, "w": W, "h": H,
                                       "frames": [{"file_path": "images/a.png"}]})
    assert_scene_error(nerfstudio_root, "transforms.json", "frame 0", "transform_matrix")


def test_missing_intrinsics_and_bad_matrix(nerfstudio_root):
    write_transforms(nerfstudio_root, {"frames": [opengl_frame("a", [0, 0, 1])]})
    assert_scene_error(nerfstudio_root, "transforms.json", "fl_x")
    frame = opengl_frame("a", [0, 0, 1])
    frame["transform_matrix"] = [[1, 0], [0, 1]]
    write_transforms(nerfstudio_root, {"fl_x": 1.0, "w": W, "h": H, "frames": [frame]})
    assert_scene_error(nerfstudio_root, "transforms.json", "4x4")


def test_missing_image_files_are_skipped_with_one_warning(nerfstudio_root):
    meta = json.loads((nerfstudio_root / "transforms.json").read_text())
    meta["frames"] += [opengl_frame(name, [2, 0, 5]) for name in ("c", "d", "e")]
    write_transforms(nerfstudio_root, meta)  # c, d, e have no image file, as in a real capture
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scene = load_scene(nerfstudio_root)
    assert [c.name for c in scene.cameras] == ["a", "b"]
    assert sorted(scene.train_names + scene.test_names) == ["a", "b"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "3 of 5 frames have no image file" in messages[0], messages
    with pytest.raises(SceneError, match="c.png"):
        load_scene(nerfstudio_root, missing_images="error")


def test_missing_every_image_file(nerfstudio_root):
    for name in ("a", "b"):
        (nerfstudio_root / "images" / f"{name}.png").unlink()
    assert_scene_error(nerfstudio_root, nerfstudio_root / "images" / "a.png")


def test_image_of_the_wrong_size(nerfstudio_root):
    make_images(nerfstudio_root, ["a"], size=(W + 1, H))
    scene = load_scene(nerfstudio_root)
    with pytest.raises(SceneError, match="a.png"):
        scene.load_image("a")


def test_unknown_split_entry(nerfstudio_root):
    meta = json.loads((nerfstudio_root / "transforms.json").read_text())
    meta["train_filenames"] = ["images/zzz.png"]
    write_transforms(nerfstudio_root, meta)
    assert_scene_error(nerfstudio_root, "transforms.json", "zzz.png")


def test_unsupported_camera_models(nerfstudio_root, tmp_path_factory):
    meta = json.loads((nerfstudio_root / "transforms.json").read_text())
    meta["camera_model"] = "EQUIRECTANGULAR"
    write_transforms(nerfstudio_root, meta)
    assert_scene_error(nerfstudio_root, "transforms.json", "EQUIRECTANGULAR")
    colmap_root = tmp_path_factory.mktemp("fisheye")
    write_colmap_text(colmap_root, model="SIMPLE_RADIAL_FISHEYE", params="10 4 3 0.1")
    assert_scene_error(colmap_root, "sparse", "SIMPLE_RADIAL_FISHEYE")


def test_colmap_missing_image_and_broken_model(tmp_path):
    write_colmap_text(tmp_path)
    (tmp_path / "images" / "a.png").unlink()
    assert_scene_error(tmp_path, tmp_path / "images" / "a.png")
    (tmp_path / "sparse" / "0" / "images.txt").write_text("this is not a COLMAP file\n")
    assert_scene_error(tmp_path, tmp_path / "sparse" / "0")


def test_colmap_model_without_images(tmp_path):
    write_colmap_text(tmp_path, images=())
    assert_scene_error(tmp_path, tmp_path / "sparse" / "0", "no posed")
