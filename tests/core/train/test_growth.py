"""Where new Gaussians go when a frame has no depth: where the cameras' optical axes meet."""

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.train.growth import axes_meeting_point, depth_in_view


def look_at(origin, target) -> np.ndarray:
    """Camera-to-world [4, 4], OpenCV axes (+z forward), looking from `origin` at `target`."""
    forward = np.asarray(target, float) - origin
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = origin
    return pose


def test_cameras_around_an_object_meet_at_it():
    target = np.array([0.3, -0.2, 0.1])
    rng = np.random.default_rng(0)
    poses = []
    for angle in np.linspace(0, 1.5 * np.pi, 12):
        origin = target + 4.8 * np.array([np.cos(angle), np.sin(angle), 0.4])
        poses.append(look_at(origin, target + rng.normal(0, 0.05, 3)))  # aimed roughly
    point = axes_meeting_point(poses, min_angle_deg=15, min_depth=0.01)
    assert point is not None and np.linalg.norm(point - target) < 0.1
    camera = Camera("view", 100, 100, 100.0, 100.0, 50.0, 50.0, cam_to_world=poses[0])
    assert abs(depth_in_view(point, camera) - np.linalg.norm(poses[0][:3, 3] - target)) < 0.1


def test_axes_that_tell_no_depth_give_none():
    ahead = [look_at(np.array([x, 0.0, 0.5]), np.array([x, 10.0, 0.5])) for x in (0, 0.5, 1)]
    assert axes_meeting_point(ahead, 15, 0.01) is None  # driving forward: parallel axes
    centre = np.zeros(3)
    panning = [look_at(centre, [np.cos(a), np.sin(a), 0.0]) for a in np.linspace(0, 2, 6)]
    assert axes_meeting_point(panning, 15, 0.01) is None  # they meet at the camera itself
    close = [look_at(np.array([x, 0.0, 0.0]), np.array([0.0, 5.0, 0.0])) for x in (-0.2, 0.2)]
    assert axes_meeting_point(close, 15, 0.01) is None  # 4.6 degrees apart: too narrow
    wide = [look_at(np.array([x, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])) for x in (-1, 1)]
    assert axes_meeting_point(wide, 15, 0.01) is not None
    assert axes_meeting_point(wide[:1], 15, 0.01) is None  # one camera tells nothing


def test_offline_seeds_from_rays_at_the_axes_without_depth_or_points(tiny_scene, tmp_path):
    import json
    import shutil

    from cgc_core.config import CGCConfig, apply_overrides
    from cgc_core.data import load_scene
    from cgc_core.train.from_scene import initial_points, session_from_scene
    from cgc_core.train.views import scene_extent

    scene = load_scene(tiny_scene)
    # A capture without depth or points: the tiny scene's views and poses alone.
    bare = tmp_path / "bare"
    shutil.copytree(tiny_scene, bare, ignore=shutil.ignore_patterns("depth", "*.ply", "sparse"))
    transforms = json.loads((bare / "transforms.json").read_text())
    transforms.pop("ply_file_path", None)
    for frame in transforms["frames"]:
        frame.pop("depth_file_path", None)
    (bare / "transforms.json").write_text(json.dumps(transforms))
    bare_scene = load_scene(bare)
    cameras = [bare_scene.camera(n) for n in bare_scene.train_names]
    points, colors = initial_points(bare_scene, cameras, scene_extent(cameras), 800,
                                    np.random.default_rng(0))
    assert colors is not None and len(points) == len(colors) == 800
    meeting = axes_meeting_point([c.cam_to_world for c in cameras], 15, 1e-3)
    first = points[:100]  # the first view's share, on its rays around the meeting depth
    z = first @ cameras[0].world_to_cam[:3, :3].T + cameras[0].world_to_cam[:3, 3]
    guess = depth_in_view(meeting, cameras[0])
    assert np.all(z[:, 2] >= guess / 2 - 1e-6) and np.all(z[:, 2] <= guess * 2 + 1e-6)
    # Offline, a map seeded before its frames keeps its seed: the axes never grow it again,
    # even where `live.default_depth` was far off (before, its first keyframes replaced it).
    config = apply_overrides(CGCConfig(), {"train": {"iterations": 10, "max_resolution": 0},
                                           "live": {"default_depth": 0.1}})
    session = session_from_scene(scene, None, config, torch.device("cpu"))
    assert session.trainer.splats["means"].shape[0] == len(scene.points)
