"""Segmentation metrics of the paper's evaluation: mIoU and mBIoU (boundary IoU), in percent.

The paper reports "the average performance over all test views and text prompts": one IoU per
(view, object) pair, averaged over every pair (and per object over that object's views).
Boundary IoU follows Cheng et al., "Boundary IoU: Improving Object-Centric Image Segmentation
Evaluation" (CVPR 2021).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
from scipy import ndimage

__all__ = ["iou", "mask_boundary", "boundary_iou", "evaluate_masks", "format_table"]


def _as_bool(mask) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"masks are [H, W], got shape {array.shape}")
    return array.astype(bool, copy=False)


def _ratio(intersection: int, union: int) -> float:
    # Both masks empty: nothing to find and nothing predicted is a perfect answer (1.0), rather
    # than an undefined 0/0.
    return 1.0 if union == 0 else intersection / union


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union of two binary masks.

    Args:
        pred: [H, W] bool (or 0/1) predicted mask.
        gt: [H, W] bool (or 0/1) ground-truth mask.
    Returns:
        |pred & gt| / |pred | gt| in [0, 1]; 1.0 when both masks are empty.
    """
    p, g = _as_bool(pred), _as_bool(gt)
    if p.shape != g.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {g.shape}")
    return _ratio(int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g)))


def mask_boundary(mask: np.ndarray, dilation_ratio: float) -> np.ndarray:
    """The inner boundary region of a mask: the mask minus its erosion by d pixels.

    d = max(1, round(dilation_ratio * image diagonal)). The erosion uses a (2d + 1) x (2d + 1)
    square, i.e. d erosions by a 3 x 3 square as in the Boundary IoU reference code, and treats
    everything outside the image as background: a mask that touches the image border gets a
    boundary along that border too (the reference implementation pads the mask with zeros for
    exactly this). A mask covering the whole image thus has a frame of width d as its boundary.

    Args:
        mask: [H, W] bool.
        dilation_ratio: boundary width as a fraction of the image diagonal (paper/reference: 0.02).
    Returns:
        [H, W] bool.
    """
    m = _as_bool(mask)
    h, w = m.shape
    d = max(1, int(round(dilation_ratio * math.hypot(h, w))))
    # A square minimum filter is separable, so this costs O(H W) whatever d is.
    eroded = ndimage.minimum_filter(m.astype(np.uint8), size=2 * d + 1, mode="constant", cval=0)
    return m & ~eroded.astype(bool)


def boundary_iou(pred: np.ndarray, gt: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU (Cheng et al. 2021): IoU of the two masks' boundary regions.

    Args:
        pred: [H, W] bool predicted mask.
        gt: [H, W] bool ground-truth mask.
        dilation_ratio: see `mask_boundary` (0.02 in the reference implementation).
    Returns:
        value in [0, 1]; 1.0 when both boundary regions are empty (both masks empty).
    """
    p, g = _as_bool(pred), _as_bool(gt)
    if p.shape != g.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {g.shape}")
    pb, gb = mask_boundary(p, dilation_ratio), mask_boundary(g, dilation_ratio)
    return _ratio(int(np.count_nonzero(pb & gb)), int(np.count_nonzero(pb | gb)))


def evaluate_masks(
    pred: Mapping[tuple[Hashable, Hashable], np.ndarray],
    gt: Mapping[tuple[Hashable, Hashable], np.ndarray],
    dilation_ratio: float = 0.02,
) -> dict:
    """mIoU and mBIoU (percent) over (frame, object) pairs.

    Every ground-truth pair is scored; a missing prediction counts as an empty mask (a miss, not
    a skip), and predictions without ground truth are ignored. The result holds only strings,
    numbers, lists and dicts, so it can be written as JSON.

    Args:
        pred: {(frame, object): [H, W] bool predicted mask}.
        gt: {(frame, object): [H, W] bool ground-truth mask}.
        dilation_ratio: boundary width for `boundary_iou`.
    Returns:
        {
          "mIoU": % mean over all (frame, object) pairs (NaN with no ground truth),
          "mBIoU": % likewise,
          "pairs": number of pairs,
          "per_object": {str(object): {"mIoU": %, "mBIoU": %, "views": frames}},
          "per_pair": [{"frame": str, "object": str, "IoU": %, "BIoU": %}, ...],
        }
    """
    per_pair = []
    by_object: dict[str, list[tuple[float, float]]] = {}
    for key in gt:
        frame, obj = key
        g = _as_bool(gt[key])
        p = _as_bool(pred[key]) if key in pred else np.zeros_like(g)
        scores = (100.0 * iou(p, g), 100.0 * boundary_iou(p, g, dilation_ratio))
        per_pair.append({"frame": str(frame), "object": str(obj),
                         "IoU": scores[0], "BIoU": scores[1]})
        by_object.setdefault(str(obj), []).append(scores)
    per_object = {
        obj: {"mIoU": float(np.mean([s[0] for s in scores])),
              "mBIoU": float(np.mean([s[1] for s in scores])),
              "views": len(scores)}
        for obj, scores in by_object.items()
    }
    nan = float("nan")
    return {
        "mIoU": float(np.mean([p["IoU"] for p in per_pair])) if per_pair else nan,
        "mBIoU": float(np.mean([p["BIoU"] for p in per_pair])) if per_pair else nan,
        "pairs": len(per_pair),
        "per_object": per_object,
        "per_pair": per_pair,
    }


def format_table(results: dict) -> str:
    """A markdown table of `evaluate_masks` results: one row per object, then the mean over all
    (frame, object) pairs (which weighs objects by their number of views).

    Returns:
        e.g.
        | object | mIoU | mBIoU |
        |---|---:|---:|
        | apple | 91.6 | 88.8 |
        | **mean** | 91.6 | 88.8 |
    """
    lines = ["| object | mIoU | mBIoU |", "|---|---:|---:|"]
    for obj, row in results["per_object"].items():
        lines.append(f"| {obj} | {row['mIoU']:.1f} | {row['mBIoU']:.1f} |")
    lines.append(f"| **mean** | {results['mIoU']:.1f} | {results['mBIoU']:.1f} |")
    return "\n".join(lines)


def image_quality(rendered: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of a rendered view against its photo, both [H, W, 3] float in [0, 1].

    SSIM as the Gaussian-splatting papers report it (Wang et al.'s Gaussian window, sigma 1.5,
    population statistics; scikit-image's implementation), averaged over the colour channels.
    """
    from skimage.metrics import structural_similarity

    rendered = np.clip(np.asarray(rendered, dtype=np.float64), 0.0, 1.0)
    target = np.asarray(target, dtype=np.float64)
    if rendered.shape != target.shape:
        raise ValueError(f"rendered {rendered.shape} and target {target.shape} differ in shape")
    mse = float(np.mean((rendered - target) ** 2))
    psnr = float("inf") if mse == 0.0 else float(-10.0 * np.log10(mse))
    ssim = structural_similarity(rendered, target, data_range=1.0, channel_axis=2,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    return {"psnr": psnr, "ssim": float(ssim)}
