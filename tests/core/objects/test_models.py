"""Grounding DINO and CLIP plumbing, end to end with tiny randomly initialised models of the real
classes, saved to disk and loaded through the real code path (nothing is downloaded). Random
weights say nothing about quality; these tests check that the text reaches the models, their
outputs reach the objects, and the answers keep their contract."""

import json

import numpy as np
import open_clip
import pytest
import torch
from box_scenes import Box, boxes_model, camera_looking_at, unit_feature

from cgc_core.config import ObjectsConfig, RenderConfig
from cgc_core.model.view import render_view
from cgc_core.objects import cluster_objects, ground_text
from cgc_core.objects.models import best_view_box, model_scorers
from cgc_core.query import camera_tensors

RENDER = RenderConfig(backend="cpu")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "red", "one", "box", "a"]


@pytest.fixture(scope="module")
def scene():
    """Two look-alike red boxes (one feature) and a blue one on a wide grey floor that fills the
    two keyframes (rendered from the model itself), so any box DINO draws has features under
    it."""
    boxes = [Box((-0.25, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), (0.8, 0.1, 0.1)),
             Box((0.25, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), (0.8, 0.1, 0.1)),
             Box((0.0, 0.2, 0.06), (0.12, 0.12, 0.12), unit_feature(1), (0.1, 0.2, 0.8)),
             Box((0.0, 0.3, -0.01), (2.2, 2.2, 0.02), unit_feature(2), (0.5, 0.5, 0.5))]
    model, owner = boxes_model(boxes, spacing=0.02, std=0.012)
    table = cluster_objects(model, ObjectsConfig(min_density_share=0.0))  # a coarse, cheap floor
    keyframes = []
    for eye in ((0.0, -0.5, 0.9), (0.4, -0.4, 0.9)):
        camera = camera_looking_at((0.0, 0.05, 0.05), eye, width=64, height=48)
        viewmat, K = camera_tensors(camera, "cpu")
        out = render_view(model, viewmat, K, 64, 48, sh_degree=0, render=RENDER)
        keyframes.append((camera, (out.rgb.clamp(0, 1) * 255).byte().numpy()))
    ids = [int(np.unique(table.gaussian_object[owner == i])[0]) for i in range(4)]
    return model, table, keyframes, ids


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory):
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )
    folder = tmp_path_factory.mktemp("dino")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64,
                                                          "longest_edge": 96}),
        tokenizer=BertTokenizerFast(vocab_file=str(folder / "vocab.txt")))
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                                   window_size=4, image_size=64,
                                   out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32,
                               max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10,
        num_feature_levels=3, encoder_n_points=2, decoder_n_points=2, max_text_len=32)
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    config = folder / "tiny-test-clip.json"
    config.write_text(json.dumps({
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16,
                       "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1}}))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tiny-test-clip").state_dict(), folder / "tiny.pt")
    return folder / "tiny.pt", config


def test_dino_box_gives_a_feature_and_the_feature_the_objects(scene, tiny_dino):
    model, table, keyframes, ids = scene
    config = ObjectsConfig(grounding="dino", dino_path=str(tiny_dino), dino_box_threshold=0.0)
    scorer = model_scorers(config, model, table, keyframes, RENDER)["dino"]
    result = ground_text(table, "the red box", config, model_scorers={"dino": scorer})
    scores = dict(result.candidates)
    assert set(scores) == set(ids[:3])  # the objects, not the floor (background)
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    # the scores go through the box's feature: look-alikes (one feature) score the same
    assert scores[ids[0]] == pytest.approx(scores[ids[1]], abs=1e-3)
    assert result.status in ("found", "ambiguous", "not_found")
    if result.status == "found":  # never one of two look-alikes on a feature alone
        assert result.object.id not in ids[:2] and result.object.id == result.candidates[0][0]


def test_clip_compares_the_text_with_a_crop_of_each_object(scene, tiny_clip):
    model, table, keyframes, ids = scene
    checkpoint, arch = tiny_clip
    config = ObjectsConfig(grounding="attributes,clip", clip_path=str(checkpoint),
                           clip_model=str(arch))
    scorer = model_scorers(config, model, table, keyframes, RENDER)["clip"]
    scores = scorer(table.objects, "a red box")
    assert set(scores) == set(ids)  # the floor too: scorers see whatever they are given
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    # with the colour word, the blue box cannot win whatever CLIP says
    result = ground_text(table, "the red box", config, model_scorers={"clip": scorer})
    assert result.status != "found" or result.object.id in ids[:2]
    assert dict(result.candidates)[ids[2]] == pytest.approx(0.0, abs=1e-6)
    assert ids[3] not in dict(result.candidates)  # background is no answer unless labelled


def test_the_crop_view_sees_the_object(scene):
    model, table, keyframes, ids = scene
    points = model["means"].numpy()[table.members(ids[2])]
    (camera, _), box = best_view_box(points, keyframes)
    local = points.mean(axis=0) @ camera.world_to_cam[:3, :3].T + camera.world_to_cam[:3, 3]
    u = camera.fx * local[0] / local[2] + camera.cx
    v = camera.fy * local[1] / local[2] + camera.cy
    assert box[0] <= u <= box[2] and box[1] <= v <= box[3]


def test_weights_come_from_configured_paths_only(scene, tmp_path):
    model, table, keyframes, _ = scene
    with pytest.raises(ValueError, match="dino_path is empty"):
        model_scorers(ObjectsConfig(grounding="dino"), model, table, keyframes, RENDER)
    with pytest.raises(FileNotFoundError, match="clip_path not found"):
        model_scorers(ObjectsConfig(grounding="clip", clip_path=str(tmp_path / "none.pt")),
                      model, table, keyframes, RENDER)
