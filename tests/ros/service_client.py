"""Call the services of service_server.py from a separate process; print what came back.

    python service_client.py NAMESPACE [--timeout SECONDS]

Prints one JSON object with the responses (or exits non-zero with the reason), for
test_ros_services.py to check. Every wait is bounded by --timeout.
"""

import argparse
import json
import struct
import sys

import rclpy
from rclpy.node import Node

from cgc_ros.srv import ListObjects, SegmentObject


def call(node: Node, client, request, timeout: float):
    if not client.wait_for_service(timeout_sec=timeout):
        raise TimeoutError(f"service {client.srv_name} not available after {timeout} s")
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        raise TimeoutError(f"no response from {client.srv_name} within {timeout} s")
    return future.result()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    rclpy.init()
    node = Node("cgc_roundtrip_client", namespace=args.namespace)
    try:
        listed = call(node, node.create_client(ListObjects, "list_objects"),
                      ListObjects.Request(recluster=True), args.timeout)

        request = SegmentObject.Request(text="red mug", u=2, v=1, use_pixel=True)
        request.image.height, request.image.width, request.image.encoding = 3, 4, "rgb8"
        request.image.step = 12
        request.image.data = bytes(36)
        request.image.header.frame_id = "camera_optical"
        request.camera_info.k[0] = 525.0
        request.camera_pose.header.frame_id = "map"
        segmented = call(node, node.create_client(SegmentObject, "segment_object"), request,
                         args.timeout)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()

    cloud = segmented.points
    print(json.dumps({
        "list": {
            "success": listed.success, "message": listed.message,
            "objects": [{"id": o.id, "label": o.label, "point_count": o.point_count,
                         "frame_id": o.header.frame_id, "centroid_x": o.centroid.x,
                         "box_size": [o.box_size.x, o.box_size.y, o.box_size.z]}
                        for o in listed.objects],
        },
        "segment": {
            "success": segmented.success, "message": segmented.message,
            "score": round(segmented.score, 6),
            "mask": {"size": [segmented.mask.height, segmented.mask.width],
                     "encoding": segmented.mask.encoding,
                     "frame_id": segmented.mask.header.frame_id,
                     "on": [i for i, b in enumerate(segmented.mask.data) if b]},
            "points": {"fields": [f.name for f in cloud.fields], "width": cloud.width,
                       "xyz_rgb": list(struct.unpack(f"<{len(cloud.data) // 4}f",
                                                     bytes(cloud.data)))[:3],
                       "rgb_bits": struct.unpack("<I", bytes(cloud.data)[12:16])[0]},
            "object": {"id": segmented.object.id, "label": segmented.object.label},
        },
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
