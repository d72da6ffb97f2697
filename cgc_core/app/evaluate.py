"""Evaluation of a trained model (`cgc eval`): mIoU / mBIoU on LERF-Mask-layout ground truth,
and the map's own quality, PSNR / SSIM of its colour on the held-out views."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from cgc_core.config import ObjectsConfig, QueryConfig, RenderConfig
from cgc_core.data import Scene
from cgc_core.data.ground_truth import load_gt_masks, load_prompts
from cgc_core.metrics import evaluate_masks, image_quality
from cgc_core.model.gaussians import sh_degree_of
from cgc_core.model.view import render_view
from cgc_core.query import camera_tensors
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


@torch.no_grad()
def render_colour(splats: torch.nn.ParameterDict, camera, render: RenderConfig,
                  background: torch.Tensor | None = None) -> np.ndarray:
    """[H, W, 3] float in [0, 1]: the model's colour at `camera` (a pinhole view), at the
    neutral exposure (no view's learned correction) on a black background, or on `background`
    ([3] RGB in [0, 1]: a model trained over another colour, e.g. OpenSplat's)."""
    viewmat, K = camera_tensors(camera, splats["means"].device)
    out = render_view(splats, viewmat, K, camera.width, camera.height,
                      sh_degree=sh_degree_of(splats), render=render, with_rgb=True,
                      background=background)
    return out.rgb.clamp(0.0, 1.0).cpu().numpy()


def colour_quality(splats: torch.nn.ParameterDict, scene: Scene, render: RenderConfig,
                   max_resolution: int, background: torch.Tensor | None = None) -> dict:
    """PSNR / SSIM of the rendered colour against each held-out photo, at the training
    resolution (`max_resolution` on the longer side, 0 = native; photos scaled down by area, as
    training does), on the pinhole view (photos of a camera with a lens undistorted, as cgc
    trains on them); `background` as `render_colour`'s.

    Returns:
        {"psnr": mean dB, "ssim": mean, "views": count, "resolution": [W, H] of the first,
        "per_view": {frame: {"psnr", "ssim"}}}; means are NaN without test views.
    """
    from cgc_core.train.views import training_scale

    per_view, resolution = {}, None
    for camera in scene.test_cameras:
        photo = scene.load_image(camera)
        scale = training_scale(camera, max_resolution)
        view = camera.scaled(scale) if scale != 1.0 else camera
        if scale != 1.0:
            photo = np.asarray(Image.fromarray(photo).resize((view.width, view.height),
                                                             Image.BOX))
        per_view[camera.name] = image_quality(render_colour(splats, view, render, background),
                                              photo.astype(np.float64) / 255.0)
        resolution = resolution or [view.width, view.height]
    values = list(per_view.values())
    return {"psnr": float(np.mean([v["psnr"] for v in values])) if values else float("nan"),
            "ssim": float(np.mean([v["ssim"] for v in values])) if values else float("nan"),
            "views": len(values), "resolution": resolution, "per_view": per_view}
