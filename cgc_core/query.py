"""Queries on a trained model (paper, section 4.2 "Instance segmentation").

pixel prompt -> the rendered feature at that pixel (the "discriminative feature") -> a 2D mask in
any view where the cosine similarity is at least t (Eq. 6), and the 3D Gaussians of the object
(features with cosine >= t; optionally everything inside their convex hull, as the supplementary).

What Eq. 6 leaves open, and cgc adds (`QueryConfig.spatial_filter`): objects apart may share a
feature, so the selected Gaussians are split into the spatially connected part that holds the
prompt's surface point (`connected_part`) and the rest, and a view's mask drops the pixels that
the rest explains more than the part does (`selection_shares`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree
from torch import Tensor

from cgc_core.cameras import Camera
from cgc_core.config import QueryConfig, RenderConfig
from cgc_core.geometry import backproject
from cgc_core.model.gaussians import sh_degree_of
from cgc_core.model.view import render_view
from cgc_core.render import rasterize


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


@torch.no_grad()
def render_feature_and_colour(splats, camera: Camera,
                              render: RenderConfig) -> tuple[Tensor, Tensor]:
    """([H, W, D] L2-normalised rendered features, [H, W, 3] rendered colour in [0, 1], with the
    model's full SH degree) at the camera's resolution, from one render."""
    viewmat, K = camera_tensors(camera, splats["means"].device)
    out = render_view(splats, viewmat, K, camera.width, camera.height,
                      sh_degree=sh_degree_of(splats),
                      render=render, with_rgb=True, with_features=True)
    return (torch.nn.functional.normalize(out.features, dim=-1, eps=1e-8),
            out.rgb.clamp(0.0, 1.0))


def follow_edges(similarity: Tensor, colour: Tensor, radius: int, eps: float) -> Tensor:
    """[H, W] `similarity` [H, W] after a guided filter steered by `colour` [H, W, 3]
    (`QueryConfig.edge_radius`, `edge_eps`): where the colour is flat the map is smoothed, across
    a colour edge it keeps (or gains) a step, so a threshold cuts along the edge."""
    if radius <= 0:
        return similarity
    from kornia.filters import guided_blur  # imported on first use: kornia loads slowly

    guide = colour.permute(2, 0, 1)[None].to(similarity.dtype)
    return guided_blur(guide, similarity[None, None], 2 * radius + 1, eps)[0, 0]


def prompt_mask(feature_map: Tensor, colour: Tensor, feature: Tensor, threshold: float,
                query: QueryConfig) -> Tensor:
    """Eq. 6 as cgc answers a query: [H, W] bool, the similarity to `feature` ([D], or [P, D] an
    object's parts) steered to the edges of `colour` [H, W, 3] (`follow_edges`), >= threshold."""
    similarity = similarity_map(feature_map, feature)
    return follow_edges(similarity, colour, query.edge_radius, query.edge_eps) >= threshold


def feature_at(feature_map: Tensor, u: float, v: float) -> Tensor:
    """The discriminative feature [D] at pixel (u = column, v = row)."""
    height, width = feature_map.shape[:2]
    col, row = int(u), int(v)
    if not (0 <= col < width and 0 <= row < height):
        raise ValueError(f"pixel ({u}, {v}) lies outside the {width}x{height} image")
    return feature_map[row, col]


def cosine_to(unit: Tensor, feature: Tensor) -> Tensor:
    """[...] cosine similarity of unit vectors `unit` [..., D] to `feature` [D], or the highest
    to any row of `feature` [P, D] (the parts of one object: `ObjectInfo.part_features`)."""
    feature = torch.nn.functional.normalize(feature.to(unit), dim=-1, eps=1e-8)
    if feature.dim() == 1:
        return unit @ feature
    return (unit @ feature.T).amax(dim=-1)


def similarity_map(feature_map: Tensor, feature: Tensor) -> Tensor:
    """[H, W] cosine similarity of every pixel to `feature` [D] or [P, D] (`cosine_to`; the map
    is normalised)."""
    return cosine_to(feature_map, feature)


def mask_from_feature(feature_map: Tensor, feature: Tensor, threshold: float) -> Tensor:
    """Eq. 6: [H, W] bool, cosine similarity to `feature` [D] (or any row of [P, D]) >=
    threshold."""
    return similarity_map(feature_map, feature) >= threshold


@torch.no_grad()
def select_gaussians(splats, feature: Tensor, threshold: float, *, hull: bool = False) -> Tensor:
    """[N] bool: the Gaussians of the object whose discriminative feature is `feature` [D] (or
    whose parts' features are the rows of [P, D]).

    With `hull=True`, every Gaussian inside the convex hull of the selected centres is added (the
    supplementary's 3D extraction); a degenerate selection (< 4 points, or flat) keeps the plain
    cosine selection.
    """
    features = torch.nn.functional.normalize(splats["features"], dim=-1, eps=1e-8)
    selected = cosine_to(features, feature) >= threshold
    if hull and int(selected.sum()) >= 4:
        means = splats["means"].detach().cpu().numpy()
        try:
            inside = Delaunay(means[selected.cpu().numpy()]).find_simplex(means) >= 0
            selected = selected | torch.from_numpy(np.asarray(inside)).to(selected.device)
        except QhullError:
            pass
    return selected


@torch.no_grad()
def surface_point(splats, camera: Camera, u: float, v: float,
                  render: RenderConfig) -> np.ndarray | None:
    """[3] world point of the rendered surface under pixel (u = column, v = row), or None where
    the model renders (almost) nothing there (alpha < 0.5)."""
    viewmat, K = camera_tensors(camera, splats["means"].device)
    out = render_view(splats, viewmat, K, camera.width, camera.height, sh_degree=0, render=render,
                      with_rgb=True, with_depth=True)
    return surface_at(out.alphas, out.depths, camera, u, v)


def surface_at(alphas: Tensor, depths: Tensor, camera: Camera, u: float,
               v: float) -> np.ndarray | None:
    """[3] world point of the surface under pixel (u, v) of a render's alpha [H, W] and blended
    depth [H, W], or None where it shows (almost) nothing (alpha < 0.5). The one rule of where
    a prompt lies, for `surface_point` and `objects.extract.pixel_prompt`."""
    col, row = int(u), int(v)
    alpha = float(alphas[row, col])
    if alpha < 0.5:
        return None
    depth = np.zeros((camera.height, camera.width), dtype=np.float64)
    depth[row, col] = float(depths[row, col]) / alpha  # blended z of the visible surface
    return backproject(camera, depth, np.array([row]), np.array([col]))[0]


def connected_part(means: np.ndarray, extents: np.ndarray, selected: np.ndarray,
                   seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spatially connected part of a selection of Gaussians that holds a seed point.

    Two selected Gaussians are linked when their centres are closer than the sum of their
    extents: Gaussians that render one surface overlap, while objects apart leave a gap. The
    part is the largest connected component among those of the selected Gaussians near `seed`
    (within the nearest one's distance plus twice its extent: the single nearest may be a stray
    Gaussian in a component of its own). Components with fewer than 5 % as many Gaussians as the
    part are strays, not objects: each of their Gaussians joins the object nearest to it.

    Args:
        means: [N, 3] Gaussian centres.
        extents: [N] linking radius of each Gaussian (`QueryConfig.connect_radius_scale` times
            its largest standard deviation).
        selected: [N] bool.
        seed: [3] world point (e.g. `surface_point` under the prompt pixel).

    Returns:
        ([N] bool the part, [N] bool the others), disjoint subsets of `selected`.
    """
    index = np.flatnonzero(selected)
    if len(index) < 2:
        return selected.copy(), np.zeros_like(selected)
    points, radii = means[index], extents[index]
    tree = cKDTree(points)
    pairs = tree.query_pairs(2.0 * float(radii.max()), output_type="ndarray")
    gap = np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)
    pairs = pairs[gap < radii[pairs[:, 0]] + radii[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(len(index), len(index)))
    _, labels = connected_components(graph, directed=False)
    distance, nearest = tree.query(seed)
    near = tree.query_ball_point(seed, distance + 2.0 * radii[nearest])
    candidates = np.unique(labels[np.asarray(near + [nearest], dtype=np.int64)])
    sizes = np.bincount(labels)
    chosen = candidates[np.argmax(sizes[candidates])]
    # Components under 5 % of the part's size are strays, not objects: each of their Gaussians
    # joins the object whose nearest Gaussian is closest.
    is_object = sizes >= 0.05 * sizes[chosen]
    in_object = is_object[labels]
    if not in_object.all():
        _, closest = cKDTree(points[in_object]).query(points[~in_object])
        labels = labels.copy()
        labels[~in_object] = labels[in_object][closest]
    part = np.zeros_like(selected)
    part[index[labels == chosen]] = True
    others = np.zeros_like(selected)
    others[index[labels != chosen]] = True
    return part, others


@torch.no_grad()
def selection_shares(splats, selections: Tensor, camera: Camera, render: RenderConfig) -> Tensor:
    """[H, W, S] the share of each pixel's rendered opacity that comes from each of S selections
    of Gaussians, `selections` [N, S] bool (occlusion by all Gaussians included); 0 where the
    pixel is empty."""
    viewmat, K = camera_tensors(camera, splats["means"].device)
    colors = selections.to(splats["means"].dtype)
    out = rasterize(splats["means"], splats["quats"], splats["log_scales"].exp(),
                    torch.sigmoid(splats["opacities"]), colors, viewmat, K, camera.width,
                    camera.height, render_depth=False, near=render.near, far=render.far,
                    eps2d=render.eps2d, backend=render.backend)
    return out.colors / out.alphas[..., None].clamp_min(1e-6)


@torch.no_grad()
def surface_of(splats, weights: Tensor, camera: Camera, render: RenderConfig) -> Tensor:
    """[H, W, 4] per pixel the world point of the surface that the Gaussians in `weights` [N]
    (0 or 1: a prompt's similar ones) render there (x, y, z: the pixel's ray at their blended
    depth), and their share of the pixel (0-1: occlusion by every Gaussian counts); x, y, z = 0
    where they render nothing. Their own depth, not the pixel's: a floater in front of an object
    (common in views held out of training) would pull the blended depth off it."""
    viewmat, K = camera_tensors(camera, splats["means"].device)
    means = splats["means"]
    z = means @ viewmat[2, :3] + viewmat[2, 3]
    w = weights.to(means.dtype)
    out = rasterize(means, splats["quats"], splats["log_scales"].exp(),
                    torch.sigmoid(splats["opacities"]), torch.stack([w, w * z], dim=1), viewmat,
                    K, camera.width, camera.height, render_depth=False, near=render.near,
                    far=render.far, eps2d=render.eps2d, backend=render.backend)
    share = out.colors[..., 0]
    depth = out.colors[..., 1] / share.clamp_min(1e-6)
    rows, cols = torch.meshgrid(torch.arange(camera.height, device=depth.device),
                                torch.arange(camera.width, device=depth.device), indexing="ij")
    x = (cols + 0.5 - camera.cx) / camera.fx * depth
    y = (rows + 0.5 - camera.cy) / camera.fy * depth
    to_world = torch.linalg.inv(viewmat)
    points = torch.stack([x, y, depth], dim=-1) @ to_world[:3, :3].T + to_world[:3, 3]
    points[share < 1e-6] = 0.0
    return torch.cat([points, share[..., None]], dim=-1)


def pieces_within_reach(mask: np.ndarray, surface: np.ndarray, anchor: np.ndarray,
                        reach: float, min_share: float = 0.05) -> np.ndarray:
    """[H, W] bool, the 8-connected pieces of `mask` [H, W] of which at least half the pixels
    show the prompted object (`QueryConfig.mask_reach`): `surface` [H, W, 4] (`surface_of` its
    similar Gaussians) gives them a share of at least `min_share`, at a point within `reach`
    metres of the surface of the nearest of `anchor` [M, 4] (the object's own Gaussians: centre,
    and how far from it their surface lies)."""
    if not mask.any() or len(anchor) == 0:
        return mask
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    points = surface[mask]
    distance, nearest = cKDTree(anchor[:, :3]).query(points[:, :3])
    shows = (distance <= reach + anchor[nearest, 3]) & (points[:, 3] >= min_share)
    share = ndimage.mean(shows.astype(np.float64), labels[mask], index=np.arange(1, count + 1))
    near = np.concatenate([[False], np.asarray(share) >= 0.5])
    return near[labels]


@torch.no_grad()
def selection_summary(means: np.ndarray, features: np.ndarray, selected: np.ndarray,
                      feature: np.ndarray) -> dict:
    """What a 3D extraction returns about its Gaussians: centroid, axis-aligned box and score.

    Args:
        means: [N, 3] Gaussian centres; features: [N, D]; selected: [N] bool;
        feature: [D] the query's discriminative feature (or [P, D], an object's parts').

    Returns:
        {"count", "centroid" [3], "box_min" [3], "box_max" [3], "score"}: the score is the mean
        cosine similarity of the selected Gaussians' features to `feature`, clipped to [0, 1];
        zeros for an empty selection.
    """
    points = means[selected]
    if len(points) == 0:
        zero = np.zeros(3)
        return {"count": 0, "centroid": zero, "box_min": zero, "box_max": zero, "score": 0.0}
    unit = features[selected] / np.maximum(np.linalg.norm(features[selected], axis=1,
                                                          keepdims=True), 1e-8)
    cosine = cosine_to(torch.from_numpy(unit), torch.from_numpy(feature))
    score = min(max(float(cosine.mean()), 0.0), 1.0)
    return {"count": len(points), "centroid": points.mean(axis=0), "box_min": points.min(axis=0),
            "box_max": points.max(axis=0), "score": score}


def most_opaque(opacity_logits: Tensor, limit: int) -> Tensor:
    """[M] indices of the `limit` most opaque Gaussians (all of them when there are fewer)."""
    if len(opacity_logits) <= limit:
        return torch.arange(len(opacity_logits), device=opacity_logits.device)
    return torch.topk(opacity_logits, limit).indices
