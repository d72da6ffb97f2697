"""The node fed as ordinary drivers feed it (issue 25): a separate client process
(driver_client.py) sends each frame's five messages back to back with one stamp on sensor-data
QoS, in several orders, while the node trains; every frame must be taken, a frame lost on the way
must show in ~/status, and pixel prompts at held-out poses (camera_info + camera_pose, no image)
must find the objects. Unlike test_node.py's driver, nothing here waits between messages.

The scene is small (160x120) so that the file runs in about two minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FRAMES = 12


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    from cgc_core.data.synth import make_synthetic_scene

    return make_synthetic_scene(tmp_path_factory.mktemp("scene"), seed=0, width=160,
                                height=120, n_train=FRAMES, n_test=2)


def delta(after: dict, before: dict, key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


@pytest.mark.slow
def test_every_frame_taken_in_any_order_and_prompts_at_held_out_poses(
        cgc_nodes, run_script, scene, tmp_path, ros_namespace):
    cgc_nodes(ros_namespace, "pose_source:=topic", "external_segments:=true",
              f"map_directory:={tmp_path}", "publish_rate:=4.0")
    before: dict = {}
    masks = str(scene / "masks_inconsistent")
    for order in ("image_last", "image_first", "info_every_other"):
        # The first stream loses two frames on the way (never published).
        skip = ("--skip", "7,8") if not before else ()
        out = run_script("driver_client.py", ros_namespace, str(scene), "--order", order,
                         "--frames", str(FRAMES), "--rate", "4", "--masks", masks, *skip,
                         timeout=120)
        status = out["status"]
        sent = out["frames_sent"]
        assert sent == FRAMES - len(skip) and sent > 0
        # Every image and every companion reached the node and every frame was taken, though
        # the node trains all the while (it started on the first run's first keyframe).
        for topic in ("image", "camera_info", "pose", "depth", "segments"):
            expected = sent // 2 if order == "info_every_other" and topic == "camera_info" \
                else sent
            assert delta(status, before, f"received.{topic}") == expected, (order, status)
        assert delta(status, before, "frames_accepted") == sent, (order, status)
        assert delta(status, before, "frames_rejected") == 0, (order, status)
        reused = delta(status, before, "camera_info_reused")
        assert reused == (sent // 2 if order == "info_every_other" else 0), (order, status)
        if skip:  # the gap in the steady stream's stamps is counted (and logged)
            assert status.get("stream_gaps") == 1 and status.get("frames_missing") == 2, status
        before = status

    # Pixel prompts at the held-out poses, given by camera_info + camera_pose only.
    out = run_script("driver_client.py", ros_namespace, str(scene), "--frames", "0",
                     "--steps", "150", "--heldout", timeout=300)
    assert out["status"]["session"]["step"] >= 150
    heldout = out["heldout"]
    assert heldout["answered"] == heldout["pairs"] > 0, heldout
    assert heldout["mIoU"] >= 60.0, heldout
    # A view only half given (camera_pose, no camera_info) is refused, with a reason.
    half = heldout["half_view"]
    assert not half["success"] and "camera_info is empty" in half["message"], half
    json.dumps(out)  # the client's report stays plain JSON
