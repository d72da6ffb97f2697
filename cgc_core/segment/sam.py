"""SAM's automatic mask generator as a mask source (segment-anything, weights from a local path).

The model is built from the package's own classes (`segment_anything.modeling`) rather than
through `sam_model_registry`, because the registry hard-codes the three released sizes: here the
architecture is a `SamArchitecture` value, one of the released presets (`SAM_PRESETS`) or a custom
size given in the config, so a checkpoint of any size loads through one code path.
The prompt encoder and mask decoder are the same in every released SAM and are fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from cgc_core.config import SegmenterConfig
from cgc_core.devices import resolve_device
from cgc_core.io import DataError
from cgc_core.segment.base import check_image, paint_masks

PATCH_SIZE = 16
"""ViT patch side in pixels (every released SAM)."""
PROMPT_EMBED_DIM = 256
"""Channels of the image embedding and of the prompt tokens (every released SAM)."""
WINDOW_SIZE = 14
"""Side of the attention windows of the non-global encoder blocks, in patches."""
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
"""ImageNet normalisation in 0..255 units, as SAM was trained."""


@dataclass(frozen=True)
class SamArchitecture:
    """The sizes that tell SAM image encoders apart (everything else is shared)."""

    image_size: int
    """Side of the encoder's square input in pixels; images are resized so the longer side
    equals it (SamPredictor reads it from `image_encoder.img_size`)."""
    embed_dim: int
    depth: int
    num_heads: int

    @property
    def global_attn_indexes(self) -> tuple[int, ...]:
        """Blocks with global attention: the last block of each quarter of the encoder, which
        reproduces all three released models (vit_b 2,5,8,11; vit_l 5,11,17,23; vit_h 7,...,31)."""
        return tuple(sorted({(q + 1) * self.depth // 4 - 1 for q in range(4)} - {-1}))

    def describe(self) -> str:
        return (f"image_size {self.image_size}, embed_dim {self.embed_dim}, depth {self.depth}, "
                f"num_heads {self.num_heads}")

    def validate(self) -> SamArchitecture:
        """Raise ValueError if the sizes cannot build a model."""
        if min(self.image_size, self.embed_dim, self.depth, self.num_heads) <= 0:
            raise ValueError(f"SAM architecture needs positive sizes, got {self.describe()}")
        if self.image_size % PATCH_SIZE:
            raise ValueError(f"SAM image_size must be a multiple of {PATCH_SIZE}, "
                             f"got {self.image_size}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"SAM embed_dim {self.embed_dim} is not divisible by num_heads "
                             f"{self.num_heads}")
        return self


SAM_PRESETS: dict[str, SamArchitecture] = {
    "vit_h": SamArchitecture(image_size=1024, embed_dim=1280, depth=32, num_heads=16),
    "vit_l": SamArchitecture(image_size=1024, embed_dim=1024, depth=24, num_heads=16),
    "vit_b": SamArchitecture(image_size=1024, embed_dim=768, depth=12, num_heads=12),
}
"""The released SAM checkpoints' encoders (segment_anything/build_sam.py)."""


def sam_architecture(config: SegmenterConfig) -> SamArchitecture:
    """The architecture `config` asks for: a preset by `sam_model_type`, or 'custom' sizes."""
    custom = (config.sam_image_size, config.sam_encoder_embed_dim, config.sam_encoder_depth,
              config.sam_encoder_num_heads)
    if config.sam_model_type == "custom":
        if min(custom) <= 0:
            raise ValueError("segmenter.sam_model_type 'custom' needs sam_image_size, "
                             "sam_encoder_embed_dim, sam_encoder_depth and sam_encoder_num_heads "
                             "all > 0")
        return SamArchitecture(*custom).validate()
    if config.sam_model_type not in SAM_PRESETS:
        raise ValueError(f"unknown segmenter.sam_model_type '{config.sam_model_type}': expected "
                         f"one of {sorted(SAM_PRESETS)} or 'custom'")
    if any(custom):
        # a preset with overridden sizes would be a model that was never released under its name
        raise ValueError("segmenter.sam_image_size / sam_encoder_* are only for sam_model_type "
                         f"'custom' (got '{config.sam_model_type}')")
    return SAM_PRESETS[config.sam_model_type]


