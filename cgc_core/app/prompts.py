"""Pixel prompts on a trained model: the feature under each prompt, and its mask (Eq. 6)."""

from __future__ import annotations

import numpy as np
import torch

from cgc_core.config import RenderConfig
from cgc_core.data import Prompt, Scene
from cgc_core.query import feature_at, mask_from_feature, render_feature_map


class FeatureCache:
    """Normalised feature maps [H, W, D], rendered once per frame: a run's queries reuse views."""

    def __init__(self, splats: torch.nn.ParameterDict, scene: Scene, render: RenderConfig):
        self.splats, self.scene, self.render = splats, scene, render
        self._maps: dict[str, torch.Tensor] = {}

    def __call__(self, frame: str) -> torch.Tensor:
        if frame not in self._maps:
            self._maps[frame] = render_feature_map(self.splats, self.scene.camera(frame),
                                                   self.render)
        return self._maps[frame]

    def add(self, frame: str, feature_map: torch.Tensor) -> None:
        """Keep a map the caller already rendered (`render_feature_map`) for `frame`."""
        self._maps[frame] = feature_map


def prompt_features(prompts: list[Prompt], features: FeatureCache) -> dict[str, torch.Tensor]:
    """{prompt id: discriminative feature [D]} from each prompt's pixel in its frame."""
    return {p.id: feature_at(features(p.frame), p.point[0], p.point[1]) for p in prompts}


def segment_prompts(splats: torch.nn.ParameterDict, scene: Scene, prompts: list[Prompt],
                    render: RenderConfig, threshold: float) -> dict[str, np.ndarray]:
    """{prompt id: [H, W] bool mask in the prompt's own frame}."""
    features = FeatureCache(splats, scene, render)
    return {p.id: mask_from_feature(features(p.frame), feature, threshold).cpu().numpy()
            for p, feature in zip(prompts, prompt_features(prompts, features).values())}
