"""A small ROS 2 server of cgc_ros services with fixed answers, for the round-trip tests.

    python service_server.py NAMESPACE [--lifetime SECONDS]

Offers NAMESPACE/list_objects (cgc_ros/srv/ListObjects) and NAMESPACE/segment_object
(cgc_ros/srv/SegmentObject). Its answers are computed from the request, so the client can check
that every part of the request arrived. Prints READY when its services exist, then serves until
SIGINT/SIGTERM or until --lifetime runs out: the lifetime is a safety net that ends the process
even if the test that started it died before cleaning up.
"""

import argparse
import struct
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, PointField

from cgc_ros.msg import ObjectInfo
from cgc_ros.srv import ListObjects, SegmentObject


def make_object(object_id: int, label: str, points: int) -> ObjectInfo:
    info = ObjectInfo(id=object_id, label=label, score=0.5 + 0.1 * object_id, point_count=points)
    info.header.frame_id = "map"
    info.centroid.x, info.centroid.y, info.centroid.z = float(object_id), 2.0, 3.0
    info.box_center.position = info.centroid
    info.box_size.x, info.box_size.y, info.box_size.z = 0.1, 0.2, 0.3
    info.color.r, info.color.a = 1.0, 1.0
    return info


class RoundTripServer(Node):
    def __init__(self, namespace: str, lifetime: float):
        super().__init__("cgc_roundtrip_server", namespace=namespace)
        self.create_service(ListObjects, "list_objects", self.list_objects)
        self.create_service(SegmentObject, "segment_object", self.segment_object)
        self.create_timer(lifetime, self.expire)

    def expire(self):
        self.get_logger().error("lifetime over without being stopped; exiting")
        raise SystemExit(3)

    def list_objects(self, request, response):
        response.success = True
        response.message = f"recluster={request.recluster}"
        response.objects = [make_object(1, "mug", 100), make_object(2, "", 250)]
        return response

    def segment_object(self, request, response):
        # Mask: the view's size, 255 at the prompted pixel, so the client can check that image
        # size and prompt both arrived.
        mask = Image(header=request.image.header, height=request.image.height,
                     width=request.image.width, encoding="mono8", step=request.image.width)
        data = bytearray(request.image.height * request.image.width)
        if request.use_pixel and 0 <= request.v < mask.height and 0 <= request.u < mask.width:
            data[request.v * mask.width + request.u] = 255
        mask.data = bytes(data)
        response.mask = mask

        # Points: x, y, z float32 + rgb float32 holding 0x00RRGGBB, the layout of ~/object.
        cloud = response.points
        cloud.header.frame_id = "map"
        cloud.height, cloud.width, cloud.point_step = 1, 2, 16
        cloud.row_step = cloud.point_step * cloud.width
        cloud.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                        for i, n in enumerate(("x", "y", "z", "rgb"))]
        rgb = struct.unpack("<f", struct.pack("<I", 0x00FF8000))[0]
        cloud.data = struct.pack("<8f", 1.0, 2.0, 3.0, rgb, 4.0, 5.0, 6.0, rgb)
        cloud.is_dense = True

        response.object = make_object(7, request.text, 2)
        response.score = request.threshold or 0.7
        response.success = True
        response.message = (f"text={request.text} u={request.u} v={request.v} "
                            f"frame={request.camera_pose.header.frame_id} "
                            f"fx={request.camera_info.k[0]:g}")
        return response


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("--lifetime", type=float, default=60.0)
    args = parser.parse_args()
    rclpy.init()
    node = RoundTripServer(args.namespace, args.lifetime)
    # The executor exists before READY: a SIGINT that shuts the context down before spinning
    # starts would otherwise make creating it fail (RCLError: context is not valid).
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        # Inside the try: a SIGINT sent the moment READY is read must take the clean way out.
        print("READY", flush=True)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # asked to stop: the normal way out
    except RuntimeError:
        # rclpy's SIGINT handler shuts the context down at once; a SIGINT that lands as spinning
        # starts then fails with RCLError (a RuntimeError) before Python raises
        # KeyboardInterrupt. That is still Ctrl-C (the node's main does the same).
        if rclpy.ok():
            raise
    except SystemExit as stop:
        return int(stop.code)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