def build_sam(arch: SamArchitecture):
    """An untrained `segment_anything.modeling.Sam` of the given architecture, in eval mode.

    Build it under `with torch.device("meta"):` to get the parameter shapes without allocating.
    """
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )
    arch.validate()
    grid = arch.image_size // PATCH_SIZE
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=arch.image_size, patch_size=PATCH_SIZE, embed_dim=arch.embed_dim,
            depth=arch.depth, num_heads=arch.num_heads, mlp_ratio=4, out_chans=PROMPT_EMBED_DIM,
            qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
            window_size=WINDOW_SIZE, global_attn_indexes=arch.global_attn_indexes),
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM, image_embedding_size=(grid, grid),
            input_image_size=(arch.image_size, arch.image_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=2048,
                                          num_heads=8),
            transformer_dim=PROMPT_EMBED_DIM, iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )
    return sam.eval()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint file as a {name: tensor} dict on the CPU; DataError naming the file if it is
    missing, unreadable or not a state dict."""
    if not path.is_file():
        raise DataError(f"SAM checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint is data, never code to run
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip, EOF and runtime errors alike
        # torch's own text advises weights_only=False, which is not an option here: leave it out
        raise DataError(f"cannot read SAM checkpoint {path} ({type(error).__name__}): the file "
                        "is corrupt or truncated, or holds Python objects besides tensors (only "
                        "plain state dicts, as the released sam_vit_*.pth, are loaded)") from None
    tensors_by_name = isinstance(state, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    if not state or not tensors_by_name:
        raise DataError(f"{path}: not a SAM checkpoint (expected a state dict of tensors, as "
                        "the released sam_vit_*.pth files)")
    return state


def guess_architecture(state: dict[str, torch.Tensor]) -> SamArchitecture | None:
    """The encoder sizes a SAM state dict was saved from, or None if it is not one.

    The heads are recovered from the relative position tables, which are [2S - 1, head_dim].
    """
    try:
        embed_dim = state["image_encoder.patch_embed.proj.weight"].shape[0]
        grid = state["image_encoder.pos_embed"].shape[1]
        head_dim = state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1]
    except (KeyError, IndexError):
        return None
    depth = len({key.split(".")[2] for key in state if key.startswith("image_encoder.blocks.")})
    return SamArchitecture(image_size=grid * PATCH_SIZE, embed_dim=embed_dim, depth=depth,
                           num_heads=embed_dim // max(head_dim, 1))


def _mismatch_message(path: Path, model_type: str, arch: SamArchitecture,
                      expected: dict[str, torch.Size], state: dict[str, torch.Tensor]) -> str:
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    resized = sorted(k for k in expected.keys() & state.keys() if state[k].shape != expected[k])
    example = (f"'{resized[0]}' is {tuple(state[resized[0]].shape)}, "
               f"expected {tuple(expected[resized[0]])}" if resized else
               f"'{(missing or unexpected)[0]}' is {'missing' if missing else 'unexpected'}")
    guess = guess_architecture(state)
    if guess is None:
        hint = "it does not look like a SAM checkpoint"
    else:
        preset = [name for name, known in SAM_PRESETS.items() if known == guess]
        hint = (f"it looks like sam_model_type '{preset[0]}'" if preset else
                f"it looks like a custom encoder ({guess.describe()})")
    return (f"{path}: checkpoint does not match sam_model_type '{model_type}' ({arch.describe()}): "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(resized)} differently "
            f"sized tensors, e.g. {example}; {hint}")


def load_sam(path: str | Path, arch: SamArchitecture, device: torch.device,
             model_type: str = "custom"):
    """A `Sam` with the weights of checkpoint `path`, on `device`, in eval mode.

    Raises:
        DataError (naming `path`, and `model_type` on a mismatch) for a missing or unreadable
        file, or a state dict that does not fit `arch`.
    """
    path = Path(path)
    state = read_state_dict(path)
    # build on the meta device: shapes only, so vit_h is not randomly initialised just to be
    # overwritten, and memory holds one copy of the weights, not two
    with torch.device("meta"):
        sam = build_sam(arch)
    expected = {k: v.shape for k, v in sam.state_dict().items()}
    if expected.keys() != state.keys() or any(state[k].shape != s for k, s in expected.items()):
        raise DataError(_mismatch_message(path, model_type, arch, expected, state))
    # float32 whatever the file holds: the generator feeds float32 images
    sam.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                        assign=True)
    # the normalisation buffers are not saved in checkpoints (non-persistent): set them here
    sam.pixel_mean = torch.tensor(PIXEL_MEAN).view(-1, 1, 1)
    sam.pixel_std = torch.tensor(PIXEL_STD).view(-1, 1, 1)
    left = [name for name, t in [*sam.named_parameters(), *sam.named_buffers()] if t.is_meta]
    if left:  # a segment-anything version with new unsaved state would otherwise fail later
        raise RuntimeError(f"SAM tensors not restored from {path}: {left}")
    return sam.to(device).eval().requires_grad_(False)


def clean_mask(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Fill holes and drop islands smaller than `min_area` pixels (8-connected), as SAM's own
    `min_mask_region_area` post-processing does, without its OpenCV dependency. If every island
    is small the largest is kept, so a small object is not erased.

    Args:
        mask: [H, W] bool.

    Returns:
        [H, W] bool.
    """
    eight = np.ones((3, 3), dtype=bool)
    mask = mask.copy()
    holes, count = ndimage.label(~mask, structure=eight)
    sizes = np.bincount(holes.ravel(), minlength=count + 1)
    small_holes = np.nonzero(sizes < min_area)[0]
    mask |= np.isin(holes, small_holes[small_holes > 0])
    islands, count = ndimage.label(mask, structure=eight)
    if count == 0:
        return mask
    sizes = np.bincount(islands.ravel(), minlength=count + 1)[1:]
    keep = np.nonzero(sizes >= min_area)[0] + 1
    if len(keep) == 0:
        keep = np.array([np.argmax(sizes) + 1])
    return np.isin(islands, keep)


