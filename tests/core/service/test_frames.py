"""Frame admission without ROS: stamp rules, companions matched by stamp, refusals by reason.

Messages are plain objects with the fields of sensor_msgs / geometry_msgs (what the node and
the bag reader both hand over); the rules are the node's, driven here without a process.
"""

import collections
import time
from types import SimpleNamespace as NS

import numpy as np
import pytest

from cgc_core.service.buffers import DropOldestQueue, RateLimitedLog, StampBuffer
from cgc_core.service.frames import (
    STAMP_RESTART_FRAMES,
    FrameInputs,
    FrameIntake,
    FrameRejected,
    StampRules,
)
from cgc_core.service.settings import NodeSettings, node_parameters


def settings(**changes) -> NodeSettings:
    values = {p.name: p.default for p in node_parameters()}
    values.update(pose_source="topic", map_directory="/tmp/none", **changes)
    return NodeSettings(**values)


def header(stamp: float, frame_id: str = "cam") -> NS:
    sec = int(stamp)
    return NS(stamp=NS(sec=sec, nanosec=int(round((stamp - sec) * 1e9))), frame_id=frame_id)


def image(stamp: float, width: int = 4, height: int = 3) -> NS:
    data = np.full((height, width, 3), 100, np.uint8).tobytes()
    return NS(header=header(stamp), width=width, height=height, encoding="rgb8",
              is_bigendian=0, step=3 * width, data=data)


def camera_info(stamp: float, width: int = 4, height: int = 3, fx: float = 5.0) -> NS:
    return NS(header=header(stamp), width=width, height=height,
              k=[fx, 0, 2.0, 0, fx, 1.5, 0, 0, 1])


def pose(stamp: float, frame_id: str = "map", w: float = 1.0) -> NS:
    return NS(header=header(stamp, frame_id),
              pose=NS(position=NS(x=0.0, y=0.0, z=0.0), orientation=NS(x=0.0, y=0.0, z=0.0, w=w)))


def intake(**changes) -> tuple[FrameIntake, collections.Counter]:
    inputs = FrameInputs(frames=DropOldestQueue(8), camera_info=StampBuffer(),
                         depth=StampBuffer(), pose=StampBuffer(), segments=StampBuffer(),
                         clock=lambda: 1000.0)
    counts = collections.Counter()
    logged = []
    return FrameIntake(settings(**changes), inputs, counts, RateLimitedLog(logged.append),
                       collections.deque()), counts


def test_stamp_rules_refuse_unset_far_repeated_and_older_stamps_and_follow_a_restart():
    restarts = []
    rules = StampRules(max_stamp_skew=60.0, clock=lambda: 1000.0, on_restart=restarts.append)
    reasons = []
    for stamp in (0.0, 2000.0, 990.0, 990.0, 989.0):
        try:
            rules.admit(stamp)
            reasons.append("ok")
        except FrameRejected as error:
            reasons.append(error.reason)
    assert reasons == ["stamp_unset", "stamp_far", "ok", "stamp_duplicate", "stamp_order"]
    for i in range(STAMP_RESTART_FRAMES - 2):  # older again and again: refused until ...
        with pytest.raises(FrameRejected):
            rules.admit(980.0 + i)
    rules.admit(950.0)  # ... the fifth in a row: time went back, and is followed
    assert restarts == [990.0] and rules.last == 950.0
    rules.admit(951.0)


def test_skew_check_is_off_at_zero_and_while_the_clock_is_unset():
    StampRules(0.0, clock=lambda: 1000.0).admit(5.0)
    StampRules(60.0, clock=lambda: 0.0).admit(5.0)  # sim time not yet published


def test_an_image_waits_for_its_companions_then_is_decoded_in_cgc_conventions():
    frames, counts = intake()
    frames.arrived(time.monotonic(), image(10.0))
    assert list(frames.ready()) == []  # nothing else arrived yet: it waits, nothing blocks
    frames.inputs.camera_info.put(10.0, camera_info(10.01))
    frames.inputs.pose.put(10.02, pose(10.02))
    (_, img, companions), = list(frames.ready())
    frame = frames.decode(img, *companions)
    assert frame.camera.fx == 5.0 and frame.rgb.shape == (3, 4, 3) and frame.keyframe is None
    assert np.allclose(frame.camera.cam_to_world, np.eye(4))
    assert counts["frames_taken"] == 1 and counts["frames_rejected"] == 0


def test_missing_companions_are_refused_by_reason_after_sync_wait():
    frames, counts = intake(sync_wait=0.0)
    frames.inputs.pose.put(20.0, pose(20.0))
    frames.arrived(time.monotonic(), image(20.0))
    assert list(frames.ready()) == []
    assert counts["rejected.camera_info"] == 1
    frames.inputs.camera_info.put(21.0, camera_info(21.0))
    frames.arrived(time.monotonic(), image(21.0))
    assert list(frames.ready()) == []
    assert counts["rejected.pose"] == 1


def test_camera_info_of_an_earlier_frame_is_reused_within_its_limit_only():
    frames, counts = intake(sync_wait=0.0, camera_info_reuse=2.0)
    frames.inputs.camera_info.put(30.0, camera_info(30.0))
    for stamp in (31.0, 33.5):
        frames.inputs.pose.put(stamp, pose(stamp))
        frames.arrived(time.monotonic(), image(stamp))
    assert len(list(frames.ready())) == 1  # 1 s after it: reused; 3.5 s after: refused
    assert counts["camera_info_reused"] == 1 and counts["rejected.camera_info"] == 1


@pytest.mark.parametrize("bad, reason", [
    (dict(info=camera_info(40.0, fx=0.0)), "camera_info"),
    (dict(info=camera_info(40.0, width=5)), "size"),
    (dict(pose=pose(40.0, frame_id="odom")), "pose"),
    (dict(pose=pose(40.0, w=0.5)), "pose"),
])
def test_bad_companions_are_refused_with_their_reason(bad, reason):
    frames, _ = intake()
    parts = {"info": camera_info(40.0), "pose": pose(40.0), **bad}
    with pytest.raises(ValueError) as caught:
        frames.decode(image(40.0), parts["info"], None, parts["pose"], None)
    # The reason `FrameIntake.refuse` counts: FrameRejected's own, or the conversion's prefix.
    counted = getattr(caught.value, "reason", None) or str(caught.value).split(":")[0]
    assert counted == reason
