"""Posed frames through a rosbag2 folder: written and read with `rosbags`, no ROS install."""

from __future__ import annotations

import numpy as np
import pytest

from cgc_core.cameras import Camera
from cgc_core.data.rosbag import BagFrame, BagTopics, read_bag_frames, write_bag_frames
from cgc_core.io import DataError

TOPICS = BagTopics(image="/cam/image", camera_info="/cam/info", pose="/cam/pose",
                   depth="/cam/depth", segments="/cam/segments")


def frame(i: int, rng) -> BagFrame:
    angle = 0.3 * i
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                         [-np.sin(angle), 0, np.cos(angle)]])
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, (0.1 * i, -0.2, 1.5)
    camera = Camera(name=str(i), width=12, height=8, fx=10.0 + i, fy=11.0, cx=6.0, cy=4.5,
                    cam_to_world=pose)
    return BagFrame(stamp=100.0 + 0.5 * i, camera=camera,
                    image=rng.integers(0, 256, (8, 12, 3), dtype=np.uint8),
                    depth=rng.uniform(0.5, 3.0, (8, 12)).astype(np.float32),
                    segments=rng.integers(0, 70000, (8, 12)))


def test_frames_come_back_as_written(tmp_path):
    rng = np.random.default_rng(0)
    written = [frame(i, rng) for i in range(3)]
    write_bag_frames(tmp_path / "bag", written, TOPICS)
    read = list(read_bag_frames(tmp_path / "bag", TOPICS))
    assert len(read) == 3
    for a, b in zip(written, read):
        assert b.stamp == pytest.approx(a.stamp)
        assert (b.camera.width, b.camera.height) == (12, 8)
        assert [b.camera.fx, b.camera.fy, b.camera.cx, b.camera.cy] == [a.camera.fx, 11, 6, 4.5]
        np.testing.assert_allclose(b.camera.cam_to_world, a.camera.cam_to_world, atol=1e-9)
        np.testing.assert_array_equal(b.image, a.image)
        np.testing.assert_array_equal(b.depth, a.depth)
        np.testing.assert_array_equal(b.segments, a.segments)  # ids above 65535 survive


def test_depth_and_segments_are_optional(tmp_path):
    rng = np.random.default_rng(1)
    frames = [frame(i, rng) for i in range(2)]
    no_extras = BagTopics(image="/cam/image", camera_info="/cam/info", pose="/cam/pose")
    write_bag_frames(tmp_path / "bag", frames, no_extras)
    read = list(read_bag_frames(tmp_path / "bag", TOPICS))  # depth, segments asked, absent
    assert [f.depth for f in read] == [None, None]
    assert [f.segments for f in read] == [None, None]
    assert len(read) == 2


def test_missing_topic_and_not_a_bag_are_named(tmp_path):
    rng = np.random.default_rng(2)
    write_bag_frames(tmp_path / "bag", [frame(0, rng)], TOPICS)
    with pytest.raises(DataError, match="/elsewhere/pose"):
        list(read_bag_frames(tmp_path / "bag", BagTopics(image="/cam/image",
                                                         camera_info="/cam/info",
                                                         pose="/elsewhere/pose")))
    with pytest.raises(DataError, match="not a rosbag2 folder"):
        list(read_bag_frames(tmp_path, TOPICS))
