"""ROS 2 messages <-> the plain arrays and dataclasses of cgc_core. No maths lives here.

Libraries (README, "Message conversions"): PointCloud2 packing and reading go through
`sensor_msgs_py.point_cloud2` when it is importable (a ROS 2 install) and otherwise through the
PyPI package `pointcloud2`, a numpy-only port of the same module with the same functions.
Quaternions go through scipy's `Rotation`. Images are read with numpy alone: the PyPI
`cv-bridge` and `rosbags-image` need OpenCV, and `cv-bridge` and `ros2-numpy` call
`ndarray.tostring`, which numpy 2 removed; what is left to do is a view of the buffer with the
message's row step, which numpy does in a few lines.

Every function that reads a message raises `ConversionError` (a ValueError) with a message that
says what was wrong; the node counts those and logs them, rate-limited, and never crashes on them.

Conventions (cgc_core.cameras): OpenCV / REP-103 optical axes, camera-to-world 4x4 matrices,
depth in metres (0 or non-finite = invalid), segment id 0 = unlabelled.
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from cgc_core.cameras import Camera

try:  # a ROS 2 install ships it; PyPI does not (DESIGN.md, "Not on PyPI")
    from sensor_msgs_py import point_cloud2 as _pc2
except ImportError:
    import pointcloud2 as _pc2


class ConversionError(ValueError):
    """A message that cannot be converted; the text says why."""


RGB_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")
DEPTH_ENCODINGS = ("32FC1", "16UC1", "mono16")
SEGMENT_ENCODINGS = ("mono16", "16UC1", "32SC1", "mono8", "8UC1")

# encoding -> (dtype, channels) of the pixel buffer.
_LAYOUT = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1), "32SC1": (np.int32, 1), "32FC1": (np.float32, 1),
}

MAX_IMAGE_SIDE = 8192
"""Larger images are refused: a corrupt header must not make the node allocate gigabytes."""


# --- images -----------------------------------------------------------------------------------

def _pixels(msg: Image, accepted: Sequence[str], what: str) -> np.ndarray:
    """The message's pixels as a native-endian [H, W] or [H, W, C] array (a copy)."""
    if msg.encoding not in accepted:
        raise ConversionError(f"{what}: unsupported encoding '{msg.encoding}' "
                              f"(supported: {', '.join(accepted)})")
    dtype, channels = _LAYOUT[msg.encoding]
    dtype = np.dtype(dtype)
    height, width = int(msg.height), int(msg.width)
    if height == 0 or width == 0:
        raise ConversionError(f"{what}: empty image ({width}x{height})")
    if height > MAX_IMAGE_SIDE or width > MAX_IMAGE_SIDE:
        raise ConversionError(f"{what}: {width}x{height} is larger than {MAX_IMAGE_SIDE} pixels "
                              "on a side")
    row_bytes = width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ConversionError(f"{what}: step {msg.step} is shorter than a row of {width} "
                              f"{msg.encoding} pixels ({row_bytes} bytes)")
    if len(msg.data) != msg.step * height:
        raise ConversionError(f"{what}: data holds {len(msg.data)} bytes, step x height is "
                              f"{msg.step * height}")
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, msg.step)[:, :row_bytes]
    order = ">" if msg.is_bigendian else "<"
    values = np.ascontiguousarray(rows).view(dtype.newbyteorder(order))
    values = values.astype(dtype.newbyteorder("="), copy=True)
    return values.reshape(height, width, channels) if channels > 1 else values.reshape(height,
                                                                                        width)


def image_to_rgb(msg: Image) -> np.ndarray:
    """rgb8 / bgr8 / mono8 (and rgba8 / bgra8) -> [H, W, 3] uint8 RGB."""
    pixels = _pixels(msg, RGB_ENCODINGS, "image")
    if msg.encoding == "mono8":
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_depth(msg: Image) -> tuple[np.ndarray, int]:
    """32FC1 metres or 16UC1 / mono16 millimetres -> ([H, W] float32 metres (0 = invalid),
    how many pixels were NaN or inf).

    REP 118 gives 32FC1 depth NaN for "no measurement" and -inf / +inf for "too close" / "too
    far": all three become 0, cgc's "invalid", and the caller counts them. A depth image with
    no finite value at all, or with negative finite values, is refused: that is a driver bug,
    not a missing measurement.
    """
    pixels = _pixels(msg, DEPTH_ENCODINGS, "depth")
    if msg.encoding == "32FC1":
        finite = np.isfinite(pixels)
        if not finite.any():
            raise ConversionError("depth: no finite value (every pixel is NaN or inf)")
        if (pixels[finite] < 0).any():
            raise ConversionError("depth: negative values (32FC1 must be metres >= 0; "
                                  "0, NaN and inf = invalid)")
        return np.where(finite, pixels, np.float32(0.0)), int(finite.size - finite.sum())
    return pixels.astype(np.float32) / np.float32(1000.0), 0


