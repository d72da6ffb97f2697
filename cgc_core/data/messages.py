"""ROS-shaped messages -> cgc_core's arrays and cameras, without ROS.

Both faces read the same message types: the node gets rclpy messages, `cgc_core.data.rosbag`
gets `rosbags`' deserialised ones (no ROS install needed). Both have the same field names
(`height`, `width`, `encoding`, `step`, `data`, `k`, `header.stamp.sec`, ...), so the decoding
and its checks live here once, duck-typed, and cgc_core still never imports rclpy.
`cgc_ros.conversions` adds the other direction (building messages).

Every function raises `ConversionError` (a ValueError) saying what was wrong; the node counts
those by reason and logs them, the bag reader skips the frame.

Conventions (cgc_core.cameras): OpenCV / REP-103 optical axes, camera-to-world 4x4 matrices,
depth in metres (0 or non-finite = invalid), segment id 0 = unlabelled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from cgc_core.cameras import Camera
from cgc_core.lens import FISHEYE, OPENCV, make_lens, undistorted_camera


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


def _check_size(what: str, width: int, height: int, empty: str = "empty size") -> None:
    """ConversionError for an empty image or one larger than MAX_IMAGE_SIDE on a side."""
    if width == 0 or height == 0:
        raise ConversionError(f"{what}: {empty} {width}x{height}")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise ConversionError(f"{what}: {width}x{height} is larger than {MAX_IMAGE_SIDE} pixels "
                              "on a side")

def _pixels(msg, accepted: Sequence[str], what: str) -> np.ndarray:
    """The message's pixels as a native-endian [H, W] or [H, W, C] array (a copy)."""
    if msg.encoding not in accepted:
        raise ConversionError(f"{what}: unsupported encoding '{msg.encoding}' "
                              f"(supported: {', '.join(accepted)})")
    dtype, channels = _LAYOUT[msg.encoding]
    dtype = np.dtype(dtype)
    height, width = int(msg.height), int(msg.width)
    _check_size(what, width, height, empty="empty image")
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


def image_to_rgb(msg) -> np.ndarray:
    """rgb8 / bgr8 / mono8 (and rgba8 / bgra8) -> [H, W, 3] uint8 RGB."""
    pixels = _pixels(msg, RGB_ENCODINGS, "image")
    if msg.encoding == "mono8":
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if msg.encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def image_to_depth(msg) -> tuple[np.ndarray, int]:
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


def image_to_segments(msg) -> np.ndarray:
    """mono16 / 16UC1 / 32SC1 (or 8-bit) segment ids -> [H, W] int32 (0 = unlabelled)."""
    ids = _pixels(msg, SEGMENT_ENCODINGS, "segments").astype(np.int32)
    if (ids < 0).any():
        raise ConversionError("segments: negative ids (0 = unlabelled, segments are > 0)")
    return ids


DISTORTION_MODELS = {"plumb_bob": OPENCV, "rational_polynomial": OPENCV, "equidistant": FISHEYE}
"""CameraInfo's `distortion_model` names -> `cgc_core.lens` models (D in OpenCV's order)."""


def camera_info_to_camera(info, cam_to_world: np.ndarray, name: str = "",
                          rectified: bool = False) -> Camera:
    """CameraInfo and a camera-to-world pose -> a cgc_core Camera.

    Raw images (`rectified=False`): K, and D with `distortion_model` (plumb_bob,
    rational_polynomial, equidistant). A non-zero D gives the pinhole camera cgc trains on with
    its `lens` (`cgc_core.lens`): the caller undistorts the frame's images with it. Rectified
    images (image_proc's `image_rect`): the intrinsics are P's and D is not applied.
    """
    width, height = int(info.width), int(info.height)
    _check_size("camera_info", width, height)
    if rectified:
        fx, fy, cx, cy = (float(info.p[i]) for i in (0, 5, 2, 6))
    else:
        fx, fy, cx, cy = (float(info.k[i]) for i in (0, 4, 2, 5))
    if not all(math.isfinite(x) for x in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise ConversionError(f"camera_info: invalid intrinsics fx={fx:g} fy={fy:g} cx={cx:g} "
                              f"cy={cy:g} (focal lengths must be finite and > 0)")
    camera = Camera(name, width, height, fx, fy, cx, cy,
                    np.asarray(cam_to_world, dtype=np.float64))
    d = [float(x) for x in getattr(info, "d", [])]
    if rectified or not any(d):
        return camera
    model = DISTORTION_MODELS.get(str(info.distortion_model))
    if model is None:
        raise ConversionError(f"camera_info: unsupported distortion_model "
                              f"'{info.distortion_model}' with a non-zero D (supported: "
                              f"{', '.join(DISTORTION_MODELS)}; rectify the images or send D = 0)")
    try:
        lens = make_lens(model, d, width, height, fx, fy, cx, cy)
        return camera if lens is None else undistorted_camera(camera, lens)
    except ValueError as error:
        raise ConversionError(f"camera_info: {error}") from None


def camera_info_fields(camera: Camera) -> dict:
    """The CameraInfo fields (width, height, distortion_model, d, k, p) of the images a camera's
    frames are sent as: a pinhole camera's own, or for one with a `lens` its raw K and D, with
    P the pinhole view cgc undistorts into (what image_proc's rectification would give)."""
    p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    lens = camera.lens
    if lens is None:
        return {"width": camera.width, "height": camera.height, "distortion_model": "plumb_bob",
                "d": [0.0] * 5, "k": [camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy,
                                      0.0, 0.0, 1.0], "p": p}
    if lens.model == FISHEYE:
        model, d = "equidistant", list(lens.coeffs)
    elif len(lens.coeffs) == 8:
        model, d = "rational_polynomial", list(lens.coeffs)
    else:
        model, d = "plumb_bob", (list(lens.coeffs) + [0.0])[:5]
    return {"width": lens.width, "height": lens.height, "distortion_model": model, "d": d,
            "k": [lens.fx, 0.0, lens.cx, 0.0, lens.fy, lens.cy, 0.0, 0.0, 1.0], "p": p}


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


def pose_to_matrix(pose) -> np.ndarray:
    """geometry_msgs/Pose (of a frame in its parent) -> [4, 4] frame-to-parent."""
    p, q = pose.position, pose.orientation
    return _matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), "pose")


def pose_is_set(pose) -> bool:
    """Whether a geometry_msgs/PoseStamped carries anything: a frame_id, a position or a
    rotation other than the message's default (0, 0, 0 and the identity w = 1)."""
    p, q = pose.pose.position, pose.pose.orientation
    return bool(pose.header.frame_id) or any(v != 0.0 for v in (p.x, p.y, p.z, q.x, q.y, q.z)) \
        or q.w != 1.0


def transform_to_matrix(transform) -> np.ndarray:
    """geometry_msgs/Transform (child in parent, as TF stores it) -> [4, 4] child-to-parent."""
    t, q = transform.translation, transform.rotation
    return _matrix((t.x, t.y, t.z), (q.x, q.y, q.z, q.w), "transform")


def stamp_seconds(header) -> float:
    """A header's stamp in seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def nearest_stamped(items: Sequence[tuple[float, object]], stamp: float, slop: float):
    """The item of (stamp, item) pairs whose stamp is nearest `stamp`, if within `slop` seconds;
    else None. The node's stamp buffers and the bag reader match companions with it."""
    best = min(items, key=lambda item: abs(item[0] - stamp), default=None)
    if best is None or abs(best[0] - stamp) > slop:
        return None
    return best[1]
