"""The player: a robot and its user in one process, facing a running cgc node over ROS 2.

    python -m cgc_eval.player OUT --scene DIR [--masks DIR] [--rate 2] [--iterations 2000]
    python -m cgc_eval.player OUT --bag DIR --image-topic T --camera-info-topic T --pose-topic T
                             [--depth-topic T] [--segments-topic T]

It streams posed frames as Image + CameraInfo + PoseStamped (+ depth, + segments) at a real frame
rate, shows the node's progress from `~/status`, measures the held-out mIoU through the node's
services while it learns (when the scene has ground truth), waits until the node has trained
`--iterations`, asks for every object by pixel and by text (its label and its colour word), saves
the map, and writes everything it saw into OUT (`player.json`, frames, masks, object PLYs) for
cgc_eval.report. scripts/run.sh starts it beside the node (cgc_eval.main_job).

Held-out quality through the node: each prompt's pixel, in its frame (pose + CameraInfo given),
names an object; the player labels that object with the prompt's name, and the object's mask in
every held-out view is `segment_object(text=name)` rendered at that view's pose: what a user gets
by name. Unlike `cgc eval`, which thresholds against the prompt pixel's own feature, the node
thresholds against the object's mean feature.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from PIL import Image as PILImage
from sensor_msgs.msg import CameraInfo, Image

from cgc_core.cameras import Camera
from cgc_core.data.ground_truth import load_gt_masks, load_prompts
from cgc_core.data.nerfstudio import write_point_ply
from cgc_core.io import write_json, write_label_png
from cgc_core.lens import pinhole_to_raw, raw_size
from cgc_core.metrics import evaluate_masks
from cgc_core.service import maps
from cgc_eval.driver import NodeDriver, header, stamp_ns
from cgc_ros import conversions as cv
from cgc_ros.srv import LabelObject, ListObjects, SaveMap, SegmentObject

MAP_NAME = "map"
AGAIN_FRAMES = 8
"""Frames sent again after learning, for the node's segmentation of them in the report."""
SAMPLE_VIEWS = 2
"""Held-out views measured while streaming (every query takes the worker from training); the
final measurement takes them all."""
THUMB_WIDTH = 160
"""Input and live-segmentation thumbnails are saved at this width (the report's strips)."""


def view_msgs(camera: Camera, stamp: float) -> tuple[CameraInfo, PoseStamped]:
    return (cv.camera_to_camera_info(camera, header(stamp)),
            PoseStamped(header=header(stamp, "map"), pose=cv.matrix_to_pose(camera.cam_to_world)))


def save_thumbnail(path: Path, rgb: np.ndarray) -> None:
    image = PILImage.fromarray(rgb)
    height = max(1, round(image.height * THUMB_WIDTH / image.width))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.resize((THUMB_WIDTH, height), PILImage.BILINEAR).save(path, quality=85)


# ---------------------------------------------------------------------------------- sources

def scene_frames(scene, masks_dir: Path | None):
    """(name, camera, rgb, depth | None, segments | None) of a scene's training views, as the
    files hold them (raw, distorted, when the camera has a lens: the node undistorts them with
    the camera_info's K and D, as it does a camera's)."""
    from cgc_core.io import read_label_png

    for name in scene.train_names:
        camera = scene.camera(name)
        segments = None
        if masks_dir is not None and (masks_dir / f"{name}.png").is_file():
            segments = read_label_png(masks_dir / f"{name}.png").astype(np.int64)
        yield (name, camera, scene.load_raw_image(camera), scene.load_raw_depth(camera),
               segments)


def bag_frames(bag: Path, topics):
    from cgc_core.data.rosbag import read_bag_frames

    for frame in read_bag_frames(bag, topics):
        yield frame.camera.name, frame.camera, frame.image, frame.depth, frame.segments


# ---------------------------------------------------------------------------------- the player

