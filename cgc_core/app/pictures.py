"""Pictures of a trained run for people: colour, feature PCA and mask overlays of one frame."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cgc_core.data.ground_truth import load_prompts
from cgc_core.io import write_rgb
from cgc_core.query import render_feature_and_colour
from cgc_core.service.query import FeatureCache, object_mask, prompted_objects

if TYPE_CHECKING:
    from cgc_core.app.run_folder import Run

# Distinct overlay colours (RGB) for up to 10 prompts, then cycled.
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 190],
    ]
)


def feature_pca_image(feature_map: torch.Tensor) -> np.ndarray:
    """[H, W, D] features -> [H, W, 3] uint8: the first 3 principal components, min-max scaled."""
    h, w, d = feature_map.shape
    flat = feature_map.reshape(-1, d).float()
    centred = flat - flat.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    proj = centred @ v[:3].T
    lo, hi = proj.min(0).values, proj.max(0).values
    return ((proj - lo) / (hi - lo).clamp_min(1e-8) * 255).reshape(h, w, 3).byte().cpu().numpy()


def overlay(
    image: np.ndarray, mask: np.ndarray, color: np.ndarray, strength: float = 0.55
) -> np.ndarray:
    """[H, W, 3] uint8 `image` with `color` [3] blended in where `mask` [H, W] is set."""
    out = image.astype(np.float32).copy()
    out[mask] = (1 - strength) * out[mask] + strength * color
    return out.clip(0, 255).astype(np.uint8)


@torch.no_grad()
def write_frame_renders(run: Run, frame: str, out: Path) -> list[Path]:
    """Write colour.png, features_pca.png and (when the scene has prompts) masks.png."""
    camera = run.scene.camera(frame)
    features, colour = render_feature_and_colour(run.splats, camera, run.config.render)
    colour = (colour * 255).byte().cpu().numpy()
    written = [out / f"{frame}_colour.png", out / f"{frame}_features_pca.png"]
    write_rgb(written[0], colour)
    write_rgb(written[1], feature_pca_image(features))
    prompts_file = run.scene.root / "prompts.json"
    if prompts_file.is_file():
        image = colour
        cache = FeatureCache(run.splats, run.scene, run.config.render)
        query = run.config.query
        objects = prompted_objects(load_prompts(prompts_file), cache, query,
                                   run.config.objects)
        for i, obj in enumerate(objects):
            mask = object_mask(obj, frame, cache, query, query.threshold)
            image = overlay(image, mask, PALETTE[i % len(PALETTE)])
        written.append(out / f"{frame}_masks.png")
        write_rgb(written[-1], image)
    return written
