"""Growing the model at a new keyframe: new Gaussians where it is empty or wrong (SplaTAM).

Where: pixels whose rendered alpha is low, and pixels whose measured depth lies well in front of
the rendered surface. How deep: the measured depth; else the prior point cloud's points that
land on those pixels; else the pixel rays at the frame's median rendered depth; else, when
nothing is rendered there yet, the depth at which the keyframes' optical axes meet (a capture
around an object looks at it from every side: `axes_meeting_point`), or a configured depth.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from cgc_core.cameras import Camera
from cgc_core.config import LiveConfig
from cgc_core.model.sh import rgb_to_sh0


def pixels_to_fill(alphas: Tensor, rendered_depth: Tensor | None, measured_depth: Tensor | None,
                   config: LiveConfig) -> Tensor:
    """Pixels that need new Gaussians.

    Args:
        alphas: [H, W] rendered alpha.
        rendered_depth: [H, W] alpha-blended z (sum w_i z_i), or None.
        measured_depth: [H, W] metres (0 or non-finite: invalid), or None.

    Returns:
        [H, W] bool.
    """
    fill = alphas < config.grow_alpha
    if measured_depth is not None and rendered_depth is not None:
        valid = torch.isfinite(measured_depth) & (measured_depth > 0) & ~fill
        surface = rendered_depth / alphas.clamp_min(1e-6)  # depth of the rendered surface
        error = (surface - measured_depth)[valid]
        if error.numel():
            # SplaTAM: "in front by more than 50x the median error", with a floor of 1% of the
            # depth so that a near-perfect fit does not flag every pixel.
            margin = max(config.grow_depth_error * float(error.abs().median()),
                         0.01 * float(measured_depth[valid].median()))
            fill |= valid & (surface - measured_depth > margin)
    return fill


def new_gaussians(camera: Camera, image: Tensor, fill: Tensor, depth: Tensor | None,
                  fallback_depth: float, budget: int, config: LiveConfig, feature_dim: int,
                  sh_bases: int, generator: torch.Generator) -> dict[str, Tensor] | None:
    """Parameters of new Gaussians on sub-sampled `fill` pixels, or None when there are none.

    Args:
        camera: the keyframe's camera at training resolution (the resolution of every map here).
        image: [H, W, 3] float in [0, 1].
        fill: [H, W] bool, pixels to fill (`pixels_to_fill`).
        depth: [H, W] metres where known (0 / non-finite: unknown), or None.
        fallback_depth: depth (metres) for pixels without one (spread by
            `config.rays_depth_spread` when the frame has no depth at all).
        budget: most Gaussians to add.
        sh_bases: SH coefficients per colour channel of the model ((degree + 1)^2).

    Scale: the footprint of the pixels each new Gaussian stands for (depth / focal length times
    the square root of fill pixels per Gaussian); opacity `grow_opacity`; features near 0.
    """
    rows, cols = torch.nonzero(fill, as_tuple=True)
    if rows.numel() == 0 or budget <= 0:
        return None
    pick = torch.randperm(rows.numel(), generator=generator)[:budget]
    pixels_per_gaussian = rows.numel() / pick.numel()
    rows, cols = rows[pick], cols[pick]
    z = torch.full((rows.numel(),), float(fallback_depth))
    if depth is None and config.rays_depth_spread > 1.0:
        # A guessed depth is only a guess: spread the guesses log-uniformly around it, and let
        # the views that follow keep the Gaussians they agree on (as random initial points do).
        spread = math.log(config.rays_depth_spread)
        z = z * torch.exp((torch.rand(z.shape, generator=generator) * 2 - 1) * spread)
    if depth is not None:
        known = depth[rows, cols]
        usable = torch.isfinite(known) & (known > 0)
        z = torch.where(usable, known, z)
    x = (cols.float() + 0.5 - camera.cx) / camera.fx * z
    y = (rows.float() + 0.5 - camera.cy) / camera.fy * z
    c2w = torch.tensor(camera.cam_to_world, dtype=torch.float32)
    means = torch.stack([x, y, z], dim=1) @ c2w[:3, :3].T + c2w[:3, 3]
    scale = z / camera.fx * math.sqrt(pixels_per_gaussian)
    return gaussian_rows(means, image[rows, cols], scale, config, feature_dim, sh_bases, generator)


def gaussian_rows(means: Tensor, rgb: Tensor, scale: Tensor, config: LiveConfig,
                  feature_dim: int, sh_bases: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Model rows for isotropic Gaussians.

    Args:
        means: [P, 3]; rgb: [P, 3] in [0, 1]; scale: [P] standard deviation in metres.
    """
    n = means.shape[0]
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    opacity = config.grow_opacity
    return {
        "means": means.float(),
        "quats": quats,
        "log_scales": scale.clamp_min(1e-6).log()[:, None].repeat(1, 3).float(),
        "opacities": torch.full((n,), math.log(opacity / (1 - opacity))),
        "sh0": rgb_to_sh0(rgb.float().cpu()).unsqueeze(1),
        "shN": torch.zeros(n, sh_bases - 1, 3),
        "features": torch.randn(n, feature_dim, generator=generator) * config.grow_feature_std,
    }


