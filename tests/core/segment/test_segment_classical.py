"""The Felzenszwalb fallback on a synthetic image of coloured rectangles."""

import numpy as np
import pytest
from scipy import ndimage

from cgc_core.config import SegmenterConfig
from cgc_core.segment import make_mask_source
from cgc_core.segment.classical import FelzenszwalbMaskSource, drop_thin_segments


@pytest.mark.parametrize("height, width", [(48, 64), (240, 320)])
def test_each_rectangle_is_mostly_one_segment(height, width, rectangles, assert_id_map):
    image, masks = rectangles(height, width)
    ids = make_mask_source(SegmenterConfig())(image, "frame")   # 'auto' without SAM: this one
    assert_id_map(ids, (height, width))
    assert (ids == 0).mean() < 0.2            # only edge strips are left unlabelled
    for mask in masks:
        # the blurred one-pixel rim of a rectangle is a mix of two colours: judge the inside
        inside = ndimage.binary_erosion(mask)
        values, counts = np.unique(ids[inside], return_counts=True)
        main = values[counts.argmax()]
        assert main != 0
        assert counts.max() >= 0.9 * inside.sum()                     # covers the rectangle ...
        assert (ids[mask] == main).sum() >= 0.95 * (ids == main).sum()  # ... and stays inside


def test_drop_thin_segments_keeps_blobs_and_drops_strips():
    labels = np.ones((12, 14), dtype=np.int64)   # 1: the rest, wide enough to have an inside
    labels[2:6, 2:6] = 2          # a 4x4 blob: has interior pixels
    labels[:, 12:] = 3            # a 2-pixel wide strip along the image border: none
    labels[11, :12] = 4           # a 1-pixel line
    out = drop_thin_segments(labels)
    assert np.array_equal(out[labels == 2], np.full(16, 2))
    assert np.all(out[labels == 3] == 0) and np.all(out[labels == 4] == 0)
    assert np.all(out[labels == 1] == 1)


def test_scale_controls_segment_size():
    """A larger scale merges more: on a noisy image it must give fewer segments."""
    image = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    fine = FelzenszwalbMaskSource(SegmenterConfig(felzenszwalb_scale=20, felzenszwalb_min_size=20))
    coarse = FelzenszwalbMaskSource(SegmenterConfig(felzenszwalb_scale=2000,
                                                    felzenszwalb_min_size=20))
    n_fine, n_coarse = fine(image, "a").max(), coarse(image, "a").max()
    assert n_fine > 2 * n_coarse > 0


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="felzenszwalb_scale"):
        FelzenszwalbMaskSource(SegmenterConfig(felzenszwalb_scale=0))
