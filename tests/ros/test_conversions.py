"""cgc_ros.conversions on real ROS 2 messages (the generated classes, serialized through the
built typesupport where the bytes matter)."""

import math
import struct

import numpy as np
import pytest
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, Vector3
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from cgc_ros import conversions as cv
from cgc_ros.msg import ObjectInfo

RNG = np.random.default_rng(0)


def padded_image(pixels: np.ndarray, encoding: str, pad: int = 3, big_endian=False) -> Image:
    """An Image whose rows carry `pad` junk bytes at the end (step > width x pixel size)."""
    height, width = pixels.shape[:2]
    order = ">" if big_endian else "<"
    raw = pixels.astype(pixels.dtype.newbyteorder(order)).reshape(height, -1).view(np.uint8)
    rows = np.concatenate([raw, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian),
                step=rows.shape[1])
    msg.data = rows.tobytes()
    return deserialize_message(serialize_message(msg), Image)  # as it arrives off the wire


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_colour_encodings_read_as_rgb_with_row_padding(encoding):
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    if encoding == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
        pixels = rgb[:, :, 0]
    else:
        pixels = rgb[:, :, ::-1] if encoding.startswith("bgr") else rgb
        if encoding.endswith("a8"):
            pixels = np.concatenate([pixels, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    out = cv.image_to_rgb(padded_image(np.ascontiguousarray(pixels), encoding))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, rgb)


def test_depth_16uc1_millimetres_big_endian_and_32fc1_metres():
    mm = RNG.integers(0, 5000, (4, 6)).astype(np.uint16)
    depth, nonfinite = cv.image_to_depth(padded_image(mm, "16UC1", big_endian=True))
    assert nonfinite == 0
    np.testing.assert_allclose(depth, mm / 1000.0, rtol=1e-6)
    assert depth.dtype == np.float32

    metres = RNG.uniform(0.2, 3.0, (4, 6)).astype(np.float32)
    metres[0, :3] = [np.nan, np.inf, -np.inf]  # REP 118: no measurement, too far, too close
    depth, nonfinite = cv.image_to_depth(padded_image(metres, "32FC1", pad=4))
    assert nonfinite == 3  # counted by the node
    np.testing.assert_array_equal(depth[0, :3], 0.0)  # all invalid, as cgc spells it
    np.testing.assert_array_equal(depth[1:], metres[1:])

    metres[1, 1] = -1.0
    with pytest.raises(cv.ConversionError, match="negative"):
        cv.image_to_depth(padded_image(metres, "32FC1"))
    with pytest.raises(cv.ConversionError, match="no finite value"):
        cv.image_to_depth(padded_image(np.full((4, 6), np.nan, np.float32), "32FC1"))


def test_segments_mono16_and_32sc1():
    ids = RNG.integers(0, 300, (3, 5))
    np.testing.assert_array_equal(cv.image_to_segments(padded_image(ids.astype(np.uint16),
                                                                    "mono16")), ids)
    np.testing.assert_array_equal(cv.image_to_segments(padded_image(ids.astype(np.int32),
                                                                    "32SC1", pad=0)), ids)
    with pytest.raises(cv.ConversionError, match="negative"):
        cv.image_to_segments(padded_image(-ids.astype(np.int32) - 1, "32SC1"))


@pytest.mark.parametrize("build, reader, message", [
    (lambda: Image(height=2, width=2, encoding="yuv422", step=4, data=bytes(8)),
     cv.image_to_rgb, "unsupported encoding 'yuv422'"),
    (lambda: Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16)),
     cv.image_to_rgb, "unsupported encoding '32FC1'"),
    (lambda: Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)),
     cv.image_to_depth, "unsupported encoding 'rgb8'"),
    (lambda: Image(height=0, width=0, encoding="rgb8"), cv.image_to_rgb, "empty image"),
    (lambda: Image(height=2, width=4, encoding="rgb8", step=6, data=bytes(12)),
     cv.image_to_rgb, "step 6 is shorter"),
    (lambda: Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)),
     cv.image_to_rgb, "holds 11 bytes"),
    (lambda: Image(height=2, width=2, encoding="mono16", step=4, data=bytes(8)),
     cv.image_to_rgb, "unsupported encoding 'mono16'"),
    (lambda: Image(height=100_000, width=2, encoding="mono8", step=2, data=bytes(8)),
     cv.image_to_rgb, "larger than"),
])
def test_bad_images_raise_a_conversion_error_that_says_why(build, reader, message):
    with pytest.raises(cv.ConversionError, match=message):
        reader(build())


def test_images_written_round_trip_through_the_wire():
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 500
    rgb = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    msg = deserialize_message(serialize_message(cv.rgb_to_image(rgb, header)), Image)
    assert (msg.encoding, msg.step, msg.header.frame_id, msg.header.stamp.nanosec) == (
        "rgb8", 27, "camera_optical", 500)
    np.testing.assert_array_equal(cv.image_to_rgb(msg), rgb)

    ids = RNG.integers(0, 65536, (6, 9))
    msg = deserialize_message(serialize_message(cv.ids_to_image(ids, header)), Image)
    assert msg.encoding == "mono16" and msg.step == 18
    np.testing.assert_array_equal(cv.image_to_segments(msg), ids)
    with pytest.raises(ValueError):
        cv.ids_to_image(np.array([[70000]]), header)

    mask = cv.mask_to_image(np.eye(3, dtype=bool), header)
    assert mask.encoding == "mono8" and list(mask.data) == [255, 0, 0, 0, 255, 0, 0, 0, 255]

    depth = RNG.uniform(0.2, 5.0, (6, 9)).astype(np.float32)
    depth[0, 0] = 0.0  # invalid stays invalid
    msg = deserialize_message(serialize_message(cv.depth_to_image(depth, header)), Image)
    assert (msg.encoding, msg.step) == ("32FC1", 36)
    read, nonfinite = cv.image_to_depth(msg)
    np.testing.assert_array_equal(read, depth)
    assert nonfinite == 0
    msg = deserialize_message(serialize_message(cv.depth_to_image(depth, header, "16UC1")), Image)
    assert (msg.encoding, msg.step) == ("16UC1", 18)
    np.testing.assert_allclose(cv.image_to_depth(msg)[0], depth, atol=0.5e-3)  # millimetres
    with pytest.raises(ValueError):
        cv.depth_to_image(depth, header, "8UC1")


