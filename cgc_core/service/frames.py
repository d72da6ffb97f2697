"""Frame admission: which images become frames of the live session, and why the others do not.

An image is admitted by its stamp (`StampRules`), then waits for its companions (camera_info,
pose, depth, segments) matched by stamp within `sync_slop` (`FrameIntake`), is decoded with the
checks of `cgc_core.data.messages`, and goes to the session. Every refusal is a
`FrameRejected` with a reason, counted as `rejected.<reason>` and logged rate-limited. The
messages are ROS-shaped (rclpy's or rosbags'), read duck-typed: nothing here imports ROS.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cgc_core.cameras import Camera
from cgc_core.data import messages as msgs
from cgc_core.lens import undistort
from cgc_core.service.buffers import DropOldestQueue, RateLimitedLog, StampBuffer
from cgc_core.service.settings import NodeSettings
from cgc_core.train.frames import FrameRejected

__all__ = ["FrameRejected", "FrameInputs", "FrameIntake", "StampRules", "StreamGaps"]

STAMP_RESTART_FRAMES = 5
"""After this many images in a row whose stamps all lie before the last accepted one, time is
taken to have jumped back for good (a bag restarted, a simulator reset) and is followed."""
REUSE_AFTER = 0.1
"""Seconds an image without a camera_info at its stamp waits for its own before the last one
is reused (`camera_info_reuse`)."""
GAP_FACTOR = 2.5
"""A gap between two images' stamps this many times the stream's median period is counted as
frames lost before the service (`frames_missing`)."""
STREAM_PAUSE = 10.0
"""Seconds between two images' stamps taken as a pause of the stream (a bag paused, a robot
parked), not as lost frames; the stream's period is learnt again after it."""
GAP_MIN_INTERVALS = 4
"""Periods seen before gaps are judged (a stream's first frames set its rate)."""


class StampRules:
    """Refuse an unset stamp, one far from the clock, a repeat, or one older than the last
    admitted image (reasons stamp_unset, stamp_far, stamp_duplicate, stamp_order); after
    `STAMP_RESTART_FRAMES` older images in a row, time went back and is followed."""

    def __init__(self, max_stamp_skew: float, clock: Callable[[], float],
                 on_restart: Callable[[float], None] = lambda last: None):
        self.max_stamp_skew, self.clock, self.on_restart = max_stamp_skew, clock, on_restart
        self.last: float | None = None
        self._backwards = 0

    def admit(self, stamp: float) -> None:
        """Raise FrameRejected for a stamp the rules refuse; otherwise it becomes the last."""
        if stamp <= 0.0:
            raise FrameRejected("stamp_unset", "image stamp is 0 (the driver did not set it)")
        skew, now = self.max_stamp_skew, self.clock()
        if skew > 0 and now > 0 and abs(stamp - now) > skew:  # now 0: sim time not yet set
            raise FrameRejected("stamp_far", f"image stamp {stamp:.3f} is {stamp - now:+.1f} s "
                                f"from the node's clock (max_stamp_skew {skew:g} s)")
        last = self.last
        if last is not None and stamp == last:
            raise FrameRejected("stamp_duplicate", f"image stamp {stamp:.6f} repeats the last "
                                "accepted image's")
        if last is not None and stamp < last:
            self._backwards += 1
            if self._backwards < STAMP_RESTART_FRAMES:
                raise FrameRejected("stamp_order", f"image stamp {stamp:.3f} is "
                                    f"{last - stamp:.3f} s older than the last accepted image's")
            self.on_restart(last)
        self._backwards = 0
        self.last = stamp


class StreamGaps:
    """Gaps in a steady stream's image stamps several times its usual period: frames a driver
    sent that never arrived (best-effort transport drops large messages when buffers are small;
    docs/node.md, "Large images"). Only the image callback's thread calls `note`."""

    def __init__(self, counts: collections.Counter, report: RateLimitedLog):
        self.counts, self.report = counts, report
        self._last: float | None = None
        self._intervals: collections.deque = collections.deque(maxlen=20)

    def note(self, stamp: float) -> None:
        last, self._last = self._last, stamp
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


@dataclass
class FrameInputs:
    """What a face's callbacks fill and the worker reads."""

    frames: DropOldestQueue               # (arrival monotonic s, Image message)
    camera_info: StampBuffer
    depth: StampBuffer
    pose: StampBuffer                     # PoseStamped (pose_source 'topic')
    segments: StampBuffer
    lookup_tf: Callable[[str, Any], np.ndarray] | None = None
    """(frame_id, stamp msg) -> [4, 4] frame-to-map (pose_source 'tf'); raises on failure."""
    clock: Callable[[], float] = time.time
    """The face's clock in seconds (ROS time under a node), for `max_stamp_skew`."""