class Player(NodeDriver):
    def __init__(self, namespace: str, out: Path):
        super().__init__("cgc_player", namespace, queries_apart=True)
        self.out = out
        self.live: list[dict] = []
        self.sent: dict[int, str] = {}
        """Stamp (ns) -> frame name of every frame sent."""
        self.labels: dict[str, int] = {}
        """Name -> the object id the player last gave it to."""
        self.phase = "stream"
        """'stream' while streaming, 'learned' for the frames sent again after learning."""
        self.node.create_subscription(Image, "cgc/segmentation/color", self._on_color, 50)

    def _on_color(self, msg: Image) -> None:
        key = stamp_ns(msg.header)
        if key not in self.sent:
            return
        name = f"{len(self.live):03d}.jpg"
        save_thumbnail(self.out / "live" / name, cv.image_to_rgb(msg))
        self.live.append({"stamp": key * 1e-9, "frame": self.sent[key],
                          "file": f"live/{name}", "phase": self.phase})

    def wait_for_node(self, topics: set[str], timeout: float = 60.0) -> None:
        """Until the node subscribes to `topics` (the inputs this player will send) and its
        services answer."""
        if not self.wait_for_inputs(timeout, services=True, topics=topics):
            raise RuntimeError(f"the cgc node did not appear within {timeout:.0f} s")

    def label(self, object_id: int, name: str) -> None:
        """Give `name` to an object, and take it from the object that had it before: ids change
        as the map is re-clustered, and a name on two objects makes a text query ambiguous."""
        previous = self.labels.get(name)
        if previous is not None and previous != object_id:
            self.call("label_object", LabelObject.Request(id=previous, label=""))  # may be gone
        self.call("label_object", LabelObject.Request(id=object_id, label=name))
        self.labels[name] = object_id

    def send(self, camera: Camera, rgb, depth, segments, stamp: float) -> None:
        """One frame as a camera driver and a pose source send it: every message built first,
        then all published back to back with the frame's stamp on sensor-data QoS, the image
        and its camera_info together (the node matches them in whatever order they arrive)."""
        self.publish(self.frame_messages(camera, rgb, depth, segments, stamp))


