"""What every mask source promises, and the id-map helpers they share.

A segment-id map is [H, W] int32: 0 = unlabelled, segments numbered 1..n without gaps. Ids mean
nothing across frames (CGC learns 3D-consistent features from exactly such inconsistent ids).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cgc_core.io import read_rgb


@runtime_checkable
class MaskSource(Protocol):
    """Anything that cuts an image into segments."""

    def __call__(self, image: np.ndarray, name: str, depth: np.ndarray | None = None,
                 intrinsics: np.ndarray | None = None) -> np.ndarray:
        """Segment one frame.

        Args:
            image: [H, W, 3] uint8 RGB.
            name: the frame's image stem (precomputed masks are looked up by it).
            depth: optional depth in metres registered to `image` (0 / NaN / inf invalid),
                [H, W] or another resolution of the same aspect; sources that can use it do
                (the classical fallback), others ignore it.
            intrinsics: optional [3, 3] pinhole K of `image`, needed with `depth`.

        Returns:
            [H, W] int32 segment ids, 0 = unlabelled, 1..n consecutive.
        """
        ...


def check_image(image: np.ndarray) -> np.ndarray:
    """Return `image` if it is [H, W, 3] uint8 with H, W > 0; raise ValueError otherwise.

    Sources receive arrays from other code, so a wrong array is a programming error (ValueError),
    not a bad file (DataError).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected an [H, W, 3] uint8 RGB image, got shape {shape} dtype {dtype}")
    return image


def relabel_consecutive(labels: np.ndarray) -> np.ndarray:
    """Map the distinct positive labels of `labels` onto 1..n, keeping their order; 0 stays 0.

    Args:
        labels: [H, W] non-negative integers.

    Returns:
        [H, W] int32.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(labels.shape, dtype=np.int32)
    values, inverse = np.unique(labels, return_inverse=True)
    # np.unique sorts, so 0 (when present) is values[0]; shift the rest down to start at 1
    new_values = np.arange(len(values), dtype=np.int32) + (0 if values[0] == 0 else 1)
    return new_values[inverse.reshape(labels.shape)]


def paint_masks(masks: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """Resolve overlapping boolean masks into one id map, smaller masks on top.

    Masks are painted in order of decreasing area, so where masks overlap the smallest one wins:
    SAM returns a part and its whole object as separate masks, and keeping the part keeps the
    finer segment without losing the rest of the object. Ties keep the input order (the later
    mask wins). A mask completely covered by smaller ones leaves no id; ids are renumbered to
    1..n, the largest visible mask first.

    Args:
        masks: [K, H, W] bool (or a list of K [H, W] bool arrays); K may be 0 only as an array.

    Returns:
        [H, W] int32, 0 where no mask covers the pixel.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"expected [K, H, W] masks, got shape {masks.shape}")
    ids = np.zeros(masks.shape[1:], dtype=np.int32)
    areas = masks.sum(axis=(1, 2))
    # stable sort on -area: equal areas keep input order, so the later one is painted last
    for rank, k in enumerate(np.argsort(-areas, kind="stable")):
        ids[masks[k]] = rank + 1
    return relabel_consecutive(ids)


def segment_image_file(source: MaskSource, path: str | Path) -> np.ndarray:
    """Read an image file and segment it under its stem; a bad file raises DataError naming it.

    Returns:
        [H, W] int32 segment ids.
    """
    path = Path(path)
    return source(read_rgb(path), path.stem)
