"""Queries on a trained model (paper, section 4.2 "Instance segmentation").

pixel prompt -> the rendered feature at that pixel (the "discriminative feature") -> a 2D mask in
any view where the cosine similarity is at least t (Eq. 6), and the 3D Gaussians of the object
(features with cosine >= t; optionally everything inside their convex hull, as the supplementary).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import Delaunay, QhullError
from torch import Tensor

from cgc_core.cameras import Camera
from cgc_core.config import RenderConfig
from cgc_core.model.view import render_view


def camera_tensors(camera: Camera, device) -> tuple[Tensor, Tensor]:
    """(viewmat [4, 4], K [3, 3]) float32 tensors of a camera."""
    return (torch.tensor(camera.world_to_cam, dtype=torch.float32, device=device),
            torch.tensor(camera.K, dtype=torch.float32, device=device))


@torch.no_grad()
def render_feature_map(splats, camera: Camera, render: RenderConfig) -> Tensor:
    """[H, W, D] L2-normalised rendered features at the camera's resolution (0 where empty)."""
    viewmat, K = camera_tensors(camera, splats["means"].device)
    out = render_view(splats, viewmat, K, camera.width, camera.height, sh_degree=0, render=render,
                      with_rgb=False, with_features=True)
    return torch.nn.functional.normalize(out.features, dim=-1, eps=1e-8)


def feature_at(feature_map: Tensor, u: float, v: float) -> Tensor:
    """The discriminative feature [D] at pixel (u = column, v = row)."""
    height, width = feature_map.shape[:2]
    col, row = int(u), int(v)
    if not (0 <= col < width and 0 <= row < height):
        raise ValueError(f"pixel ({u}, {v}) lies outside the {width}x{height} image")
    return feature_map[row, col]


def similarity_map(feature_map: Tensor, feature: Tensor) -> Tensor:
    """[H, W] cosine similarity of every pixel to `feature` [D] (the map is normalised)."""
    return feature_map @ torch.nn.functional.normalize(feature, dim=0, eps=1e-8)


def mask_from_feature(feature_map: Tensor, feature: Tensor, threshold: float) -> Tensor:
    """Eq. 6: [H, W] bool, cosine similarity >= threshold."""
    return similarity_map(feature_map, feature) >= threshold


@torch.no_grad()
def select_gaussians(splats, feature: Tensor, threshold: float, *, hull: bool = False) -> Tensor:
    """[N] bool: the Gaussians of the object whose discriminative feature is `feature` [D].

    With `hull=True`, every Gaussian inside the convex hull of the selected centres is added (the
    supplementary's 3D extraction); a degenerate selection (< 4 points, or flat) keeps the plain
    cosine selection.
    """
    features = torch.nn.functional.normalize(splats["features"], dim=-1, eps=1e-8)
    selected = features @ torch.nn.functional.normalize(feature.to(features), dim=0) >= threshold
    if hull and int(selected.sum()) >= 4:
        means = splats["means"].detach().cpu().numpy()
        try:
            inside = Delaunay(means[selected.cpu().numpy()]).find_simplex(means) >= 0
            selected = selected | torch.from_numpy(np.asarray(inside)).to(selected.device)
        except QhullError:
            pass
    return selected
