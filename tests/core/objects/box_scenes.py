"""Gaussian models built by hand: Gaussians on the faces of boxes, each box with a known
segmentation feature and colour, so tests know which Gaussian belongs to which object without
training anything."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cgc_core.model.sh import rgb_to_sh0

FEATURE_DIM = 16


def unit_feature(index: int, dim: int = FEATURE_DIM) -> np.ndarray:
    """A one-hot feature: distinct objects get orthogonal features."""
    feature = np.zeros(dim)
    feature[index] = 1.0
    return feature


@dataclass
class Box:
    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    """Side lengths (m)."""
    feature: np.ndarray
    rgb: tuple[float, float, float]
    """Base colour in [0, 1]."""
    yaw_deg: float = 0.0
    opacity: float = 0.9


def box_rotation(box: Box) -> np.ndarray:
    yaw = math.radians(box.yaw_deg)
    return np.array([[math.cos(yaw), -math.sin(yaw), 0], [math.sin(yaw), math.cos(yaw), 0],
                     [0, 0, 1]])


def inside_box(points: np.ndarray, box: Box) -> np.ndarray:
    """[P] bool: which of [P, 3] points lie strictly inside the box."""
    local = (points - np.asarray(box.centre)) @ box_rotation(box)
    return np.all(np.abs(local) < np.asarray(box.size) / 2, axis=1)


def box_surface(box: Box, spacing: float, covering: list[Box] = ()) -> np.ndarray:
    """[P, 3] points on the six faces of a box, about `spacing` apart, less those of a face
    that another box of `covering` covers (a step off the face lands inside it): a map made
    from images has no surface under a lid or under a box on the table."""
    half = np.asarray(box.size) / 2
    points, normals = [], []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        u = np.linspace(-half[others[0]], half[others[0]],
                        max(2, math.ceil(box.size[others[0]] / spacing) + 1))
        v = np.linspace(-half[others[1]], half[others[1]],
                        max(2, math.ceil(box.size[others[1]] / spacing) + 1))
        uu, vv = np.meshgrid(u, v, indexing="ij")
        for sign in (-1.0, 1.0):
            face = np.zeros((uu.size, 3))
            face[:, others[0]], face[:, others[1]] = uu.ravel(), vv.ravel()
            face[:, axis] = sign * half[axis]
            points.append(face)
            normals.append(np.tile(np.eye(3)[axis] * sign, (uu.size, 1)))
    points, normals = np.concatenate(points), np.concatenate(normals)
    rotation = box_rotation(box)
    seen = np.ones(len(points), dtype=bool)
    for other in covering:
        stepped = (points + normals * spacing / 2) @ rotation.T + np.asarray(box.centre)
        seen &= ~inside_box(stepped, other)
    points = np.unique(np.round(points[seen], 6), axis=0)
    return points @ rotation.T + np.asarray(box.centre)


def gaussians(points: np.ndarray, feature: np.ndarray, rgb, opacity: float, std: float,
              rng: np.random.Generator, feature_noise: float = 0.05) -> dict[str, np.ndarray]:
    n = len(points)
    features = np.asarray(feature)[None] + feature_noise * rng.standard_normal((n, len(feature)))
    return {"means": points, "std": np.full(n, std), "opacity": np.full(n, opacity),
            "rgb": np.tile(np.asarray(rgb, float), (n, 1)), "features": features}


def make_model(parts: list[dict[str, np.ndarray]], sh_degree: int = 0) -> dict[str, torch.Tensor]:
    """A plain dict of tensors (as a live snapshot gives) from parts made by `gaussians`."""
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n = len(cat["means"])
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    opacity = torch.tensor(cat["opacity"], dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
    return {
        "means": torch.tensor(cat["means"], dtype=torch.float32),
        "quats": quats,
        "log_scales": torch.log(torch.tensor(cat["std"], dtype=torch.float32))[:, None].expand(
            n, 3).clone(),
        "opacities": torch.log(opacity / (1 - opacity)),
        "sh0": rgb_to_sh0(torch.tensor(cat["rgb"], dtype=torch.float32)).unsqueeze(1),
        "shN": torch.zeros(n, (sh_degree + 1) ** 2 - 1, 3),
        "features": torch.tensor(cat["features"], dtype=torch.float32),
    }


def boxes_model(boxes: list[Box], spacing: float = 0.01, std: float = 0.006, seed: int = 0,
                extra: list[dict[str, np.ndarray]] | None = None, seen_only: bool = False
                ) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """(model, [N] index of the box each Gaussian was placed on; -1 for `extra` Gaussians).

    seen_only: as in a map made from images, no Gaussian on a face another box covers (where
        the surfaces that touch matter: a lid's underside facing its tin's top is no surface
        a camera ever saw)."""
    rng = np.random.default_rng(seed)
    parts, owner = [], []
    for index, box in enumerate(boxes):
        covering = [b for i, b in enumerate(boxes) if i != index] if seen_only else []
        surface = box_surface(box, spacing, covering)
        part = gaussians(surface, box.feature, box.rgb, box.opacity, std, rng)
        parts.append(part)
        owner.append(np.full(len(part["means"]), index))
    for part in extra or []:
        parts.append(part)
        owner.append(np.full(len(part["means"]), -1))
    return make_model(parts), np.concatenate(owner)


def camera_looking_at(target, eye, width: int = 96, height: int = 72, name: str = "view"):
    """A pinhole Camera (OpenCV axes) at `eye` looking at `target`, 60-degree horizontal view."""
    from cgc_core.cameras import Camera
    from cgc_core.data.synth import look_at

    focal = width / 2 / math.tan(math.radians(30))
    return Camera(name, width, height, focal, focal, width / 2, height / 2,
                  look_at(np.asarray(eye, float), np.asarray(target, float)))


def project_pixel(camera, point) -> tuple[float, float]:
    """(u, v) pixel of a world point (pixel centres at integer + 0.5)."""
    local = np.linalg.inv(camera.cam_to_world) @ np.append(np.asarray(point, float), 1.0)
    return (camera.fx * local[0] / local[2] + camera.cx,
            camera.fy * local[1] / local[2] + camera.cy)


def model_with_hidden_plate_and_outlier():
    """Box 0 and its look-alike box 1 (same feature) 0.5 m apart; inside box 0 a plate with
    another feature (hidden from every view, as the supplementary's occluded plate); one stray
    Gaussian with box 0's feature 3.5 cm off its side (in a neighbouring voxel)."""
    rng = np.random.default_rng(0)
    red, white = (0.8, 0.1, 0.1), (0.9, 0.9, 0.9)
    boxes = [Box((0.0, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), red),
             Box((0.5, 0.0, 0.05), (0.1, 0.1, 0.1), unit_feature(0), red)]
    grid = np.stack(np.meshgrid(np.linspace(-0.03, 0.03, 6), np.linspace(-0.03, 0.03, 6)),
                    -1).reshape(-1, 2)
    plate = gaussians(np.column_stack([grid, np.full(len(grid), 0.05)]), unit_feature(1), white,
                      opacity=0.9, std=0.005, rng=rng)
    stray = gaussians(np.array([[0.085, 0.0, 0.05]]), unit_feature(0), red, opacity=0.9,
                      std=0.005, rng=rng)
    model, owner = boxes_model(boxes, extra=[plate, stray])
    owner[len(owner) - 1] = -2  # the stray
    return model, owner
