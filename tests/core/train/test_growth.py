"""Where new Gaussians go when a frame has no depth: where the cameras' optical axes meet."""

import numpy as np

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
