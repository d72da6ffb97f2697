"""Training views: a camera with its image and segment map as tensors at training resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from cgc_core.cameras import Camera
from cgc_core.config import LossConfig
from cgc_core.segment.edges import snap_as_configured
from cgc_core.train.corrections import ViewCorrection


@dataclass
class TrainingView:
    camera: Camera           # at training resolution
    image: Tensor            # [H, W, 3] float32 in [0, 1]
    segments: Tensor | None  # [H, W] int64 segment ids (0 = unlabelled), view-local meaning
    viewmat: Tensor          # [4, 4] world-to-camera
    K: Tensor                # [3, 3]
    area_scale: float = 1.0  # training pixels / native pixels (pixel-count thresholds scale by it)
    depth: Tensor | None = None  # [H, W] measured metres (0 = invalid) at training resolution
    correction: ViewCorrection | None = None
    """Pose and exposure learned for this view (`train/corrections.py`); made by the trainer."""
    added_at: int = 0
    """Trainer iteration at which the view joined training (0 for a planned run's views): its
    pose starts moving `train.pose_refine_from` iterations later."""
    ignore: Tensor | None = None
    """[H, W] bool: pixels left out of the colour loss (the live session's changed regions,
    `LiveSession._set_aside`); their depth and segments are invalid too."""

    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def height(self) -> int:
        return self.camera.height


def training_scale(camera: Camera, max_resolution: int) -> float:
    """Factor that brings the longer image side to at most max_resolution (0: keep native)."""
    longest = max(camera.width, camera.height)
    return 1.0 if max_resolution <= 0 or longest <= max_resolution else max_resolution / longest


def make_training_view(camera: Camera, image: np.ndarray, segments: np.ndarray | None,
                       max_resolution: int, device: torch.device | str = "cpu",
                       loss: LossConfig | None = None) -> TrainingView:
    """Resize image (area) and segments (nearest: ids must not blend) to training resolution.

    Args:
        image: [H, W, 3] uint8 at the camera's native resolution.
        segments: [H, W] int segment ids, or None.
        loss: with `mask_snap_px` > 0, the segments' boundaries are first snapped to the image's
            colour edges (`snap_as_configured`, at native resolution); None leaves them as given.
    """
    if image.shape[:2] != (camera.height, camera.width):
        raise ValueError(f"{camera.name}: image is {image.shape[1]}x{image.shape[0]}, camera says "
                         f"{camera.width}x{camera.height}")
    if segments is not None and segments.shape != image.shape[:2]:
        raise ValueError(f"{camera.name}: segment map is {segments.shape[1]}x{segments.shape[0]}, "
                         f"image is {image.shape[1]}x{image.shape[0]}")
    if segments is not None and loss is not None and loss.mask_snap_px > 0:
        segments = snap_as_configured(segments, image, loss)
    scale = training_scale(camera, max_resolution)
    cam = camera.scaled(scale) if scale != 1.0 else camera
    if scale != 1.0:
        image = np.asarray(Image.fromarray(image).resize((cam.width, cam.height), Image.BOX))
        if segments is not None:
            segments = np.asarray(Image.fromarray(segments.astype(np.int32)).resize(
                (cam.width, cam.height), Image.NEAREST))
    return TrainingView(
        camera=cam,
        image=torch.tensor(image, dtype=torch.float32, device=device) / 255.0,
        segments=None
        if segments is None
        else torch.tensor(segments.astype(np.int64), device=device),
        viewmat=torch.tensor(cam.world_to_cam, dtype=torch.float32, device=device),
        K=torch.tensor(cam.K, dtype=torch.float32, device=device),
        area_scale=(cam.width * cam.height) / (camera.width * camera.height),
    )


def scene_extent(cameras: list[Camera]) -> float:
    """3DGS's 'cameras extent': 1.1 x the largest camera distance from their mean centre."""
    centres = np.stack([c.cam_to_world[:3, 3] for c in cameras])
    radius = (
        float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) if len(centres) > 1 else 1.0
    )
    return 1.1 * max(radius, 1e-3)
