"""SAM through a real checkpoint file: a tiny randomly initialised model of segment-anything's own
classes, saved with torch.save and loaded by the same code path as a released checkpoint."""

import dataclasses

import numpy as np
import pytest
import torch

from cgc_core.config import SegmenterConfig
from cgc_core.io import DataError
from cgc_core.segment import SAM_PRESETS, SamArchitecture, SamMaskSource, make_mask_source
from cgc_core.segment.sam import (
    build_sam,
    clean_mask,
    guess_architecture,
    load_sam,
    sam_architecture,
)

TINY = SamArchitecture(image_size=64, embed_dim=32, depth=1, num_heads=2)
"""4x4 image embedding: the standard decoder on it costs ~10 ms per point on a CPU."""


def tiny_config(checkpoint, **changes) -> SegmenterConfig:
    """'auto' (SAM because a checkpoint is set), custom tiny sizes, 16 point prompts, and the
    filters opened up: random weights predict low IoU and zero stability."""
    config = SegmenterConfig(
        kind="auto", sam_checkpoint=str(checkpoint), sam_model_type="custom",
        sam_image_size=TINY.image_size, sam_encoder_embed_dim=TINY.embed_dim,
        sam_encoder_depth=TINY.depth, sam_encoder_num_heads=TINY.num_heads,
        sam_points_per_side=4, sam_pred_iou_thresh=0.0, sam_stability_score_thresh=0.0,
        sam_box_nms_thresh=1.0)
    return dataclasses.replace(config, **changes)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(build_sam(TINY).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_source(tiny_checkpoint):
    return make_mask_source(tiny_config(tiny_checkpoint))


def test_presets_build_the_released_architectures():
    """Our builder with each preset has exactly the parameters segment-anything's registry
    builds for that name (on the meta device: shapes only, nothing allocated)."""
    from segment_anything import sam_model_registry
    for name, arch in SAM_PRESETS.items():
        with torch.device("meta"):
            theirs = sam_model_registry[name]().state_dict()
            ours = build_sam(arch).state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
        assert guess_architecture(ours) == arch


def test_end_to_end_through_checkpoint(tiny_source, tiny_checkpoint, image, assert_id_map):
    assert isinstance(tiny_source, SamMaskSource)
    masks = tiny_source.masks(image)
    assert masks.dtype == bool and masks.shape[1:] == image.shape[:2]
    assert len(masks) >= 2                     # real, overlapping masks came out
    ids = tiny_source(image, "frame_0")
    assert_id_map(ids, image.shape[:2])
    assert ids.max() >= 2
    assert np.array_equal(ids > 0, masks.any(0))
    # every pixel shows the smallest mask covering it (ties: the later one), brute force
    areas = masks.sum(axis=(1, 2))
    score = np.where(masks, (areas * len(masks) - np.arange(len(masks)))[:, None, None], np.inf)
    winner = np.where(masks.any(0), score.argmin(0), -1)
    pairs = set(zip(winner.ravel().tolist(), ids.ravel().tolist()))
    assert len(pairs) == len(np.unique(winner)) == len(np.unique(ids))
    # loaded once, reused, deterministic
    generator = tiny_source.generator
    assert np.array_equal(tiny_source(image, "frame_0"), ids)
    assert tiny_source.generator is generator


def test_loaded_weights_are_the_saved_ones(tiny_checkpoint):
    sam = load_sam(tiny_checkpoint, TINY, torch.device("cpu"))
    saved = torch.load(tiny_checkpoint, weights_only=True)
    loaded = sam.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert sam.image_encoder.img_size == TINY.image_size     # what SamPredictor resizes to
    assert torch.allclose(sam.pixel_mean.flatten(), torch.tensor([123.675, 116.28, 103.53]))
    assert not any(t.is_meta for t in [*sam.parameters(), *sam.buffers()])


def test_default_filters_reject_random_masks(tiny_checkpoint, image, assert_id_map):
    """The released thresholds keep nothing a random model predicts: an all-unlabelled map."""
    config = tiny_config(tiny_checkpoint, sam_pred_iou_thresh=0.88,
                         sam_stability_score_thresh=0.95, sam_box_nms_thresh=0.7)
    ids = make_mask_source(config)(image, "frame_0")
    assert_id_map(ids, image.shape[:2])
    assert not ids.any()


def test_min_region_area_cleans_every_mask(tiny_checkpoint, image):
    source = make_mask_source(tiny_config(tiny_checkpoint, sam_min_mask_region_area=20))
    masks = source.masks(image)
    assert len(masks) >= 1
    for mask in masks:
        assert np.array_equal(clean_mask(mask, 20), mask)     # nothing left to clean


def test_clean_mask_fills_holes_and_drops_islands():
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:12, 2:12] = True
    mask[5, 5] = False                 # a 1-pixel hole
    mask[15:17, 15:17] = True          # a 4-pixel island
    cleaned = clean_mask(mask, min_area=10)
    assert cleaned[5, 5] and not cleaned[15:17, 15:17].any()
    assert cleaned.sum() == 100
    tiny = np.zeros((20, 20), dtype=bool)
    tiny[0:2, 0:2] = True              # 4 pixels
    tiny[10, 10] = True                # 1 pixel
    kept = clean_mask(tiny, min_area=10)
    assert kept.sum() == 4 and kept[0:2, 0:2].all()    # all small: the largest survives