def image_to_segments(msg: Image) -> np.ndarray:
    """mono16 / 16UC1 / 32SC1 (or 8-bit) segment ids -> [H, W] int32 (0 = unlabelled)."""
    ids = _pixels(msg, SEGMENT_ENCODINGS, "segments").astype(np.int32)
    if (ids < 0).any():
        raise ConversionError("segments: negative ids (0 = unlabelled, segments are > 0)")
    return ids


def _byte_array(values: np.ndarray) -> array.array:
    """A uint8[] field value without rclpy's per-byte check (which takes seconds per image)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(values).tobytes())
    return out


def rgb_to_image(rgb: np.ndarray, header: Header) -> Image:
    """[H, W, 3] uint8 RGB -> an rgb8 Image with `header`."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb8 wants [H, W, 3] uint8, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                 step=3 * width, data=_byte_array(rgb))


def ids_to_image(ids: np.ndarray, header: Header) -> Image:
    """[H, W] integer ids in [0, 65535] -> a mono16 Image with `header`."""
    if ids.ndim != 2:
        raise ValueError(f"mono16 wants [H, W], got {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise ValueError("mono16 holds ids in [0, 65535]")
    height, width = ids.shape
    little = ids.astype("<u2")
    return Image(header=header, height=height, width=width, encoding="mono16", is_bigendian=0,
                 step=2 * width, data=_byte_array(little))


def mask_to_image(mask: np.ndarray, header: Header) -> Image:
    """[H, W] bool -> a mono8 Image, 255 = object, 0 = background."""
    height, width = mask.shape
    return Image(header=header, height=height, width=width, encoding="mono8", is_bigendian=0,
                 step=width, data=_byte_array(np.where(mask, 255, 0).astype(np.uint8)))


# --- cameras and poses ------------------------------------------------------------------------

def camera_info_to_camera(info: CameraInfo, cam_to_world: np.ndarray, name: str = "") -> Camera:
    """CameraInfo (its K) and a camera-to-world pose -> a cgc_core Camera.

    Only pinhole intrinsics are read: the images are taken as already rectified (distortion is
    ignored), which is what image_proc's `image_rect` topics give.
    """
    width, height = int(info.width), int(info.height)
    if width == 0 or height == 0:
        raise ConversionError(f"camera_info: empty size {width}x{height}")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise ConversionError(f"camera_info: {width}x{height} is larger than {MAX_IMAGE_SIDE} "
                              "pixels on a side")
    fx, fy, cx, cy = (float(info.k[i]) for i in (0, 4, 2, 5))
    if not all(math.isfinite(x) for x in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise ConversionError(f"camera_info: invalid intrinsics fx={fx:g} fy={fy:g} cx={cx:g} "
                              f"cy={cy:g} (focal lengths must be finite and > 0)")
    return Camera(name, width, height, fx, fy, cx, cy, np.asarray(cam_to_world, dtype=np.float64))


def camera_to_camera_info(camera: Camera, header: Header) -> CameraInfo:
    """A cgc_core Camera's intrinsics -> CameraInfo (plumb_bob, no distortion)."""
    k = [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0]
    p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(header=header, width=camera.width, height=camera.height,
                      distortion_model="plumb_bob", d=[0.0] * 5, k=k,
                      r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=p)


QUATERNION_NORM_TOLERANCE = 1e-3
"""A pose's quaternion must have unit norm within this (ROS messages carry unit quaternions;
anything else is a bug upstream, not a rotation to guess)."""


def _matrix(translation: Sequence[float], quaternion: Sequence[float], what: str) -> np.ndarray:
    values = [*translation, *quaternion]
    if not all(math.isfinite(v) for v in values):
        raise ConversionError(f"{what}: non-finite values {values}")
    norm = math.sqrt(sum(q * q for q in quaternion))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise ConversionError(f"{what}: quaternion norm {norm:.6g} is not 1")
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(quaternion).as_matrix()  # scipy: (x, y, z, w), as ROS
    matrix[:3, 3] = translation
    return matrix


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose (of a frame in its parent) -> [4, 4] frame-to-parent."""
    p, q = pose.position, pose.orientation
    return _matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), "pose")


def pose_is_set(pose) -> bool:
    """Whether a geometry_msgs/PoseStamped carries anything: a frame_id, a position or a
    rotation other than the message's default (0, 0, 0 and the identity w = 1)."""
    p, q = pose.pose.position, pose.pose.orientation
    return bool(pose.header.frame_id) or any(v != 0.0 for v in (p.x, p.y, p.z, q.x, q.y, q.z)) \
        or q.w != 1.0


def transform_to_matrix(transform: Transform) -> np.ndarray:
    """geometry_msgs/Transform (child in parent, as TF stores it) -> [4, 4] child-to-parent."""
    t, q = transform.translation, transform.rotation
    return _matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w), "transform")


