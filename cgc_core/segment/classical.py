"""The CPU fallback: Felzenszwalb's graph-based segmentation (scikit-image), no weights needed.

It over-segments by colour rather than by object, but CGC only needs segments that rarely cross
object boundaries: the contrastive loss pulls features together within a segment and the
inconsistency across views is what the method is built to absorb.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import felzenszwalb

from cgc_core.config import SegmenterConfig
from cgc_core.segment.base import check_image, relabel_consecutive


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


class FelzenszwalbMaskSource:
    """Segments with `skimage.segmentation.felzenszwalb`; thin strips are left unlabelled (see
    `drop_thin_segments`), everything else is labelled."""

    def __init__(self, config: SegmenterConfig):
        if config.felzenszwalb_scale <= 0 or config.felzenszwalb_sigma < 0 \
                or config.felzenszwalb_min_size < 0:
            raise ValueError("segmenter.felzenszwalb_scale must be > 0, felzenszwalb_sigma and "
                             "felzenszwalb_min_size >= 0")
        self.scale = float(config.felzenszwalb_scale)
        self.sigma = float(config.felzenszwalb_sigma)
        self.min_size = int(config.felzenszwalb_min_size)

    def __call__(self, image: np.ndarray, name: str) -> np.ndarray:
        """[H, W, 3] uint8 RGB -> [H, W] int32 ids 0..n (`name` is unused)."""
        labels = felzenszwalb(check_image(image), scale=self.scale, sigma=self.sigma,
                              min_size=self.min_size, channel_axis=-1)
        # felzenszwalb numbers from 0, which would read as 'unlabelled' here
        return relabel_consecutive(drop_thin_segments(labels.astype(np.int64) + 1))