class SamMaskSource:
    """SamAutomaticMaskGenerator over a grid of point prompts, its masks painted into one id map
    (smaller masks on top, see `paint_masks`).

    The checkpoint's existence and the config are checked at construction; the model is loaded
    on the first call and reused, so building a source is cheap until it is needed.
    """

    def __init__(self, config: SegmenterConfig):
        if not config.sam_checkpoint:
            raise ValueError("segmenter.kind 'sam' needs segmenter.sam_checkpoint (a local .pth)")
        self.checkpoint = Path(config.sam_checkpoint)
        if not self.checkpoint.is_file():
            raise DataError(f"SAM checkpoint not found: {self.checkpoint}")
        self.model_type = config.sam_model_type
        self.arch = sam_architecture(config)
        self.device = resolve_device(config.device, "segmenter.device")
        if config.sam_points_per_side <= 0 or config.sam_points_per_batch <= 0:
            raise ValueError("segmenter.sam_points_per_side and sam_points_per_batch must be > 0")
        self.min_region_area = int(config.sam_min_mask_region_area)
        self.generator_args: dict[str, Any] = dict(
            points_per_side=config.sam_points_per_side,
            points_per_batch=config.sam_points_per_batch,
            pred_iou_thresh=config.sam_pred_iou_thresh,
            stability_score_thresh=config.sam_stability_score_thresh,
            box_nms_thresh=config.sam_box_nms_thresh,
            # 0: SAM's own small-region step imports OpenCV; `clean_mask` does it instead
            min_mask_region_area=0,
            output_mode="binary_mask",
        )
        self._generator = None

    @property
    def generator(self):
        """The `SamAutomaticMaskGenerator`, loaded on first use."""
        if self._generator is None:
            from segment_anything import SamAutomaticMaskGenerator
            sam = load_sam(self.checkpoint, self.arch, self.device, self.model_type)
            self._generator = SamAutomaticMaskGenerator(sam, **self.generator_args)
        return self._generator

    def masks(self, image: np.ndarray) -> np.ndarray:
        """SAM's masks for one [H, W, 3] uint8 RGB image as [K, H, W] bool (K may be 0)."""
        records = self.generator.generate(check_image(image))
        masks = [record["segmentation"] for record in records]
        if self.min_region_area > 0:
            masks = [clean_mask(m, self.min_region_area) for m in masks]
        if not masks:
            return np.zeros((0, *image.shape[:2]), dtype=bool)
        return np.stack(masks)

    def __call__(self, image: np.ndarray, name: str, depth: np.ndarray | None = None,
                 intrinsics: np.ndarray | None = None) -> np.ndarray:
        """[H, W, 3] uint8 RGB -> [H, W] int32 ids 0..n (`name`, `depth`, `intrinsics` are
        unused: SAM sees colour only)."""
        return paint_masks(self.masks(image))