class Progress:
    """The live display: one line from the node's ~/status (redrawn on a terminal)."""

    def __init__(self, player: Player, total_frames: int, iterations: int):
        self.player, self.total_frames, self.iterations = player, total_frames, iterations
        self.tty = sys.stderr.isatty()
        self.every = 0.5 if self.tty else 5.0
        self.last = 0.0
        self.sent = 0
        self.quality: dict | None = None

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        s = self.player.status
        session = s.get("session", {})
        quality = "" if self.quality is None else (
            f", held-out mIoU {self.quality['mIoU']:.1f} at it {self.quality['iteration']}")
        line = (f"frames {self.sent}/{self.total_frames} sent, {s.get('frames_taken', 0)} taken "
                f"({s.get('frames_dropped', 0)} dropped), {session.get('keyframes', 0)} keyframes"
                f", {session.get('num_gaussians', 0)} Gaussians, it {session.get('step', 0)}/"
                f"{self.iterations}, {session.get('iterations_per_second', 0):.1f} it/s, "
                f"{s.get('objects', 0)} objects{quality}")
        print(("\r" + line + "\033[K") if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- held out

class HeldOut:
    """Ground truth of a scene (test_mask/ + prompts.json), scored through the node."""

    def __init__(self, scene):
        self.scene = scene
        self.gt = load_gt_masks(scene.root)
        prompts = scene.root / "prompts.json"
        self.prompts = load_prompts(prompts) if prompts.is_file() and self.gt else []

    def __bool__(self) -> bool:
        return bool(self.prompts)

    def measure(self, player: Player, step: int, max_views: int | None = None) -> dict:
        """One held-out measurement: prompts -> objects -> labels -> masks by text per view
        (the first `max_views` held-out views; all by default)."""
        started = time.monotonic()
        views = dict(list(self.gt.items())[:max_views])
        picks, predictions, text_seconds = {}, {}, []
        # Prompt, label and the masks by that label one object at a time: the node re-clusters
        # in the background, and a new clustering may hand the label to another id.
        for prompt in self.prompts:
            info, pose = view_msgs(self.scene.camera(prompt.frame), 0.0)
            response, seconds = player.timed_call("segment_object", SegmentObject.Request(
                use_pixel=True, u=int(prompt.point[0]), v=int(prompt.point[1]),
                camera_info=info, camera_pose=pose))
            picks[prompt.id] = (response, seconds)
            if not (response.success and response.object.id):
                continue
            player.label(response.object.id, prompt.id)
            for frame, objects in views.items():
                if prompt.id not in objects:
                    continue
                info, pose = view_msgs(self.scene.camera(frame), 0.0)
                answer, seconds = player.timed_call("segment_object", SegmentObject.Request(
                    text=prompt.id, camera_info=info, camera_pose=pose))
                text_seconds.append(seconds)
                if answer.success:
                    predictions[(frame, prompt.id)] = cv.image_to_segments(answer.mask) > 0
        scores = evaluate_masks(predictions, {(f, n): m for f, objs in views.items()
                                              for n, m in objs.items()})
        return {"step": step, "picks": picks, "predictions": predictions, "scores": scores,
                "text_seconds": text_seconds, "seconds": time.monotonic() - started}


class QualityThread(threading.Thread):
    """Measures the held-out quality every `every` seconds while the main thread streams."""

    def __init__(self, player: Player, heldout: HeldOut, every: float, progress: Progress,
                 t0: float):
        super().__init__(daemon=True, name="cgc-player-quality")
        self.player, self.heldout, self.every, self.progress = player, heldout, every, progress
        self.t0 = t0
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample(max_views=SAMPLE_VIEWS)

    def sample(self, max_views: int | None = None) -> dict | None:
        session = dict(self.player.status.get("session", {}))
        if session.get("keyframes", 0) == 0:
            return None
        try:
            result = self.heldout.measure(self.player, session.get("step", 0), max_views)
        except RuntimeError as error:  # a query timed out: note it, try again next time
            self.errors.append(str(error))
            return None
        entry = {"time": round(time.monotonic() - self.t0, 1), "iteration": result["step"],
                 "keyframes": session.get("keyframes", 0),
                 "gaussians": session.get("num_gaussians", 0),
                 "mIoU": round(result["scores"]["mIoU"], 2),
                 "mBIoU": round(result["scores"]["mBIoU"], 2),
                 "views": len(result["scores"]["per_pair"]) and len(
                     {p["frame"] for p in result["scores"]["per_pair"]}),
                 "query_seconds": round(result["seconds"], 2)}
        self.samples.append(entry)
        self.progress.quality = entry
        return result


# ---------------------------------------------------------------------------------- objects

def object_entry(player: Player, response, seconds: float, name: str, out: Path) -> dict:
    """What the report needs of one pixel query: object id, score, size, its PLY and mask."""
    obj = response.object
    entry = {"name": name, "success": response.success, "message": response.message,
             "pixel_seconds": round(seconds, 3), "id": int(obj.id), "score": round(
                 float(response.score), 3), "points": int(obj.point_count),
             "box_size": [round(obj.box_size.x, 4), round(obj.box_size.y, 4),
                          round(obj.box_size.z, 4)],
             "centroid": [obj.centroid.x, obj.centroid.y, obj.centroid.z]}
    if response.success:
        points, colors = cv.cloud_to_points(response.points)
        ply = out / "objects" / f"{name}.ply"
        ply.parent.mkdir(parents=True, exist_ok=True)
        write_point_ply(ply, points, colors if colors is not None else
                        np.full((len(points), 3), 200, np.uint8))
        entry["ply"] = f"objects/{name}.ply"
        mask = cv.image_to_segments(response.mask) > 0
        write_label_png(out / "objects" / f"{name}_mask.png", mask.astype(np.uint8) * 255)
        entry["mask"] = f"objects/{name}_mask.png"
    return entry


def text_entry(player: Player, text: str, expected_id: int) -> dict:
    response, seconds = player.timed_call("segment_object", SegmentObject.Request(text=text))
    return {"text": text, "success": response.success, "id": int(response.object.id),
            "same_object": response.success and int(response.object.id) == expected_id,
            "message": response.message, "seconds": round(seconds, 3)}


def centroid_pixel(camera: Camera, centroid) -> tuple[int, int] | None:
    """The pixel (u, v) of a world point in `camera`, or None when it is behind or outside."""
    point = camera.world_to_cam @ np.array([*centroid, 1.0])
    if point[2] <= 1e-6:
        return None
    u, v = pinhole_to_raw(camera, camera.fx * point[0] / point[2] + camera.cx,
                          camera.fy * point[1] / point[2] + camera.cy)
    width, height = raw_size(camera)
    if 0 <= u < width and 0 <= v < height:
        return int(u), int(v)
    return None


def query_objects(player: Player, heldout: HeldOut, final: dict | None, cameras: list[Camera],
                  colour_names: dict[int, str], out: Path) -> list[dict]:
    """Every object by pixel prompt, by its label and by its colour word."""
    entries = []
    if heldout and final is not None:
        for prompt in heldout.prompts:
            response, seconds = final["picks"][prompt.id]
            entry = object_entry(player, response, seconds, prompt.id, out)
            entry["prompt"] = {"frame": prompt.frame, "point": list(prompt.point)}
            entries.append(entry)
    else:
        listed, _ = player.timed_call("list_objects", ListObjects.Request(recluster=False))
        for obj in listed.objects:
            if obj.id not in colour_names:  # background (not in the saved foreground list)
                continue
            for camera in reversed(cameras):  # the latest view that sees its centroid
                pixel = centroid_pixel(camera, (obj.centroid.x, obj.centroid.y, obj.centroid.z))
                if pixel is not None:
                    break
            if pixel is None:
                continue
            info, pose = view_msgs(camera, 0.0)
            response, seconds = player.timed_call("segment_object", SegmentObject.Request(
                use_pixel=True, u=pixel[0], v=pixel[1], camera_info=info, camera_pose=pose))
            name = f"object_{obj.id}"
            entry = object_entry(player, response, seconds, name, out)
            entry["prompt"] = {"frame": camera.name, "point": list(pixel)}
            if response.success and response.object.id:
                player.label(response.object.id, name)
            entries.append(entry)
    for entry in entries:
        if not entry["success"] or not entry["id"]:
            continue
        entry["colour_name"] = colour_names.get(entry["id"], "")
        entry["by_label"] = text_entry(player, entry["name"], entry["id"])
        if entry["colour_name"]:
            entry["by_colour"] = text_entry(player, entry["colour_name"], entry["id"])
    return entries


def saved_objects(path: Path) -> list[dict]:
    table = maps.read_objects(path)  # the one reader of a map's objects.json
    return [] if table is None else [o.to_json(with_voxels=False) for o in table.objects]


# ---------------------------------------------------------------------------------- main

def play(args) -> dict:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    scene = None
    if args.bag is not None:
        from cgc_core.data.rosbag import BagTopics

        topics = BagTopics(image=args.image_topic, camera_info=args.camera_info_topic,
                           pose=args.pose_topic, depth=args.depth_topic,
                           segments=args.segments_topic)
        frames = list(bag_frames(args.bag, topics))
    else:
        from cgc_core.data.load import load_scene

        scene = load_scene(args.scene)
        frames = list(scene_frames(scene, args.masks))
    if not frames:
        raise RuntimeError("no posed frames to play")
    heldout = HeldOut(scene) if scene is not None else HeldOut.__new__(HeldOut)
    if scene is None:
        heldout.prompts, heldout.gt = [], {}

    player = Player(args.namespace, out)
    progress = Progress(player, len(frames), args.iterations)
    timings = {}
    t0 = time.monotonic()
    # A capture without depth or segment maps sends neither (the node then segments itself
    # and subscribes to no `segments` topic).
    sent = {"image", "camera_info", "pose"}
    sent |= {"depth"} if any(frame[3] is not None for frame in frames) else set()
    sent |= {"segments"} if any(frame[4] is not None for frame in frames) else set()
    player.wait_for_node(sent)
    timings["node_ready"] = round(time.monotonic() - t0, 2)
    quality = QualityThread(player, heldout, args.eval_every, progress, t0)
    if heldout and args.eval_every > 0:
        quality.start()

    # 1. Stream at the frame rate (absolute deadlines: a slow moment does not stretch the rest).
    start, wall0 = time.monotonic(), time.time()
    strip = []
    for i, (name, camera, rgb, depth, segments) in enumerate(frames):
        player.wait_for(lambda: time.monotonic() >= start + i / args.rate, 3600,
                        tick=progress.show)
        stamp = wall0 + i / args.rate
        player.sent[stamp_ns(header(stamp))] = name
        player.send(camera, rgb, depth, segments, stamp)
        progress.sent = i + 1
        thumb = f"frames/{i:03d}.jpg"
        save_thumbnail(out / thumb, rgb)
        strip.append({"frame": name, "file": thumb, "stamp": stamp})
        progress.show()
    timings["stream"] = round(time.monotonic() - start, 2)

    # 2. Learn on until the planned iterations.
    def trained() -> bool:
        return player.status.get("session", {}).get("step", 0) >= args.iterations
    player.wait_for(trained, args.train_timeout, tick=progress.show)
    progress.show(force=True)
    if progress.tty:
        print(file=sys.stderr)
    timings["learn"] = round(time.monotonic() - start, 2)
    quality.stop.set()
    if quality.is_alive():
        quality.join()
    status_trained = dict(player.status)

    # 3. Objects: cluster now, save (objects.json names each object's colour), final held-out
    #    measurement, then every object by pixel, label and colour word; save again, labelled.
    started = time.monotonic()
    listed, _ = player.timed_call("list_objects", ListObjects.Request(recluster=True))
    saved, save_seconds = player.timed_call("save_map", SaveMap.Request(name=MAP_NAME), timeout=120)
    if not saved.success:
        raise RuntimeError(f"save_map failed: {saved.message}")
    foreground = [o for o in saved_objects(Path(saved.path)) if not o.get("background")]
    colour_names = {int(o["id"]): o.get("color_name", "") for o in foreground}
    final = quality.sample() if heldout else None
    if final is not None:
        for (frame, name), mask in final["predictions"].items():
            write_label_png(out / "heldout" / frame / f"{name}.png", mask.astype(np.uint8) * 255)
    objects = query_objects(player, heldout, final, [f[1] for f in frames], colour_names, out)
    saved, _ = player.timed_call("save_map", SaveMap.Request(name=MAP_NAME), timeout=120)
    timings["objects"] = round(time.monotonic() - started, 2)

    # 4. A few of the frames again, now that the node has learned: their ~/segmentation/color
    #    shows the objects (while streaming, the first clustering had not happened yet). After
    #    the map is saved: a frame the model explains poorly becomes a keyframe, which restarts
    #    the densification and opacity-reset cadence, and right after a reset no Gaussian is
    #    opaque enough to form an object.
    player.phase = "learned"
    again = frames[::max(1, len(frames) // AGAIN_FRAMES)][:AGAIN_FRAMES]
    resend = time.time()
    for i, (name, camera, rgb, depth, segments) in enumerate(again):
        stamp = resend + i / args.rate
        player.sent[stamp_ns(header(stamp))] = name
        player.send(camera, rgb, depth, segments, stamp)
        player.spin(1.0 / args.rate)
    player.wait_for(lambda: sum(e["phase"] == "learned" for e in player.live) >= len(again),
                    30.0)
    # ... and a ~/status that counts every frame sent (it is published about once a second).
    player.wait_for(lambda: player.status.get("frames_taken", 0) + player.status.get(
        "frames_dropped", 0) >= len(frames) + len(again), 10.0)

    player.spin(0.2)
    received = player.status.get("received.image", 0)
    lost = max(0, player.images_sent - received)
    if lost:
        print(f"player: {lost} of the {player.images_sent} images sent never reached the node "
              "(lost in transport; README, \"Large images\")", file=sys.stderr, flush=True)
    result = {
        "images_sent": player.images_sent, "images_received": received,
        "images_lost_in_transport": lost,
        "source": str(args.bag or args.scene), "kind": "bag" if args.bag else "scene",
        "rate": args.rate, "iterations": args.iterations, "frames": strip,
        "live": player.live, "quality": quality.samples, "quality_errors": quality.errors,
        "final": None if final is None else {k: final["scores"][k] for k in
                                             ("mIoU", "mBIoU", "pairs", "per_object")},
        "heldout_frames": sorted(heldout.gt) if heldout else [],
        "objects": objects, "listed": len(listed.objects), "map": saved.path,
        "map_success": saved.success, "save_seconds": round(save_seconds, 2),
        "status_trained": status_trained, "status": player.status, "timings": timings,
    }
    write_json(out / "player.json", result)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scene", type=Path, help="transforms.json or COLMAP scene folder")
    source.add_argument("--bag", type=Path, help="rosbag2 folder")
    parser.add_argument("--masks", type=Path, help="segment PNGs per frame (sent on `segments`)")
    parser.add_argument("--image-topic", default="/camera/image")
    parser.add_argument("--camera-info-topic", default="/camera/camera_info")
    parser.add_argument("--pose-topic", default="/camera/pose")
    parser.add_argument("--depth-topic")
    parser.add_argument("--segments-topic")
    parser.add_argument("--namespace", default="/")
    parser.add_argument("--rate", type=float, default=2.0, help="frames per second")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--eval-every", type=float, default=60.0)
    parser.add_argument("--train-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    rclpy.init()
    try:
        play(args)
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
