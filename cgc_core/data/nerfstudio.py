"""nerfstudio / Blender `transforms.json` scenes: reader and writer.

The file holds intrinsics (`fl_x`, `fl_y`, `cx`, `cy`, `w`, `h`) globally or per frame, and per
frame a `file_path` and a `transform_matrix`: camera-to-world in OpenGL axes (x right, y up,
z back), converted here with `c2w_opencv = c2w_opengl @ diag(1, -1, -1, 1)`. Optional keys read:
`train_filenames` / `test_filenames` (paths spelled as in the frames' `file_path`; `val_filenames`
stands in for test when there is no test list), per-frame `depth_file_path` (16-bit PNG in
millimetres or .npy metres) and `ply_file_path` (an initial point cloud, x/y/z and optional
red/green/blue).

Lens distortion: `camera_model` OPENCV (and COLMAP's RADIAL / SIMPLE_RADIAL names) reads `k1`,
`k2`, `p1`, `p2`, `k3`, `k4` as OpenCV's k1, k2, p1, p2, k3, k4 (what nerfstudio's image
undistortion does with them); OPENCV_FISHEYE reads `k1`..`k4` as OpenCV's equidistant model. A
camera with distortion becomes a pinhole camera with its `lens` (`cgc_core.lens`): the scene
undistorts its images and depth on loading, and prompts, masks and ground truth stay on the raw
images' grid. Equirectangular and other models are refused.

Frames whose image file is missing are skipped with one warning giving the count (captures such
as instant-ngp's fox list more frames than they ship); `missing_images="error"` refuses them.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from plyfile import PlyData, PlyElement

from cgc_core.cameras import OPENGL_TO_OPENCV, Camera
from cgc_core.data.scene import (
    TRANSFORMS_FILE,
    Scene,
    SceneError,
    check_unique_names,
    default_split,
    images_present,
    read_json_or_scene_error,
)
from cgc_core.io import atomic_write_bytes, write_json
from cgc_core.lens import FISHEYE, OPENCV, Lens, make_lens, undistorted_camera

PINHOLE_MODELS = {"PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL"}
FISHEYE_MODELS = {"OPENCV_FISHEYE"}
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def read_nerfstudio_scene(root: str | Path, transforms_path: str | Path | None = None,
                          missing_images: str = "skip") -> Scene:
    """Load `root/transforms.json` (or `transforms_path`) as a Scene; paths are relative to root.

    Args:
        missing_images: "skip" leaves out frames whose image file is missing, with one warning
            giving the count; "error" refuses the scene (SceneError naming the first).
    """
    root = Path(root)
    path = Path(transforms_path) if transforms_path is not None else root / TRANSFORMS_FILE
    meta = read_json_or_scene_error(path)
    if not isinstance(meta, dict):
        raise SceneError(f"{path}: expected a JSON object at the top level")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SceneError(f"{path}: no frames with poses ('frames' is missing or empty)")
    cameras = [_frame_camera(root, path, meta, frame, index) for index, frame in enumerate(frames)]
    check_unique_names(cameras, path)
    present = images_present(cameras, path, missing_images)
    frames = [f for f, keep in zip(frames, present) if keep]
    cameras = [c for c, keep in zip(cameras, present) if keep]
    train, test = _split(root, path, meta, frames, cameras)
    points, colors = None, None
    if meta.get("ply_file_path"):
        points, colors = read_point_ply(root / meta["ply_file_path"])
    return Scene(root, cameras, train, test, points, colors)


def _frame_camera(root: Path, path: Path, meta: dict, frame: Any, index: int) -> Camera:
    """One frame → Camera; per-frame intrinsics override the global ones."""
    where = f"{path}: frame {index}"
    if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
        raise SceneError(f"{where}: missing 'file_path'")
    if "transform_matrix" not in frame:
        raise SceneError(f"{where}: missing 'transform_matrix' (no pose)")
    try:
        c2w_gl = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: 'transform_matrix' is not a numeric matrix") from None
    if c2w_gl.shape == (3, 4):
        c2w_gl = np.vstack([c2w_gl, [0.0, 0.0, 0.0, 1.0]])
    if c2w_gl.shape != (4, 4) or not np.all(np.isfinite(c2w_gl)):
        raise SceneError(f"{where}: 'transform_matrix' must be a finite 4x4 matrix")

    def get(key: str, default: Any = None) -> Any:
        return frame.get(key, meta.get(key, default))

    model = str(get("camera_model", "OPENCV")).upper()
    if model not in PINHOLE_MODELS | FISHEYE_MODELS:
        raise SceneError(f"{where}: unsupported camera model {model} (pinhole, OPENCV and "
                         "OPENCV_FISHEYE models only)")
    try:
        k = {key: float(get(key, 0.0) or 0.0) for key in DISTORTION_KEYS}
    except (TypeError, ValueError):
        raise SceneError(f"{where}: distortion coefficients must be numbers") from None
    try:
        width, height = int(get("w")), int(get("h"))
        fx = float(get("fl_x"))
        fy = float(get("fl_y", fx))
        cx = float(get("cx", width / 2.0))
        cy = float(get("cy", height / 2.0))
    except (TypeError, ValueError):
        raise SceneError(f"{where}: intrinsics need numeric 'fl_x', 'w' and 'h' "
                         "(globally or per frame)") from None
    depth = frame.get("depth_file_path")
    image_path = root / frame["file_path"]
    if not image_path.suffix and not image_path.exists():
        image_path = image_path.with_suffix(".png")  # Blender-style paths omit the extension
    camera = Camera(name=Path(frame["file_path"]).stem, width=width, height=height, fx=fx, fy=fy,
                    cx=cx, cy=cy, cam_to_world=c2w_gl @ OPENGL_TO_OPENCV, image_path=image_path,
                    depth_path=root / depth if isinstance(depth, str) and depth else None)
    try:
        lens = _lens(model, k, camera)
        return camera if lens is None else undistorted_camera(camera, lens)
    except ValueError as error:
        raise SceneError(f"{where}: {error}") from None


def _lens(model: str, k: dict[str, float], camera: Camera) -> Lens | None:
    """The frame's lens (None without distortion), in OpenCV's coefficient order."""
    if model in FISHEYE_MODELS:
        kind, coeffs = FISHEYE, [k["k1"], k["k2"], k["k3"], k["k4"]]
    else:
        kind, coeffs = OPENCV, [k["k1"], k["k2"], k["p1"], k["p2"], k["k3"], k["k4"], 0.0, 0.0]
        if k["k4"] == 0.0:
            coeffs = coeffs[:5] if k["k3"] != 0.0 else coeffs[:4]
    return make_lens(kind, coeffs, camera.width, camera.height, camera.fx, camera.fy, camera.cx,
                     camera.cy)


def _split(root: Path, path: Path, meta: dict, frames: list, cameras: list[Camera]
           ) -> tuple[list[str], list[str]]:
    """Train / test names from `train_filenames` / `test_filenames`, else `default_split`."""
    names = [cam.name for cam in cameras]
    test_key = "test_filenames" if "test_filenames" in meta else "val_filenames"
    if "train_filenames" not in meta and test_key not in meta:
        return default_split(root, names)
    # Lists name files the way the frames do; compare normalised paths so "./images/a.png" works.
    by_path = {os.path.normpath(f["file_path"]): cam.name for f, cam in zip(frames, cameras)}

    def names_of(key: str) -> set[str]:
        listed = meta.get(key, [])
        if not isinstance(listed, list):
            raise SceneError(f"{path}: '{key}' must be a list of file paths")
        out = set()
        for entry in listed:
            key_path = os.path.normpath(str(entry))
            if key_path not in by_path:
                raise SceneError(f"{path}: '{key}' lists {entry!r}, which is not a frame")
            out.add(by_path[key_path])
        return out

    test = names_of(test_key)
    # A file with only a test list trains on everything else (and vice versa).
    train = names_of("train_filenames") if "train_filenames" in meta else set(names) - test
    if test_key not in meta:
        test = set(names) - train
    if train & test:
        raise SceneError(f"{path}: frames in both train and test: {sorted(train & test)[:3]}")
    return [n for n in names if n in train], [n for n in names if n in test]


def write_nerfstudio_scene(root: str | Path, cameras: list[Camera], train_names: list[str],
                           test_names: list[str], ply_file: str | None = None) -> Path:
    """Write `root/transforms.json` for `cameras` (image and depth paths must lie under root).

    Intrinsics are written globally when all cameras share them, else per frame. `ply_file` is a
    path relative to root, stored as `ply_file_path`. Returns the transforms.json path.
    """
    root = Path(root).resolve()
    intrinsics = [_intrinsics(cam) for cam in cameras]
    shared = all(k == intrinsics[0] for k in intrinsics)
    meta: dict[str, Any] = {"camera_model": "OPENCV"}
    if shared:
        meta.update(intrinsics[0])

    frames = []
    by_name = {}
    for cam, k in zip(cameras, intrinsics):
        if cam.image_path is None:
            raise ValueError(f"camera {cam.name!r} has no image path")
        rel = Path(cam.image_path).resolve().relative_to(root).as_posix()
        by_name[cam.name] = rel
        frame: dict[str, Any] = {"file_path": rel}
        if not shared:
            frame.update(k)
        # OpenGL axes on disk: diag(1,-1,-1,1) is its own inverse.
        frame["transform_matrix"] = (cam.cam_to_world @ OPENGL_TO_OPENCV).tolist()
        if cam.depth_path is not None:
            frame["depth_file_path"] = Path(cam.depth_path).resolve().relative_to(root).as_posix()
        frames.append(frame)
    meta["frames"] = frames
    meta["train_filenames"] = [by_name[n] for n in train_names]
    meta["test_filenames"] = [by_name[n] for n in test_names]
    if ply_file is not None:
        meta["ply_file_path"] = ply_file
    write_json(root / TRANSFORMS_FILE, meta)
    return root / TRANSFORMS_FILE


def _intrinsics(cam: Camera) -> dict[str, Any]:
    """The intrinsics as the images on disk have them: a camera with a lens is written as its
    raw camera and coefficients."""
    lens = cam.lens
    if lens is None:
        return {"w": int(cam.width), "h": int(cam.height), "fl_x": float(cam.fx),
                "fl_y": float(cam.fy), "cx": float(cam.cx), "cy": float(cam.cy)}
    out: dict[str, Any] = {"w": lens.width, "h": lens.height, "fl_x": lens.fx, "fl_y": lens.fy,
                           "cx": lens.cx, "cy": lens.cy}
    if lens.model == FISHEYE:
        out["camera_model"] = "OPENCV_FISHEYE"
        out.update(zip(("k1", "k2", "k3", "k4"), lens.coeffs))
    else:
        c = lens.coeffs + (0.0,) * (8 - len(lens.coeffs))
        if any(c[6:]):
            raise ValueError(f"camera {cam.name!r}: transforms.json cannot hold k5, k6")
        out.update(k1=c[0], k2=c[1], p1=c[2], p2=c[3], k3=c[4], k4=c[5])
    return out


def read_point_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A PLY point cloud → ([P, 3] float64 xyz, [P, 3] uint8 rgb or None if it has no colours)."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"point cloud file not found: {path}")
    try:
        vertex = PlyData.read(str(path))["vertex"]
        xyz = np.stack([vertex[k] for k in ("x", "y", "z")], axis=1).astype(np.float64)
        names = vertex.data.dtype.names
        rgb = None
        if all(k in names for k in ("red", "green", "blue")):
            rgb = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1).astype(np.uint8)
    except Exception as error:  # plyfile raises several unrelated types on bad input
        raise SceneError(f"cannot read point cloud {path}: {error}") from None
    return xyz, rgb


def write_point_ply(path: str | Path, points: np.ndarray, colors: np.ndarray) -> None:
    """[P, 3] float points and [P, 3] uint8 colours as a binary little-endian PLY (atomic)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    vertex = np.empty(len(points), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, key in enumerate("xyz"):
        vertex[key] = points[:, i]
    for i, key in enumerate(("red", "green", "blue")):
        vertex[key] = colors[:, i]
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(vertex, "vertex")]).write(buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
