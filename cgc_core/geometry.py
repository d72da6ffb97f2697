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
