"""Message decoding without ROS (cgc_core.data.messages): what the node and the bag reader both
read through, on plain objects with the messages' fields (rosbags hands over such objects)."""

from types import SimpleNamespace as NS

import numpy as np
import pytest

from cgc_core.data.messages import (
    ConversionError,
    camera_info_to_camera,
    image_to_depth,
    image_to_rgb,
    nearest_stamped,
    pose_to_matrix,
)


def image(pixels: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> NS:
    height, width = pixels.shape[:2]
    rows = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<")).reshape(height, -1)
    rows = np.concatenate([rows.view(np.uint8), np.zeros((height, pad), np.uint8)], axis=1)
    return NS(height=height, width=width, encoding=encoding, is_bigendian=int(big),
              step=rows.shape[1], data=rows.tobytes())


def test_padded_bgr_rows_and_big_endian_depth_decode_like_the_node():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(image_to_rgb(image(rgb[..., ::-1].copy(), "bgr8", pad=3)), rgb)
    millimetres = np.array([[0, 1500], [65535, 20]], np.uint16)
    depth, nonfinite = image_to_depth(image(millimetres, "16UC1", big=True))
    np.testing.assert_allclose(depth, millimetres / 1000.0)
    assert nonfinite == 0
    metres = np.array([[np.nan, 1.0], [np.inf, 2.0]], np.float32)
    depth, nonfinite = image_to_depth(image(metres, "32FC1"))
    assert nonfinite == 2 and depth[0, 0] == 0.0 and depth[1, 1] == 2.0


def test_the_checks_hold_for_any_message_object():
    with pytest.raises(ConversionError, match="unsupported encoding"):
        image_to_rgb(image(np.zeros((2, 2), np.uint16), "yuv422"))
    short = image(np.zeros((2, 2, 3), np.uint8), "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(ConversionError, match="data holds"):
        image_to_rgb(short)
    with pytest.raises(ConversionError, match="invalid intrinsics"):
        camera_info_to_camera(NS(width=4, height=3, k=[0, 0, 2, 0, 5, 1.5, 0, 0, 1]), np.eye(4))
    unit = NS(position=NS(x=1.0, y=2.0, z=3.0), orientation=NS(x=0.0, y=0.0, z=0.0, w=1.0))
    assert np.allclose(pose_to_matrix(unit)[:3, 3], (1, 2, 3))
    unit.orientation.w = 0.5
    with pytest.raises(ConversionError, match="quaternion norm"):
        pose_to_matrix(unit)


def test_nearest_stamped_takes_the_closest_within_the_slop_only():
    items = [(1.0, "a"), (2.0, "b"), (3.0, "c")]
    assert nearest_stamped(items, 2.04, 0.05) == "b"
    assert nearest_stamped(items, 2.5, 0.05) is None
    assert nearest_stamped([], 1.0, 1.0) is None
