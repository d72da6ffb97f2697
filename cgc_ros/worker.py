"""The worker thread: the only code that touches the live session and the object table.

The worker takes frames from the node's bounded queue, matches each image with its camera_info,
pose, depth and segments by stamp, hands the frame to the session (which trains in its own
thread), publishes the frame's segmentation, refreshes the object outputs at `publish_rate`, and
runs the queued service requests between frames. A second thread only clusters snapshots of the
model into objects, every `cluster_period`, and leaves the result for the worker to swap in.
Everything mathematical happens in cgc_core; here are conversions, bookkeeping and the answers'
wording.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import torch
from std_msgs.msg import Header, String

from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig
from cgc_core.io import DataError, read_json, write_json
from cgc_core.objects.cluster import cluster_objects, match_objects
from cgc_core.objects.grounding import ground_text
from cgc_core.objects.models import model_scorers
from cgc_core.query import (
    cosine_to,
    feature_at,
    label_map,
    most_opaque,
    prompt_mask,
    render_feature_and_colour,
    render_feature_map,
    select_gaussians,
    selection_summary,
    surface_point,
)
from cgc_core.segment import make_mask_source
from cgc_core.train.live import FrameRejected, LiveSession
from cgc_ros import conversions as cv
from cgc_ros.msg import ObjectInfo as ObjectInfoMsg
from cgc_ros.params import NodeSettings
from cgc_ros.queues import DropOldestQueue, RateLimitedLog, RequestQueue, StampBuffer

SESSION_FILE = "session.pt"
OBJECTS_FILE = "objects.json"
MAX_TEXT = 256
"""Longest text query, label or map name accepted (characters)."""
MAX_REQUEST_SIDE = 2048
"""Largest view (pixels on a side) a request may ask a mask in: rendering 16-D features at
8192x8192 would take gigabytes and minutes, and block the worker."""
STAMP_RESTART_FRAMES = 5
"""After this many images in a row whose stamps all lie before the last accepted one, time is
taken to have jumped back for good (a bag restarted, a simulator reset) and is followed."""
UNASSIGNED_RGB = (128, 128, 128)
REUSE_AFTER = 0.1
"""Seconds an image without a camera_info at its stamp waits for its own before the last one
is reused (`camera_info_reuse`)."""
GAP_FACTOR = 2.5
"""A gap between two images' stamps this many times the stream's median period is counted as
frames lost before the node (`frames_missing`)."""
STREAM_PAUSE = 10.0
"""Seconds between two images' stamps taken as a pause of the stream (a bag paused, a robot
parked), not as lost frames; the stream's period is learnt again after it."""
GAP_MIN_INTERVALS = 4
"""Periods seen before gaps are judged (a stream's first frames set its rate)."""
SNAPSHOT_PERIOD = 0.25
"""Seconds between the model copies a background thread takes for requests (`_served`): a
request reads the latest finished iteration at most one iteration and this long old, instead of
waiting under the model's lock for the iteration under way."""


class FrameSkipped(ValueError):
    """A frame the worker could not complete (no pose, no camera_info within the slop, ...)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class ServiceError(ValueError):
    """A request that cannot be answered; the message goes back with success=false."""


@dataclass
class Inputs:
    """What the node's callbacks fill and the worker reads."""

    frames: DropOldestQueue               # (arrival monotonic s, sensor_msgs/Image of `image`)
    camera_info: StampBuffer
    depth: StampBuffer
    pose: StampBuffer                     # geometry_msgs/PoseStamped (pose_source 'topic')
    segments: StampBuffer
    lookup_tf: Callable[[str, Any], np.ndarray] | None = None
    """(frame_id, stamp msg) -> [4, 4] frame-to-map (pose_source 'tf'); raises on failure."""
    clock: Callable[[], float] = time.time
    """The node's clock in seconds (ROS time), for `max_stamp_skew`."""


@dataclass
class Outputs:
    """The node's publishers (the worker publishes; it creates nothing)."""

    segmentation: Any
    segmentation_color: Any
    clusters: Any
    markers: Any
    object: Any
    status: Any


