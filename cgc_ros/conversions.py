"""ROS 2 messages <-> the plain arrays and dataclasses of cgc_core. No maths lives here.

Reading (image, depth, segments, camera_info, poses, stamps) is `cgc_core.data.messages`,
re-exported here: the bag reader decodes through the same functions and checks without rclpy.
This module builds the messages the node publishes and the tools send.

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
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from cgc_core.cameras import Camera
from cgc_core.data.messages import (  # noqa: F401  (re-exported: the node reads through these)
    ConversionError,
    camera_info_fields,
    camera_info_to_camera,
    image_to_depth,
    image_to_rgb,
    image_to_segments,
    pose_is_set,
    pose_to_matrix,
    stamp_seconds,
    transform_to_matrix,
)

try:  # a ROS 2 install ships it; PyPI does not (DESIGN.md, "Not on PyPI")
    from sensor_msgs_py import point_cloud2 as _pc2
except ImportError:
    import pointcloud2 as _pc2


# --- images -----------------------------------------------------------------------------------

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


def depth_to_image(depth: np.ndarray, header: Header, encoding: str = "32FC1") -> Image:
    """[H, W] metres (0 = invalid) -> a 32FC1 Image in metres, or 16UC1 in millimetres (REP
    118), the two encodings `image_to_depth` reads back."""
    if depth.ndim != 2:
        raise ValueError(f"depth wants [H, W], got {depth.shape}")
    if encoding == "32FC1":
        pixels, size = depth.astype("<f4"), 4
    elif encoding == "16UC1":
        pixels, size = np.clip(np.round(depth * 1000.0), 0, 65535).astype("<u2"), 2
    else:
        raise ValueError(f"depth encoding must be 32FC1 or 16UC1, got {encoding!r}")
    height, width = depth.shape
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=size * width, data=_byte_array(pixels))


# --- cameras and poses ------------------------------------------------------------------------

def camera_to_camera_info(camera: Camera, header: Header) -> CameraInfo:
    """A cgc_core Camera -> CameraInfo of its raw images (`camera_info_fields`: plumb_bob with
    D = 0 for a pinhole camera; K, D and the lens model for one with a lens)."""
    return CameraInfo(header=header, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                      **camera_info_fields(camera))


def seconds_to_stamp(seconds: float) -> Time:
    """Seconds (the frames' clock) -> builtin_interfaces/Time."""
    nanoseconds = max(0, round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def matrix_to_pose(matrix: np.ndarray) -> Pose:
    """[4, 4] frame-to-parent -> geometry_msgs/Pose."""
    x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    tx, ty, tz = (float(v) for v in matrix[:3, 3])
    return Pose(position=Point(x=tx, y=ty, z=tz),
                orientation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)))


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
