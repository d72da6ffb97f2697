"""gsplat backend (CUDA): gsplat 1.5.3's kernels mapped onto RenderOutput.

It goes through gsplat's stages (`fully_fused_projection`, `isect_tiles`, `isect_offset_encode`,
`rasterize_to_pixels`) exactly as `gsplat.rasterization` does with packed=False, a single camera,
render_mode "RGB+D" and rasterize_mode "classic", rather than through `rasterization` itself:
its meta["means2d"] is [1, N, 2] and a [N, 2] view of it would not be in the autograd graph, so
`retain_grad()` on it would see no gradient. Here the [N, 2] tensor returned as `means2d` is the
very tensor the rasterization consumes, so its `.grad` is the view-space gradient.

Semantics as the other backends (see `cgc_core.render`), with gsplat's own differences:
- gsplat's kernels compute in float32 (inputs are cast);
- its tile binning uses an axis-aligned box of 3.33 sigma per axis (radii [N, 2]; opacities are
  not passed, so the box is not shrunk by opacity), not the square of radius 3 sqrt(lambda_max);
  `radii` here is the larger of the two. A Gaussian can therefore be listed in a slightly
  different set of tiles than in the CPU / reference backends, which changes pixels only by
  its tail far from the centre (alpha near 1/255).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cgc_core.config import RenderConfig

from .project import TILE_SIZE


def rasterize_gsplat(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, C]
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor,  # [C]
    render_depth: bool = True,
    near: float = RenderConfig.near,
    far: float = RenderConfig.far,
    eps2d: float = RenderConfig.eps2d,
):
    """Renders with gsplat on CUDA; arguments and result as `cgc_core.render.rasterize`."""
    from gsplat.cuda._wrapper import (
        fully_fused_projection,
        isect_offset_encode,
        isect_tiles,
        rasterize_to_pixels,
    )

    from . import RenderOutput

    if means.device.type != "cuda":
        raise ValueError(f"the gsplat backend needs CUDA tensors, got {means.device}")
    n, channels = means.shape[0], colors.shape[1]
    dtype = torch.float32  # gsplat's kernels are float32 only
    means, quats, scales = means.to(dtype), quats.to(dtype), scales.to(dtype)
    opacities, colors, background = opacities.to(dtype), colors.to(dtype), background.to(dtype)
    viewmats, Ks = viewmat.to(dtype)[None], K.to(dtype)[None]  # one camera
    if n == 0:  # gsplat's kernels are not written for empty launches
        image = background.expand(height, width, channels).clone()
        zeros = means.new_zeros(height, width)
        # Keep the API promise that means2d is a non-leaf tensor of the graph.
        means2d = means[:, :2] * 1.0
        return RenderOutput(colors=image + 0.0 * means2d.sum(), alphas=zeros,
                            depths=zeros.clone() if render_depth else None, means2d=means2d,
                            radii=torch.zeros(0, dtype=torch.int32, device=means.device))

    radii, means2d_b, depths_b, conics_b, _ = fully_fused_projection(
        means, None, quats, scales, viewmats, Ks, width, height,
        eps2d=eps2d, near_plane=near, far_plane=far, packed=False,
    )
    # [N, 2]: returned and consumed below, so retain_grad() sees the gradient
    means2d = means2d_b[0]
    feats, bg = colors, background
    if render_depth:  # as gsplat's "RGB+D": z as one more channel with a zero background
        feats = torch.cat([colors, depths_b[0][:, None]], dim=1)
        bg = torch.cat([background, background.new_zeros(1)])
    tiles_x, tiles_y = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
    _, isect_ids, flatten_ids = isect_tiles(
        means2d[None], radii, depths_b, TILE_SIZE, tiles_x, tiles_y, packed=False
    )
    offsets = isect_offset_encode(isect_ids, 1, tiles_x, tiles_y)
    image, alphas = rasterize_to_pixels(
        means2d[None],
        conics_b,
        feats[None],
        opacities[None],
        width,
        height,
        TILE_SIZE,
        offsets,
        flatten_ids,
        backgrounds=bg[None],
    )
    image, alphas = image[0], alphas[0, ..., 0]
    return RenderOutput(
        colors=image[..., :channels],
        alphas=alphas,
        depths=image[..., channels] if render_depth else None,
        means2d=means2d,
        radii=radii[0].max(dim=-1).values.to(torch.int32),
    )
