"""Lens distortion: raw (distorted) images in, pinhole views inside, raw pixels out.

The rasterizer is a pinhole camera. A camera with lens distortion (a phone, a RealSense's colour
stream, a fisheye) is therefore trained on its images undistorted into a pinhole view, and every
answer a user sees is put back on the raw image's grid:

- `undistorted_camera(raw, lens)` is the pinhole camera cgc trains on: the raw image's size, the
  largest field of view in which every pixel has a raw pixel behind it (no black borders, so the
  training losses need no validity mask), and `camera.lens` naming the raw camera it came from.
- `undistort(camera, raw_array)` resamples an image (linear), depth or segment ids (nearest:
  ids and depths must not blend) from the raw grid onto that pinhole view.
- `cover_camera(camera)` is the same pinhole camera on a larger canvas that sees every raw pixel;
  `to_raw(camera, rendered)` resamples a render of it onto the raw grid, and `render_on_raw`
  does both. Masks, feature maps and `~/segmentation` leave cgc on the raw grid this way.
- `raw_to_cover(camera, u, v)` turns a prompt on a raw image into the cover view's pixel.

The resampling maps are computed once per lens (OpenCV: `initUndistortRectifyMap`,
`undistortPointsIter`) and cached; a camera without distortion has `lens = None` and costs
nothing. Models: "opencv" (OpenCV's k1, k2, p1, p2[, k3[, k4, k5, k6]]: COLMAP's OPENCV,
FULL_OPENCV, RADIAL, SIMPLE_RADIAL, ROS's plumb_bob and rational_polynomial) and "fisheye"
(OpenCV's equidistant k1..k4: COLMAP's OPENCV_FISHEYE, ROS's equidistant).

Pixel convention (cgc_core.cameras): the centre of pixel (col, row) is (col + 0.5, row + 0.5);
OpenCV puts it at (col, row), so its matrices are given cx - 0.5, cy - 0.5.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from cgc_core.cameras import Camera

OPENCV, FISHEYE = "opencv", "fisheye"
LENS_MODELS = (OPENCV, FISHEYE)
OPENCV_LENGTHS = (4, 5, 8)
"""Coefficient counts OpenCV's pinhole model takes: (k1, k2, p1, p2), + k3, + k4, k5, k6."""
MAX_COVER_FACTOR = 3.0
"""The cover canvas is at most this many times the raw image's side (a fisheye lens that sees
near 180 degrees would otherwise need an unbounded pinhole canvas)."""
BORDER_SAMPLES = 256
"""Points per raw image edge whose undistorted positions bound the pinhole and cover views."""
_CRITERIA = (3, 100, 1e-10)  # cv2.TERM_CRITERIA_COUNT | EPS, iterations, epsilon


@dataclass(frozen=True)
class Lens:
    """A raw camera's intrinsics and distortion, as its images were taken."""

    model: str
    """'opencv' or 'fisheye' (see the module docstring)."""
    coeffs: tuple[float, ...]
    """Distortion coefficients in OpenCV's order for `model`."""
    width: int
    height: int
    """The raw images' size in pixels."""
    fx: float
    fy: float
    cx: float
    cy: float
    """The raw intrinsics (cgc's pixel convention: pixel centres at integer + 0.5)."""

    @property
    def opencv_K(self) -> np.ndarray:
        """[3, 3] the raw intrinsics in OpenCV's pixel convention (centres at integers)."""
        return _opencv_K(self.fx, self.fy, self.cx, self.cy)

    @property
    def D(self) -> np.ndarray:
        """[len(coeffs)] float64 distortion coefficients."""
        return np.asarray(self.coeffs, dtype=np.float64)


def make_lens(model: str, coeffs, width: int, height: int, fx: float, fy: float, cx: float,
              cy: float) -> Lens | None:
    """A Lens, or None when every coefficient is 0 (the images are pinhole already: no cost).

    Raises ValueError for an unknown model, a coefficient count the model does not take, or a
    non-finite coefficient.
    """
    values = tuple(float(c) for c in coeffs)
    if not all(math.isfinite(c) for c in values):
        raise ValueError(f"distortion coefficients must be finite, got {list(values)}")
    if model not in LENS_MODELS:
        raise ValueError(f"unknown lens model {model!r} (known: {', '.join(LENS_MODELS)})")
    if model == FISHEYE and len(values) != 4:
        raise ValueError(f"the fisheye model takes 4 coefficients (k1..k4), got {len(values)}")
    if model == OPENCV:
        if len(values) > OPENCV_LENGTHS[-1] or len(values) < 1:
            raise ValueError(f"the opencv model takes 4, 5 or 8 coefficients, got {len(values)}")
        size = next(n for n in OPENCV_LENGTHS if n >= len(values))
        values = values + (0.0,) * (size - len(values))
    if not any(values):
        return None
    return Lens(model, values, int(width), int(height), float(fx), float(fy), float(cx),
                float(cy))


def _opencv_K(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])


