"""Small geometry helpers shared by the engine: quaternions and depth back-projection.

Conventions as in `cgc_core.cameras`: quaternions (w, x, y, z); OpenCV camera axes; pixel
(u, v) = (column, row) with its centre at (u + 0.5, v + 0.5); z-depth in metres.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from cgc_core.cameras import Camera


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices of quaternions (differentiable).

    Args:
        quats: [N, 4] (w, x, y, z), not necessarily normalised (normalised here).

    Returns:
        [N, 3, 3] rotation matrices.
    """
    w, x, y, z = (quats / quats.norm(dim=-1, keepdim=True)).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(-1, 3, 3)


def backproject(camera: Camera, depth: np.ndarray, rows: np.ndarray,
                cols: np.ndarray) -> np.ndarray:
    """World points of the given pixels at their depth (pixel centres at integer + 0.5).

    Args:
        camera: the camera that saw `depth` (its native resolution).
        depth: [H, W] z-depth in metres.
        rows: [P] pixel rows (v); cols: [P] pixel columns (u).

    Returns:
        [P, 3] float64 world points.
    """
    z = depth[rows, cols].astype(np.float64)
    x = (cols + 0.5 - camera.cx) / camera.fx * z
    y = (rows + 0.5 - camera.cy) / camera.fy * z
    c2w = camera.cam_to_world
    return np.stack([x, y, z], axis=1) @ c2w[:3, :3].T + c2w[:3, 3]


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """[4, 4] OpenCV camera-to-world at `eye` looking at `target`, image 'up' towards `up`."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, float))
    if np.linalg.norm(right) < 1e-6:  # looking along `up`: any right angle will do
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)  # OpenCV y points down in the image
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def depth_at(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """A depth map [H, W] at another size by nearest sampling (depths must not blend across
    edges). Returns [height, width] float32."""
    rows = np.minimum(((np.arange(height) + 0.5) * depth.shape[0] / height).astype(int),
                      depth.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * depth.shape[1] / width).astype(int),
                      depth.shape[1] - 1)
    return np.ascontiguousarray(depth[rows][:, cols], dtype=np.float32)
