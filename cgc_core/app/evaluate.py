"""Evaluation of a trained model on LERF-Mask-layout ground truth (`cgc eval`)."""

from __future__ import annotations

import torch

from cgc_core.app.prompts import FeatureCache, prompt_features
from cgc_core.config import RenderConfig
from cgc_core.data import Scene
from cgc_core.data.ground_truth import load_gt_masks, load_prompts
from cgc_core.metrics import evaluate_masks
from cgc_core.query import mask_from_feature


def evaluate_run(splats: torch.nn.ParameterDict, scene: Scene, render: RenderConfig,
                 threshold: float) -> dict:
    """mIoU / mBIoU over every (test view, object) pair of the scene's `test_mask/`."""
    gt = load_gt_masks(scene.root)
    prompts = load_prompts(scene.root / "prompts.json")
    features = FeatureCache(splats, scene, render)
    discriminative = prompt_features(prompts, features)
    gt_pairs, predictions = {}, {}
    for frame, objects in gt.items():
        for name, mask in objects.items():
            gt_pairs[(frame, name)] = mask
            if name in discriminative:
                predictions[(frame, name)] = mask_from_feature(
                    features(frame), discriminative[name], threshold).cpu().numpy()
    return evaluate_masks(predictions, gt_pairs)
