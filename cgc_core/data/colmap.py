"""COLMAP scenes (`sparse/0/` or `sparse/`, text or binary, images in `images/`) via pycolmap.

COLMAP stores world-to-camera poses in the OpenCV axes and uses the same pixel convention as
cgc (the centre of the top-left pixel is (0.5, 0.5)), so a pose is only inverted, never re-axed.

Camera models: PINHOLE and SIMPLE_PINHOLE are pinholes. SIMPLE_RADIAL, RADIAL, OPENCV and
FULL_OPENCV (OpenCV's model) and OPENCV_FISHEYE (OpenCV's equidistant fisheye) carry a lens: such a
camera becomes a pinhole camera with its `lens` (`cgc_core.lens`), the scene undistorts its
images on loading, and prompts, masks and ground truth stay on the raw images' grid (a zero
distortion is a pinhole and costs nothing). FOV, division and spherical models are refused
(SceneError). Images the model lists but the folder lacks are skipped with one warning
(`missing_images="error"` refuses them).

The split (train / test) comes from `cgc_core.data.scene.default_split`: `split.json`, else
`test_mask/<frame>/` folders, else every 8th image (sorted by name) is test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap

from cgc_core.cameras import Camera
from cgc_core.data.scene import (
    Scene,
    SceneError,
    check_unique_names,
    default_split,
    images_present,
)
from cgc_core.lens import FISHEYE, OPENCV, Lens, make_lens, undistorted_camera

EXACT_MODELS = {"PINHOLE", "SIMPLE_PINHOLE"}
DISTORTED_PINHOLE_MODELS = {"SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}
FISHEYE_MODELS = {"OPENCV_FISHEYE"}
IMAGES_DIR = "images"


def find_colmap_model(root: str | Path) -> Path | None:
    """The model folder of a scene (`sparse/0` preferred, then `sparse`), or None."""
    root = Path(root)
    for candidate in (root / "sparse" / "0", root / "sparse"):
        if (candidate / "cameras.bin").is_file() or (candidate / "cameras.txt").is_file():
            return candidate
    return None


def read_colmap_scene(root: str | Path, images_dir: str = IMAGES_DIR,
                      missing_images: str = "skip") -> Scene:
    """Load a COLMAP scene folder as a Scene (cameras sorted by image name); `missing_images`
    as `cgc_core.data.scene.images_present`."""
    root = Path(root)
    model_dir = find_colmap_model(root)
    if model_dir is None:
        raise SceneError(f"no COLMAP model in {root / 'sparse'} (cameras.bin or cameras.txt)")
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except (ValueError, RuntimeError) as error:
        # pycolmap's message is multi-line C++ context; keep the first line for the CLI.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SceneError(f"cannot read COLMAP model {model_dir}: {first}") from None
    images = sorted((im for im in rec.images.values() if im.has_pose), key=lambda im: im.name)
    if not images:
        raise SceneError(f"{model_dir}: the model has no posed (registered) images")
    intrinsics = {cid: _pinhole(cam, model_dir) for cid, cam in rec.cameras.items()}
    lenses = {cid: _lens(cam, model_dir) for cid, cam in rec.cameras.items()}
    cameras = []
    for im in images:
        width, height, fx, fy, cx, cy = intrinsics[im.camera_id]
        w2c = np.eye(4)
        w2c[:3, :4] = im.cam_from_world().matrix()
        camera = Camera(name=Path(im.name).stem, width=width, height=height, fx=fx, fy=fy,
                        cx=cx, cy=cy, cam_to_world=np.linalg.inv(w2c),
                        image_path=root / images_dir / im.name)
        lens = lenses[im.camera_id]
        cameras.append(camera if lens is None else undistorted_camera(camera, lens))
    check_unique_names(cameras, model_dir)
    present = images_present(cameras, model_dir, missing_images)
    cameras = [cam for cam, keep in zip(cameras, present) if keep]
    train, test = default_split(root, [cam.name for cam in cameras])
    points, colors = None, None
    if rec.num_points3D():
        ids = sorted(rec.points3D.keys())
        points = np.array([rec.points3D[i].xyz for i in ids], dtype=np.float64).reshape(-1, 3)
        colors = np.array([rec.points3D[i].color for i in ids], dtype=np.uint8).reshape(-1, 3)
    return Scene(root, cameras, train, test, points, colors)


def _pinhole(cam: pycolmap.Camera, model_dir: Path) -> tuple[int, int, float, float, float,
                                                                 float]:
    """(width, height, fx, fy, cx, cy) of a COLMAP camera, under the policy in the module doc."""
    model = cam.model.name
    if model not in EXACT_MODELS | DISTORTED_PINHOLE_MODELS | FISHEYE_MODELS:
        raise SceneError(f"{model_dir}: unsupported camera model {model} (camera {cam.camera_id});"
                         " undistort the images with `colmap image_undistorter`")
    return (int(cam.width), int(cam.height), float(cam.focal_length_x),
            float(cam.focal_length_y), float(cam.principal_point_x), float(cam.principal_point_y))


def _lens(cam: pycolmap.Camera, model_dir: Path) -> Lens | None:
    """The lens of a COLMAP camera (None for pinholes and zero distortion). COLMAP's extra
    parameters are OpenCV's coefficients in OpenCV's order for each of these models."""
    model = cam.model.name
    if model in EXACT_MODELS:
        return None
    extra = [float(x) for x in np.asarray(cam.params)[list(cam.extra_params_idxs())]]
    if model in {"SIMPLE_RADIAL", "RADIAL"}:
        extra = (extra + [0.0, 0.0])[:2] + [0.0, 0.0]  # k1[, k2], no tangential terms
    try:
        return make_lens(FISHEYE if model in FISHEYE_MODELS else OPENCV, extra, int(cam.width),
                         int(cam.height), float(cam.focal_length_x), float(cam.focal_length_y),
                         float(cam.principal_point_x), float(cam.principal_point_y))
    except ValueError as error:
        raise SceneError(f"{model_dir}: camera {cam.camera_id} ({model}): {error}") from None


def _colmap_camera(cam: Camera) -> tuple[str, list[float], int, int]:
    """(model, params, width, height) of the raw camera behind `cam`."""
    lens = cam.lens
    if lens is None:
        return "PINHOLE", [cam.fx, cam.fy, cam.cx, cam.cy], cam.width, cam.height
    base = [lens.fx, lens.fy, lens.cx, lens.cy]
    if lens.model == FISHEYE:
        return "OPENCV_FISHEYE", base + list(lens.coeffs), lens.width, lens.height
    if len(lens.coeffs) == 4:
        return "OPENCV", base + list(lens.coeffs), lens.width, lens.height
    full = list(lens.coeffs) + [0.0] * (8 - len(lens.coeffs))
    return "FULL_OPENCV", base + full, lens.width, lens.height


def write_colmap_model(model_dir: str | Path, cameras: list[Camera],
                       points: np.ndarray | None = None, colors: np.ndarray | None = None,
                       binary: bool = True) -> Path:
    """Write `cameras` (PINHOLE, or the raw camera's OPENCV / FULL_OPENCV / OPENCV_FISHEYE for
    one with a lens; one COLMAP camera per distinct intrinsics) and optional points.

    Image names are the cameras' image file names (`<frame>.png` when a camera has no path).
    Points ([P, 3] float, colours [P, 3] uint8) are written with empty tracks: a point cloud for
    initialisation, not a bundle-adjusted model. Returns `model_dir`.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    rec = pycolmap.Reconstruction()
    camera_ids: dict[tuple, int] = {}
    for image_id, cam in enumerate(cameras, start=1):
        model, params, width, height = _colmap_camera(cam)
        key = (model, width, height, *params)
        if key not in camera_ids:
            camera_ids[key] = len(camera_ids) + 1
            rec.add_camera_with_trivial_rig(pycolmap.Camera(
                model=model, width=int(width), height=int(height), params=params,
                camera_id=camera_ids[key]))
        name = Path(cam.image_path).name if cam.image_path is not None else f"{cam.name}.png"
        w2c = np.linalg.inv(cam.cam_to_world)
        image = pycolmap.Image(name=name, camera_id=camera_ids[key], image_id=image_id)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(w2c[:3, :4]))
    if points is not None:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        colors = (np.full(points.shape, 128, np.uint8) if colors is None
                  else np.asarray(colors, dtype=np.uint8).reshape(-1, 3))
        for xyz, rgb in zip(points, colors):
            rec.add_point3D(xyz, pycolmap.Track(), rgb)
    if binary:
        rec.write_binary(str(model_dir))
    else:
        rec.write_text(str(model_dir))
    return model_dir
