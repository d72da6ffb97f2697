"""The CPU fallback that needs no weights: Felzenszwalb's graph-based segmentation (scikit-image)
of a working-size copy of the image, and, where the view has depth, depth proposals first.

Colour alone over-segments by colour rather than by object; CGC only needs segments that rarely
cross object boundaries, but many small ones (every flower of a wallpaper) make the contrastive
loss learn texture. So the image is segmented at a fixed working size (`working_pixels`, about
320x240) whatever its resolution, which makes segment sizes relative to the image (a 1080x1920
photo gives as many segments as a 240x320 one, at the same cost) and the labels are scaled back
up with nearest-neighbour sampling.

With depth (an RGB-D camera, a synthetic scene), `cgc_core.segment.depth` proposes the segments a
tabletop pipeline would: each support plane (table, floor, wall) and each Euclidean cluster of
what stands on them. Those are objects far more often than colour segments are (bench/results/
segments_without_weights.md), so they win wherever depth has them; colour segments fill the
pixels depth says nothing about (invalid depth, clusters too small to keep).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.segmentation import felzenszwalb

from cgc_core.config import SegmenterConfig
from cgc_core.segment.base import check_image, relabel_consecutive
from cgc_core.segment.depth import depth_regions


def drop_thin_segments(labels: np.ndarray) -> np.ndarray:
    """Set to 0 (unlabelled) every segment without a single pixel whose 8 neighbours share its
    label, i.e. segments at most 2 pixels wide everywhere.

    Felzenszwalb blurs the image first (sigma), so along a sharp object edge the mixed-colour
    pixels form their own 1-2 pixel wide strips around the object. As segments they would make
    the contrastive loss push an object's outline away from its interior; unlabelled, they are
    simply not supervised.

    Args:
        labels: [H, W] int, 0 = unlabelled.

    Returns:
        [H, W] int, same dtype, not renumbered.
    """
    # pad with a label no segment has, so a strip along the image border counts as thin too
    padded = np.pad(labels, 1, mode="constant", constant_values=-1)
    height, width = labels.shape
    interior = np.ones(labels.shape, dtype=bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            interior &= padded[dy:dy + height, dx:dx + width] == labels
    has_interior = np.bincount(labels[interior], minlength=labels.max() + 1) > 0
    return np.where(has_interior[labels], labels, 0)


def working_size(height: int, width: int, pixels: int) -> tuple[int, int]:
    """(h, w) with the aspect of (height, width) and about `pixels` pixels; the size itself when
    it is no larger or `pixels` is 0 (never upscaled)."""
    if pixels <= 0 or height * width <= pixels:
        return height, width
    factor = (pixels / (height * width)) ** 0.5
    return max(1, round(height * factor)), max(1, round(width * factor))


def nearest_rows_cols(size: tuple[int, int], to: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices into a `size` (h, w) grid for each pixel of a `to` (H, W) grid,
    by pixel centre (nearest neighbour)."""
    (h, w), (height, width) = size, to
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return rows, cols


def resample_nearest(array: np.ndarray, to: tuple[int, int]) -> np.ndarray:
    """[h, w, ...] -> [H, W, ...] by nearest neighbour: ids and depth must not be blended."""
    rows, cols = nearest_rows_cols(array.shape[:2], to)
    return array[rows[:, None], cols[None, :]]


