"""Bad frames are refused with a reason, counted, and leave the session unchanged."""

import dataclasses

import numpy as np
import pytest

from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig
from cgc_core.train.live import FrameRejected, LiveSession


def good_frame():
    cam = Camera("f", 16, 12, 20.0, 20.0, 8.0, 6.0, np.eye(4))
    image = np.full((12, 16, 3), 128, np.uint8)
    depth = np.full((12, 16), 1.5, np.float32)
    segments = np.ones((12, 16), np.int32)
    return cam, image, depth, segments


def with_pose(cam, change):
    pose = cam.cam_to_world.copy()
    change(pose)
    return dataclasses.replace(cam, cam_to_world=pose)


def _nan_depth(d):
    d[0, 0] = np.nan


BAD = {
    "size": lambda c, i, d, s: (c, i[:, :8], d, s),
    "empty image": lambda c, i, d, s: (dataclasses.replace(c, width=0, height=0),
                                       np.zeros((0, 0, 3), np.uint8), None, None),
    "float image": lambda c, i, d, s: (c, i.astype(np.float32), d, s),
    "grey image": lambda c, i, d, s: (c, i[..., 0], d, s),
    "zero focal": lambda c, i, d, s: (dataclasses.replace(c, fx=0.0), i, d, s),
    "nan focal": lambda c, i, d, s: (dataclasses.replace(c, fy=float("nan")), i, d, s),
    "nan pose": lambda c, i, d, s: (with_pose(c, lambda p: p.__setitem__((0, 3), np.nan)), i, d,
                                    s),
    "scaled pose": lambda c, i, d, s: (with_pose(c, lambda p: p.__setitem__((0, 0), 2.0)), i, d,
                                       s),
    "mirror pose": lambda c, i, d, s: (with_pose(c, lambda p: p.__setitem__((2, 2), -1.0)), i, d,
                                       s),
    "far pose": lambda c, i, d, s: (with_pose(c, lambda p: p.__setitem__((0, 3), 1e9)), i, d, s),
    "nan depth": lambda c, i, d, s: (c, i, (_nan_depth(d), d)[1], s),
    "negative depth": lambda c, i, d, s: (c, i, d - 5.0, s),
    "depth size": lambda c, i, d, s: (c, i, d[:6], s),
    "segments size": lambda c, i, d, s: (c, i, d, s[:, :3]),
    "float segments": lambda c, i, d, s: (c, i, d, s.astype(np.float32)),
    "negative segments": lambda c, i, d, s: (c, i, d, s - 2),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_frame_is_rejected_counted_and_changes_nothing(kind):
    session = LiveSession(CGCConfig(), device="cpu")
    cam, image, depth, segments = BAD[kind](*good_frame())
    with pytest.raises(FrameRejected) as error:
        session.add_frame(cam, image, depth, segments)
    assert str(error.value)  # says what was wrong
    stats = session.stats()
    assert stats.frames_rejected == 1 and stats.rejected == {error.value.reason: 1}
    assert stats.frames_received == 0 and session.process_frames() == 0
    assert session.snapshot() is None


def test_bad_stamp_is_rejected():
    session = LiveSession(CGCConfig(), device="cpu")
    with pytest.raises(FrameRejected, match="stamp"):
        session.add_frame(*good_frame(), stamp=float("inf"))


def test_good_frame_passes_and_zero_depth_means_unknown():
    session = LiveSession(CGCConfig(), device="cpu")
    cam, image, depth, segments = good_frame()
    depth[:4] = 0.0  # invalid pixels, not an error
    session.add_frame(cam, image, depth, segments)
    assert session.stats().frames_received == 1 and session.stats().frames_rejected == 0
