"""The generated interfaces import, construct and serialize in a real ROS process."""

from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[2] / "build" / "ros" / "install"

SEGMENT_REQUEST = {
    "text": "string", "u": "int32", "v": "int32", "use_pixel": "boolean", "threshold": "float",
    "image": "sensor_msgs/Image", "camera_info": "sensor_msgs/CameraInfo",
    "camera_pose": "geometry_msgs/PoseStamped",
}
SEGMENT_RESPONSE = {
    "success": "boolean", "message": "string", "mask": "sensor_msgs/Image",
    "points": "sensor_msgs/PointCloud2", "object": "cgc_ros/ObjectInfo", "score": "float",
}
OBJECT_INFO = {
    "header": "std_msgs/Header", "id": "uint32", "label": "string", "score": "float",
    "point_count": "uint32", "centroid": "geometry_msgs/Point",
    "box_center": "geometry_msgs/Pose", "box_size": "geometry_msgs/Vector3",
    "color": "std_msgs/ColorRGBA",
}
OBJECT_EVENT = {
    "header": "std_msgs/Header", "id": "uint32", "label": "string", "kind": "string",
    "pose_before": "geometry_msgs/Pose", "pose_after": "geometry_msgs/Pose",
    "confidence": "float",
}
MAP_REQUEST = {"name": "string"}
MAP_RESPONSE = {"success": "boolean", "message": "string", "path": "string"}


@pytest.fixture(scope="module")
def report(run_script) -> dict:
    """What inspect_interfaces.py saw, from one process shared by the tests below."""
    return run_script("inspect_interfaces.py")


def test_interfaces_have_the_specified_fields(report):
    f = report["fields"]
    assert f["SegmentObject.Request"] == SEGMENT_REQUEST
    assert f["SegmentObject.Response"] == SEGMENT_RESPONSE
    assert f["ObjectInfo"] == OBJECT_INFO
    assert f["ObjectEvent"] == OBJECT_EVENT
    assert report["event_kinds"] == ["appeared", "moved", "removed"]
    assert f["ListObjects.Request"] == {"recluster": "boolean"}
    assert f["ListObjects.Response"] == {
        "success": "boolean", "message": "string", "objects": "sequence<cgc_ros/ObjectInfo>"}
    assert f["LabelObject.Request"] == {"id": "uint32", "label": "string"}
    assert f["LabelObject.Response"] == {
        "success": "boolean", "message": "string", "object": "cgc_ros/ObjectInfo"}
    for name in ("SaveMap", "LoadMap"):
        assert f[f"{name}.Request"] == MAP_REQUEST
        assert f[f"{name}.Response"] == MAP_RESPONSE

    # Defaults: no prompt, "use the node's threshold", no view (all optional view fields empty).
    assert report["segment_defaults"] == {
        "text": "", "u": 0, "v": 0, "use_pixel": False, "threshold": 0.0, "image_height": 0,
        "camera_info_width": 0, "pose_w": 1.0,
    }


def test_interfaces_serialize_through_the_built_typesupport(report):
    assert report["segment_roundtrip"] == {
        "text": "mug", "u": 12, "v": 34, "use_pixel": True, "threshold": 0.7,
        "image_data": list(range(18)), "frame_id": "map",
    }
    assert report["list_roundtrip"] == [[7, "mug", 42, 0.1], [8, "", 0, 0.0]]
    assert report["event_roundtrip"] == [3, "mug", "moved", 0.75, 0.3]


def test_generated_package_is_the_installed_one(report):
    """msg/srv come from build/ros/install, and the ament index finds the package there."""
    site = next((INSTALL / "lib").glob("python3.*/site-packages")) / "cgc_ros"
    assert str(site) in report["cgc_ros_path"]
    assert Path(report["package_prefix"]) == INSTALL
    share = Path(report["share"])
    assert share == INSTALL / "share" / "cgc_ros"
    assert (share / "package.xml").is_file()
    assert (share / "srv" / "SegmentObject.srv").is_file()
    assert (INSTALL / "lib" / "cgc_ros" / "cgc_node").is_file()
    # launch/ and config/ files are installed to share/ (where launch files look them up).
    for folder in ("launch", "config"):
        for source in (INSTALL.parents[2] / folder).glob("*"):
            if source.is_file():
                assert (share / folder / source.name).is_file(), f"{folder}/{source.name}"