def depth_first(colour: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Depth regions where there are any, colour segments in the rest.

    Args:
        colour: [H, W] int colour segment ids, 0 unlabelled.
        regions: [H, W] int depth regions (`depth_regions`), 0 where depth says nothing.

    Returns:
        [H, W] int64 ids (not consecutive), 0 unlabelled.
    """
    offset = int(regions.max())
    return np.where(regions > 0, regions, np.where(colour > 0, colour + offset, 0)).astype(
        np.int64)


class FelzenszwalbMaskSource:
    """Felzenszwalb at the working size, depth proposals first where depth is given; thin strips
    are left unlabelled (see `drop_thin_segments`), everything else is labelled."""

    def __init__(self, config: SegmenterConfig):
        if config.felzenszwalb_scale <= 0 or config.felzenszwalb_sigma < 0 \
                or config.felzenszwalb_min_size < 0:
            raise ValueError("segmenter.felzenszwalb_scale must be > 0, felzenszwalb_sigma and "
                             "felzenszwalb_min_size >= 0")
        if config.working_pixels < 0:
            raise ValueError("segmenter.working_pixels must be >= 0 (0: the image's own size)")
        if config.depth_plane_threshold <= 0 or not 0 < config.depth_plane_min_fraction <= 1 \
                or config.depth_max_planes < 0 or config.depth_edge_ratio <= 0:
            raise ValueError("segmenter.depth_plane_threshold and depth_edge_ratio must be > 0, "
                             "depth_plane_min_fraction in (0, 1], depth_max_planes >= 0")
        self.config = config

    def colour_segments(self, image: np.ndarray) -> np.ndarray:
        """[h, w, 3] uint8 -> [h, w] int64 Felzenszwalb ids 0..n, thin strips 0."""
        c = self.config
        labels = felzenszwalb(image, scale=c.felzenszwalb_scale, sigma=c.felzenszwalb_sigma,
                              min_size=c.felzenszwalb_min_size, channel_axis=-1)
        # felzenszwalb numbers from 0, which would read as 'unlabelled' here
        return drop_thin_segments(labels.astype(np.int64) + 1)

    def depth_segments(self, depth: np.ndarray, intrinsics: np.ndarray,
                       full: tuple[int, int]) -> np.ndarray:
        """[h, w] depth (metres, already at the working size) -> [h, w] int32 regions; the
        [3, 3] `intrinsics` belong to the `full` (H, W) image and are scaled here."""
        c = self.config
        (h, w), (height, width) = depth.shape, full
        sx, sy = w / width, h / height
        return depth_regions(depth, intrinsics[0, 0] * sx, intrinsics[1, 1] * sy,
                             intrinsics[0, 2] * sx, intrinsics[1, 2] * sy,
                             plane_threshold=c.depth_plane_threshold,
                             plane_min_fraction=c.depth_plane_min_fraction,
                             max_planes=c.depth_max_planes, edge_ratio=c.depth_edge_ratio,
                             min_size=c.felzenszwalb_min_size)

    def __call__(self, image: np.ndarray, name: str, depth: np.ndarray | None = None,
                 intrinsics: np.ndarray | None = None) -> np.ndarray:
        """Segment one view.

        Args:
            image: [H, W, 3] uint8 RGB.
            name: unused (the frame's stem).
            depth: optional [h, w] depth in metres registered to `image` (0 / NaN / inf
                invalid), at any resolution of the same aspect (e.g. a live keyframe's depth
                at training size): it is resampled by nearest neighbour to the working size.
                Used when `depth_proposals` is on and `intrinsics` are given.
            intrinsics: [3, 3] pinhole K of `image` (not of `depth`).

        Returns:
            [H, W] int32 ids 0..n.
        """
        height, width = check_image(image).shape[:2]
        size = working_size(height, width, self.config.working_pixels)
        small = image if size == (height, width) else np.asarray(
            Image.fromarray(image).resize(size[::-1], Image.Resampling.BILINEAR,
                                          reducing_gap=2.0))
        labels = self.colour_segments(small)
        if self.config.depth_proposals and depth is not None and intrinsics is not None:
            if depth.ndim != 2 or abs(depth.shape[0] * width - depth.shape[1] * height) \
                    > 0.02 * height * width:
                raise ValueError(f"depth {depth.shape} and image {image.shape} differ in aspect")
            regions = self.depth_segments(resample_nearest(depth, size),
                                          np.asarray(intrinsics, dtype=np.float64),
                                          (height, width))
            labels = drop_thin_segments(depth_first(labels, regions))
        labels = relabel_consecutive(labels)
        return labels if size == (height, width) else resample_nearest(labels, (height, width))