def matrix_to_pose(matrix: np.ndarray) -> Pose:
    """[4, 4] frame-to-parent -> geometry_msgs/Pose."""
    x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    tx, ty, tz = (float(v) for v in matrix[:3, 3])
    return Pose(position=Point(x=tx, y=ty, z=tz),
                orientation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)))


def stamp_seconds(header: Header) -> float:
    """A header's stamp in seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


# --- point clouds -----------------------------------------------------------------------------

CLOUD_FIELDS = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, name in enumerate(("x", "y", "z", "rgb"))]
"""x, y, z float32 and `rgb`: a float32 whose bytes are 0x00RRGGBB, the layout RViz's
PointCloud2 display colours by (RGB8 channel) and PCL's PointXYZRGB uses."""


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """[N, 3] uint8 RGB -> [N] float32 whose bits are 0x00RRGGBB."""
    c = colors.astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """[N] float32 packed as by `pack_rgb` -> [N, 3] uint8 RGB."""
    bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=1).astype(np.uint8)


def points_to_cloud(points: np.ndarray, colors: np.ndarray, header: Header) -> PointCloud2:
    """[N, 3] points and [N, 3] uint8 RGB colours -> an unorganised PointCloud2 (x y z rgb)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colors):
        raise ValueError(f"{len(points)} points but {len(colors)} colours")
    rows = np.concatenate([points, pack_rgb(colors)[:, None]], axis=1)
    cloud = _pc2.create_cloud(header, CLOUD_FIELDS, rows)
    # pointcloud2 returns its own dataclass, sensor_msgs_py a message: make both a message, and
    # hand the bytes over as an array (rclpy checks a plain sequence byte by byte).
    return PointCloud2(header=header, height=cloud.height, width=cloud.width,
                       fields=CLOUD_FIELDS, is_bigendian=bool(cloud.is_bigendian),
                       point_step=cloud.point_step, row_step=cloud.row_step,
                       data=_byte_array(np.frombuffer(bytes(cloud.data), dtype=np.uint8)),
                       is_dense=True)


def cloud_to_points(cloud: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """A PointCloud2 -> ([N, 3] float32 points, [N, 3] uint8 colours or None without `rgb`)."""
    names = [f.name for f in cloud.fields]
    if not {"x", "y", "z"} <= set(names):
        raise ConversionError(f"cloud: fields {names} lack x, y, z")
    try:
        values = _pc2.read_points(cloud, skip_nans=False)
    except (ValueError, TypeError, KeyError) as err:
        raise ConversionError(f"cloud: {err}") from None
    points = np.stack([values[n].astype(np.float32) for n in ("x", "y", "z")], axis=1)
    colors = unpack_rgb(values["rgb"]) if "rgb" in names else None
    return points, colors


# --- objects ----------------------------------------------------------------------------------

def color_rgba(rgb: Sequence[int], alpha: float = 1.0) -> ColorRGBA:
    """uint8 RGB -> std_msgs/ColorRGBA (components in [0, 1])."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    return ColorRGBA(r=r, g=g, b=b, a=float(alpha))


def object_markers(objects: Sequence, header: Header, namespace: str = "cgc_objects",
                   ) -> MarkerArray:
    """cgc_ros/ObjectInfo messages -> MarkerArray: DELETEALL, then per object a translucent box
    (CUBE, marker id 2k) and a text label above it (TEXT_VIEW_FACING, id 2k + 1).

    DELETEALL first, so that objects that disappeared since the last array vanish in RViz too.
    """
    markers = [Marker(header=header, ns=namespace, action=Marker.DELETEALL)]
    for obj in objects:
        box = Marker(header=header, ns=namespace, id=2 * int(obj.id), type=Marker.CUBE,
                     action=Marker.ADD, pose=obj.box_center,
                     scale=Vector3(x=max(obj.box_size.x, 1e-3), y=max(obj.box_size.y, 1e-3),
                                   z=max(obj.box_size.z, 1e-3)),
                     color=ColorRGBA(r=obj.color.r, g=obj.color.g, b=obj.color.b, a=0.35))
        text_pose = Pose(position=Point(x=obj.box_center.position.x,
                                        y=obj.box_center.position.y,
                                        z=obj.box_center.position.z + obj.box_size.z / 2 + 0.03),
                         orientation=Quaternion(w=1.0))
        text = Marker(header=header, ns=namespace, id=2 * int(obj.id) + 1,
                      type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, pose=text_pose,
                      scale=Vector3(z=0.04), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0),
                      text=obj.label or f"object {obj.id}")
        markers += [box, text]
    return MarkerArray(markers=markers)
