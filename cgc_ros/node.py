"""The cgc node: posed camera frames in; segmentation, object clusters and object services out.

    python -m cgc_ros.node [--ros-args ...]      (colcon: ros2 run cgc_ros cgc_node)

A thin adapter over cgc_core's map service (docs/node.md). Callbacks only put messages into
bounded queues; one worker thread (cgc_ros.worker) calls the service, for frames and for the
service requests (cgc_ros.answers), queued with a timeout, so that a slow request never blocks
the topics.
"""

from __future__ import annotations

import faulthandler
import sys
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from cgc_core.service import DropOldestQueue, FrameInputs, QueryError, StampBuffer
from cgc_ros import conversions as cv
from cgc_ros import params
from cgc_ros.answers import Answers
from cgc_ros.msg import ObjectEvent
from cgc_ros.srv import LabelObject, ListObjects, LoadMap, SaveMap, SegmentObject
from cgc_ros.worker import Outputs, Worker

INPUT_TOPICS = ("image", "camera_info", "depth", "pose", "segments")
"""Relative input names (remap them; launch/cgc.launch.py does)."""
OUTPUT_TOPICS = ("~/segmentation", "~/segmentation/color", "~/clusters", "~/objects/markers",
                 "~/object", "~/status", "~/object_events")
SERVICES = ("~/segment_object", "~/list_objects", "~/label_object", "~/save_map", "~/load_map",
            "~/reset")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Input messages larger than this are dropped on arrival (counted): the buffers hold up to 30
