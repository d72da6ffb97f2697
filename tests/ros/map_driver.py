"""Drive a running cgc node's services with bad and good requests (test_node_maps.py).

    map_driver.py NAMESPACE SCENE empty       requests before the map knows anything
    map_driver.py NAMESPACE SCENE feed        stream a few frames until a keyframe, then invalid
        requests of every kind, then save_map 'good'
    map_driver.py NAMESPACE SCENE save-loop   save_map 'good' again and again (until killed)
    map_driver.py NAMESPACE SCENE loads       load_map: truncated, foreign, good, truncated again
    map_driver.py NAMESPACE SCENE flood       a few frames, then many slow requests at once while
        frames keep coming

Prints one JSON object (save-loop: one line per save). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import rclpy
from drive_node import Driver

from cgc_ros.srv import LabelObject, ListObjects, LoadMap, SaveMap, SegmentObject


def answer(response) -> dict:
    return {"success": bool(response.success), "message": response.message}


def empty(driver: Driver) -> dict:
    camera = driver.scene.train_cameras[0]
    info, pose = driver.camera_msgs(camera, 0.0)
    return {
        "segment_pixel": answer(driver.call("segment_object", SegmentObject.Request(
            use_pixel=True, u=5, v=5, camera_info=info, camera_pose=pose))),
        "segment_text": answer(driver.call("segment_object", SegmentObject.Request(text="cup"))),
        "list": answer(driver.call("list_objects", ListObjects.Request(recluster=True))),
        "label": answer(driver.call("label_object", LabelObject.Request(id=1, label="x"))),
        "save": answer(driver.call("save_map", SaveMap.Request(name="early"))),
    }


def send_frames(driver: Driver, count: int) -> tuple[list, float]:
    """Once the node is up, the first `count` training views, a second apart in stamp and half
    a second in time; returns the scene's training cameras and the first stamp."""
    cameras = driver.scene.train_cameras
    driver.wait_for_node()
    start = float(int(time.time()))
    for i, camera in enumerate(cameras[:count]):
        driver.publish_frame(camera, start + i)
        driver.spin(0.5)
    return cameras, start


def feed(driver: Driver) -> dict:
    cameras, _ = send_frames(driver, 4)
    driver.wait_for(lambda: driver.status.get("session", {}).get("keyframes", 0) >= 1
                    and driver.status["session"].get("step", 0) >= 20, 60.0)
    listed = driver.call("list_objects", ListObjects.Request(recluster=True))
    camera = cameras[0]
    info, pose = driver.camera_msgs(camera, 0.0)

    def pixel(**fields):
        request = SegmentObject.Request(use_pixel=True, u=40, v=40, camera_info=info,
                                        camera_pose=pose)
        for key, value in fields.items():
            setattr(request, key, value)
        return answer(driver.call("segment_object", request))

    huge, _ = driver.camera_msgs(camera, 0.0)
    huge.width = huge.height = 5000
    nan_info, _ = driver.camera_msgs(camera, 0.0)
    k = list(nan_info.k)
    k[0] = float("nan")
    nan_info.k = k
    _, bad_pose = driver.camera_msgs(camera, 0.0)
    bad_pose.pose.orientation.w = 3.0
    _, odom_pose = driver.camera_msgs(camera, 0.0)
    odom_pose.header.frame_id = "odom"
    invalid = {
        "pixel outside": pixel(u=-1),
        "pixel far outside": pixel(v=2**31 - 1),
        "threshold NaN": pixel(threshold=float("nan")),
        "threshold above 1": pixel(threshold=2.0),
        "threshold negative": pixel(threshold=-0.5),
        "view 5000x5000": pixel(camera_info=huge),
        "view NaN focal": pixel(camera_info=nan_info),
        "view non-unit quaternion": pixel(camera_pose=bad_pose),
        "view in another frame": pixel(camera_pose=odom_pose),
        "text empty": answer(driver.call("segment_object", SegmentObject.Request(text="  "))),
        "text too long": answer(driver.call("segment_object",
                                            SegmentObject.Request(text="x" * 10_000))),
        "label unknown id": answer(driver.call("label_object",
                                               LabelObject.Request(id=99999, label="a"))),
        "label too long": answer(driver.call("label_object",
                                             LabelObject.Request(id=1, label="y" * 10_000))),
    }
    for name in ("", "../escape", "/tmp/cgc_absolute", "link/inside_link", "link", ".",
                 "a\nb", "z" * 300, "good/../../escape"):
        invalid[f"save {name!r}"[:40]] = answer(driver.call("save_map", SaveMap.Request(
            name=name)))
        invalid[f"load {name!r}"[:40]] = answer(driver.call("load_map", LoadMap.Request(
            name=name)))
    saved = driver.call("save_map", SaveMap.Request(name="good"))
    driver.spin(1.5)
    return {"listed": {**answer(listed), "count": len(listed.objects)}, "invalid": invalid,
            "saved": {**answer(saved), "path": saved.path}, "status": driver.status}


