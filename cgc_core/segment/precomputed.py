"""Segment maps made elsewhere: `<masks_dir>/<image stem>.png`, one label PNG per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cgc_core.config import SegmenterConfig
from cgc_core.io import DataError, read_label_png
from cgc_core.segment.base import check_image, relabel_consecutive


class PrecomputedMaskSource:
    """Reads 8- or 16-bit single-channel PNGs; label 0 is unlabelled, other labels are renumbered
    to 1..n in increasing order."""

    def __init__(self, config: SegmenterConfig):
        if not config.masks_dir:
            raise ValueError("segmenter.kind 'precomputed' needs segmenter.masks_dir")
        self.masks_dir = Path(config.masks_dir)
        if not self.masks_dir.is_dir():
            raise DataError(f"masks directory not found: {self.masks_dir}")

    def path_for(self, name: str) -> Path:
        """Where the mask of frame `name` (an image stem) must be."""
        return self.masks_dir / f"{name}.png"

    def __call__(self, image: np.ndarray, name: str, depth: np.ndarray | None = None,
                 intrinsics: np.ndarray | None = None) -> np.ndarray:
        """Load the mask of frame `name` and check it against `image` ([H, W, 3] uint8);
        `depth` and `intrinsics` are unused.

        Returns:
            [H, W] int32 ids 0..n, consecutive.
        """
        height, width = check_image(image).shape[:2]
        path = self.path_for(name)
        if not path.is_file():
            raise DataError(f"no mask for frame '{name}': expected {path}")
        labels = read_label_png(path)  # DataError naming the file if corrupt or not single-channel
        if labels.shape != (height, width):
            raise DataError(f"{path}: mask is {labels.shape[1]}x{labels.shape[0]} (WxH) but "
                            f"image '{name}' is {width}x{height}")
        if labels.size and labels.min() < 0:
            raise DataError(f"{path}: negative labels (min {labels.min()})")
        return relabel_consecutive(labels)
