"""IoU / boundary IoU on small hand-drawn masks, values derived in the comments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cgc_core.metrics import boundary_iou, evaluate_masks, format_table, iou, mask_boundary


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


# 10 x 10 images: diagonal 14.1, 0.02 * 14.1 = 0.28 rounds to 0, so d = max(1, 0) = 1 and a
# boundary is the outer 1-pixel ring of a mask.
GT = square(10, 2, 2, 4)    # rows 2..5, cols 2..5: 16 pixels
PRED = square(10, 3, 3, 4)  # rows 3..6, cols 3..6: 16 pixels


def test_iou_of_two_squares():
    # overlap rows 3..5 x cols 3..5 = 9 pixels; union 16 + 16 - 9 = 23
    assert iou(PRED, GT) == pytest.approx(9 / 23)
    assert iou(GT, GT) == 1.0
    assert iou(PRED, np.zeros_like(GT)) == 0.0


def test_iou_of_two_empty_masks_is_one():
    empty = np.zeros((4, 4), dtype=bool)
    assert iou(empty, empty) == 1.0
    assert boundary_iou(empty, empty) == 1.0


def test_boundary_of_a_square_is_its_ring():
    ring = mask_boundary(GT, 0.02)
    # 4 x 4 square minus its 2 x 2 interior (rows 3..4, cols 3..4) = 12 pixels
    assert ring.sum() == 12
    assert not ring[3:5, 3:5].any()
    assert ring[2, 2:6].all() and ring[5, 2:6].all() and ring[2:6, 2].all() and ring[2:6, 5].all()


def test_boundary_iou_of_two_squares():
    # GT ring: 12 pixels, interior {3,4} x {3,4}. PRED ring: 12 pixels, interior {4,5} x {4,5}.
    # Both rings lie in the overlap {3,4,5} x {3,4,5} (9 pixels) minus either interior
    # ({3,4}^2 and {4,5}^2 cover 4 + 4 - 1 = 7 of them): 2 pixels, (3, 5) and (5, 3).
    # Union: 12 + 12 - 2 = 22.
    assert boundary_iou(PRED, GT) == pytest.approx(2 / 22)


def test_image_border_counts_as_boundary():
    # 6 x 6 image (d = 1), mask = the left half, cols 0..2, all rows: 18 pixels. Outside the image
    # is background, so the erosion keeps only rows 1..4 of col 1: 4 pixels; boundary 18 - 4 = 14.
    mask = np.zeros((6, 6), dtype=bool)
    mask[:, :3] = True
    ring = mask_boundary(mask, 0.02)
    assert ring.sum() == 14
    assert ring[:, 0].all() and ring[0, :3].all() and ring[5, :3].all()


def test_boundary_width_grows_with_the_diagonal():
    # 100 x 100 image: diagonal 141.4, 0.02 * 141.4 = 2.83, so d = 3. A 20 x 20 square keeps a
    # 14 x 14 interior: boundary 400 - 196 = 204 pixels.
    ring = mask_boundary(square(100, 40, 40, 20), 0.02)
    assert ring.sum() == 400 - 14 * 14
    # A ratio of 0.05 gives d = round(7.07) = 7: interior 6 x 6, boundary 400 - 36 = 364.
    assert mask_boundary(square(100, 40, 40, 20), 0.05).sum() == 400 - 36


def test_boundary_iou_is_one_for_equal_masks_and_zero_for_disjoint():
    assert boundary_iou(GT, GT) == 1.0
    assert boundary_iou(square(10, 0, 0, 3), square(10, 6, 6, 3)) == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        iou(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_evaluate_masks_averages_over_views_and_objects():
    full = np.ones((10, 10), dtype=bool)
    gt = {
        (0, "apple"): GT,
        (1, "apple"): GT,
        (0, "mug"): GT,
        (1, "mug"): full,
    }
    pred = {
        (0, "apple"): GT,      # IoU 1,      BIoU 1
        (1, "apple"): PRED,    # IoU 9/23,   BIoU 2/22
        (0, "mug"): PRED,      # IoU 9/23,   BIoU 2/22
        # (1, "mug") missing: an empty mask, IoU 0, BIoU 0
        (2, "apple"): PRED,    # no ground truth: ignored
    }
    results = evaluate_masks(pred, gt)
    assert results["pairs"] == 4
    apple, mug = results["per_object"]["apple"], results["per_object"]["mug"]
    assert apple["views"] == 2 and mug["views"] == 2
    assert apple["mIoU"] == pytest.approx(100 * (1 + 9 / 23) / 2)
    assert apple["mBIoU"] == pytest.approx(100 * (1 + 2 / 22) / 2)
    assert mug["mIoU"] == pytest.approx(100 * (9 / 23 + 0) / 2)
    assert mug["mBIoU"] == pytest.approx(100 * (2 / 22 + 0) / 2)
    assert results["mIoU"] == pytest.approx(100 * (1 + 9 / 23 + 9 / 23 + 0) / 4)
    assert results["mBIoU"] == pytest.approx(100 * (1 + 2 / 22 + 2 / 22 + 0) / 4)
    assert {"frame": "1", "object": "mug", "IoU": 0.0, "BIoU": 0.0} in results["per_pair"]
    json.dumps(results)  # JSON-ready (the CLI writes it)


def test_mean_is_over_pairs_not_over_objects():
    # apple seen in 3 views (IoU 1 each), mug in 1 view (IoU 0): pairs mean 75%, objects mean 50%.
    gt = {(f, "apple"): GT for f in range(3)} | {(0, "mug"): GT}
    pred = {(f, "apple"): GT for f in range(3)}
    results = evaluate_masks(pred, gt)
    assert results["mIoU"] == pytest.approx(75.0)


def test_format_table():
    results = evaluate_masks({(0, "apple"): GT, (0, "mug"): PRED},
                             {(0, "apple"): GT, (0, "mug"): GT})
    table = format_table(results)
    lines = table.splitlines()
    assert lines[0] == "| object | mIoU | mBIoU |"
    assert lines[2] == "| apple | 100.0 | 100.0 |"
    # 9/23 = 39.13%, 2/22 = 9.09%
    assert lines[3] == "| mug | 39.1 | 9.1 |"
    # means: (100 + 39.13) / 2 = 69.57, (100 + 9.09) / 2 = 54.55
    assert lines[4] == "| **mean** | 69.6 | 54.5 |"