def flood(driver: Driver) -> dict:
    """Six requests at once, each rendering a 2048x2048 view (slow on a CPU), while frames keep
    coming: the node must refuse what does not fit its queue, time out what waits too long, and
    go on segmenting frames."""
    cameras, start = send_frames(driver, 3)
    driver.wait_for(lambda: driver.status.get("session", {}).get("keyframes", 0) >= 1, 60.0)
    info, pose = driver.camera_msgs(cameras[0], 0.0)
    scale = 2048 / info.width
    info.width, info.height = 2048, int(info.height * scale)
    info.k = [v * scale if i in (0, 2, 4, 5) else v for i, v in enumerate(info.k)]
    sent_at = time.monotonic()
    futures = []
    for _ in range(6):
        futures.append(driver.clients["segment_object"].call_async(SegmentObject.Request(
            use_pixel=True, u=1024, v=700, camera_info=info, camera_pose=pose)))
    answered = {}
    during = []
    for i in range(6):  # frames while the requests wait
        stamp = start + 10 + i
        driver.publish_frame(cameras[i % len(cameras)], stamp)
        during.append(stamp)
        driver.spin(0.5)
        for k, future in enumerate(futures):
            if future.done() and k not in answered:
                answered[k] = time.monotonic() - sent_at
    driver.wait_for(lambda: all(f.done() for f in futures), 30.0)
    for k, future in enumerate(futures):
        answered.setdefault(k, time.monotonic() - sent_at)
    driver.wait_for(lambda: sum(s["stamp"] in during for s in driver.segmentation) >= 3, 60.0)
    driver.spin(1.0)
    listed = driver.call("list_objects", ListObjects.Request(recluster=False))
    return {"answers": [{**answer(f.result()), "seconds": round(answered[k], 2)}
                        if f.done() else None for k, f in enumerate(futures)],
            "during": during, "segmented_during": sorted(s["stamp"] for s in driver.segmentation
                                       if s["stamp"] in during),
            "listed": answer(listed), "status": driver.status}


def save_loop(driver: Driver) -> dict:
    for i in range(200):
        response = driver.call("save_map", SaveMap.Request(name="good"))
        print(json.dumps({"save": i, **answer(response)}), flush=True)
    return {}


def loads(driver: Driver) -> dict:
    out = {}
    for name in ("truncated", "foreign", "good", "truncated", "foreign", "missing"):
        key = name if name not in out else f"{name} after good"
        out[key] = answer(driver.call("load_map", LoadMap.Request(name=name)))
        listed = driver.call("list_objects", ListObjects.Request(recluster=False))
        out[key]["objects_after"] = len(listed.objects) if listed.success else None
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("scene", type=Path)
    parser.add_argument("mode", choices=("empty", "feed", "save-loop", "loads", "flood"))
    args = parser.parse_args()
    rclpy.init()
    driver = Driver(args.namespace, args.scene)
    try:
        result = {"empty": empty, "feed": feed, "save-loop": save_loop,
                  "loads": loads, "flood": flood}[args.mode](driver)
    finally:
        driver.node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
