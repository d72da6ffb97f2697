"""Import the generated cgc_ros interfaces in a fresh process and report what they look like.

Run by test_ros_interfaces.py with the environment of scripts/ros_env.sh; prints one JSON
object (field types, defaults, a serialization round trip, install layout) for the test to
check, so that failures show up as readable assertions in the pytest process.
"""

import json
import sys

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from rclpy.serialization import deserialize_message, serialize_message

import cgc_ros
import cgc_ros.msg
import cgc_ros.srv


def fields(cls) -> dict:
    return dict(cls.get_fields_and_field_types())


def main() -> int:
    report = {"cgc_ros_path": list(cgc_ros.__path__)}
    report["fields"] = {
        "ObjectInfo": fields(cgc_ros.msg.ObjectInfo),
        "ObjectEvent": fields(cgc_ros.msg.ObjectEvent),
        **{
            f"{name}.{part}": fields(getattr(getattr(cgc_ros.srv, name), part))
            for name in ("SegmentObject", "ListObjects", "LabelObject", "SaveMap", "LoadMap")
            for part in ("Request", "Response")
        },
    }

    request = cgc_ros.srv.SegmentObject.Request()
    report["segment_defaults"] = {
        "text": request.text, "u": request.u, "v": request.v, "use_pixel": request.use_pixel,
        "threshold": request.threshold, "image_height": request.image.height,
        "camera_info_width": request.camera_info.width,
        "pose_w": request.camera_pose.pose.orientation.w,
    }

    # Serialization goes through the C typesupport libraries that colcon built: a broken
    # library path or a stale build fails here, not only at the first service call.
    request = cgc_ros.srv.SegmentObject.Request(text="mug", u=12, v=34, use_pixel=True,
                                                threshold=0.7)
    request.image.height, request.image.width, request.image.encoding = 2, 3, "rgb8"
    request.image.step = 9
    request.image.data = bytes(range(18))
    request.camera_pose.header.frame_id = "map"
    back = deserialize_message(serialize_message(request), cgc_ros.srv.SegmentObject.Request)
    report["segment_roundtrip"] = {
        "text": back.text, "u": back.u, "v": back.v, "use_pixel": back.use_pixel,
        "threshold": round(back.threshold, 6), "image_data": list(back.image.data),
        "frame_id": back.camera_pose.header.frame_id,
    }

    info = cgc_ros.msg.ObjectInfo(id=7, label="mug", point_count=42)
    info.box_size.x = 0.1
    listed = cgc_ros.srv.ListObjects.Response(
        success=True, objects=[info, cgc_ros.msg.ObjectInfo(id=8)]
    )
    back = deserialize_message(serialize_message(listed), cgc_ros.srv.ListObjects.Response)
    report["list_roundtrip"] = [[o.id, o.label, o.point_count, o.box_size.x] for o in back.objects]

    event = cgc_ros.msg.ObjectEvent(id=3, label="mug", kind=cgc_ros.msg.ObjectEvent.MOVED,
                                    confidence=0.75)
    event.pose_after.position.y = 0.3
    back = deserialize_message(serialize_message(event), cgc_ros.msg.ObjectEvent)
    report["event_roundtrip"] = [back.id, back.label, back.kind, back.confidence,
                                 back.pose_after.position.y]
    report["event_kinds"] = [cgc_ros.msg.ObjectEvent.APPEARED, cgc_ros.msg.ObjectEvent.MOVED,
                             cgc_ros.msg.ObjectEvent.REMOVED]

    # The ament index is how the node and launch files find the package's share folder.
    report["package_prefix"] = get_package_prefix("cgc_ros")
    report["share"] = get_package_share_directory("cgc_ros")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
