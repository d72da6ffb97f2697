"""2D segments, the training signal of CGC: image -> segment-id map.

Every source is a `MaskSource`: `source(image, name, depth=None, intrinsics=None)` takes an
[H, W, 3] uint8 RGB image, the frame's image stem and optionally its depth and [3, 3] K, and
returns an [H, W] int32 map, 0 = unlabelled, ids 1..n consecutive, as many segments as the image
has. Pick one with `make_mask_source(config.segmenter)`:

- 'sam': SAM's automatic mask generator, weights from `sam_checkpoint` (a GPU is advised: on a
  CPU it takes minutes per image),
- 'felzenszwalb': the fallback that needs no weights: Felzenszwalb's graph-based segmentation
  at a working size of about 320x240 whatever the image's size, and where the view has depth,
  support planes and the Euclidean clusters standing on them first (`classical`, `depth`),
- 'precomputed': `<masks_dir>/<name>.png`,
- 'auto': SAM when `sam_checkpoint` is set, else felzenszwalb.

A missing or corrupt checkpoint or mask file raises `cgc_core.io.DataError` naming the file.
"""

from __future__ import annotations

import typing

from cgc_core.config import SegmenterConfig, SegmenterKind
from cgc_core.segment.base import (
    MaskSource,
    check_image,
    paint_masks,
    relabel_consecutive,
    segment_image_file,
)
from cgc_core.segment.classical import FelzenszwalbMaskSource
from cgc_core.segment.precomputed import PrecomputedMaskSource
from cgc_core.segment.sam import (
    SAM_PRESETS,
    SamArchitecture,
    SamMaskSource,
    build_sam,
    load_sam,
    sam_architecture,
)

KINDS = typing.get_args(SegmenterKind)
"""Accepted values of `SegmenterConfig.kind`."""


def resolve_kind(config: SegmenterConfig) -> str:
    """The concrete source `config.kind` names ('auto' resolved)."""
    if config.kind not in KINDS:
        raise ValueError(f"unknown segmenter.kind '{config.kind}': expected one of {list(KINDS)}")
    if config.kind == "auto":
        return "sam" if config.sam_checkpoint else "felzenszwalb"
    return config.kind


def make_mask_source(config: SegmenterConfig) -> MaskSource:
    """The mask source `config` describes; files it needs are checked now, models load lazily."""
    kind = resolve_kind(config)
    if kind == "sam":
        return SamMaskSource(config)
    if kind == "precomputed":
        return PrecomputedMaskSource(config)
    return FelzenszwalbMaskSource(config)


__all__ = [
    "KINDS", "FelzenszwalbMaskSource", "MaskSource", "PrecomputedMaskSource", "SAM_PRESETS",
    "SamArchitecture", "SamMaskSource", "build_sam", "check_image", "load_sam",
    "make_mask_source", "paint_masks", "relabel_consecutive", "resolve_kind", "sam_architecture",
    "segment_image_file",
]