@dataclass
class Frame:
    """One image with its companions, decoded: what the session takes."""

    stamp: float
    camera: Camera
    rgb: np.ndarray                   # [H, W, 3] uint8
    depth: np.ndarray | None          # [H, W] float32 metres, 0 = invalid
    segments: np.ndarray | None       # [H, W] int32 ids, 0 = none
    keyframe: bool | None             # False: may not become a keyframe (its segments missing)


class FrameIntake:
    """Images taken from the queue, waiting for their companions, then decoded (on the worker)."""

    def __init__(self, settings: NodeSettings, inputs: FrameInputs,
                 counts: collections.Counter, report: RateLimitedLog, wait_ms: collections.deque):
        self.settings, self.inputs, self.counts, self.report = settings, inputs, counts, report
        self.wait_ms = wait_ms
        self.stamps = StampRules(settings.max_stamp_skew, inputs.clock, self._restarted)
        self.gaps = StreamGaps(counts, report)
        self.pending: collections.deque = collections.deque()
        """(arrival, image) taken from the queue, waiting for their companions."""

    def _restarted(self, last: float) -> None:
        self.counts["stamp_restarts"] += 1
        self.report("stamp_restart", f"{STAMP_RESTART_FRAMES} images in a row older than "
                    f"{last:.3f}: time went back (bag restarted?), following it")

    def arrived(self, arrival: float, image) -> None:
        """An image taken from the queue: admitted by its stamp, it waits for its companions."""
        self.counts["frames_taken"] += 1
        stamp = msgs.stamp_seconds(image.header)
        try:
            self.stamps.admit(stamp)
        except FrameRejected as error:
            self.refuse(stamp, error, arrival)
            return
        self.pending.append((arrival, image))

    def refuse(self, stamp: float, error: Exception, arrival: float | None = None) -> None:
        """Count and log a refused frame; `arrival` (monotonic s) when its wait is not yet
        recorded."""
        reason = getattr(error, "reason", None) or str(error).split(":")[0]
        self.counts["frames_rejected"] += 1
        self.counts[f"rejected.{reason}"] += 1
        if arrival is not None:
            self.wait_ms.append(1000 * (time.monotonic() - arrival))
        self.report(f"frame:{reason}", f"frame at {stamp:.3f} refused: {error}")

    def ready(self):
        """The waiting images whose companions are all there, oldest first, as (arrival, image,
        companions); an image that waited `sync_wait` without them is refused, naming what is
        missing. Later images wait behind the oldest (stamps stay in order); nothing blocks."""
        while self.pending:
            arrival, image = self.pending[0]
            try:
                companions = self._companions(image, time.monotonic() - arrival)
            except FrameRejected as error:
                self.pending.popleft()
                self.refuse(msgs.stamp_seconds(image.header), error, arrival)
                continue
            except Exception:
                self.pending.popleft()  # a bug must not hold every later frame up
                raise
            if companions is None:
                return
            self.pending.popleft()
            self.wait_ms.append(1000 * (time.monotonic() - arrival))
            yield arrival, image, companions

    def _companions(self, image, waited: float):
        """(camera_info, depth, pose, segments) of an image once all that it needs has arrived
        (stamps within `sync_slop`), None while it may still come (less than `sync_wait`
        waited), FrameRejected naming what is missing after that.

        camera_info is the one companion drivers send more rarely than images (some every
        other frame, some at 1 Hz): without one at the image's stamp, the newest of the same
        frame and size is reused when it is at most `camera_info_reuse` seconds older, after a
        short wait for the image's own."""
        settings, inputs = self.settings, self.inputs
        stamp, slop = msgs.stamp_seconds(image.header), settings.sync_slop
        want_depth = len(inputs.depth) > 0  # a depth stream exists
        info = inputs.camera_info.nearest(stamp, slop)
        reused = False
        if info is None and waited >= min(REUSE_AFTER, settings.sync_wait):
            info = self._reusable_camera_info(image, stamp)
            reused = info is not None
        depth = inputs.depth.nearest(stamp, slop) if want_depth else None
        segments = inputs.segments.nearest(stamp, slop) if settings.external_segments else None
        pose = inputs.pose.nearest(stamp, slop) if settings.pose_source == "topic" else None
        needed = {"camera_info": info is not None,
                  "pose": pose is not None or settings.pose_source == "tf",
                  "depth": depth is not None or not want_depth,
                  "segments": segments is not None or not settings.external_segments}
        if all(needed.values()):
            if reused:
                self.counts["camera_info_reused"] += 1
            return info, depth, pose, segments
        if waited < settings.sync_wait:
            return None
        if info is None:
            latest = inputs.camera_info.latest()
            since = "none received yet" if latest is None else \
                f"the newest is {msgs.stamp_seconds(latest.header) - stamp:+.2f} s from it"
            raise FrameRejected("camera_info", f"no camera_info within {slop:g} s of the image "
                                f"after waiting {waited:.2f} s ({since}; "
                                f"{self._received('camera_info')})")
        if pose is None and settings.pose_source == "topic":
            try:
                self._pose(image, None)  # raises FrameRejected("pose", ...) with the detail
            except FrameRejected as error:
                raise FrameRejected("pose", f"{error}; {self._received('pose')}") from None
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

    def decode(self, image, info, depth, pose, segments) -> Frame:
        """The frame of an image message and its companions (FrameRejected, or the messages'
        ConversionError, for what cannot be read)."""
        stamp = msgs.stamp_seconds(image.header)
        rgb = msgs.image_to_rgb(image)
        matrix = self._pose(image, pose)
        if (info.width, info.height) != (image.width, image.height):
            raise FrameRejected("size", f"camera_info is {info.width}x{info.height}, the image "
                                f"{image.width}x{image.height}")
        camera = msgs.camera_info_to_camera(info, matrix, name=f"{stamp:.6f}",
                                            rectified=self.settings.image_rectified)
        depth_m = None
        if depth is not None:
            depth_m, nonfinite = msgs.image_to_depth(depth)
            if nonfinite:  # REP 118's "no measurement": kept as invalid pixels, but counted
                self.counts["depth_nonfinite_frames"] += 1
                self.report("depth_nonfinite", f"depth at {stamp:.3f}: {nonfinite} NaN/inf "
                            "pixels read as invalid (0)")
        ids = msgs.image_to_segments(segments) if segments is not None else None
        if camera.lens is not None:  # raw images: train on their pinhole view (maps cached)
            rgb, depth_m, ids = undistort_frame(camera, rgb, depth_m, ids)
        keyframe = None
        if self.settings.external_segments and ids is None:
            # No segments came: train on the frame's colour, but do not let it become a keyframe
            # that would never get segments (the node's own mask source is idle).
            self.counts["segments_missing"] += 1
            keyframe = False
        return Frame(stamp, camera, rgb, depth_m, ids, keyframe)

    def _pose(self, image, pose) -> np.ndarray:
        settings = self.settings
        if settings.pose_source == "tf":
            try:
                return self.inputs.lookup_tf(image.header.frame_id, image.header.stamp)
            except Exception as error:  # tf2's lookup errors have no common base in Python
                raise FrameRejected("pose", f"no TF pose of '{image.header.frame_id}' in "
                                    f"'{settings.map_frame}': {error}") from None
        if pose is None:
            latest = self.inputs.pose.latest()
            gap = None if latest is None else \
                msgs.stamp_seconds(latest.header) - msgs.stamp_seconds(image.header)
            since = "no pose received yet" if gap is None else \
                f"the newest pose is {gap:+.2f} s from it"
            raise FrameRejected("pose", f"no pose within {settings.sync_slop:g} s of the "
                                f"image ({since})")
        if pose.header.frame_id and pose.header.frame_id != settings.map_frame:
            raise FrameRejected("pose", f"pose is in '{pose.header.frame_id}', not in map_frame "
                                f"'{settings.map_frame}'")
        return msgs.pose_to_matrix(pose.pose)


def undistort_frame(camera: Camera, rgb: np.ndarray, depth: np.ndarray | None,
                    segments: np.ndarray | None):
    """(rgb, depth, segments) of a raw frame on `camera`'s pinhole grid: colour linear, depth and
    ids nearest; a companion of another size than the image is left for the session to refuse."""
    def nearest(values):
        if values is None or values.shape[:2] != rgb.shape[:2]:
            return values
        return undistort(camera, values, nearest=True)

    return undistort(camera, rgb), nearest(depth), nearest(segments)
