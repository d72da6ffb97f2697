"""A driver-like client of a running cgc node: what a camera driver and a SLAM pose source send.

    driver_client.py NAMESPACE SCENE [--order image_last] [--frames 40] [--rate 2]
                     [--masks DIR] [--steps 0] [--heldout] [--save NAME]

Unlike the main job's player (cgc_eval.player), nothing here is arranged for the node: for each
frame the five messages go out back to back, all with the frame's stamp, on sensor-data QoS
(best effort, depth 5), as drivers publish them:

- image_last: PoseStamped, CameraInfo, 32FC1 depth, mono16 segments, rgb8 Image (issue 25);
- image_first: Image first, then segments, depth, CameraInfo, PoseStamped;
- info_every_other: as image_last, but CameraInfo only on every other frame (some drivers
  publish it at a lower rate): the node reuses the last one.

Then, with --steps, it waits until the node has trained that many iterations; with --heldout it
asks `~/segment_object` by pixel prompt in every held-out view of the scene (test_mask/), giving
that view's `camera_info` and `camera_pose` and no image, and scores the masks (mIoU). The
prompt pixel of an object in a view is the inside-most pixel of its true mask there (farthest
from the mask's edge; `heldout_prompts`), so the node and an offline query of the same map can
be given the very same prompts.

Prints one JSON object: frames sent, the node's ~/status after, the held-out scores and the
service latencies. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cgc_eval: run from a clone

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped

from cgc_core.data.ground_truth import load_gt_masks
from cgc_core.data.load import load_scene
from cgc_core.io import read_label_png
from cgc_core.metrics import evaluate_masks
from cgc_eval.driver import ORDERS, NodeDriver, header
from cgc_ros import conversions as cv
from cgc_ros.srv import SaveMap, SegmentObject


def heldout_prompts(gt: dict) -> dict:
    """{(frame, object): (u, v)}: the pixel of each true mask farthest from its edge."""
    from scipy.ndimage import distance_transform_edt

    prompts = {}
    for frame, objects in gt.items():
        for name, mask in objects.items():
            if mask.sum() == 0:
                continue
            distance = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
            v, u = np.unravel_index(int(np.argmax(distance)), mask.shape)
            prompts[(frame, name)] = (int(u), int(v))
    return prompts


def run(args) -> dict:
    scene = load_scene(args.scene)
    client = NodeDriver("cgc_driver_client", args.namespace)
    ok = client.wait_for(lambda: all(p.get_subscription_count() > 0 for name, p in
                                     client.pub.items() if name != "segments" or args.masks),
                         30.0)
    if not ok:
        raise RuntimeError("the node's subscriptions did not appear")
    client.spin(1.0)
    base = dict(client.status)  # the node may have taken other streams before this one
    cameras = scene.train_cameras[:args.frames]
    start_wall, start = time.time(), time.monotonic()
    sent = []
    for i, camera in enumerate(cameras):
        segments = None
        if args.masks is not None:
            segments = read_label_png(args.masks / f"{camera.name}.png").astype(np.int64)
        msgs = client.frame_messages(camera, scene.load_image(camera), scene.load_depth(camera),
                                     segments, start_wall + i / args.rate)
        client.wait_for(lambda: time.monotonic() >= start + i / args.rate, 60.0)
        if i in args.skip:
            continue  # a frame lost on the way: never published
        client.publish(msgs, args.order, i)
        sent.append(start_wall + i / args.rate)
    # Every frame of this stream accounted for in ~/status (accepted, refused or dropped),
    # bounded.
    def settled(status: dict) -> int:
        return sum(status.get(k, 0) for k in ("frames_accepted", "frames_rejected",
                                              "frames_dropped"))
    client.wait_for(lambda: settled(client.status) - settled(base) >= len(sent), 60.0)
    streamed = dict(client.status)
    result = {"order": args.order, "frames_sent": len(sent), "rate": args.rate,
              "size": [cameras[0].width, cameras[0].height] if cameras else None,
              "status_streamed": streamed}
    if args.steps:
        client.wait_for(lambda: client.status.get("session", {}).get("step", 0) >= args.steps,
                        args.train_timeout)
    if args.heldout:
        result["heldout"] = heldout(client, scene)
    if args.save:
        saved = client.call("save_map", SaveMap.Request(name=args.save), timeout=180.0)
        result["saved"] = {"success": saved.success, "path": saved.path,
                           "message": saved.message}
    client.spin(1.5)
    result["status"] = client.status
    return result


def heldout(client: NodeDriver, scene) -> dict:
    """Pixel prompts at every held-out view's pose, scored against its true masks."""
    gt = load_gt_masks(scene.root)
    predictions, seconds, failures = {}, [], []
    for (frame, name), (u, v) in heldout_prompts(gt).items():
        camera = scene.camera(frame)
        request = SegmentObject.Request(
            use_pixel=True, u=u, v=v, camera_info=cv.camera_to_camera_info(camera, header(0.0)),
            camera_pose=PoseStamped(header=header(0.0, "map"),
                                    pose=cv.matrix_to_pose(camera.cam_to_world)))
        started = time.monotonic()
        response = client.call("segment_object", request)
        seconds.append(time.monotonic() - started)
        if response.success:
            predictions[(frame, name)] = cv.image_to_segments(response.mask) > 0
        else:
            failures.append(f"{frame}/{name}: {response.message}")
    scores = evaluate_masks(predictions, {(f, n): m for f, objs in gt.items()
                                          for n, m in objs.items()})
    # A view only half given: camera_pose without camera_info must be refused, not answered
    # for the latest keyframe.
    frame = next(iter(gt))
    half = client.call("segment_object", SegmentObject.Request(
        use_pixel=True, u=1, v=1, camera_pose=PoseStamped(
            header=header(0.0, "map"), pose=cv.matrix_to_pose(scene.camera(frame).cam_to_world))))
    return {"half_view": {"success": half.success, "message": half.message},
            "mIoU": round(scores["mIoU"], 2), "mBIoU": round(scores["mBIoU"], 2),
            "pairs": scores["pairs"], "answered": len(predictions), "failures": failures[:10],
            "service_seconds_median": round(float(np.median(seconds)), 3) if seconds else None,
            "service_seconds_max": round(float(np.max(seconds)), 3) if seconds else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("namespace")
    parser.add_argument("scene", type=Path)
    parser.add_argument("--order", choices=ORDERS, default="image_last")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--masks", type=Path, help="segment PNGs per frame, sent on `segments`")
    parser.add_argument("--steps", type=int, default=0, help="wait for this many iterations")
    parser.add_argument("--train-timeout", type=float, default=900.0)
    parser.add_argument("--skip", type=lambda text: {int(i) for i in text.split(",")},
                        default=set(), help="frame indices not to publish (lost on the way)")
    parser.add_argument("--heldout", action="store_true")
    parser.add_argument("--save", help="save the map under this name at the end")
    args = parser.parse_args(argv)
    rclpy.init()
    try:
        print(json.dumps(run(args)), flush=True)
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
