"""Pieces of the main job's report that stand alone: the orbit's geometry and embedded images."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from cgc_eval.report import crop_to_alpha, data_uri, looked_at_point, orbit_camera


def test_orbit_camera_puts_the_target_on_the_optical_axis_with_z_up():
    target = np.array([0.3, -0.2, 0.1])
    camera = orbit_camera(np.array([2.0, 1.0, 1.5]), target, 64, 48, 60.0, "c")
    point = camera.world_to_cam @ np.array([*target, 1.0])
    assert point[2] > 0 and np.allclose(point[:2], 0, atol=1e-9)  # straight ahead
    rotation = camera.cam_to_world[:3, :3]
    assert np.allclose(rotation.T @ rotation, np.eye(3)) and np.isclose(np.linalg.det(rotation), 1)
    assert rotation[2, 1] < 0  # image "down" (y) points down in the world (z up)


def test_looked_at_point_is_where_the_cameras_converge():
    target = np.array([0.5, 0.2, 0.0])
    cameras = [orbit_camera(target + 2 * np.array([np.cos(a), np.sin(a), 0.6]), target, 32, 24, 60,
                       str(i)) for i, a in enumerate(np.linspace(0, 2, 5))]
    assert np.allclose(looked_at_point(cameras), target, atol=1e-6)


def test_images_are_embedded_and_crops_keep_what_is_drawn():
    rgb = np.zeros((20, 30, 3), np.uint8)
    alpha = np.zeros((20, 30))
    alpha[5:9, 10:14] = 1.0
    crop = crop_to_alpha(rgb, alpha, margin=2)
    assert crop.shape[:2] == (8, 8)
    uri = data_uri(rgb)
    assert uri.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert decoded.size == (30, 20)