def axes_meeting_point(cam_to_worlds: list[np.ndarray], min_angle_deg: float,
                       min_depth: float) -> np.ndarray | None:
    """The point nearest, in least squares, to every camera's optical axis; None when the axes
    do not tell one.

    A capture taken around an object (a phone circling it, a robot's arm inspecting a table)
    points every camera at it, so where the axes meet is how far away the scene is when no
    depth says so. It is the scene centre that instant-ngp and nerfstudio's processing recentre
    on. The axes tell nothing when they are nearly parallel (a robot driving forward) or meet
    behind or at a camera (a camera panning in place).

    Args:
        cam_to_worlds: [4, 4] camera-to-world poses, OpenCV axes (the axis is +z).
        min_angle_deg: the axes must spread at least like two axes this far apart: the smallest
            eigenvalue of mean(I - d dᵀ) at least (1 - cos(angle)) / 2.
        min_depth: the point must lie at least this far in front of every camera (metres).

    Returns:
        [3] world point, or None.
    """
    if len(cam_to_worlds) < 2:
        return None
    poses = np.asarray(cam_to_worlds, dtype=float)
    origins, axes = poses[:, :3, 3], poses[:, :3, 2]
    axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    # Σ (I - d dᵀ) p = Σ (I - d dᵀ) o: the normal equations of the distances to the lines.
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    normal = projectors.mean(axis=0)
    if np.linalg.eigvalsh(normal)[0] < (1.0 - math.cos(math.radians(min_angle_deg))) / 2.0:
        return None
    point = np.linalg.solve(normal, np.einsum("nij,nj->i", projectors, origins) / len(poses))
    depths = ((point[None] - origins) * axes).sum(axis=1)
    return point if bool((depths >= min_depth).all()) else None


def depth_in_view(point: np.ndarray, camera: Camera) -> float:
    """z of a world point [3] in `camera`'s frame (metres; <= 0: behind it)."""
    w2c = camera.world_to_cam
    return float(w2c[2, :3] @ point + w2c[2, 3])


def prior_points_in_view(points: np.ndarray, camera: Camera, fill: np.ndarray
                         ) -> np.ndarray:
    """Indices of prior points that project onto `fill` pixels in front of the camera.

    Args:
        points: [P, 3] world points (a SLAM map, lidar).
        camera: at the resolution of `fill`.
        fill: [H, W] bool.
    """
    w2c = camera.world_to_cam
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    ahead = z > 1e-6
    u = np.full(len(points), -1)
    v = np.full(len(points), -1)
    u[ahead] = np.floor(cam[ahead, 0] / z[ahead] * camera.fx + camera.cx).astype(int)
    v[ahead] = np.floor(cam[ahead, 1] / z[ahead] * camera.fy + camera.cy).astype(int)
    inside = ahead & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    hit = np.zeros(len(points), dtype=bool)
    hit[inside] = fill[v[inside], u[inside]]
    return np.nonzero(hit)[0]
