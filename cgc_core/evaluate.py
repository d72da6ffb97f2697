"""Prompted segmentation of a trained run, and its evaluation on LERF-Mask-layout ground truth."""

from __future__ import annotations

import torch

from cgc_core.config import RenderConfig
from cgc_core.data import Scene
from cgc_core.data.ground_truth import load_gt_masks, load_prompts
from cgc_core.metrics import evaluate_masks
from cgc_core.query import feature_at, mask_from_feature, render_feature_map


class FeatureCache:
    """Feature maps rendered once per frame (a run's queries reuse the same views)."""

    def __init__(self, splats, scene: Scene, render: RenderConfig):
        self.splats, self.scene, self.render, self.maps = splats, scene, render, {}

    def __call__(self, frame: str) -> torch.Tensor:
        if frame not in self.maps:
            self.maps[frame] = render_feature_map(self.splats, self.scene.camera(frame), self.render)
        return self.maps[frame]


def prompt_features(prompts, features: FeatureCache) -> dict[str, torch.Tensor]:
    """{prompt id: discriminative feature [D]} from each prompt's pixel in its frame."""
    return {p.id: feature_at(features(p.frame), p.point[0], p.point[1]) for p in prompts}


def segment_prompts(splats, scene: Scene, prompts, render: RenderConfig, threshold: float):
    """{prompt id: bool [H, W] mask in the prompt's own frame}."""
    features = FeatureCache(splats, scene, render)
    return {p.id: mask_from_feature(features(p.frame), feature, threshold).cpu().numpy()
            for p, feature in zip(prompts, prompt_features(prompts, features).values())}


def evaluate_run(splats, scene: Scene, render: RenderConfig, threshold: float) -> dict:
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
