"""Drive a running cgc node from another process, as a robot and a user would.

    drive_node.py NAMESPACE SCENE stream --map NAME   play SCENE's training views as Image +
        CameraInfo + depth + PoseStamped + segments (exact instance ids), wait for training,
        record the outputs, segment objects by pixel prompt, label one, query it by text, save
    drive_node.py NAMESPACE SCENE reload --map NAME   load the saved map and list the objects
    drive_node.py NAMESPACE SCENE bad                 bad messages of 30+ kinds between good
        frames; report the node's counters

Prints one JSON object with what it saw. Every wait is bounded.
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
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from cgc_core.data.load import load_scene
from cgc_core.io import read_json, read_label_png
from cgc_eval.driver import LATCHED, OPTICAL_FRAME, NodeDriver, header
from cgc_ros import conversions as cv
from cgc_ros.msg import ObjectEvent
from cgc_ros.srv import LabelObject, ListObjects, LoadMap, SaveMap, SegmentObject


class Driver(NodeDriver):
    """The node's test driver (cgc_eval.driver), with its outputs recorded."""

    def __init__(self, namespace: str, scene_dir: Path):
        super().__init__("cgc_driver", namespace)
        self.scene_dir = scene_dir
        self.scene = load_scene(scene_dir)
        node = self.node
        self.segmentation: list[dict] = []
        self.segment_maps: dict[float, np.ndarray] = {}
        self.colors: list[dict] = []
        self.clusters: PointCloud2 | None = None
        self.markers: MarkerArray | None = None
        node.create_subscription(Image, "cgc/segmentation", self._on_segmentation, 50)
        node.create_subscription(Image, "cgc/segmentation/color", self._on_color, 50)
        node.create_subscription(PointCloud2, "cgc/clusters",
                                 lambda m: setattr(self, "clusters", m), LATCHED)
        node.create_subscription(MarkerArray, "cgc/objects/markers",
                                 lambda m: setattr(self, "markers", m), LATCHED)
        self.events: list[dict] = []
        node.create_subscription(ObjectEvent, "cgc/object_events", self._on_event, 100)

    def _on_event(self, msg: ObjectEvent) -> None:
        self.events.append({"kind": msg.kind, "id": msg.id, "label": msg.label,
                            "frame_id": msg.header.frame_id,
                            "after": [msg.pose_after.position.x, msg.pose_after.position.y,
                                      msg.pose_after.position.z]})

    def _on_segmentation(self, msg: Image) -> None:
        ids = cv.image_to_segments(msg)
        self.segment_maps[cv.stamp_seconds(msg.header)] = ids
        self.segmentation.append({"stamp": cv.stamp_seconds(msg.header),
                                  "frame_id": msg.header.frame_id, "encoding": msg.encoding,
                                  "size": [msg.width, msg.height], "ids": sorted(
                                      int(i) for i in np.unique(ids))})

    def _on_color(self, msg: Image) -> None:
        self.colors.append({"stamp": cv.stamp_seconds(msg.header), "encoding": msg.encoding,
                            "size": [msg.width, msg.height]})

    def wait_for_node(self) -> None:
        """Until every input of the node is matched (a frame sent before that may be lost)."""
        self.wait_for_inputs(20.0)

    # ------------------------------------------------------------------ frames

    def header(self, stamp: float, frame_id: str = OPTICAL_FRAME) -> Header:
        return header(stamp, frame_id)

    def camera_msgs(self, camera, stamp: float) -> tuple[CameraInfo, PoseStamped]:
        msgs = self.frame_messages(camera, np.zeros((camera.height, camera.width, 3), np.uint8),
                                   None, None, stamp)
        return msgs["camera_info"], msgs["pose"]

    def frame_msgs(self, camera, stamp: float) -> dict:
        """The scene's frame: 16UC1 millimetre depth and the exact instance ids as segments."""
        instances = read_label_png(self.scene_dir / "instances" / f"{camera.name}.png")
        return self.frame_messages(camera, self.scene.load_image(camera),
                                   self.scene.load_depth(camera), instances, stamp,
                                   depth_encoding="16UC1")

    def publish_frame(self, camera, stamp: float) -> None:
        # Companions first, the image last: the node matches on the image's arrival.
        self.publish(self.frame_msgs(camera, stamp))


def truth(scene_dir: Path, frame: str, name: str) -> tuple[np.ndarray, list | None]:
    """(ground-truth mask of object `name` in `frame`, its true axis-aligned box or None)."""
    ids = {v: int(k) for k, v in read_json(scene_dir / "objects.json").items()}
    mask = read_label_png(scene_dir / "instances" / f"{frame}.png") == ids[name]
    record = next((o for o in read_json(scene_dir / "synth.json")["objects"]
                   if o.get("name") == name), {})
    return mask, record.get("aabb")


