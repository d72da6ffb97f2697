"""From a scene on disk and its segment maps to a ready `Trainer`: the one set-up that the `cgc`
command, the benchmarks and the tests share."""

from __future__ import annotations

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig, LiveConfig, apply_overrides
from cgc_core.data import Scene
from cgc_core.geometry import backproject
from cgc_core.io import DataError
from cgc_core.train.growth import axes_meeting_point, depth_in_view
from cgc_core.train.live import LiveSession
from cgc_core.train.schedule import planned_iterations, with_scene_resolution
from cgc_core.train.trainer import Trainer
from cgc_core.train.views import scene_extent


def initial_points(scene: Scene, cameras: list[Camera], extent: float, count: int,
                   rng: np.random.Generator, live: LiveConfig | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Points to seed Gaussians: the scene's point cloud, else depth back-projection, else
    pixel rays at the depth where the cameras' axes meet, else random points around the
    cameras' look-at region.

    Args:
        cameras: the training cameras (native resolution).
        extent: the scene extent (`scene_extent`), sizes the random box.
        count: points in all when drawing from depth, rays or at random (`model.init_points`).
        live: `depth_from_axes`, `axes_min_angle_deg` and `rays_depth_spread` for the rays
            (None: the defaults).

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
    rays = rays_at_axes(scene, cameras, per_view, rng, LiveConfig() if live is None else live)
    if rays is not None:
        return rays
    centres = np.stack([c.cam_to_world[:3, 3] for c in cameras])
    look = np.stack([c.cam_to_world[:3, 2] for c in cameras])
    target = (centres + look * extent / 1.1).mean(0)
    return target + rng.uniform(-extent / 2, extent / 2, size=(count, 3)), None


def rays_at_axes(scene: Scene, cameras: list[Camera], per_view: int, rng: np.random.Generator,
                 live: LiveConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """`per_view` random pixels of each view on their rays at the depth where the cameras' axes
    meet, spread log-uniformly over 1 / `rays_depth_spread` to `rays_depth_spread` times it,
    coloured by the image; None when the axes meet nowhere (`growth.axes_meeting_point`).

    Without depth or points, this is how the live session grows (`live.depth_from_axes`), and
    on a capture it starts nearer the surfaces than a box of random points: the views that
    follow keep what they agree on. The lens is taken as a pinhole here: a seed, not a
    measurement.
    """
    if not live.depth_from_axes:
        return None
    meeting = axes_meeting_point([c.cam_to_world for c in cameras], live.axes_min_angle_deg,
                                 min_depth=1e-3)
    if meeting is None:
        return None
    points, colors = [], []
    spread = np.log(max(live.rays_depth_spread, 1.0))
    for cam in cameras:
        z0 = depth_in_view(meeting, cam)
        rows = rng.integers(0, cam.height, per_view)
        cols = rng.integers(0, cam.width, per_view)
        z = z0 * np.exp(rng.uniform(-spread, spread, per_view))
        in_camera = np.stack([(cols + 0.5 - cam.cx) / cam.fx * z,
                              (rows + 0.5 - cam.cy) / cam.fy * z, z], axis=1)
        points.append(in_camera @ cam.cam_to_world[:3, :3].T + cam.cam_to_world[:3, 3])
        colors.append(scene.load_image(cam)[rows, cols])
    return np.concatenate(points), np.concatenate(colors)


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
    points, colors = initial_points(scene, cameras, extent, config.model.init_points, rng,
                                    config.live)
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
