"""Pure-PyTorch tiled rasterizer: the oracle that the other backends are tested against.

It favours being obviously right over being fast: one tile at a time, all (pixel, Gaussian)
pairs of the tile as dense [P, M] tensors, autograd for the backward. It runs on any device.

Per pixel (centre at (u + 0.5, v + 0.5)), Gaussians in the tile's depth order, front to back:
    d      = mean2d - pixel centre
    sigma  = 0.5 (a dx^2 + c dy^2) + b dx dy          with (a, b, c) the conic
    skip if sigma < 0
    alpha  = min(ALPHA_MAX, opacity exp(-sigma));      skip if alpha < ALPHA_MIN
    next_T = T (1 - alpha);  stop before this Gaussian if next_T <= T_MIN
    colour += colour_i alpha T;  T = next_T
and finally colour += background T, alpha_out = 1 - T.
Because T only decreases, "stop at the first Gaussian whose next_T <= T_MIN" equals "keep the
Gaussians whose next_T > T_MIN", which is what makes the tile vectorisable (a cumprod).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .project import (
    ALPHA_MAX,
    ALPHA_MIN,
    T_MIN,
    TILE_SIZE,
    alpha_tile_rects,
    depth_order,
    intersect_rects,
    tile_grid,
)


def _blend_tile(
    px: Tensor,  # [P] pixel-centre x
    py: Tensor,  # [P] pixel-centre y
    means2d: Tensor,  # [M, 2] the tile's Gaussians, front to back
    conics: Tensor,  # [M, 3]
    colors: Tensor,  # [M, C]
    opacities: Tensor,  # [M]
    background: Tensor,  # [C]
) -> tuple[Tensor, Tensor]:
    """Front-to-back blending of M Gaussians over P pixels. Returns colours [P, C], final T [P]."""
    dx = means2d[None, :, 0] - px[:, None]  # [P, M]
    dy = means2d[None, :, 1] - py[:, None]
    a, b, c = conics[None, :, 0], conics[None, :, 1], conics[None, :, 2]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    # exp(-sigma) of a negative sigma could overflow and poison the backward with 0 * inf.
    sigma_pos = torch.clamp(sigma, min=0.0)
    alpha = torch.clamp(opacities[None, :] * torch.exp(-sigma_pos), max=ALPHA_MAX)
    keep = (sigma >= 0) & (alpha >= ALPHA_MIN)
    alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
    one_minus = 1.0 - alpha
    t_after = torch.cumprod(one_minus, dim=1)  # T after each Gaussian, as if none stopped
    included = t_after > T_MIN
    t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], dim=1)
    weights = torch.where(included, alpha * t_before, torch.zeros_like(alpha))
    t_final = torch.prod(torch.where(included, one_minus, torch.ones_like(one_minus)), dim=1)
    out = weights @ colors + t_final[:, None] * background[None, :]
    return out, t_final


def rasterize_reference(
    means2d: Tensor,  # [N, 2]
    conics: Tensor,  # [N, 3]
    colors: Tensor,  # [N, C]
    opacities: Tensor,  # [N]
    background: Tensor,  # [C]
    depths: Tensor,  # [N]
    rects: Tensor,  # [N, 4] int32
    width: int,
    height: int,
    *,
    alpha_box: bool = True,
) -> tuple[Tensor, Tensor]:
    """Rasterizes projected Gaussians tile by tile (see the module docstring for the rule).

    Args:
        means2d: [N, 2] projected centres (pixels).
        conics: [N, 3] inverse 2D covariances (a, b, c).
        colors: [N, C] channels to blend (a depth channel is just one more).
        opacities: [N] in (0, 1).
        background: [C] added with the final transmittance.
        depths: [N] camera-space z; each tile is blended in `project.depth_order`.
        rects: [N, 4] tile rects (`project.tile_rects`).
        width, height: image size.
        alpha_box: also bin by `project.alpha_tile_rects` (as `rasterize_cpu` does); False keeps
            `rects` as given (the old rule). Either way the same (pixel, Gaussian) pairs pass;
            only the last bits can differ here, as the dense per-tile sums change length.

    Returns:
        colors [H, W, C] and alphas [H, W] (= 1 - final transmittance).
    """
    tiles_x, tiles_y = tile_grid(width, height)
    dtype, device = means2d.dtype, means2d.device
    if alpha_box:
        rects = intersect_rects(
            rects.to(torch.int32), alpha_tile_rects(means2d, conics, opacities, width, height)
        )
    order = depth_order(depths)
    rects_sorted = rects[order].to(device)
    rows, alpha_rows = [], []
    for ty in range(tiles_y):
        v0, v1 = ty * TILE_SIZE, min((ty + 1) * TILE_SIZE, height)
        in_row = (rects_sorted[:, 1] <= ty) & (ty < rects_sorted[:, 3])
        tiles, alpha_tiles = [], []
        for tx in range(tiles_x):
            u0, u1 = tx * TILE_SIZE, min((tx + 1) * TILE_SIZE, width)
            hit = in_row & (rects_sorted[:, 0] <= tx) & (tx < rects_sorted[:, 2])
            ids = order[hit]
            vv, uu = torch.meshgrid(
                torch.arange(v0, v1, device=device, dtype=dtype),
                torch.arange(u0, u1, device=device, dtype=dtype),
                indexing="ij",
            )
            px, py = uu.reshape(-1) + 0.5, vv.reshape(-1) + 0.5
            out, t_final = _blend_tile(
                px, py, means2d[ids], conics[ids], colors[ids], opacities[ids], background
            )
            tiles.append(out.reshape(v1 - v0, u1 - u0, -1))
            alpha_tiles.append((1.0 - t_final).reshape(v1 - v0, u1 - u0))
        rows.append(torch.cat(tiles, dim=1))
        alpha_rows.append(torch.cat(alpha_tiles, dim=1))
    return torch.cat(rows, dim=0), torch.cat(alpha_rows, dim=0)
