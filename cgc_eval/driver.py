"""One driver of a running cgc node, as a camera driver, a pose source and a user are: the
player, the node's test drivers (tests/ros) and the soak bench (bench/bench_soak.py --drive)
all send frames and call services through it.

    driver = NodeDriver("cgc_player", namespace)
    driver.wait_for_inputs()
    driver.publish(driver.frame_messages(camera, rgb, depth, segments, stamp))
    response, seconds = driver.timed_call("segment_object", SegmentObject.Request(...))

Frames go on sensor-data QoS (as drivers send them), built with `cgc_ros.conversions`
(depth through `depth_to_image`); the player's service calls run on a node and executor of
their own, so that they may wait in a thread while frames keep their rate.
"""

from __future__ import annotations

import json
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

from cgc_ros import conversions as cv
from cgc_ros.srv import LabelObject, ListObjects, LoadMap, SaveMap, SegmentObject

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""The node's object outputs and status: a late subscriber gets the last one."""
OPTICAL_FRAME = "camera_optical"
INPUTS = (("image", Image), ("camera_info", CameraInfo), ("depth", Image),
          ("pose", PoseStamped), ("segments", Image))
SERVICES = (("segment_object", SegmentObject), ("list_objects", ListObjects),
            ("label_object", LabelObject), ("save_map", SaveMap), ("load_map", LoadMap),
            ("reset", Trigger))
ORDERS = ("image_last", "image_first", "info_every_other")
"""How a frame's messages go out: companions first (most drivers), the image first, or
camera_info only with every other image (drivers that send it at a lower rate)."""


def header(stamp: float, frame_id: str = OPTICAL_FRAME) -> Header:
    msg = Header(frame_id=frame_id)
    nanoseconds = int(round(stamp * 1e9))  # rounding may carry into the next second
    msg.stamp.sec, msg.stamp.nanosec = divmod(nanoseconds, 1_000_000_000)
    return msg


def stamp_ns(head: Header) -> int:
    """A header's stamp in integer nanoseconds: an exact key (floats of it may differ)."""
    return head.stamp.sec * 1_000_000_000 + head.stamp.nanosec


def set_stamp(msgs: dict, stamp: float) -> None:
    """Restamp a frame's messages (built once, sent again and again)."""
    for msg in msgs.values():
        msg.header.stamp = header(stamp).stamp


class NodeDriver:
    def __init__(self, name: str, namespace: str, queries_apart: bool = False):
        """`queries_apart`: service calls on a node and executor of their own, so that they may
        wait in another thread while this one spins frames out (the player); otherwise on the
        main node, whose spin also completes calls made with the clients directly."""
        self.node = rclpy.create_node(name, namespace=namespace)
        self.pub = {topic: self.node.create_publisher(kind, topic, qos_profile_sensor_data)
                    for topic, kind in INPUTS}
        self.status: dict = {}
        self.node.create_subscription(String, "cgc/status",
                                      lambda m: setattr(self, "status", json.loads(m.data)),
                                      LATCHED)
        self.query_node, self.query_executor = self.node, None
        if queries_apart:
            self.query_node = rclpy.create_node(f"{name}_queries", namespace=namespace)
            self.query_executor = SingleThreadedExecutor()
            self.query_executor.add_node(self.query_node)
        self.clients = {service: self.query_node.create_client(kind, f"cgc/{service}")
                        for service, kind in SERVICES}
        self.images_sent = 0

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            rclpy.spin_once(self.node, timeout_sec=min(0.05, left))

    def wait_for(self, predicate, timeout: float, tick=None) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if tick is not None:
                tick()
        return predicate()

    def wait_for_inputs(self, timeout: float = 20.0, services: bool = False,
                        topics: set[str] | None = None) -> bool:
        """Until every input of the node is matched (a frame sent before may be lost), and with
        `services` until its services answer. `topics`: only these inputs (the node subscribes
        to `segments` only with `external_segments`); None: all."""
        inputs = [p for name, p in self.pub.items() if topics is None or name in topics]
        ok = self.wait_for(lambda: all(p.get_subscription_count() > 0 for p in inputs)
                           and (not services or all(c.service_is_ready()
                                                    for c in self.clients.values())), timeout)
        self.spin(0.5)
        return ok

    def call(self, name: str, request, timeout: float = 60.0):
        """The response of a service call (from another thread only with `queries_apart`)."""
        return self.timed_call(name, request, timeout)[0]

    def timed_call(self, name: str, request, timeout: float = 60.0):
        """(response, seconds) of a service call."""
        client = self.clients[name]
        if not client.wait_for_service(timeout_sec=20.0):
            raise RuntimeError(f"service {name} did not appear")
        started = time.monotonic()
        future = client.call_async(request)
        if self.query_executor is None:
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=timeout)
        else:
            self.query_executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise RuntimeError(f"{name} did not answer within {timeout} s")
        return future.result(), time.monotonic() - started

    def frame_messages(self, camera, rgb: np.ndarray, depth: np.ndarray | None,
                       segments: np.ndarray | None, stamp: float,
                       depth_encoding: str = "32FC1") -> dict:
        """A frame's messages, companions first: pose (the optical frame in `map`),
        camera_info, depth ([H, W] metres), segments ([H, W] ids), image ([H, W, 3] RGB)."""
        head = header(stamp)
        msgs = {"pose": PoseStamped(header=header(stamp, "map"),
                                    pose=cv.matrix_to_pose(camera.cam_to_world)),
                "camera_info": cv.camera_to_camera_info(camera, head)}
        if depth is not None:
            msgs["depth"] = cv.depth_to_image(depth, header(stamp), depth_encoding)
        if segments is not None:
            msgs["segments"] = cv.ids_to_image(segments, header(stamp))
        msgs["image"] = cv.rgb_to_image(rgb, header(stamp))
        return msgs

    def publish(self, msgs: dict, order: str = "image_last", index: int = 0) -> None:
        """Back to back, no spin or sleep between them, in `order` (ORDERS)."""
        names = ["pose", "camera_info", "depth", "segments", "image"]
        if order == "image_first":
            names.reverse()
        if order == "info_every_other" and index % 2 == 1:
            names.remove("camera_info")
        for name in names:
            if name in msgs:
                self.pub[name].publish(msgs[name])
        self.images_sent += "image" in msgs

    def destroy(self) -> None:
        if self.query_executor is not None:
            self.query_executor.shutdown()
            self.query_node.destroy_node()
        self.node.destroy_node()