def segmentation_iou(scene_dir: Path, frame: str, ids: np.ndarray) -> dict[str, float]:
    """Per object of `frame`: IoU of its true mask with the segmentation id most of it got."""
    names = read_json(scene_dir / "objects.json")
    instances = read_label_png(scene_dir / "instances" / f"{frame}.png")
    out = {}
    for key, name in names.items():
        truth_mask = instances == int(key)
        if int(key) < 3 or truth_mask.sum() < 50:  # background, floor, table; tiny slivers
            continue
        values, counts = np.unique(ids[truth_mask], return_counts=True)
        best = values[np.argmax(counts)]
        mask = ids == best if best else np.zeros_like(truth_mask)
        out[name] = float((mask & truth_mask).sum() / (mask | truth_mask).sum())
    return out


def stream(driver: Driver, args) -> dict:
    cameras = driver.scene.train_cameras
    start = 1000.0
    driver.wait_for_node()
    for i, camera in enumerate(cameras[:args.frames]):
        driver.publish_frame(camera, start + i * 0.5)
        driver.spin(1.0 / args.rate)
    streamed = [start + i * 0.5 for i in range(min(args.frames, len(cameras)))]
    driver.wait_for(lambda: driver.status.get("session", {}).get("step", 0) >= args.steps,
                    args.train_timeout)
    trained = dict(driver.status)
    # Fresh objects after training (re-cluster), and the latched outputs.
    listed = driver.call("list_objects", ListObjects.Request(recluster=True))
    driver.wait_for(lambda: driver.markers is not None and driver.clusters is not None, 10.0)

    # Frames after training: their ~/segmentation must show the objects.
    probe_start, probes = start + 100.0, cameras[:2]
    for i, camera in enumerate(probes):
        driver.publish_frame(camera, probe_start + i * 0.5)
        driver.spin(1.0)
    driver.wait_for(lambda: sum(t >= probe_start for t in driver.segment_maps) >= len(probes),
                    20.0)
    probe_iou = [segmentation_iou(args.scene, camera.name, driver.segment_maps[t])
                 for camera, t in zip(probes, (probe_start + 0.5 * i for i in range(2)))
                 if t in driver.segment_maps]

    prompts = read_json(args.scene / "prompts.json")
    train_names = {c.name for c in cameras[:args.frames]}
    results = []
    for prompt in prompts:
        if prompt["frame"] not in train_names:
            continue
        camera = driver.scene.camera(prompt["frame"])
        info, pose = driver.camera_msgs(camera, 0.0)
        request = SegmentObject.Request(use_pixel=True, u=int(prompt["point"][0]),
                                        v=int(prompt["point"][1]), camera_info=info,
                                        camera_pose=pose)
        started = time.monotonic()
        response = driver.call("segment_object", request)
        elapsed = time.monotonic() - started
        mask_true, box = truth(args.scene, prompt["frame"], prompt["id"])
        entry = {"object": prompt["id"], "success": response.success,
                 "message": response.message, "seconds": round(elapsed, 3),
                 "id": response.object.id, "score": response.score}
        if response.success:
            mask = cv.image_to_segments(response.mask) > 0
            union = (mask | mask_true).sum()
            entry["iou"] = float((mask & mask_true).sum() / union) if union else 0.0
            entry["mask_size"] = [response.mask.width, response.mask.height]
            points, _ = cv.cloud_to_points(response.points)
            entry["points"] = len(points)
            if box is not None and len(points):
                lo, hi = np.array(box[0]) - 0.02, np.array(box[1]) + 0.02
                entry["inside_box"] = float(((points >= lo) & (points <= hi)).all(1).mean())
        results.append(entry)

    # Label the best-segmented object, then find it by text.
    best = max((r for r in results if r.get("iou")), key=lambda r: r["iou"], default=None)
    text = {}
    if best is not None and best["id"]:
        label = driver.call("label_object", LabelObject.Request(id=best["id"],
                                                                label=f"my {best['object']}"))
        found = driver.call("segment_object", SegmentObject.Request(text=f"my {best['object']}"))
        missing = driver.call("segment_object", SegmentObject.Request(text="unicorn"))
        text = {"label_success": label.success, "label_message": label.message,
                "labelled_id": best["id"], "found_success": found.success,
                "found_id": found.object.id, "found_message": found.message,
                "missing_success": missing.success, "missing_message": missing.message}
    bad = driver.call("segment_object", SegmentObject.Request(use_pixel=True, u=-5, v=3))
    escape = driver.call("save_map", SaveMap.Request(name="../outside"))
    saved = driver.call("save_map", SaveMap.Request(name=args.map))
    after = driver.call("list_objects", ListObjects.Request(recluster=False))
    # Object events come as clusterings decide them (an object is announced once two in a row
    # found it, one every `cluster_period`): a client that wants them waits for them. On busy
    # cores the calls above were once over before the second clustering, with no event yet.
    driver.wait_for(lambda: sum(e["kind"] == "appeared" for e in driver.events) >= 3, 30.0)
    return {
        "streamed": streamed, "probe_iou": probe_iou, "status": trained,
        "final_status": driver.status,
        "segmentation": driver.segmentation, "colors": driver.colors,
        "clusters": None if driver.clusters is None else {
            "frame_id": driver.clusters.header.frame_id, "width": driver.clusters.width,
            "fields": [f.name for f in driver.clusters.fields]},
        "markers": None if driver.markers is None else [
            (m.action, m.type, m.id, m.text) for m in driver.markers.markers],
        "listed": {"success": listed.success, "count": len(listed.objects)},
        "prompts": results, "text": text,
        "bad_pixel": {"success": bad.success, "message": bad.message},
        "escape": {"success": escape.success, "message": escape.message},
        "saved": {"success": saved.success, "message": saved.message, "path": saved.path},
        "objects": objects_of(after),
        "events": driver.events,
    }


