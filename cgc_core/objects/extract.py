"""3D extraction of one object (the paper's supplementary, Algorithm 1, plus a spatial step).

From a discriminative feature: the opaque Gaussians with cosine >= t; of those, the spatially
connected part that holds the object (a seed point or the object's own Gaussians: look-alikes
elsewhere share the feature, and a hull around both would swallow everything between); the convex
hull of that part; every Gaussian inside it (occluded or half-transparent parts the feature
missed, like the supplementary's plate); statistical outliers removed. The result is a coloured
point cloud (the opaque Gaussians' centres) and a Gaussian subset that renders alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from torch import Tensor

from cgc_core.cameras import Camera
from cgc_core.config import ObjectsConfig, RenderConfig
from cgc_core.geometry import backproject, depth_at
from cgc_core.io import atomic_path
from cgc_core.model.gaussians import subset
from cgc_core.model.view import render_view
from cgc_core.objects.colors import base_rgb
from cgc_core.objects.voxels import connected_voxel_groups, voxel_keys
from cgc_core.query import camera_tensors, cosine_to, selection_shares, surface_at


@dataclass
class ExtractedObject:
    """One object cut out of the model."""

    mask: np.ndarray
    """[N] bool, the Gaussians of the object."""
    splats: dict[str, Tensor]
    """The Gaussian subset (every parameter of the model, rows of `mask`): renders alone."""
    points: np.ndarray
    """[P, 3] float64 world positions: the surface the subset renders in the given views, or
    the centres of its opaque Gaussians (`extract_object`)."""
    colors: np.ndarray
    """[P, 3] uint8 RGB: the rendered colour there, or the Gaussians' base colour."""
    feature: np.ndarray
    """[D] the unit discriminative feature it was extracted with (the first part's, for an object
    of several parts)."""
    aabb: tuple[np.ndarray, np.ndarray]
    """([3] low, [3] high) corners of the points' axis-aligned box."""
    obb: o3d.geometry.OrientedBoundingBox
    """The points' oriented box (centre, extent, R)."""


def _unit(x: Tensor) -> Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-8)


def connected_part_near(points: np.ndarray, voxel_size: float, *, seed: np.ndarray | None = None,
                        anchor: np.ndarray | None = None) -> np.ndarray:
    """[P] bool, the connected part (neighbouring voxels of `voxel_size`) of [P, 3] points that
    holds the object: the one nearest `seed` [3], or the one with most of `anchor` [P] bool."""
    labels = connected_voxel_groups(voxel_keys(points, voxel_size))
    if anchor is not None and anchor.any():
        chosen = np.bincount(labels[anchor]).argmax()
    elif seed is not None:
        chosen = labels[np.argmin(np.linalg.norm(points - seed, axis=1))]
    else:
        chosen = np.bincount(labels).argmax()
    return labels == chosen


def inside_convex_hull(hull_points: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """[P] bool, which [P, 3] points lie inside the convex hull of [H, 3] `hull_points` (open3d
    hull, open3d occupancy); None when the hull is degenerate (< 4 points, flat)."""
    if len(hull_points) < 4:
        return None
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(hull_points))
    try:
        hull, _ = cloud.compute_convex_hull()
    except RuntimeError:  # qhull: coplanar or collinear input
        return None
    if len(hull.triangles) < 4:
        return None
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(hull))
    query = o3d.core.Tensor(points.astype(np.float32))
    return scene.compute_occupancy(query).numpy().astype(bool)


def statistical_outliers(points: np.ndarray, neighbors: int, std_ratio: float) -> np.ndarray:
    """[P] bool, points whose mean distance to their `neighbors` nearest is beyond the mean of
    all by more than `std_ratio` standard deviations, and beyond twice the median.

    open3d's remove_statistical_outlier applies the first rule alone, which on evenly spaced
    surfaces (a tiny spread of distances) cuts every corner and edge away; the second rule keeps
    whatever is about as close to its neighbours as the surface is sampled.
    """
    if len(points) <= neighbors:
        return np.zeros(len(points), dtype=bool)
    distance, _ = cKDTree(points).query(points, k=neighbors + 1)
    mean = distance[:, 1:].mean(axis=1)
    cut = max(mean.mean() + std_ratio * mean.std(), 2.0 * float(np.median(mean)))
    return mean > cut