def undistort_points(lens: Lens, uv: np.ndarray) -> np.ndarray:
    """[N, 2] raw pixel positions (cgc convention) -> [N, 2] normalised undistorted image-plane
    coordinates (x / z, y / z)."""
    points = (np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2) - 0.5)
    import cv2

    if lens.model == FISHEYE:
        out = cv2.fisheye.undistortPoints(points, lens.opencv_K, lens.D, criteria=_CRITERIA)
    else:
        out = cv2.undistortPointsIter(points, lens.opencv_K, lens.D, None, None, _CRITERIA)
    return out.reshape(-1, 2)


def distort_points(lens: Lens, xy: np.ndarray) -> np.ndarray:
    """[N, 2] normalised undistorted image-plane coordinates -> [N, 2] raw pixel positions (cgc
    convention): the lens model itself (OpenCV's projectPoints)."""
    import cv2

    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1).reshape(-1, 1, 3)
    zero = np.zeros(3)
    if lens.model == FISHEYE:
        uv, _ = cv2.fisheye.projectPoints(rays, zero, zero, lens.opencv_K, lens.D)
    else:
        uv, _ = cv2.projectPoints(rays, zero, zero, lens.opencv_K, lens.D)
    return uv.reshape(-1, 2) + 0.5


def _border(width: int, height: int) -> tuple[np.ndarray, ...]:
    """Raw pixel positions along the left, right, top and bottom edges ([n, 2] each)."""
    us = np.linspace(0.0, width, BORDER_SAMPLES)
    vs = np.linspace(0.0, height, BORDER_SAMPLES)
    return (np.stack([np.zeros_like(vs), vs], 1), np.stack([np.full_like(vs, width), vs], 1),
            np.stack([us, np.zeros_like(us)], 1), np.stack([us, np.full_like(us, height)], 1))


def undistorted_camera(raw: Camera, lens: Lens) -> Camera:
    """The pinhole camera cgc trains a distorted camera on (see the module docstring): the raw
    image's size, square-pixel ratio fx / fy kept, the largest centred field of view inside the
    undistorted image of the raw frame; `lens` is attached."""
    left, right, top, bottom = (undistort_points(lens, edge)
                                for edge in _border(lens.width, lens.height))
    x0, x1 = left[:, 0].max(), right[:, 0].min()
    y0, y1 = top[:, 1].max(), bottom[:, 1].min()
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"{raw.name}: the lens leaves no undistorted view (coefficients "
                         f"{list(lens.coeffs)})")
    width, height = lens.width, lens.height
    fx = max(width / (x1 - x0), height / (y1 - y0) * lens.fx / lens.fy)
    fy = fx * lens.fy / lens.fx
    cx, cy = width / 2.0 - fx * (x0 + x1) / 2.0, height / 2.0 - fy * (y0 + y1) / 2.0
    return dataclasses.replace(raw, width=width, height=height, fx=float(fx), fy=float(fy),
                               cx=float(cx), cy=float(cy), lens=lens)


def _key(camera: Camera) -> tuple:
    if camera.lens is None:
        raise ValueError(f"camera {camera.name!r} has no lens")
    return (camera.lens, camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy)


@functools.lru_cache(maxsize=64)
def _cover(key: tuple) -> tuple[int, int, int, int]:
    """(left, top, width, height) of the cover canvas around the pinhole view of `key`."""
    lens, width, height, fx, fy, cx, cy = key
    xy = np.concatenate([undistort_points(lens, edge) for edge in _border(lens.width,
                                                                          lens.height)])
    u, v = fx * xy[:, 0] + cx, fy * xy[:, 1] + cy
    limit_w, limit_h = MAX_COVER_FACTOR * width, MAX_COVER_FACTOR * height

    def pad(low: float, high: float, side: int, limit: float) -> tuple[int, int]:
        before = int(math.ceil(max(0.0, -low))) + 1
        after = int(math.ceil(max(0.0, high - side))) + 1
        return min(before, int(limit)), min(after, int(limit))

    left, right = pad(u.min(), u.max(), width, limit_w)
    top, bottom = pad(v.min(), v.max(), height, limit_h)
    return left, top, width + left + right, height + top + bottom


def cover_camera(camera: Camera) -> Camera:
    """The pinhole `camera` on a canvas large enough to see every raw pixel (no lens attached):
    render this, then `to_raw`."""
    left, top, width, height = _cover(_key(camera))
    return dataclasses.replace(camera, width=width, height=height, cx=camera.cx + left,
                               cy=camera.cy + top, lens=None)


