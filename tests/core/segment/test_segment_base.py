"""Id-map helpers: relabelling and the overlap resolution (smaller masks on top)."""

import numpy as np
import pytest
from PIL import Image

from cgc_core.config import SegmenterConfig
from cgc_core.io import DataError
from cgc_core.segment import paint_masks, relabel_consecutive, segment_image_file
from cgc_core.segment.classical import FelzenszwalbMaskSource


def test_relabel_keeps_zero_and_order():
    labels = np.array([[0, 7, 7], [300, 0, 42]])
    assert relabel_consecutive(labels).tolist() == [[0, 1, 1], [3, 0, 2]]
    assert relabel_consecutive(np.array([[5, 9]])).tolist() == [[1, 2]]
    assert relabel_consecutive(labels).dtype == np.int32


def test_paint_puts_smaller_mask_on_top(assert_id_map):
    big = np.zeros((6, 8), dtype=bool)
    big[:, :6] = True                      # 36 pixels
    small = np.zeros((6, 8), dtype=bool)
    small[1:3, 4:8] = True                 # 8 pixels, half over `big`
    for order in ([big, small], [small, big]):   # the input order must not matter
        ids = paint_masks(order)
        assert_id_map(ids, (6, 8))
        assert ids.max() == 2
        assert np.all(ids[small] == ids[1, 4])      # all of `small` visible, one id
        assert np.all(ids[big & ~small] == ids[0, 0])
        assert ids[0, 0] != ids[1, 4]
        assert np.all(ids[~big & ~small] == 0)


def test_paint_drops_fully_covered_mask_and_renumbers(assert_id_map):
    whole = np.ones((4, 4), dtype=bool)
    left = np.zeros((4, 4), dtype=bool)
    left[:, :2] = True
    right = ~left
    ids = paint_masks([whole, left, right])   # `whole` is hidden under its two halves
    assert_id_map(ids, (4, 4))
    assert ids.max() == 2
    assert len(np.unique(ids[left])) == 1 and len(np.unique(ids[right])) == 1


def test_paint_matches_per_pixel_smallest_mask(assert_id_map):
    """Random overlapping blobs: every pixel shows the smallest mask covering it (equal areas:
    the later mask), checked pixel by pixel against a brute-force answer."""
    rng = np.random.default_rng(3)
    masks = np.zeros((12, 20, 30), dtype=bool)
    for k in range(len(masks)):
        r, c = rng.integers(0, 20), rng.integers(0, 30)
        h, w = rng.integers(1, 15), rng.integers(1, 20)
        masks[k, r:r + h, c:c + w] = True
    masks[5] = masks[2]                       # an exact tie: the later one (5) must win
    ids = paint_masks(masks)
    assert_id_map(ids, (20, 30))
    areas = masks.reshape(len(masks), -1).sum(1)
    score = np.where(masks, (areas * len(masks) - np.arange(len(masks)))[:, None, None], np.inf)
    winner = np.where(masks.any(0), score.argmin(0), -1)
    assert not np.any(winner == 2)
    # same partition: each winning mask maps to exactly one id and back
    pairs = {(w, i) for w, i in zip(winner.ravel(), ids.ravel())}
    assert len(pairs) == len(np.unique(winner)) == len(np.unique(ids))
    assert np.all((ids == 0) == (winner == -1))


def test_paint_of_no_masks_is_all_unlabelled():
    ids = paint_masks(np.zeros((0, 5, 7), dtype=bool))
    assert ids.shape == (5, 7) and ids.dtype == np.int32 and not ids.any()


def test_image_file_helper_names_a_corrupt_or_missing_file(tmp_path, image, assert_id_map):
    source = FelzenszwalbMaskSource(SegmenterConfig())
    good = tmp_path / "frame_0.png"
    Image.fromarray(image).save(good)
    assert_id_map(segment_image_file(source, good), image.shape[:2])
    corrupt = tmp_path / "frame_1.png"
    corrupt.write_bytes(good.read_bytes()[:60])      # a truncated PNG
    with pytest.raises(DataError, match="frame_1.png"):
        segment_image_file(source, corrupt)
    with pytest.raises(DataError, match="frame_2.png"):
        segment_image_file(source, tmp_path / "frame_2.png")


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32),
                                 np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_sources_reject_wrong_arrays(bad):
    with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
        FelzenszwalbMaskSource(SegmenterConfig())(bad, "x")