@torch.no_grad()
def extract_object(splats, feature: Tensor, threshold: float, config: ObjectsConfig, *,
                   seed: np.ndarray | None = None, members: np.ndarray | None = None,
                   views: list[Camera] | None = None,
                   render: RenderConfig | None = None,
                   depths: list[np.ndarray | None] | None = None) -> ExtractedObject:
    """Cut the object of a discriminative feature out of the model.

    Args:
        splats: mapping name -> Tensor (means [N, 3], quats, log_scales, opacities [N] logits,
            sh0 [N, 1, 3], shN, features [N, D]): a ParameterDict or detached tensors.
        feature: [D] discriminative feature (need not be unit), or [P, D] the features of an
            object's parts (`ObjectInfo.part_features`): a Gaussian near any of them is selected.
        threshold: cosine threshold t (`QueryConfig.threshold`; paper 0.7).
        seed: [3] a world point on the object (a pixel prompt's surface point), or
        members: [N] bool, Gaussians known to belong to it (an object of `cluster_objects`):
            either picks the connected part of the selection; with neither, the largest part.
        views: cameras (keyframes) to take the point cloud from, as the surface the object
            renders alone there (`surface_points`, needs `render`); None: its opaque Gaussians'
            centres.
        depths: per view, its measured depth [H, W] in metres (0: none) or None: where the object
            is the visible surface, its points are taken from it (`surface_from_depth`).

    Raises ValueError when no opaque Gaussian is similar enough to `feature`.
    """
    means = splats["means"].detach().float().cpu().numpy().astype(np.float64)
    unit = _unit(splats["features"].detach().cpu())
    feature = feature.detach().cpu().float()
    opaque = (torch.sigmoid(splats["opacities"].detach().cpu()) >= config.min_opacity).numpy()
    cosine = cosine_to(unit, feature).numpy()
    selected = np.flatnonzero((cosine >= threshold) & opaque)
    anchor = None if members is None else np.asarray(members, bool)[selected]
    if members is not None and not anchor.any():  # the object's own Gaussians, all below t
        part = np.flatnonzero(np.asarray(members, bool) & opaque)
    elif len(selected) == 0:
        raise ValueError(f"no Gaussian has a feature within cosine {threshold} of the query")
    else:
        part = selected[connected_part_near(means[selected], config.voxel_size, seed=seed,
                                            anchor=anchor)]
    if len(part) == 0:
        raise ValueError("the object has no opaque Gaussians")
    mask = np.zeros(len(means), dtype=bool)
    mask[part] = True
    inside = inside_convex_hull(means[part], means)
    if inside is not None:  # optionally not what is clearly another thing (the table at a rim)
        mask |= inside & (cosine >= config.hull_min_cosine)
    # Statistical outliers among the opaque Gaussians; transparent ones inside the hull stay in
    # the subset (they shade the object) but give no points.
    keep = np.flatnonzero(mask & opaque)
    mask[keep[statistical_outliers(means[keep], config.outlier_neighbors,
                                   config.outlier_std_ratio)]] = False
    gaussians = subset(splats, mask)
    if views and render is None:
        raise ValueError("extract_object: views need a render config")
    if views:
        seen = None
        if depths is not None and config.surface_from_depth:
            seen = (splats, torch.from_numpy(mask).to(splats["means"].device), depths)
        points, colors = surface_points(gaussians, views, render, config, measured=seen)
    else:
        points_index = np.flatnonzero(mask & opaque)
        points = means[points_index]
        colors = np.round(base_rgb(splats).cpu().numpy()[points_index] * 255).astype(np.uint8)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if len(points) == 0:  # nothing rendered opaquely enough in the views
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(means[mask]))
    aabb = cloud.get_axis_aligned_bounding_box()
    try:
        obb = cloud.get_oriented_bounding_box()
    except RuntimeError:  # fewer than 4 points, or flat
        obb = o3d.geometry.OrientedBoundingBox.create_from_axis_aligned_bounding_box(aabb)
    return ExtractedObject(mask=mask, splats=gaussians, points=points, colors=colors,
                           feature=_unit(feature.reshape(-1, feature.shape[-1])[0]).numpy(),
                           aabb=(np.asarray(aabb.min_bound), np.asarray(aabb.max_bound)), obb=obb)


