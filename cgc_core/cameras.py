"""The one camera type of cgc_core.

Conventions (docs/engine.md, "Conventions"): OpenCV / ROS optical axes (x right, y down, z forward),
camera-to-world 4x4 matrices, pixel (u, v) = (column, row) with pixel centres at integer + 0.5,
depth in metres along the optical axis (0 or non-finite = invalid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cgc_core.lens import Lens

# nerfstudio / Blender store camera-to-world in OpenGL axes (x right, y up, z back).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class Camera:
    """A posed pinhole camera, optionally with its image and depth."""

    name: str
    """Frame name: the image file's stem; how prompts and ground truth refer to this view."""
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    cam_to_world: np.ndarray = field(repr=False)
    """[4, 4] float64 camera-to-world, OpenCV optical axes."""
    image_path: Path | None = None
    depth_path: Path | None = None
    """Optional depth image (16-bit PNG in millimetres, or .npy / .exr-free float32 metres)."""
    lens: Lens | None = None
    """The distorted camera this pinhole view was undistorted from (`cgc_core.lens`): its images
    on disk or on the wire are raw, and masks go back to their grid; None for pinhole images."""

    @property
    def K(self) -> np.ndarray:
        """[3, 3] intrinsics matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def world_to_cam(self) -> np.ndarray:
        """[4, 4] world-to-camera (the 'view matrix')."""
        return np.linalg.inv(self.cam_to_world)

    def scaled(self, factor: float) -> Camera:
        """The same camera at `factor` times the resolution (intrinsics scaled to match), a plain
        pinhole camera (no `lens`: the raw grid does not scale with it)."""
        w, h = max(1, round(self.width * factor)), max(1, round(self.height * factor))
        sx, sy = w / self.width, h / self.height
        return Camera(
            self.name,
            w,
            h,
            self.fx * sx,
            self.fy * sy,
            self.cx * sx,
            self.cy * sy,
            self.cam_to_world.copy(),
            self.image_path,
            self.depth_path,
        )