def bad_input(driver: Driver, args) -> dict:
    """Good frames around bad messages of many kinds; returns the node's status after.

    Stamps follow the wall clock (the node runs with max_stamp_skew), one second apart.
    """
    camera = driver.scene.train_cameras[0]
    w, h = camera.width, camera.height
    driver.wait_for_node()
    stamp = [float(int(time.time()))]
    good: list[float] = []

    def frame(change=None, skip=(), at=None, is_good=False):
        """Publish the good frame at the next stamp (or at `at`), with `change(messages)`
        applied to its messages first."""
        if at is None:
            stamp[0] += 1.0
        t = stamp[0] if at is None else at
        header = driver.header(t)
        info, pose = driver.camera_msgs(camera, t)
        depth = cv.depth_to_image(driver.scene.load_depth(camera), header, "16UC1")
        segments = cv.ids_to_image(read_label_png(
            driver.scene_dir / "instances" / f"{camera.name}.png"), header)
        image = cv.rgb_to_image(driver.scene.load_image(camera), header)
        messages = {"camera_info": info, "pose": pose, "depth": depth, "segments": segments,
                    "image": image}
        if change is not None:
            change(messages)
        for name in ("camera_info", "pose", "depth", "segments", "image"):
            if name not in skip:
                driver.pub[name].publish(messages[name])
        if is_good:
            good.append(t)
        driver.spin(0.5)

    def set_(name, **fields):
        def change(messages):
            for key, value in fields.items():
                target = messages[name]
                *path, last = key.split("__")
                for part in path:
                    target = getattr(target, part)
                setattr(target, last, value)
        return change

    def raw(name, values: np.ndarray, encoding: str, step: int | None = None,
            data: bytes | None = None, height: int | None = None, width: int | None = None):
        """Replace message `name` by an image of `values` (any layout), fields overridable."""
        def change(messages):
            rows = values.shape[0] if values.ndim else 0
            cols = values.shape[1] if values.ndim > 1 else 0
            payload = values.tobytes() if data is None else data
            msg = Image(header=messages["image"].header, height=rows if height is None else height,
                        width=cols if width is None else width, encoding=encoding,
                        step=(len(payload) // max(rows, 1)) if step is None else step)
            msg.data = cv._byte_array(np.frombuffer(payload, np.uint8))
            messages[name] = msg
        return change

    def k_entry(index, value):
        def change(messages):
            k = list(messages["camera_info"].k)
            k[index] = value
            messages["camera_info"].k = k
        return change

    metres = np.full((h, w), 1.0, "<f4")
    negative, all_nan, some_nan = metres.copy(), np.full((h, w), np.nan, "<f4"), metres.copy()
    negative[3, 4] = -2.0
    some_nan[0, :3] = [np.nan, np.inf, -np.inf]  # REP 118: invalid pixels, the frame is fine
    rgb = driver.scene.load_image(camera)

    frame(is_good=True)
    kinds = {
        # images
        "image encoding": set_("image", encoding="yuv422"),
        "image short data": set_("image", data=cv._byte_array(np.zeros(10, np.uint8))),
        "image step shorter than a row": raw("image", rgb, "rgb8", step=3 * w - 1,
                                             data=bytes((3 * w - 1) * h)),
        "image empty": raw("image", np.zeros((0, 0, 3), np.uint8), "rgb8", step=0),
        "image 100000 pixels wide": raw("image", np.zeros((1, 100_000, 3), np.uint8), "rgb8"),
        "image smaller than camera_info": raw("image", rgb[::2, ::2].copy(), "rgb8"),
        # camera_info
        "zero focal length": set_("camera_info", k=[0.0] * 9),
        "NaN focal length": k_entry(0, float("nan")),
        "negative focal length": k_entry(4, -300.0),
        "camera_info size": set_("camera_info", width=w + 8),
        "camera_info 0x0": set_("camera_info", width=0, height=0),
        # poses
        "NaN pose": set_("pose", pose__position__x=float("nan")),
        "inf orientation": set_("pose", pose__orientation__z=float("inf")),
        "non-unit quaternion": set_("pose", pose__orientation__w=2.0),
        "zero quaternion": set_("pose", pose__orientation__x=0.0, pose__orientation__y=0.0,
                                pose__orientation__z=0.0, pose__orientation__w=0.0),
        "huge translation": set_("pose", pose__position__x=1e9),
        "pose in another frame": set_("pose", header__frame_id="odom"),
        # depth
        "negative depth": raw("depth", negative, "32FC1"),
        "all-NaN depth": raw("depth", all_nan, "32FC1"),
        "depth of another size": raw("depth", np.zeros((10, 10), "<u2"), "16UC1"),
        "depth as rgb8": raw("depth", rgb, "rgb8"),
        # segments
        "segments of another size": raw("segments", np.ones((10, 10), "<u2"), "mono16"),
        "segments as rgb8": raw("segments", rgb, "rgb8"),
        "segments as 32FC1": raw("segments", metres, "32FC1"),
        "negative segment ids": raw("segments", np.full((h, w), -1, "<i4"), "32SC1"),
    }
    for change in kinds.values():
        frame(change)
    frame(skip=("camera_info",))
    frame(skip=("pose",))
    kinds["no camera_info"] = kinds["no pose"] = None
    # Stamps: a repeat, older, far future, far past, unset; good frames around them.
    frame(is_good=True)
    last_good = stamp[0]
    frame(at=last_good)
    frame(at=last_good - 0.5)
    frame(at=last_good + 1e6)
    frame(at=1000.0)
    frame(at=0.0)
    kinds.update({"duplicate stamp": None, "stamp out of order": None,
                  "stamp far in the future": None, "stamp far in the past": None,
                  "stamp unset": None})
    frame(raw("depth", some_nan, "32FC1"), is_good=True)  # repaired, not refused
    # The pose stream stops for three frames, then comes back.
    for _ in range(3):
        frame(skip=("pose",))
    kinds["pose stream stops"] = None
    frame(is_good=True)
    last = good[-1]
    driver.wait_for(lambda: any(s["stamp"] == last for s in driver.segmentation), 30.0)
    sent = 1 + 25 + 2 + 1 + 5 + 1 + 3 + 1
    driver.wait_for(lambda: driver.status.get("frames_taken", 0) >= sent, 20.0)
    driver.spin(1.0)  # the next status
    listed = driver.call("list_objects", ListObjects.Request(recluster=False))
    return {"kinds": list(kinds), "sent": sent, "status": driver.status,
            "segmented": [s["stamp"] for s in driver.segmentation], "good": good,
            "listed": {"success": listed.success, "message": listed.message}}


def objects_of(response) -> list[dict]:
    return [{"id": o.id, "label": o.label, "centroid": [o.centroid.x, o.centroid.y,
                                                        o.centroid.z]}
            for o in response.objects]


def reload(driver: Driver, args) -> dict:
    before = driver.call("list_objects", ListObjects.Request(recluster=False))
    loaded = driver.call("load_map", LoadMap.Request(name=args.map))
    missing = driver.call("load_map", LoadMap.Request(name="no_such_map"))
    listed = driver.call("list_objects", ListObjects.Request(recluster=False))
    reset = driver.call("reset", Trigger.Request())
    after = driver.call("list_objects", ListObjects.Request(recluster=False))
    return {"reset": {"success": reset.success, "message": reset.message},
            "after_reset": {"success": after.success, "message": after.message},
            "before": {"success": before.success, "message": before.message},
            "loaded": {"success": loaded.success, "message": loaded.message},
            "missing": {"success": missing.success, "message": missing.message},
            "objects": objects_of(listed)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("scene", type=Path)
    parser.add_argument("mode", choices=("stream", "reload", "bad"))
    parser.add_argument("--map", default="test_map")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--train-timeout", type=float, default=60.0)
    args = parser.parse_args()
    rclpy.init()
    driver = Driver(args.namespace, args.scene)
    try:
        result = {"stream": stream, "reload": reload, "bad": bad_input}[args.mode](driver, args)
    finally:
        driver.node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
