"""Segment boundaries snapped to the image's colour edges, before a segment map trains anything.

SAM's masks, and the synthetic SAM-like ones, wander off an object's outline by a pixel or two
in some views: a dilated mask lays a ring of table under the object's label. With Eq. 3's equal
cluster weights (`LossConfig.cluster_balance` 1) an object pixel weighs about a hundred table
pixels, so the few views whose mask is dilated outvote the many whose mask is right, and the
learned features carry the object one training pixel past its edge (bench/results/
quality_experiments.md: the halo around small objects). Every view's image holds the evidence:
the ring has the table's colour.

`snap_to_colour` reassigns only pixels within `band` pixels of another segment, and only to a
neighbouring segment whose colour near that pixel is clearly closer than its own segment's: the
mean colour of each segment's interior (its pixels at least one pixel from its edge) in a
`window` around the pixel, compared as Euclidean RGB distance, the winner at most `ratio` times
its own segment's distance and lower by at least `contrast`. Where colour says nothing (an
object the colour of the table, texture, noise), the label stays.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cgc_core.config import LossConfig


def snap_as_configured(segments: np.ndarray, image: np.ndarray, loss: LossConfig) -> np.ndarray:
    """`snap_to_colour` with `loss.mask_snap_*` (`mask_snap_px` 0: a copy of `segments`)."""
    return snap_to_colour(segments, image, band=loss.mask_snap_px, window=loss.mask_snap_window,
                          ratio=loss.mask_snap_ratio, contrast=loss.mask_snap_contrast)


def snap_to_colour(segments: np.ndarray, image: np.ndarray, *, band: int, window: int,
                   ratio: float, contrast: float) -> np.ndarray:
    """[H, W] `segments` with boundary pixels moved to the segment whose colour they have.

    Args:
        segments: [H, W] int segment ids, <= 0 unlabelled (never changed, never a target).
        image: [H, W, 3] uint8 RGB of the same view.
        band: only pixels with another labelled segment within this many pixels (Chebyshev)
            may change; 0 returns `segments` unchanged.
        window: side in pixels of the square in which each segment's local interior colour is
            averaged.
        ratio: a pixel moves when the best neighbour's colour distance is below `ratio` times
            its own segment's ...
        contrast: ... and at least this much lower (RGB in [0, 1]): sensor noise on a flat
            surface never moves a pixel.
    Returns:
        [H, W] segment ids, same dtype; a new array.
    """
    if segments.shape != image.shape[:2]:
        raise ValueError(f"segments {segments.shape} and image {image.shape} differ in size")
    out = segments.copy()
    labelled = segments > 0
    if band <= 0 or not labelled.any():
        return out
    seg = np.where(labelled, segments, 0).astype(np.int64)
    size = 2 * band + 1
    highest = ndimage.maximum_filter(np.where(labelled, seg, -1), size=size)
    lowest = ndimage.minimum_filter(np.where(labelled, seg, np.iinfo(np.int64).max), size=size)
    in_band = labelled & ((highest != seg) | (lowest != seg))
    if not in_band.any():
        return out
    colour = image.astype(np.float32) / 255.0
    best_distance = np.full(seg.shape, np.inf, dtype=np.float32)
    best_label = seg.copy()
    own_distance = np.full(seg.shape, np.inf, dtype=np.float32)
    reach = band + window // 2 + 1
    square = np.ones((3, 3), dtype=bool)  # the band is in Chebyshev distance: corners too
    objects = ndimage.find_objects(seg)
    for index, box in enumerate(objects):
        if box is None:
            continue
        label = index + 1
        # The crop: the segment, the band it can reach, and the window around that.
        rows = slice(max(box[0].start - reach, 0), min(box[0].stop + reach, seg.shape[0]))
        cols = slice(max(box[1].start - reach, 0), min(box[1].stop + reach, seg.shape[1]))
        mine = seg[rows, cols] == label
        near = ndimage.binary_dilation(mine, square, iterations=band) & in_band[rows, cols]
        if not near.any():
            continue
        core = ndimage.binary_erosion(mine)
        if core.sum() < 4:  # a sliver: its own pixels are all it has
            core = mine
        weight = ndimage.uniform_filter(core.astype(np.float32), window, mode="constant")
        crop = colour[rows, cols]
        mean = np.stack([ndimage.uniform_filter(crop[..., c] * core, window, mode="constant")
                         for c in range(3)], axis=-1)
        known = near & (weight > 0.5 / window ** 2)
        at = np.nonzero(known)
        distance = np.linalg.norm(crop[at] - mean[at] / weight[at][:, None], axis=-1)
        best_d, best_l = best_distance[rows, cols], best_label[rows, cols]  # views
        closer = distance < best_d[at]
        where = tuple(axis[closer] for axis in at)
        best_d[where], best_l[where] = distance[closer], label
        own = mine[at]
        own_distance[rows, cols][tuple(axis[own] for axis in at)] = distance[own]
    move = in_band & (best_label != seg) & (best_distance < ratio * own_distance) & \
        (best_distance < own_distance - contrast)
    out[move] = best_label[move].astype(out.dtype)
    return out
