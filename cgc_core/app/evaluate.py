"""Evaluation of a trained model on LERF-Mask-layout ground truth (`cgc eval`)."""

from __future__ import annotations

import torch

from cgc_core.config import ObjectsConfig, QueryConfig, RenderConfig
from cgc_core.data import Scene
from cgc_core.data.ground_truth import load_gt_masks, load_prompts
from cgc_core.metrics import evaluate_masks
from cgc_core.service.query import FeatureCache, PromptedObject, object_mask, prompted_objects


def evaluate_run(splats: torch.nn.ParameterDict, scene: Scene, render: RenderConfig,
                 threshold: float, query: QueryConfig | None = None,
                 objects: ObjectsConfig | None = None) -> dict:
    """mIoU / mBIoU over every (test view, object) pair of the scene's `test_mask/`.

    Args:
        threshold: the cosine threshold t (usually `query.threshold`).
        query: the query settings (spatial filter, whole objects); None = the defaults.
        objects: the clustering settings `query.whole_objects` uses; None = the defaults.
    """
    return evaluate_at_thresholds(splats, scene, render, [threshold], query, objects)[threshold]


def evaluate_at_thresholds(splats: torch.nn.ParameterDict, scene: Scene, render: RenderConfig,
                           thresholds: list[float], query: QueryConfig | None = None,
                           objects: ObjectsConfig | None = None) -> dict[float, dict]:
    """{t: `evaluate_run` at t} for each of `thresholds`, rendering each view's features once."""
    query = QueryConfig() if query is None else query
    gt = load_gt_masks(scene.root)
    prompts = load_prompts(scene.root / "prompts.json")
    features = FeatureCache(splats, scene, render)
    prompted = {obj.id: obj
                for obj in prompted_objects(prompts, features, query, objects)}
    return {t: score_prompted(prompted, gt, features, query, dict.fromkeys(prompted, t))
            for t in thresholds}


def score_prompted(prompted: dict[str, PromptedObject], gt: dict, features: FeatureCache,
                   query: QueryConfig, thresholds: dict[str, float]) -> dict:
    """`evaluate_masks` of each prompted object's mask (`object_mask` at its own threshold)
    against every (frame, object) of `gt` ({frame: {object: [H, W] bool}})."""
    gt_pairs, predictions = {}, {}
    for frame, frame_objects in gt.items():
        for name, mask in frame_objects.items():
            gt_pairs[(frame, name)] = mask
            if name in prompted:
                predictions[(frame, name)] = object_mask(prompted[name], frame, features, query,
                                                         thresholds[name])
    return evaluate_masks(predictions, gt_pairs)