messages per topic, and a flood of huge ones must not exhaust memory before any check runs."""
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Object outputs: a late subscriber (RViz started later) gets the last one at once."""
EVENTS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Object events: each one counts, and a planner that subscribes late gets the last 100."""


class CgcNode(Node):
    def __init__(self, **kwargs):
        super().__init__("cgc", **kwargs)
        # 1. Parameters (refused values stop the node here, naming the parameter).
        self.settings, config = params.declare(self)
        # 2. Engine: the worker and its map service; inputs are filled by the callbacks below.
        self.inputs = FrameInputs(frames=DropOldestQueue(self.settings.queue_length),
                                  camera_info=StampBuffer(), depth=StampBuffer(),
                                  pose=StampBuffer(), segments=StampBuffer(),
                                  lookup_tf=self._tf_lookup(),
                                  clock=lambda: self.get_clock().now().nanoseconds * 1e-9)
        self.worker = Worker(config, self.settings, self.inputs, self.get_logger().warning,
                             now=lambda: self.get_clock().now().to_msg())
        answers = Answers(self.worker)
        # 3. Subscriptions: sensor-data QoS, enqueue only. One callback group per topic: each
        #    topic's messages are taken in order, and no topic waits behind another's (a large
        #    image's take and conversion never holds up its camera_info).
        self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self._buffer(CameraInfo, "camera_info", self.inputs.camera_info)
        self._buffer(Image, "depth", self.inputs.depth)
        if self.settings.pose_source == "topic":
            self._buffer(PoseStamped, "pose", self.inputs.pose)
        if self.settings.external_segments:
            self._buffer(Image, "segments", self.inputs.segments)
        # 4. Timers: none; the worker refreshes the object outputs at publish_rate itself, so
        #    that clustering never runs beside a frame.
        # 5. Publishers.
        outputs = Outputs(
            segmentation=self.create_publisher(Image, "~/segmentation", 10),
            segmentation_color=self.create_publisher(Image, "~/segmentation/color", 10),
            clusters=self.create_publisher(PointCloud2, "~/clusters", LATCHED),
            markers=self.create_publisher(MarkerArray, "~/objects/markers", LATCHED),
            object=self.create_publisher(PointCloud2, "~/object", LATCHED),
            status=self.create_publisher(String, "~/status", LATCHED),
            object_events=self.create_publisher(ObjectEvent, "~/object_events", EVENTS))
        # 6. Services: each request waits in the worker's queue (bounded, with a timeout);
        #    reentrant, so that several can wait at once and a full queue refuses the next.
        services = ReentrantCallbackGroup()
        for kind, name, handler in (
                (SegmentObject, "~/segment_object", answers.segment_object),
                (ListObjects, "~/list_objects", answers.list_objects),
                (LabelObject, "~/label_object", answers.label_object),
                (SaveMap, "~/save_map", answers.save_map),
                (LoadMap, "~/load_map", answers.load_map),
                (Trigger, "~/reset", answers.reset)):
            self.create_service(kind, name, self._queued(name, handler),
                                callback_group=services)
        self.worker.start(outputs)
        self._device = config.train.device

    def announce_ready(self) -> None:
        """Log the line that says the node serves (tools wait for "cgc ready"); main calls it
        once the executor exists, so that a Ctrl-C sent on seeing it finds a clean way out."""
        self.get_logger().info(f"cgc ready: pose from {self.settings.pose_source}, map frame "
                               f"'{self.settings.map_frame}', device {self._device}")

    def _on_image(self, msg: Image) -> None:
        if self._admit("image", msg):
            self.worker.service.intake.gaps.note(cv.stamp_seconds(msg.header))
            self.inputs.frames.put((time.monotonic(), msg))

    def _buffer(self, kind, topic: str, buffer: StampBuffer) -> None:
        self.create_subscription(
            kind, topic,
            lambda m: self._admit(topic, m) and buffer.put(cv.stamp_seconds(m.header), m),
            qos_profile_sensor_data, callback_group=MutuallyExclusiveCallbackGroup())

    def _admit(self, topic: str, msg) -> bool:
        """False (counted, logged) for a message too large to keep; True otherwise. Every
        message is counted per topic (`received.<topic>` in ~/status)."""
        self.worker.counts[f"received.{topic}"] += 1  # only this topic's thread writes it
        size = len(getattr(msg, "data", b""))
        if size <= MAX_MESSAGE_BYTES:
            return True
        self.worker.counts[f"rejected_on_arrival.{topic}"] += 1
        self.worker.report(f"arrival:{topic}", f"{topic}: a {size / 2**20:.0f} MiB message, "
                           f"larger than {MAX_MESSAGE_BYTES // 2**20} MiB, dropped")
        return False

    def _queued(self, name: str, handler):
        """A service callback that runs `handler` on the worker and answers failures."""
        def callback(request, response):
            try:
                return self.worker.call(lambda: handler(request, response))
            except (QueryError, TimeoutError, BufferError) as error:
                message = str(error)
            except Exception as error:  # a bug must answer, not kill the node
                message = f"internal error: {type(error).__name__}: {error}"
            self.worker.counts[f"service_failures.{name.lstrip('~/')}"] += 1
            self.worker.report(f"service:{name}:{message[:40]}", f"{name}: {message}")
            response.success, response.message = False, message
            return response
        return callback

    def _tf_lookup(self):
        if self.settings.pose_source != "tf":
            return None
        import tf2_ros  # checked importable by params.declare
        from rclpy.duration import Duration
        from rclpy.time import Time

        buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(buffer, self)
        timeout = Duration(seconds=self.settings.tf_timeout)

        def lookup(frame_id: str, stamp):
            transform = buffer.lookup_transform(self.settings.map_frame, frame_id,
                                                Time.from_msg(stamp), timeout)
            return cv.transform_to_matrix(transform.transform)
        return lookup

    def destroy_node(self):
        self.worker.stop()
        super().destroy_node()


SHUTDOWN_REPORT_AFTER = 45.0
"""Seconds after Ctrl-C past which a node still stopping logs every thread's stack."""


def main(args=None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = executor = None
    try:
        node = CgcNode()
        # One thread per request that may wait for the worker, one per input topic and one
        # more: waiting requests never hold up the topics, nor one topic another.
        executor = MultiThreadedExecutor(
            num_threads=node.settings.service_queue_length + len(INPUT_TOPICS) + 1)
        executor.add_node(node)
        node.announce_ready()
        executor.spin()
    except params.ParameterError as error:
        print(f"cgc: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C or shutdown: the normal way out
    except RuntimeError:
        # rclpy's SIGINT handler shuts the context down at once; a start-up step that then
        # touches it (creating the executor, a service) fails with RCLError before Python raises
        # KeyboardInterrupt. That is still Ctrl-C; anything else is a real error.
        if rclpy.ok():
            raise
    finally:
        # Stopping should take seconds. Once it did not end within 90 s (the main job's
        # grace), and the cause was not found: if it hangs again, here or in the interpreter's
        # exit, every thread's stack goes to the log (the timer dies with the process).
        faulthandler.dump_traceback_later(SHUTDOWN_REPORT_AFTER, exit=False)
        if executor is not None:
            # callbacks under way end before their node goes, for 10 s at most
            executor.shutdown(timeout_sec=10.0, wait_for_threads=False)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