def test_missing_checkpoint_is_named_at_construction(tmp_path):
    path = tmp_path / "sam_vit_h_4b8939.pth"
    with pytest.raises(DataError, match="sam_vit_h_4b8939.pth"):
        make_mask_source(SegmenterConfig(kind="sam", sam_checkpoint=str(path)))


@pytest.mark.parametrize("payload", ["random", "truncated", "not_a_state_dict", "empty"])
def test_corrupt_checkpoint_is_named(tmp_path, tiny_checkpoint, image, payload):
    path = tmp_path / f"broken_{payload}.pth"
    if payload == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif payload == "truncated":
        path.write_bytes(tiny_checkpoint.read_bytes()[:100_000])
    elif payload == "not_a_state_dict":
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(b"")
    source = make_mask_source(tiny_config(path))
    with pytest.raises(DataError, match=f"broken_{payload}.pth"):
        source(image, "frame_0")


def test_wrong_model_type_names_file_type_and_guess(tiny_checkpoint, image):
    config = tiny_config(tiny_checkpoint, sam_model_type="vit_b", sam_image_size=0,
                         sam_encoder_embed_dim=0, sam_encoder_depth=0, sam_encoder_num_heads=0)
    with pytest.raises(DataError) as error:
        make_mask_source(config)(image, "frame_0")
    message = str(error.value)
    assert str(tiny_checkpoint) in message and "'vit_b'" in message
    assert "image_size 64, embed_dim 32, depth 1, num_heads 2" in message   # what it really is


def test_foreign_state_dict_is_not_taken_for_sam(tmp_path, image):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, path)
    with pytest.raises(DataError, match="resnet.pth.*does not look like a SAM checkpoint"):
        make_mask_source(tiny_config(path))(image, "frame_0")


def test_architecture_config_is_validated(tiny_checkpoint):
    assert sam_architecture(SegmenterConfig(sam_model_type="vit_l")) == SAM_PRESETS["vit_l"]
    with pytest.raises(ValueError, match="unknown segmenter.sam_model_type"):
        sam_architecture(SegmenterConfig(sam_model_type="vit_x"))
    with pytest.raises(ValueError, match="only for sam_model_type 'custom'"):
        sam_architecture(SegmenterConfig(sam_model_type="vit_b", sam_encoder_depth=4))
    with pytest.raises(ValueError, match="'custom' needs"):
        sam_architecture(SegmenterConfig(sam_model_type="custom", sam_image_size=64))
    with pytest.raises(ValueError, match="multiple of 16"):
        sam_architecture(tiny_config(tiny_checkpoint, sam_image_size=60))
    with pytest.raises(ValueError, match="divisible"):
        sam_architecture(tiny_config(tiny_checkpoint, sam_encoder_num_heads=3))


def all_tensors(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer of `module`, the non-persistent ones (pixel_mean/std) too."""
    return [*module.named_parameters(), *module.named_buffers()]


def test_load_sam_puts_every_tensor_on_the_device(tiny_checkpoint):
    """On a device other than the CPU ("meta" stands in for "cuda" here) nothing is left behind:
    the normalisation buffers set after loading travel with the weights, and `Sam.device` (what
    SamPredictor puts its inputs on) is that device."""
    sam = load_sam(tiny_checkpoint, TINY, torch.device("meta"))
    left = [name for name, t in all_tensors(sam) if not t.is_meta]
    assert not left, f"left on another device: {left}"
    assert sam.device.type == "meta"
    assert {"pixel_mean", "pixel_std"} <= {name for name, _ in sam.named_buffers()}


@pytest.mark.parametrize("setting", ["cpu", "auto"])
def test_device_setting_reaches_the_model_and_its_inputs(tiny_checkpoint, image, setting):
    """segmenter.device -> SamMaskSource.device -> the loaded model -> the predictor's inputs."""
    source = make_mask_source(tiny_config(tiny_checkpoint, device=setting))
    expected = torch.device("cuda" if setting == "auto" and torch.cuda.is_available() else "cpu")
    assert source.device == expected
    seen = []
    encoder = source.generator.predictor.model.image_encoder
    hook = encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].device))
    try:
        source(image, "frame_0")
    finally:
        hook.remove()
    assert seen and all(d.type == expected.type for d in seen)
    model = source.generator.predictor.model
    assert all(t.device.type == expected.type for _, t in all_tensors(model))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
@pytest.mark.parametrize("setting", ["cuda", "cuda:1"])
def test_cuda_setting_without_cuda_is_named(tiny_checkpoint, setting):
    with pytest.raises(ValueError, match="segmenter.device"):
        make_mask_source(tiny_config(tiny_checkpoint, device=setting))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sam_on_cuda_gives_the_cpu_masks(tiny_checkpoint, image):
    """The same tiny model on the GPU: the same masks as on the CPU, up to pixels where a
    random model's logits sit at the threshold."""
    on_cpu = make_mask_source(tiny_config(tiny_checkpoint, device="cpu")).masks(image)
    source = make_mask_source(tiny_config(tiny_checkpoint, device="cuda"))
    on_gpu = source.masks(image)
    assert source.generator.predictor.model.device.type == "cuda"
    assert on_gpu.shape == on_cpu.shape
    assert (on_gpu != on_cpu).mean() < 0.01