class Worker:
    def __init__(self, config: CGCConfig, settings: NodeSettings, inputs: Inputs,
                 log: Callable[[str], None]):
        self.config = config
        self.settings = settings
        self.inputs = inputs
        self.outputs: Outputs | None = None
        self.requests = RequestQueue(settings.service_queue_length)
        self.counts: collections.Counter = collections.Counter()
        self.latency = {name: collections.deque(maxlen=100)
                        for name in ("wait_ms", "segmentation_ms", "cluster_ms",
                                     "segment_object_ms", "model_wait_ms")}
        """Recent figures: an image's wait in the queue, image to its segmentation published,
        one clustering, a `segment_object` request on the worker, and of it the wait for the
        model."""
        self.report = RateLimitedLog(log)
        self.log = log
        self.session = self._new_session()
        self.table = None
        self._clustered_version = -1
        self._clustered_splats = None
        self._clusters_cloud = None
        self._cluster_due = 0.0
        self._objects_due = 0.0
        self._latest_frame_id = ""
        self._last_stamp: float | None = None
        """Stamp of the last image admitted to wait for its companions: later ones must be
        newer."""
        self._stamps_backwards = 0
        self._pending: collections.deque = collections.deque()
        """(arrival, image) taken from the queue, waiting for their companions."""
        self._last_arrival_stamp: float | None = None
        self._intervals: collections.deque = collections.deque(maxlen=20)
        """The last periods between images' stamps, for gaps (`note_image`; only the image
        callback's thread touches these two)."""
        self._autosave_due = time.monotonic() + settings.autosave_period
        self._generation = 0
        """Bumped whenever the map is replaced or clustered on request: a background clustering
        begun before is then dropped."""
        self._clustering = None
        """(generation, snapshot, table) of the last background clustering, until taken."""
        self._clustering_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cgc-worker", daemon=True)
        self._clusterer = threading.Thread(target=self._cluster_loop, name="cgc-cluster",
                                           daemon=True)
        self._served = None
        """(epoch, session, snapshot): the model's latest copy for requests (`_snapshot_loop`)."""
        self._epoch = 0
        """Bumped when the map is cleared or replaced: a copy of the map before is not served."""
        self._copier = threading.Thread(target=self._snapshot_loop, name="cgc-snapshot",
                                        daemon=True)

    # ------------------------------------------------------------------ life cycle

    def _new_session(self, path: Path | None = None) -> LiveSession:
        # With external segments the node's own mask source stays idle (issue: the external
        # segmenter feeds every keyframe).
        mask_source = None if self.settings.external_segments else make_mask_source(
            self.config.segmenter)
        if path is not None:
            return LiveSession.load(path, config=self.config, device=self.config.train.device,
                                    mask_source=mask_source)
        return LiveSession(self.config, device=self.config.train.device,
                           mask_source=mask_source)

    def start(self, outputs: Outputs) -> None:
        self.outputs = outputs
        self.session.start()
        self._thread.start()
        self._copier.start()
        if cluster_objects is not None:
            self._clusterer.start()

    def stop(self) -> None:
        self._stop.set()
        self.inputs.frames.wake()
        for thread in (self._thread, self._clusterer, self._copier):
            if thread.is_alive():
                thread.join(timeout=10)
        self.session.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._guarded(self._take_clustering)
            self.requests.run_pending()
            item = self.inputs.frames.get(timeout=0.02)
            if item is not None:
                self._guarded(lambda: self._arrived(*item))
            self._guarded(self._match_pending)
            if time.monotonic() >= self._objects_due:
                self._objects_due = time.monotonic() + 1.0 / self.settings.publish_rate
                self._guarded(self._publish_objects)
                self._guarded(self._publish_status)
            if self.settings.autosave_period > 0 and time.monotonic() >= self._autosave_due:
                self._autosave_due = time.monotonic() + self.settings.autosave_period
                self._guarded(self._autosave)

    def _guarded(self, work: Callable[[], None]) -> None:
        """Run `work`; an unexpected error is counted and logged, never the end of the worker."""
        try:
            work()
        except Exception as error:  # keep publishing on the good frames around it
            if self._stop.is_set() or not rclpy.ok():
                return  # shutting down: publishers are gone
            self.counts["internal_errors"] += 1
            self.report(f"internal:{type(error).__name__}",
                        f"{work.__name__} failed: {type(error).__name__}: {error}")

    # ------------------------------------------------------------------ frames

    def _arrived(self, arrival: float, image) -> None:
        """An image taken from the queue: note its stamp (gaps in a steady stream are frames
        lost before the node saw them) and let it wait for its companions (`_match_pending`)."""
        self.counts["frames_taken"] += 1
        stamp = cv.stamp_seconds(image.header)
        try:
            self._check_stamp(stamp)
        except FrameSkipped as error:
            self._refuse(stamp, error, arrival)
            return
        self._last_stamp = stamp  # images admitted must be newer than this one
        self._pending.append((arrival, image))

    def note_image(self, stamp: float) -> None:
        """On the image callback's thread (the only one that calls it), before the queue:
        count and log a gap in the images' stamps several times the stream's usual period,
        frames that a driver sent and that never reached the node (best-effort transport drops
        large messages when buffers are small; README, "Large images"). Frames the node's own
        queue drops are counted apart (`frames_dropped`)."""
        last, self._last_arrival_stamp = self._last_arrival_stamp, stamp
        if last is None or stamp <= last:
            return
        interval = stamp - last
        periods = self._intervals
        if len(periods) >= GAP_MIN_INTERVALS:
            usual = float(np.median(periods))
            if interval > STREAM_PAUSE:  # the stream stopped and started again: no loss
                periods.clear()
                return
            if usual > 0 and interval > GAP_FACTOR * usual:
                missing = int(round(interval / usual)) - 1
                self.counts["stream_gaps"] += 1
                self.counts["frames_missing"] += missing
                self.report("stream_gap", f"image stamps jump {interval:.2f} s after "
                            f"{last:.3f} (usually {usual:.2f} s): about {missing} frame(s) "
                            "never reached the node (lost in transport before it, or not sent)")
                return  # a gap is not a period: the median stays the stream's own
        periods.append(interval)

    def _match_pending(self) -> None:
        """Take the waiting images in stamp-arrival order: the oldest is processed once its
        companions are all there, or refused once it has waited `sync_wait` (naming what is
        missing). Matching happens whenever the worker is free, whatever order the messages
        arrived in: nothing blocks while an image waits."""
        while self._pending:
            arrival, image = self._pending[0]
            waited = time.monotonic() - arrival
            try:
                frame = self._companions(image, waited)
            except FrameSkipped as error:
                self._pending.popleft()
                self._refuse(cv.stamp_seconds(image.header), error, arrival)
                continue
            except Exception:
                self._pending.popleft()  # a bug must not hold every later frame up
                raise
            if frame is None:
                return  # still waiting; later images wait behind it (stamps stay in order)
            self._pending.popleft()
            self._process(arrival, image, frame)

    def _refuse(self, stamp: float, error: Exception, arrival: float | None = None) -> None:
        """Count and log a refused frame; `arrival` (monotonic s) when its wait is not yet
        recorded."""
        reason = getattr(error, "reason", None) or str(error).split(":")[0]
        self.counts["frames_rejected"] += 1
        self.counts[f"rejected.{reason}"] += 1
        if arrival is not None:
            self.latency["wait_ms"].append(1000 * (time.monotonic() - arrival))
        self.report(f"frame:{reason}", f"frame at {stamp:.3f} refused: {error}")

    def _process(self, arrival: float, image, companions) -> None:
        """One image with its companions: hand to the session, publish its segmentation.
        `arrival` is when the callback received the image (monotonic seconds), for the latency
        figures."""
        self.latency["wait_ms"].append(1000 * (time.monotonic() - arrival))
        stamp = cv.stamp_seconds(image.header)
        try:
            camera, rgb, depth, segments, keyframe = self._frame(image, *companions)
            self.session.add_frame(camera, rgb, depth, segments, stamp=stamp, keyframe=keyframe)
        except (cv.ConversionError, FrameSkipped, FrameRejected) as error:
            self._refuse(stamp, error)
            return
        self.counts["frames_accepted"] += 1
        self._latest_frame_id = image.header.frame_id
        self._guarded(lambda: self._publish_segmentation(image.header, camera))
        self.latency["segmentation_ms"].append(1000 * (time.monotonic() - arrival))

    def _check_stamp(self, stamp: float) -> None:
        """Refuse an unset stamp, one far from the node's clock, a repeat or one older than the
        last accepted image (FrameSkipped with reasons stamp_unset, stamp_far, stamp_duplicate,
        stamp_order)."""
        if stamp <= 0.0:
            raise FrameSkipped("stamp_unset", "image stamp is 0 (the driver did not set it)")
        skew, now = self.settings.max_stamp_skew, self.inputs.clock()
        if skew > 0 and now > 0 and abs(stamp - now) > skew:  # now 0: sim time not yet set
            raise FrameSkipped("stamp_far", f"image stamp {stamp:.3f} is {stamp - now:+.1f} s "
                               f"from the node's clock (max_stamp_skew {skew:g} s)")
        last = self._last_stamp
        if last is None:
            return
        if stamp == last:
            raise FrameSkipped("stamp_duplicate", f"image stamp {stamp:.6f} repeats the last "
                               "accepted image's")
        if stamp < last:
            self._stamps_backwards += 1
            if self._stamps_backwards < STAMP_RESTART_FRAMES:
                raise FrameSkipped("stamp_order", f"image stamp {stamp:.3f} is {last - stamp:.3f}"
                                   " s older than the last accepted image's")
            self.counts["stamp_restarts"] += 1
            self.report("stamp_restart", f"{STAMP_RESTART_FRAMES} images in a row older than "
                        f"{last:.3f}: time went back (bag restarted?), following it")
        self._stamps_backwards = 0

    def _companions(self, image, waited: float):
        """(camera_info, depth, pose, segments) of an image once all that it needs has arrived
        (stamps within `sync_slop`), None while it may still come (less than `sync_wait`
        waited), FrameSkipped naming what is missing after that.

        camera_info is the one companion drivers send more rarely than images (some every
        other frame, some at 1 Hz): without one at the image's stamp, the newest of the same
        frame and size is reused when it is at most `camera_info_reuse` seconds older, after a
        short wait for the image's own."""
        stamp = cv.stamp_seconds(image.header)
        slop = self.settings.sync_slop
        want_depth = len(self.inputs.depth) > 0  # a depth stream exists
        info = self.inputs.camera_info.nearest(stamp, slop)
        reused = False
        if info is None and waited >= min(REUSE_AFTER, self.settings.sync_wait):
            info = self._reusable_camera_info(image, stamp)
            reused = info is not None
        depth = self.inputs.depth.nearest(stamp, slop) if want_depth else None
        segments = self.inputs.segments.nearest(stamp, slop) \
            if self.settings.external_segments else None
        pose = self.inputs.pose.nearest(stamp, slop) \
            if self.settings.pose_source == "topic" else None
        needed = {"camera_info": info is not None,
                  "pose": pose is not None or self.settings.pose_source == "tf",
                  "depth": depth is not None or not want_depth,
                  "segments": segments is not None or not self.settings.external_segments}
        if all(needed.values()):
            if reused:
                self.counts["camera_info_reused"] += 1
            return info, depth, pose, segments
        if waited < self.settings.sync_wait:
            return None
        if info is None:
            latest = self.inputs.camera_info.latest()
            since = "none received yet" if latest is None else \
                f"the newest is {cv.stamp_seconds(latest.header) - stamp:+.2f} s from it"
            raise FrameSkipped("camera_info", f"no camera_info within {slop:g} s of the image "
                               f"after waiting {waited:.2f} s ({since}; "
                               f"{self._received('camera_info')})")
        if pose is None and self.settings.pose_source == "topic":
            try:
                self._pose(image, None)  # raises FrameSkipped("pose", ...) with the detail
            except FrameSkipped as error:
                raise FrameSkipped("pose", f"{error}; {self._received('pose')}") from None
        # Depth and segments are optional per frame: go on without (segments: no keyframe).
        return info, depth, pose, segments

    def _received(self, topic: str) -> str:
        """How many messages of `topic` and images have arrived: far fewer of a companion than
        images means messages lost in transport before the node, not late ones."""
        images, companions = self.counts["received.image"], self.counts[f"received.{topic}"]
        hint = " (lost before the node? README, \"Large images\")" \
            if companions < 0.9 * images else ""
        return f"{companions} {topic} and {images} images received so far{hint}"

    def _reusable_camera_info(self, image, stamp: float):
        """The newest camera_info stamped before the image (a later frame's may have arrived
        already), if of the image's frame and size and at most `camera_info_reuse` older."""
        found = self.inputs.camera_info.latest_before(stamp)
        if found is None:
            return None
        info_stamp, info = found
        if (info.width, info.height) != (image.width, image.height) \
                or info.header.frame_id != image.header.frame_id:
            return None
        return info if stamp - info_stamp <= self.settings.camera_info_reuse else None

    def _frame(self, image, info, depth, pose, segments):
        """(camera, rgb, depth, segments, keyframe) of an image message and its companions."""
        stamp = cv.stamp_seconds(image.header)
        rgb = cv.image_to_rgb(image)
        matrix = self._pose(image, pose)
        if (info.width, info.height) != (image.width, image.height):
            raise FrameSkipped("size", f"camera_info is {info.width}x{info.height}, the image "
                               f"{image.width}x{image.height}")
        camera = cv.camera_info_to_camera(info, matrix, name=f"{stamp:.6f}")
        depth_m = None
        if depth is not None:
            depth_m, nonfinite = cv.image_to_depth(depth)
            if nonfinite:  # REP 118's "no measurement": kept as invalid pixels, but counted
                self.counts["depth_nonfinite_frames"] += 1
                self.report("depth_nonfinite", f"depth at {stamp:.3f}: {nonfinite} NaN/inf "
                            "pixels read as invalid (0)")
        ids = cv.image_to_segments(segments) if segments is not None else None
        keyframe = None
        if self.settings.external_segments and ids is None:
            # No segments came: train on the frame's colour, but do not let it become a keyframe
            # that would never get segments (the node's own mask source is idle).
            self.counts["segments_missing"] += 1
            keyframe = False
        return camera, rgb, depth_m, ids, keyframe

    def _pose(self, image, pose) -> np.ndarray:
        if self.settings.pose_source == "tf":
            try:
                return self.inputs.lookup_tf(image.header.frame_id, image.header.stamp)
            except Exception as error:  # tf2's lookup errors have no common base in Python
                raise FrameSkipped("pose", f"no TF pose of '{image.header.frame_id}' in "
                                   f"'{self.settings.map_frame}': {error}") from None
        if pose is None:
            latest = self.inputs.pose.latest()
            gap = None if latest is None else \
                cv.stamp_seconds(latest.header) - cv.stamp_seconds(image.header)
            since = "no pose received yet" if gap is None else \
                f"the newest pose is {gap:+.2f} s from it"
            raise FrameSkipped("pose", f"no pose within {self.settings.sync_slop:g} s of the "
                               f"image ({since})")
        if pose.header.frame_id and pose.header.frame_id != self.settings.map_frame:
            raise FrameSkipped("pose", f"pose is in '{pose.header.frame_id}', not in map_frame "
                               f"'{self.settings.map_frame}'")
        return cv.pose_to_matrix(pose.pose)

    # ------------------------------------------------------------------ outputs

    def _object_features(self):
        """(object ids [K], part features [K, D], colours [K, 3]) of the current table: one row
        per part of each object (`ObjectTable.prototypes`)."""
        objects = [] if self.table is None else self.table.objects
        if not objects:
            return np.zeros(0, np.int64), torch.zeros(0, 1), np.zeros((0, 3), np.uint8)
        features, ids = self.table.prototypes()
        color_of = {o.id: o.color for o in objects}
        colors = np.array([color_of[int(i)] for i in ids], dtype=np.uint8).reshape(-1, 3)
        return ids, torch.from_numpy(features), colors

    def _segmentation(self, camera: Camera) -> np.ndarray:
        """[H, W] object ids rendered from the model at `camera` (0: no object)."""
        ids = np.zeros((camera.height, camera.width), dtype=np.int64)
        object_ids, features, _ = self._object_features()
        splats = self._clustered_splats
        if len(object_ids) == 0 or splats is None:
            return ids
        # The model the objects were clustered from: their prototypes' own features, and no
        # wait for the training thread's lock (a frame waited seconds for it on busy cores).
        side, cap = max(camera.width, camera.height), self.settings.segmentation_max_side
        view = camera.scaled(cap / side) if 0 < cap < side else camera
        feature_map = render_feature_map(splats, view, self.config.render)
        index = label_map(feature_map, features, self.config.query.threshold).cpu().numpy()
        ids = np.where(index >= 0, object_ids[np.maximum(index, 0)], 0)
        if view is not camera:  # nearest neighbour back to the image's size: ids, not colours
            rows = np.minimum((np.arange(camera.height) + 0.5) * view.height / camera.height,
                              view.height - 1).astype(np.int64)
            cols = np.minimum((np.arange(camera.width) + 0.5) * view.width / camera.width,
                              view.width - 1).astype(np.int64)
            ids = ids[rows[:, None], cols[None, :]]
        return ids

    def _publish_segmentation(self, header: Header, camera: Camera) -> None:
        ids = self._segmentation(camera)
        object_ids, _, colors = self._object_features()
        palette = {int(i): c for i, c in zip(object_ids, colors)}
        rgb = np.zeros((*ids.shape, 3), dtype=np.uint8)
        for object_id, color in palette.items():  # a handful of objects: one pass each
            rgb[ids == object_id] = color
        self.outputs.segmentation.publish(cv.ids_to_image(ids, header))
        self.outputs.segmentation_color.publish(cv.rgb_to_image(rgb, header))
        self.counts["segmentation_published"] += 1

    def _cluster_loop(self) -> None:
        """Background thread: every `cluster_period`, cluster a snapshot of the model into
        objects (seconds on a CPU, which the frames must not wait for) and leave the result
        for the worker to take. It reads snapshots only; the worker alone swaps the table in."""
        while not self._stop.wait(0.05):
            if time.monotonic() < self._cluster_due:
                continue
            try:
                generation, previous = self._generation, self.table
                snapshot = self.session.snapshot()
                if snapshot is None or snapshot.version == self._clustered_version:
                    continue
                table = self._cluster(snapshot, previous)
                with self._clustering_lock:
                    self._clustering = (generation, snapshot, table)
            except Exception as error:  # counted and logged; the next period tries again
                self.counts["internal_errors"] += 1
                self.report(f"cluster:{type(error).__name__}", f"clustering failed: {error}")
            self._cluster_due = time.monotonic() + self.settings.cluster_period

    def _snapshot_loop(self) -> None:
        """Background thread: every `SNAPSHOT_PERIOD`, a copy of the model for requests. The
        training thread holds the model's lock for a whole iteration (1.7 s at 100k Gaussians on
        busy CPU cores), so a request that asked the session for its snapshot waited for the
        iteration under way; this thread does that waiting instead (issue 25: service latency).
        `LiveSession.snapshot` keeps its rules (a copy per model version, the model from before
        an opacity reset while it recovers)."""
        while not self._stop.wait(SNAPSHOT_PERIOD):
            epoch, session = self._epoch, self.session
            try:
                snapshot = session.snapshot()
            except Exception as error:  # counted and logged; the next period tries again
                self.counts["internal_errors"] += 1
                self.report(f"snapshot:{type(error).__name__}", f"model copy failed: {error}")
                continue
            self._served = None if snapshot is None else (epoch, session, snapshot)

    def _served_snapshot(self):
        """The model for a request: the background copy (`_snapshot_loop`) when it is of the
        current map, else the session's own (waiting for the lock)."""
        started = time.monotonic()
        served = self._served
        if served is not None and served[0] == self._epoch and served[1] is self.session:
            snapshot = served[2]
        else:
            snapshot = self._snapshot()
        self.latency["model_wait_ms"].append(1000 * (time.monotonic() - started))
        return snapshot

    def _cluster(self, snapshot, previous):
        started = time.monotonic()
        table = cluster_objects(snapshot.splats, self.config.objects, previous=previous)
        self.latency["cluster_ms"].append(1000 * (time.monotonic() - started))
        return table

    def _take_clustering(self) -> None:
        """On the worker: swap in a finished background clustering, unless the map changed
        since it began. Labels given meanwhile are kept (ids carry over, so by id)."""
        with self._clustering_lock:
            result, self._clustering = self._clustering, None
        if result is None or result[0] != self._generation:
            return
        _, snapshot, table = result
        if self.table is not None:
            self._carry_labels(self.table, table)
        self._use(snapshot, table)

    def _carry_labels(self, current, table) -> None:
        """Labels given to `current` go to `table`, by id; a labelled object whose id the new
        clustering no longer has passes its label to the new object that overlaps it (the
        clustering's own match, `match_objects`), so that a label is found again by its text
        (issue 25: "124" was lost when ids moved). A label with no object left is logged."""
        labels = {o.id: o.label for o in current.objects}
        new = {o.id: o for o in table.objects}
        for object_id, label in labels.items():
            if object_id in new:  # removed labels ("") stay removed
                new[object_id].label = label
        lost = {i: label for i, label in labels.items() if label and i not in new}
        if not lost:
            return
        for new_id, old_id in match_objects(table.objects, current, self.config.objects).items():
            if old_id in lost and not new[new_id].label:
                new[new_id].label = lost.pop(old_id)
        for old_id, label in lost.items():
            self.counts["labels_dropped"] += 1
            self.report("label_dropped", f"label '{label}' dropped: object {old_id} is gone "
                        "from the new clustering and no new object overlaps it")

    def _use(self, snapshot, table) -> None:
        self.table = table
        self._clustered_version = snapshot.version
        self._clustered_splats = snapshot.splats
        self._clusters_cloud = None  # ~/clusters is rebuilt from the new table
        self._objects_due = 0.0  # publish the new objects at once

    def _recluster(self) -> None:
        """On the worker, now: cluster the current model (a request asked, or the map was
        saved or loaded). ids and labels carry over from the current table by overlap."""
        snapshot = self.session.snapshot()
        if snapshot is None:
            return
        self._generation += 1  # a background clustering under way is now stale
        if snapshot.version != self._clustered_version or self.table is None:
            self._use(snapshot, self._cluster(snapshot, self.table))

    def _map_header(self) -> Header:
        header = Header(frame_id=self.settings.map_frame)
        now = time.time()
        header.stamp.sec, header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        return header

    def _publish_objects(self) -> None:
        if self.table is None or self.table.gaussian_object is None:
            return
        splats = self._clustered_splats
        if splats is None:
            return
        header = self._map_header()
        if self._clusters_cloud is None:  # built once per clustering, re-stamped at each publish
            keep = most_opaque(splats["opacities"], self.settings.cluster_max_points).cpu().numpy()
            owner = self.table.gaussian_object[keep]
            colors = np.tile(np.array(UNASSIGNED_RGB, dtype=np.uint8), (len(keep), 1))
            for obj in self.table.objects:
                colors[owner == obj.id] = obj.color
            points = splats["means"][keep].cpu().numpy()
            self._clusters_cloud = cv.points_to_cloud(points, colors, header)
        self._clusters_cloud.header = header
        self.outputs.clusters.publish(self._clusters_cloud)
        infos = [self._object_msg(obj, header) for obj in self.table.objects]
        self.outputs.markers.publish(cv.object_markers(infos, header))
        self.counts["objects_published"] += 1

    def _object_msg(self, obj, header: Header, score: float = 1.0) -> ObjectInfoMsg:
        pose = np.eye(4)
        pose[:3, :3] = obj.obb_rotation
        pose[:3, 3] = obj.obb_center
        msg = ObjectInfoMsg(header=header, id=int(obj.id), label=obj.label, score=float(score),
                            point_count=int(obj.count), box_center=cv.matrix_to_pose(pose),
                            color=cv.color_rgba(obj.color))
        msg.centroid.x, msg.centroid.y, msg.centroid.z = (float(v) for v in obj.centroid)
        msg.box_size.x, msg.box_size.y, msg.box_size.z = (float(v) for v in obj.obb_extent)
        return msg

    def _publish_status(self) -> None:
        stats = self.session.stats()
        status = dict(self.counts)
        status.update({
            "queue_length": len(self.inputs.frames), "queue_bound": self.settings.queue_length,
            "queue_high_water": self.inputs.frames.high_water,
            "frames_dropped": self.inputs.frames.dropped,
            "requests_refused": self.requests.refused,
            "requests_timed_out": self.requests.timed_out,
            "session": {"frames_received": stats.frames_received,
                        "frames_dropped": stats.frames_dropped,
                        "frames_rejected": stats.frames_rejected, "keyframes": stats.keyframes,
                        "segments_pending": stats.segments_pending,
                        "num_gaussians": stats.num_gaussians, "step": stats.step,
                        "iterations_per_second": round(stats.iterations_per_second, 2),
                        "pose_corrections": stats.pose_corrections},
            "objects": 0 if self.table is None else len(self.table.objects),
            "latency_ms": {name.removesuffix("_ms"): {
                "last": round(values[-1], 1), "max": round(max(values), 1),
                "median": round(float(np.median(values)), 1)}
                for name, values in self.latency.items() if values},
        })
        self.outputs.status.publish(String(data=json.dumps(status, sort_keys=True)))

    # ------------------------------------------------------------------ services (worker side)

    def call(self, run: Callable[[], Any]) -> Any:
        """Run a request on the worker thread (from a service callback), with the timeout."""
        return self.requests.call(run, self.settings.service_timeout)

    def _snapshot(self):
        snapshot = self.session.snapshot()
        if snapshot is None:
            raise ServiceError("no map yet: no keyframe has been received")
        return snapshot

    def _thresholds(self, value: float) -> tuple[float, float]:
        """(mask threshold, Gaussians' threshold) of a request: its own for both, or with 0 the
        configured `query.threshold` and `query.selection_threshold`."""
        query = self.config.query
        if not np.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ServiceError(f"threshold must lie in (0, 1] (0: the configured "
                               f"{query.threshold:g} for the mask, {query.selection_threshold:g} "
                               f"for the Gaussians), got {value}")
        return (value, value) if value > 0 else (query.threshold, query.selection_threshold)

    def _view(self, request, snapshot) -> tuple[Camera, Header]:
        """The camera a request's mask is computed in, and that view's header."""
        info, pose = request.camera_info, request.camera_pose
        if info.width == 0 and cv.pose_is_set(pose):
            raise ServiceError("camera_pose is given but camera_info is empty (width 0): give "
                               "both for a view of your own, or neither for the latest keyframe")
        if request.image.height > 0 or info.width > 0:
            if info.width == 0:
                raise ServiceError("an image needs its camera_info and camera_pose")
            if pose.header.frame_id and pose.header.frame_id != self.settings.map_frame:
                raise ServiceError(f"camera_pose is in '{pose.header.frame_id}', not in "
                                   f"map_frame '{self.settings.map_frame}'")
            try:
                camera = cv.camera_info_to_camera(info, cv.pose_to_matrix(pose.pose), "request")
            except cv.ConversionError as error:
                raise ServiceError(str(error)) from None
            if camera.width > MAX_REQUEST_SIDE or camera.height > MAX_REQUEST_SIDE:
                raise ServiceError(f"camera_info is {camera.width}x{camera.height}: requests "
                                   f"are limited to {MAX_REQUEST_SIDE} pixels on a side")
            if request.image.height > 0 and (request.image.width, request.image.height) != (
                    camera.width, camera.height):
                raise ServiceError(f"image is {request.image.width}x{request.image.height}, "
                                   f"camera_info {camera.width}x{camera.height}")
            header = request.image.header if request.image.height > 0 else info.header
            return camera, header
        if not snapshot.keyframes:
            raise ServiceError("no map yet: no keyframe has been received")
        camera = snapshot.keyframes[-1]
        # The keyframe's optical frame: the node's camera, as far as the node knows.
        return camera, Header(frame_id=self._latest_frame_id, stamp=self._map_header().stamp)

    def segment_object(self, request, response):
        started = time.monotonic()
        response = self._segment_object(request, response)
        self.latency["segment_object_ms"].append(1000 * (time.monotonic() - started))
        return response

    def _segment_object(self, request, response):
        snapshot = self._served_snapshot()
        threshold, selection_threshold = self._thresholds(request.threshold)
        camera, header = self._view(request, snapshot)
        feature_map, colour = render_feature_and_colour(snapshot.splats, camera,
                                                        self.config.render)
        if request.use_pixel:
            if not (0 <= request.u < camera.width and 0 <= request.v < camera.height):
                raise ServiceError(f"pixel ({request.u}, {request.v}) lies outside the "
                                   f"{camera.width}x{camera.height} view")
            feature = feature_at(feature_map, request.u, request.v)
            if float(feature.norm()) < 0.5:
                raise ServiceError(f"the model renders nothing at pixel ({request.u}, "
                                   f"{request.v}) of this view")
            if (self.config.query.whole_objects and self.table is not None
                    and self.table.has_merged_objects):
                seed = surface_point(snapshot.splats, camera, request.u, request.v,
                                     self.config.render)  # a prompt on a lid takes the tin too
                feature = self.table.whole_object_features(feature, selection_threshold,
                                                           seed)
        else:
            feature = self._text_feature(request.text)
        mask = prompt_mask(feature_map, colour, feature, threshold,
                           self.config.query).cpu().numpy()
        selected = select_gaussians(snapshot.splats, feature, selection_threshold).cpu().numpy()
        splats = {k: v.detach().cpu().numpy() for k, v in snapshot.splats.items()
                  if k in ("means", "features")}
        summary = selection_summary(splats["means"], splats["features"], selected,
                                    feature.cpu().numpy())
        map_header = self._map_header()
        obj = self._nearest_object(feature)
        color = obj.color if obj is not None else (255, 255, 255)
        points = splats["means"][selected]
        cloud = cv.points_to_cloud(points, np.tile(np.array(color, np.uint8), (len(points), 1)),
                                   map_header)
        response.mask = cv.mask_to_image(mask, header)
        response.points = cloud
        info = ObjectInfoMsg(header=map_header, id=0 if obj is None else int(obj.id),
                             label="" if obj is None else obj.label,
                             score=float(summary["score"]), point_count=int(summary["count"]),
                             color=cv.color_rgba(color))
        lo, hi = summary["box_min"], summary["box_max"]
        pose = np.eye(4)
        pose[:3, 3] = (lo + hi) / 2  # the axis-aligned box's centre: a conversion of corners
        info.box_center = cv.matrix_to_pose(pose)
        info.centroid.x, info.centroid.y, info.centroid.z = (float(v)
                                                             for v in summary["centroid"])
        info.box_size.x, info.box_size.y, info.box_size.z = (float(v) for v in hi - lo)
        response.object = info
        response.score = float(summary["score"])
        response.success = summary["count"] > 0
        response.message = (f"{summary['count']} Gaussians at threshold "
                            f"{selection_threshold:g}, {int(mask.sum())} pixels at {threshold:g}"
                            if response.success else
                            f"no Gaussian reaches the threshold {selection_threshold:g}")
        self.outputs.object.publish(cloud)
        return response

    def _text_feature(self, text: str) -> torch.Tensor:
        text = text.strip()
        if not text:
            raise ServiceError("empty text query (set use_pixel for a pixel prompt)")
        if len(text) > MAX_TEXT:
            raise ServiceError(f"text query longer than {MAX_TEXT} characters")
        if self.table is None or not self.table.objects:
            raise ServiceError("no objects yet: the map has not been clustered")
        snapshot = self._served_snapshot()
        try:
            answer = ground_text(self.table, text, self.config.objects,
                                 view=snapshot.keyframes[-1],  # position words: latest keyframe
                                 model_scorers=self._model_scorers(snapshot))
        except (ValueError, FileNotFoundError) as error:
            raise ServiceError(str(error)) from None
        if not answer.found:
            best = ", ".join(f"{i}: {score:.2f}" for i, score in answer.candidates) or "none"
            raise ServiceError(f"{answer.status}: {answer.message} (best: {best})")
        return torch.from_numpy(answer.object.part_features).float()

    def _model_scorers(self, snapshot):
        """Grounding DINO / CLIP scorers over the keyframes, when the config enables them."""
        if not {"dino", "clip"} & {b.strip() for b in self.config.objects.grounding.split(",")}:
            return {}
        with self.session.lock:
            keyframes = [(k.view.camera, (k.view.image * 255).round().byte().cpu().numpy())
                         for k in self.session.keyframes]
        return model_scorers(self.config.objects, snapshot.splats, self.table, keyframes,
                             self.config.render)

    def _nearest_object(self, feature: torch.Tensor):
        ids, features, _ = self._object_features()
        if len(ids) == 0:
            return None
        unit = torch.nn.functional.normalize(features, dim=-1)
        best = int(torch.argmax(cosine_to(unit, feature.cpu())))
        return self.table.get(int(ids[best]))

    def list_objects(self, request, response):
        if request.recluster or self.table is None:
            self._snapshot()
            self._recluster()
        header = self._map_header()
        response.objects = [self._object_msg(o, header) for o in
                            ([] if self.table is None else self.table.objects)]
        response.success = True
        response.message = f"{len(response.objects)} objects"
        return response

    def label_object(self, request, response):
        if self.table is None:
            self._snapshot()  # "no map yet" when there is none
            raise ServiceError("no objects yet: call list_objects first or wait for the map")
        if len(request.label) > MAX_TEXT:
            raise ServiceError(f"label longer than {MAX_TEXT} characters")
        try:
            obj = self.table.get(int(request.id))
        except ValueError as error:
            raise ServiceError(str(error)) from None
        obj.label = request.label.strip()
        response.object = self._object_msg(obj, self._map_header())
        response.success = True
        response.message = f"object {obj.id} is now '{obj.label}'"
        return response

    def _map_path(self, name: str) -> Path:
        """`name` inside the map directory; refuses anything that would leave it."""
        if not name or len(name) > MAX_TEXT or any(ord(c) < 32 for c in name):
            raise ServiceError(f"map name must be 1 to {MAX_TEXT} printable characters")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ServiceError(f"map name '{name}' must be relative, without '..'")
        root = self.settings.map_directory.resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root):  # a symlink pointing out of the folder
            raise ServiceError(f"map name '{name}' leads out of the map directory")
        if path == root:
            raise ServiceError(f"map name '{name}' names the map directory itself")
        return path

    def save_map(self, request, response):
        path = self._map_path(request.name)
        self._snapshot()
        self._save(path)
        response.success, response.path = True, str(path)
        response.message = f"saved to {path}"
        return response

    def _save(self, path: Path) -> None:
        """Save the map in folder `path`: each file atomically (cgc_core.io.atomic_path: a
        temporary file, fsynced, renamed, folder fsynced), the model first, so that a crash at
        any moment leaves a complete model, old or new, loadable."""
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob(".*.tmp*"):  # a save killed mid-write left it; only we write here
            stale.unlink(missing_ok=True)
        # Model and objects of one moment: pause training, cluster the model as it is, save both.
        self.session.stop()
        try:
            self._recluster()
            self.session.save(path / SESSION_FILE)
            if self.table is not None:
                write_json(path / OBJECTS_FILE, self.table.to_json())
        finally:
            self.session.start()
        self.counts["maps_saved"] += 1

    def _autosave(self) -> None:
        if self.session.snapshot() is None:
            return  # nothing to save yet
        self._save(self._map_path(self.settings.autosave_name))
        self.counts["autosaves"] += 1

    def load_map(self, request, response):
        path = self._map_path(request.name)
        if not (path / SESSION_FILE).is_file():
            raise ServiceError(f"no saved map '{request.name}' in {self.settings.map_directory}")
        for name in (SESSION_FILE, OBJECTS_FILE):  # a symlinked file must not leave it either
            if (path / name).exists() and not (path / name).resolve().is_relative_to(
                    self.settings.map_directory.resolve()):
                raise ServiceError(f"'{request.name}/{name}' leads out of the map directory")
        try:
            session = self._new_session(path / SESSION_FILE)
            table = None
            if (path / OBJECTS_FILE).is_file() and cluster_objects is not None:
                from cgc_core.objects.cluster import ObjectTable
                table = ObjectTable.from_json(read_json(path / OBJECTS_FILE))
        except Exception as error:  # an untrusted file: whatever it holds, keep the map
            detail = str(error) if isinstance(error, DataError) else \
                f"not a cgc map ({type(error).__name__}: {error})"
            raise ServiceError(f"cannot load '{request.name}': {detail[:300]}; the current map "
                               "is kept") from None
        self.session.stop()
        self.session = session
        self._epoch += 1  # after the swap: a copy begun before it is not served
        self.table = table
        self._clustered_version = -1
        self._clustered_splats = None
        self._clusters_cloud = None
        # Cluster the model exactly as saved, before training moves it: ids and labels carry
        # over from the saved table (the same model overlaps it fully).
        self._recluster()
        self.session.start()
        response.success, response.path = True, str(path)
        response.message = f"loaded {path}"
        return response

    def reset(self, request, response):
        self.session.reset()
        self._epoch += 1  # after the reset: a copy begun before it is not served
        self._generation += 1
        self.table = None
        self._clustered_version = -1
        self._clustered_splats = None
        self._clusters_cloud = None
        response.success, response.message = True, "map cleared"
        return response
