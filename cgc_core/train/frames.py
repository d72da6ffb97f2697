"""Checking a frame before it enters a live session: one clear reason per kind of bad input.

A robot's drivers misbehave; a bad frame must be refused with a message and a counter, never
reach the model. Each check names what was wrong and a short `reason` key for the counters.
"""

from __future__ import annotations

import numpy as np

from cgc_core.cameras import Camera
from cgc_core.config import LiveConfig


class FrameRejected(ValueError):
    """A frame that `LiveSession.add_frame` refused; `reason` is a short key for counters."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def check_frame(camera: Camera, image, depth, segments, stamp, config: LiveConfig) -> None:
    """Raise FrameRejected when any part of the frame is malformed (see the messages)."""
    _check_camera(camera, config)
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        raise FrameRejected("image", f"image must be [H, W, 3] uint8, got "
                            f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', '')}")
    if image.size == 0:
        raise FrameRejected("image", "image is empty")
    size = (camera.height, camera.width)
    if image.shape[:2] != size:
        raise FrameRejected("size", f"image is {image.shape[1]}x{image.shape[0]}, camera says "
                            f"{camera.width}x{camera.height}")
    if depth is not None:
        if not isinstance(depth, np.ndarray) or depth.shape != size \
                or not np.issubdtype(depth.dtype, np.floating):
            raise FrameRejected("depth", f"depth must be [{size[0]}, {size[1]}] float metres, got "
                                f"{getattr(depth, 'shape', None)} {getattr(depth, 'dtype', '')}")
        if not np.isfinite(depth).all():
            raise FrameRejected("depth", "depth has non-finite values (NaN or inf)")
        if (depth < 0).any():
            raise FrameRejected("depth", "depth has negative values")
    if segments is not None:
        if not isinstance(segments, np.ndarray) or segments.shape != size \
                or not np.issubdtype(segments.dtype, np.integer):
            raise FrameRejected("segments", f"segments must be [{size[0]}, {size[1]}] integer "
                                f"ids, got {getattr(segments, 'shape', None)} "
                                f"{getattr(segments, 'dtype', '')}")
        if segments.size and segments.min() < 0:
            raise FrameRejected("segments", "segments has negative ids")
    if stamp is not None and not np.isfinite(stamp):
        raise FrameRejected("stamp", f"stamp is not finite: {stamp}")


def _check_camera(camera: Camera, config: LiveConfig) -> None:
    if camera.width <= 0 or camera.height <= 0:
        raise FrameRejected("camera", f"camera size {camera.width}x{camera.height} is empty")
    intrinsics = np.array([camera.fx, camera.fy, camera.cx, camera.cy], dtype=float)
    if not np.isfinite(intrinsics).all() or camera.fx <= 0 or camera.fy <= 0:
        raise FrameRejected("camera", f"focal length must be finite and positive, got "
                            f"fx={camera.fx} fy={camera.fy} cx={camera.cx} cy={camera.cy}")
    pose = np.asarray(camera.cam_to_world, dtype=float)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise FrameRejected("pose", "pose must be a finite 4x4 camera-to-world matrix")
    rotation = pose[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-3) \
            or abs(np.linalg.det(rotation) - 1.0) > 1e-3 \
            or not np.allclose(pose[3], [0, 0, 0, 1], atol=1e-6):
        raise FrameRejected("pose", "pose is not rigid: its rotation must be orthonormal with "
                            "determinant 1 and its last row 0 0 0 1")
    if np.linalg.norm(pose[:3, 3]) > config.max_translation:
        raise FrameRejected("pose", f"camera is {np.linalg.norm(pose[:3, 3]):.3g} m from the "
                            f"origin, more than live.max_translation = {config.max_translation}")
