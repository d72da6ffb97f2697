"""The worker thread: the only thread that calls the map service (cgc_core.service).

It takes images from the node's bounded queue and hands them to the service (which admits,
matches, decodes and trains on them), publishes each accepted frame's segmentation, refreshes
the object outputs at `publish_rate`, autosaves, and runs the queued service requests between
frames (`cgc_ros.answers`). Every decision about frames, objects, queries and maps is the
service's; here are messages, publishers and the clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from std_msgs.msg import Header, String

from cgc_core.service import CGCConfig, FrameInputs, MapService, NodeSettings
from cgc_ros import conversions as cv
from cgc_ros.msg import ObjectEvent as ObjectEventMsg
from cgc_ros.msg import ObjectInfo as ObjectInfoMsg


@dataclass
class Outputs:
    """The node's publishers (the worker publishes; it creates nothing)."""

    segmentation: Any
    segmentation_color: Any
    clusters: Any
    markers: Any
    object: Any
    status: Any
    object_events: Any


class Worker:
    def __init__(self, config: CGCConfig, settings: NodeSettings, inputs: FrameInputs,
                 log: Callable[[str], None], now: Callable[[], Any]):
        """`now()`: the node's clock as a builtin_interfaces/Time (sim time under
        use_sim_time), for the headers of everything not derived from an image."""
        self.settings, self.inputs, self.now = settings, inputs, now
        self.service = MapService(config, settings, inputs, log)
        self.counts, self.report = self.service.counts, self.service.report
        self.outputs: Outputs | None = None
        self.latest_frame_id = ""
        self._clusters_cloud = None
        self._objects_due = 0.0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="cgc-worker", daemon=True)

    def start(self, outputs: Outputs) -> None:
        self.outputs = outputs
        self.service.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self.service.halt()  # its threads wind down while this one does
        self.inputs.frames.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.service.stop()

    def call(self, run: Callable[[], Any]) -> Any:
        """Run a request on the worker thread (from a service callback), with the timeout."""
        return self.service.requests.call(run, self.settings.service_timeout)

    def _loop(self) -> None:
        service = self.service
        while not self._stop:
            self._guarded(service.take_clustering)
            service.requests.run_pending()
            item = self.inputs.frames.get(timeout=0.02)
            if item is not None:
                self._guarded(lambda: service.arrived(*item))
            self._guarded(self._take_frames)
            self._guarded(self._publish_events)
            if service.objects_changed:
                service.objects_changed, self._clusters_cloud = False, None
                self._objects_due = 0.0  # publish new objects at once
            if time.monotonic() >= self._objects_due:
                self._objects_due = time.monotonic() + 1.0 / self.settings.publish_rate
                self._guarded(self._publish_objects)
                self._guarded(self._publish_status)
            if self.settings.autosave_period > 0 and time.monotonic() >= service.autosave_due:
                service.autosave_due = time.monotonic() + self.settings.autosave_period
                self._guarded(service.autosave)

    def _guarded(self, work: Callable[[], None]) -> None:
        """Run `work`; an unexpected error is counted and logged, never the end of the worker."""
        try:
            work()
        except Exception as error:  # keep publishing on the good frames around it
            if self._stop or not rclpy.ok():
                return  # shutting down: publishers are gone
            self.counts["internal_errors"] += 1
            self.report(f"internal:{type(error).__name__}",
                        f"{getattr(work, '__name__', 'work')} failed: "
                        f"{type(error).__name__}: {error}")

    def _take_frames(self) -> None:
        for arrival, image, frame in self.service.take_ready():
            self.latest_frame_id = image.header.frame_id
            self._guarded(lambda: self._publish_segmentation(image.header, frame.camera))
            self.service.latency["segmentation_ms"].append(1000 * (time.monotonic() - arrival))

    def _publish_segmentation(self, header: Header, camera) -> None:
        ids, palette = self.service.segmentation(camera)
        rgb = np.zeros((*ids.shape, 3), dtype=np.uint8)
        for object_id, color in palette.items():  # a handful of objects: one pass each
            rgb[ids == object_id] = color
        self.outputs.segmentation.publish(cv.ids_to_image(ids, header))
        self.outputs.segmentation_color.publish(cv.rgb_to_image(rgb, header))
        self.counts["segmentation_published"] += 1

    def map_header(self) -> Header:
        """A header in map_frame stamped with the node's clock (not wall time: sim time)."""
        return Header(frame_id=self.settings.map_frame, stamp=self.now())

    def _publish_objects(self) -> None:
        table = self.service.table
        if table is None:
            return
        header = self.map_header()
        if self._clusters_cloud is None:  # built once per clustering, re-stamped at each publish
            clusters = self.service.clusters()
            if clusters is None:
                return
            self._clusters_cloud = cv.points_to_cloud(*clusters, header)
        self._clusters_cloud.header = header
        self.outputs.clusters.publish(self._clusters_cloud)
        infos = [object_msg(obj, header) for obj in table.objects]
        self.outputs.markers.publish(cv.object_markers(infos, header))
        self.counts["objects_published"] += 1

    def _publish_events(self) -> None:
        for event in self.service.take_events():
            msg = ObjectEventMsg(header=Header(frame_id=self.settings.map_frame,
                                               stamp=cv.seconds_to_stamp(event.stamp)),
                                 id=int(event.id), label=event.label, kind=event.kind,
                                 confidence=float(event.confidence))
            for field, position in (("pose_before", event.position_before),
                                    ("pose_after", event.position_after)):
                if position is not None:
                    pose = getattr(msg, field)
                    pose.position.x, pose.position.y, pose.position.z = map(float, position)
                    pose.orientation.w = 1.0
            self.outputs.object_events.publish(msg)
            self.counts["object_events_published"] += 1

    def _publish_status(self) -> None:
        status = self.service.status(self.inputs.frames)
        self.outputs.status.publish(String(data=json.dumps(status, sort_keys=True)))


def object_msg(obj, header: Header, score: float = 1.0) -> ObjectInfoMsg:
    """cgc_ros/ObjectInfo of a table's object (its oriented box as a pose and size)."""
    pose = np.eye(4)
    pose[:3, :3] = obj.obb_rotation
    pose[:3, 3] = obj.obb_center
    msg = ObjectInfoMsg(header=header, id=int(obj.id), label=obj.label, score=float(score),
                        point_count=int(obj.count), box_center=cv.matrix_to_pose(pose),
                        color=cv.color_rgba(obj.color))
    msg.centroid.x, msg.centroid.y, msg.centroid.z = (float(v) for v in obj.centroid)
    msg.box_size.x, msg.box_size.y, msg.box_size.z = (float(v) for v in obj.obb_extent)
    return msg