@functools.lru_cache(maxsize=64)
def _undistort_maps(key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """([H, W] float32 raw column, [H, W] raw row) in OpenCV's convention, per pinhole pixel."""
    import cv2

    lens, width, height, fx, fy, cx, cy = key
    new_K = _opencv_K(fx, fy, cx, cy)
    if lens.model == FISHEYE:
        return cv2.fisheye.initUndistortRectifyMap(lens.opencv_K, lens.D, np.eye(3), new_K,
                                                   (width, height), cv2.CV_32FC1)
    return cv2.initUndistortRectifyMap(lens.opencv_K, lens.D, None, new_K, (width, height),
                                       cv2.CV_32FC1)


@functools.lru_cache(maxsize=64)
def _raw_maps(key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """([Hr, Wr] float32 u, [Hr, Wr] v): each raw pixel centre's position in the cover view
    (cgc convention, cover pixels)."""
    lens, _, _, fx, fy, cx, cy = key
    left, top, _, _ = _cover(key)
    cols, rows = np.meshgrid(np.arange(lens.width) + 0.5, np.arange(lens.height) + 0.5)
    xy = undistort_points(lens, np.stack([cols.ravel(), rows.ravel()], axis=1))
    u = (fx * xy[:, 0] + cx + left).reshape(lens.height, lens.width).astype(np.float32)
    v = (fy * xy[:, 1] + cy + top).reshape(lens.height, lens.width).astype(np.float32)
    return u, v


def undistort(camera: Camera, raw: np.ndarray, nearest: bool = False) -> np.ndarray:
    """A raw-grid array resampled onto the pinhole view `camera` (which carries the lens).

    Args:
        raw: [Hr, Wr] or [Hr, Wr, C] on the raw grid: an image (linear), or depth / segment ids
            (`nearest=True`: values are copied, never blended).

    Returns:
        [H, W] or [H, W, C] of the same dtype on the pinhole grid.
    """
    lens = camera.lens
    if camera.lens is None:
        return raw
    if raw.shape[:2] != (lens.height, lens.width):
        raise ValueError(f"{camera.name}: raw array is {raw.shape[1]}x{raw.shape[0]}, the lens "
                         f"says {lens.width}x{lens.height}")
    map_x, map_y = _undistort_maps(_key(camera))
    if nearest:
        rows = np.clip(np.rint(map_y), 0, lens.height - 1).astype(np.intp)
        cols = np.clip(np.rint(map_x), 0, lens.width - 1).astype(np.intp)
        return raw[rows, cols]
    import cv2

    return cv2.remap(raw, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def to_raw(camera: Camera, values: torch.Tensor, nearest: bool = False) -> torch.Tensor:
    """A render of `cover_camera(camera)` (at any scale) resampled onto the raw grid.

    Args:
        values: [h, w] or [h, w, C] on the cover canvas (or a scaled copy of it): colour and
            features (linear), ids or depth (`nearest=True`).

    Returns:
        [Hr, Wr] or [Hr, Wr, C] tensor on the raw grid, same dtype and device.
    """
    left, top, width, height = _cover(_key(camera))
    u, v = _raw_maps(_key(camera))
    h, w = values.shape[:2]
    if nearest:
        cols = np.clip(np.floor(u * (w / width)), 0, w - 1).astype(np.int64)
        rows = np.clip(np.floor(v * (h / height)), 0, h - 1).astype(np.int64)
        index = torch.from_numpy(rows * w + cols).to(values.device)
        flat = values.reshape(h * w, *values.shape[2:])
        return flat[index.reshape(-1)].reshape(*u.shape, *values.shape[2:])
    # grid_sample with align_corners=False: -1 and 1 are the canvas' outer edges, so a position
    # in cover pixels (centres at +0.5) is 2 * u / width - 1 at any resolution of the render.
    grid = torch.from_numpy(np.stack([2.0 * u / width - 1.0, 2.0 * v / height - 1.0], -1))
    grid = grid.to(device=values.device, dtype=torch.float32)[None]
    planes = values[..., None] if values.dim() == 2 else values
    sampled = torch.nn.functional.grid_sample(
        planes.permute(2, 0, 1)[None].float(), grid, mode="bilinear", padding_mode="border",
        align_corners=False)[0].permute(1, 2, 0)
    sampled = sampled.to(values.dtype)
    return sampled[..., 0] if values.dim() == 2 else sampled


def render_on_raw(camera: Camera, render: Callable[[Camera], torch.Tensor],
                  nearest: bool = False) -> torch.Tensor:
    """`render(camera)` [H, W, ...] for a pinhole camera; for one with a lens, `render` of its
    cover camera resampled onto the raw grid ([Hr, Wr, ...])."""
    if camera.lens is None:
        return render(camera)
    return to_raw(camera, render(cover_camera(camera)), nearest=nearest)


def raw_to_cover(camera: Camera, u: float, v: float) -> tuple[float, float]:
    """A raw pixel position (u = column, v = row, cgc convention) -> its position in
    `cover_camera(camera)`; the identity without a lens."""
    if camera.lens is None:
        return u, v
    left, top, _, _ = _cover(_key(camera))
    (x, y), = undistort_points(camera.lens, np.array([[u, v]]))
    return float(camera.fx * x + camera.cx + left), float(camera.fy * y + camera.cy + top)


def pinhole_to_raw(camera: Camera, u: float, v: float) -> tuple[float, float]:
    """A position in the pinhole view `camera` -> the raw image's pixel position there; the
    identity without a lens."""
    if camera.lens is None:
        return u, v
    xy = np.array([[(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy]])
    (ur, vr), = distort_points(camera.lens, xy)
    return float(ur), float(vr)


def raw_size(camera: Camera) -> tuple[int, int]:
    """(width, height) of the images the user gave for `camera` (raw, distorted or not)."""
    return (camera.width, camera.height) if camera.lens is None else (camera.lens.width,
                                                                       camera.lens.height)