@torch.no_grad()
def surface_points(gaussians: dict[str, Tensor], views: list[Camera], render: RenderConfig,
                   config: ObjectsConfig, measured=None) -> tuple[np.ndarray, np.ndarray]:
    """([P, 3] points, [P, 3] uint8 colours) of the surface the Gaussian subset renders alone in
    `views` (at `surface_scale` of their resolution): every pixel it covers with opacity at
    least `surface_min_alpha`, back-projected at its blended depth, thinned to one point per
    `surface_voxel` (open3d).

    Why not the Gaussians' centres: they lie up to a scale away from the surface and thin it to
    their spacing; the rendered depth is the surface the model shows, and alone the object shows
    its occluded sides too.

    `measured` = (the whole model, [N] bool the subset's Gaussians in it, per view a measured
    depth [H, W] or None): where the subset gives at least half of what the whole model shows
    (eroded by a pixel: edges mix with what lies behind) and the sensor measured depth, the
    point is back-projected at the measured depth, if that lies within
    `surface_depth_tolerance` of the model's.
    """
    points, colors = [], []
    for index, view in enumerate(views):
        camera = view.scaled(config.surface_scale)
        viewmat, K = camera_tensors(camera, gaussians["means"].device)
        out = render_view(gaussians, viewmat, K, camera.width, camera.height, sh_degree=0,
                          render=render, with_depth=True)  # base colour: as everywhere else
        alpha = out.alphas.cpu().numpy()
        rows, cols = np.nonzero(alpha >= config.surface_min_alpha)
        if len(rows) == 0:
            continue
        depth = np.zeros(alpha.shape)
        depth[rows, cols] = out.depths.cpu().numpy()[rows, cols] / alpha[rows, cols]
        if measured is not None and measured[2][index] is not None:
            sensor = depth_at(measured[2][index], camera.height, camera.width)
            share = selection_shares(measured[0], measured[1][:, None], camera, render)[..., 0]
            seen = (ndimage.binary_erosion(share.cpu().numpy() >= 0.5) & (sensor > 0)
                    & (np.abs(sensor - depth) <= config.surface_depth_tolerance))
            use = seen[rows, cols]
            depth[rows[use], cols[use]] = sensor[rows[use], cols[use]]
        points.append(backproject(camera, depth, rows, cols))
        rgb = out.rgb.cpu().numpy()[rows, cols] / alpha[rows, cols, None]
        colors.append(np.clip(rgb, 0.0, 1.0))
    if not points:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.concatenate(points)))
    cloud.colors = o3d.utility.Vector3dVector(np.concatenate(colors))
    cloud = cloud.voxel_down_sample(config.surface_voxel)
    return (np.asarray(cloud.points),
            np.round(np.asarray(cloud.colors) * 255).astype(np.uint8))

@torch.no_grad()
def pixel_prompt(splats, camera: Camera, u: float, v: float,
                 render: RenderConfig) -> tuple[Tensor, np.ndarray | None]:
    """(the discriminative feature [D] rendered at pixel (u = column, v = row) of `camera`, the
    world point [3] of the surface there or None where the model shows little (alpha < 0.5)).
    One render gives both. ValueError for a pixel outside the image or where nothing renders."""
    if not (0 <= u < camera.width and 0 <= v < camera.height):
        raise ValueError(f"pixel ({u}, {v}) lies outside the {camera.width}x{camera.height} "
                         f"image")
    viewmat, K = camera_tensors(camera, splats["means"].device)
    out = render_view(splats, viewmat, K, camera.width, camera.height, sh_degree=0, render=render,
                      with_rgb=False, with_features=True, with_depth=True)
    feature = out.features[int(v), int(u)]
    if float(feature.norm()) == 0.0:
        raise ValueError(f"the model renders nothing at pixel ({u}, {v}) of {camera.name}")
    return feature, surface_at(out.alphas, out.depths, camera, u, v)

def write_point_cloud(path: str | Path, points: np.ndarray, colors: np.ndarray) -> None:
    """Write [P, 3] points with [P, 3] uint8 colours as a binary PLY with `x y z red green blue`
    vertices (or a PCD, by suffix), through open3d."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors, np.float64) / 255.0)
    with atomic_path(path) as tmp:
        if not o3d.io.write_point_cloud(str(tmp), cloud):
            raise ValueError(f"open3d could not write {path}")