def test_camera_info_to_camera_and_back():
    info = CameraInfo(width=320, height=240, k=[300.0, 0, 160.5, 0, 310.0, 119.5, 0, 0, 1])
    pose = np.eye(4)
    pose[:3, 3] = [1, 2, 3]
    camera = cv.camera_info_to_camera(info, pose, name="f0")
    assert (camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy) == (
        320, 240, 300.0, 310.0, 160.5, 119.5)
    np.testing.assert_array_equal(camera.cam_to_world, pose)
    back = cv.camera_to_camera_info(camera, Header(frame_id="cam"))
    assert list(back.k) == list(info.k) and (back.width, back.height) == (320, 240)

    for k, what in (([0.0, 0, 160, 0, 300, 120, 0, 0, 1], "fx=0"),
                    ([math.nan, 0, 160, 0, 300, 120, 0, 0, 1], "fx=nan"),
                    ([300.0, 0, 160, 0, -1, 120, 0, 0, 1], "fy=-1")):
        with pytest.raises(cv.ConversionError, match=what):
            cv.camera_info_to_camera(CameraInfo(width=320, height=240, k=k), pose)
    with pytest.raises(cv.ConversionError, match="empty size"):
        cv.camera_info_to_camera(CameraInfo(k=info.k), pose)


def test_poses_and_transforms_to_matrices():
    # 90 degrees about z: x -> y.
    s = math.sqrt(0.5)
    pose = Pose(position=Point(x=1.0, y=2.0, z=3.0), orientation=Quaternion(z=s, w=s))
    matrix = cv.pose_to_matrix(pose)
    np.testing.assert_allclose(matrix @ [1, 0, 0, 1], [1, 3, 3, 1], atol=1e-12)
    transform = Transform(translation=Vector3(x=1.0, y=2.0, z=3.0),
                          rotation=Quaternion(z=s, w=s))
    np.testing.assert_allclose(cv.transform_to_matrix(transform), matrix)
    back = cv.matrix_to_pose(matrix)
    np.testing.assert_allclose(cv.pose_to_matrix(back), matrix, atol=1e-12)

    with pytest.raises(cv.ConversionError, match="quaternion norm 2"):
        cv.pose_to_matrix(Pose(orientation=Quaternion(w=2.0)))
    with pytest.raises(cv.ConversionError, match="non-finite"):
        cv.pose_to_matrix(Pose(position=Point(x=math.inf)))


def test_cloud_has_the_layout_rviz_colours_by():
    points = RNG.normal(size=(50, 3)).astype(np.float32)
    colors = RNG.integers(0, 256, (50, 3), dtype=np.uint8)
    header = Header(frame_id="map")
    cloud = deserialize_message(serialize_message(cv.points_to_cloud(points, colors, header)),
                                PointCloud2)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (1, 50, 16, 800)
    assert cloud.header.frame_id == "map" and not cloud.is_bigendian
    # Read the bytes independently: little-endian float32 x y z, then 0x00RRGGBB.
    x, y, z, rgb_bits = struct.unpack_from("<fffI", bytes(cloud.data), 16 * 7)
    np.testing.assert_allclose([x, y, z], points[7])
    r, g, b = colors[7]
    assert rgb_bits == (int(r) << 16) | (int(g) << 8) | int(b)

    read_points, read_colors = cv.cloud_to_points(cloud)
    np.testing.assert_array_equal(read_points, points)
    np.testing.assert_array_equal(read_colors, colors)
    empty = cv.points_to_cloud(np.zeros((0, 3)), np.zeros((0, 3)), header)
    assert empty.width == 0 and len(empty.data) == 0


def test_markers_delete_all_then_a_box_and_a_label_per_object():
    objects = []
    for oid, label in ((3, "mug"), (5, "")):
        obj = ObjectInfo(id=oid, label=label, point_count=10,
                         box_size=Vector3(x=0.1, y=0.2, z=0.3),
                         color=ColorRGBA(r=1.0, g=0.5, b=0.0, a=1.0))
        obj.box_center.position.x = float(oid)
        objects.append(obj)
    header = Header(frame_id="map")
    array = deserialize_message(serialize_message(cv.object_markers(objects, header)),
                                MarkerArray)
    kinds = [(m.action, m.type, m.id) for m in array.markers]
    assert kinds == [(Marker.DELETEALL, 0, 0),
                     (Marker.ADD, Marker.CUBE, 6), (Marker.ADD, Marker.TEXT_VIEW_FACING, 7),
                     (Marker.ADD, Marker.CUBE, 10), (Marker.ADD, Marker.TEXT_VIEW_FACING, 11)]
    box, text = array.markers[1:3]
    assert box.header.frame_id == "map" and box.pose.position.x == 3.0
    assert (box.scale.x, box.scale.y, box.scale.z) == pytest.approx((0.1, 0.2, 0.3))
    assert (box.color.r, box.color.g, box.color.b) == (1.0, 0.5, 0.0)
    assert text.text == "mug" and array.markers[4].text == "object 5"
    assert text.pose.position.z > box.pose.position.z + 0.15  # above the box
