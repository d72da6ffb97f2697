"""From a scene on disk and its segment maps to a ready `Trainer`: the one set-up that the `cgc`
command, the benchmarks and the tests share."""

from __future__ import annotations

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig, apply_overrides
from cgc_core.data import Scene
from cgc_core.geometry import backproject
from cgc_core.io import DataError
from cgc_core.train.live import LiveSession
from cgc_core.train.schedule import planned_iterations, with_scene_resolution
from cgc_core.train.trainer import Trainer
from cgc_core.train.views import scene_extent


def initial_points(scene: Scene, cameras: list[Camera], extent: float, count: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Points to seed Gaussians: the scene's point cloud, else depth back-projection, else
    random points around the cameras' look-at region.

    Args:
        cameras: the training cameras (native resolution).
        extent: the scene extent (`scene_extent`), sizes the random box.
        count: points in all when drawing from depth or at random (`model.init_points`).

    Returns:
        ([P, 3] float world points, [P, 3] uint8 colours or None).
    """
    if scene.points is not None and len(scene.points) > 0:
        return scene.points, scene.point_colors
    points, colors = [], []
    per_view = max(1, count // max(1, len(cameras)))
    for cam in cameras:
        depth = scene.load_depth(cam)
        if depth is None:
            continue
        rows, cols = np.nonzero(depth > 0)
        if len(rows) == 0:
            continue
        pick = rng.choice(len(rows), size=min(per_view, len(rows)), replace=False)
        rows, cols = rows[pick], cols[pick]
        points.append(backproject(cam, depth, rows, cols))
        colors.append(scene.load_image(cam)[rows, cols])
    if points:
        return np.concatenate(points), np.concatenate(colors)
    centres = np.stack([c.cam_to_world[:3, 3] for c in cameras])
    look = np.stack([c.cam_to_world[:3, 2] for c in cameras])
    target = (centres + look * extent / 1.1).mean(0)
    return target + rng.uniform(-extent / 2, extent / 2, size=(count, 3)), None


def session_from_scene(scene: Scene, segments: dict[str, np.ndarray] | None, config: CGCConfig,
                       device: torch.device) -> LiveSession:
    """`cgc train`'s session: every training view a keyframe, the model seeded from the whole
    scene (`initial_points`), growth off, and the schedule planned for the device.

    The iteration count and training resolution are planned per device and scene
    (`train.iterations`, `train.max_resolution`, `planned_resolution`), and the step-based
    schedule is scaled to that count: the session's `config` is the effective one and its
    `iterations` the planned count.

    Args:
        segments: {training frame name: [H, W] int segment ids at native resolution}, or None to
            train colour only.
    """
    names = scene.train_names
    if not names:
        raise DataError(f"{scene.root}: the scene has no training views")
    iterations = planned_iterations(config, device)
    longest = max(max(c.width, c.height) for c in scene.train_cameras)
    config = apply_overrides(with_scene_resolution(config, device, longest), {"live": {
        "grow": False, "max_keyframes": max(config.live.max_keyframes, len(names))}})
    torch.manual_seed(config.train.seed)
    cameras = [scene.camera(name) for name in names]
    extent = scene_extent(cameras)
    rng = np.random.default_rng(config.train.seed)
    points, colors = initial_points(scene, cameras, extent, config.model.init_points, rng)
    session = LiveSession(config, device=device, seed_points=(points, colors), extent=extent,
                          iterations=iterations)
    for cam in cameras:
        depth = scene.load_depth(cam) if config.loss.depth_weight > 0 else None
        session.add_frame(cam, scene.load_image(cam), depth,
                          None if segments is None else segments[cam.name], keyframe=True)
        session.process_frames()
    return session


def trainer_from_scene(scene: Scene, segments: dict[str, np.ndarray] | None, config: CGCConfig,
                       device: torch.device) -> Trainer:
    """The trainer of `session_from_scene` (for tests and comparisons of the bare trainer)."""
    return session_from_scene(scene, segments, config, device).trainer
