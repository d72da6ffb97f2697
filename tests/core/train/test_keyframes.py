"""Keyframe rules, eviction and the iteration schedule, on poses whose answers are known."""

import math

import numpy as np

from cgc_core.config import LiveConfig
from cgc_core.train.keyframes import (
    KeyframeEvidence,
    KeyframePicker,
    keyframe_reason,
    most_redundant,
    pose_change,
)


def pose(x=0.0, yaw_deg=0.0):
    a = math.radians(yaw_deg)
    p = np.eye(4)
    p[:3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    p[0, 3] = x
    return p


def test_pose_change_measures_translation_and_rotation():
    t, r = pose_change(pose(0.0, 0.0), pose(0.3, 25.0))
    assert abs(t - 0.3) < 1e-9 and abs(r - 25.0) < 1e-6


def evidence(**kw):
    base = dict(translation=0.0, rotation_deg=0.0, median_depth=2.0, overlap=1.0,
                empty_fraction=0.0)
    return KeyframeEvidence(**{**base, **kw})


def test_keyframe_reasons_follow_the_thresholds():
    c = LiveConfig()
    assert keyframe_reason(evidence(), c) is None
    assert keyframe_reason(evidence(translation=0.08 * 2.0 * 1.01), c) == "moved"
    assert keyframe_reason(evidence(translation=0.08 * 2.0 * 0.99), c) is None
    assert keyframe_reason(evidence(rotation_deg=21), c) == "turned"
    assert keyframe_reason(evidence(overlap=0.85), c) == "overlap"
    assert keyframe_reason(evidence(empty_fraction=0.3), c) == "empty"


def test_most_redundant_is_a_near_duplicate_and_never_the_newest():
    poses = [pose(0.0), pose(1.0), pose(1.01), pose(2.0), pose(2.001)]
    # The newest (index 4) has the closest twin, but it must stay; its twin 3 goes.
    assert most_redundant(poses, depth_scale=1.0) == 3
    poses = [pose(0.0), pose(1.0), pose(1.02), pose(3.0)]
    assert most_redundant(poses, depth_scale=1.0) in (1, 2)


def test_picker_favours_a_fresh_newest_keyframe_then_goes_round_evenly():
    config = LiveConfig()
    picker = KeyframePicker(config, np.random.default_rng(0), favour_newest=True)
    fresh = [picker.pick(20, uses_of_newest=0) for _ in range(2000)]
    share = fresh.count(19) / len(fresh)
    assert abs(share - config.newest_share) < 0.05
    # The rest lands mostly in the recent window: older keyframes are rarer but not forgotten.
    recent = sum(1 for i in fresh if 19 - config.window <= i < 19)
    older = sum(1 for i in fresh if i < 19 - config.window)
    assert recent > older > 0
    stale = [picker.pick(20, uses_of_newest=config.fresh_iterations) for _ in range(200)]
    assert sorted(stale) == sorted(list(range(20)) * 10)  # every keyframe once per round
