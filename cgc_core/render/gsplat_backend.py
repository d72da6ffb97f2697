"""gsplat backend (CUDA): gsplat 1.5.3's kernels mapped onto RenderOutput.

It goes through gsplat's stages (`fully_fused_projection`, `isect_tiles`, `isect_offset_encode`,
`rasterize_to_pixels`) exactly as `gsplat.rasterization` does with packed=False, a single camera,
render_mode "RGB+D" and rasterize_mode "classic", rather than through `rasterization` itself:
its meta["means2d"] is [1, N, 2] and a [N, 2] view of it would not be in the autograd graph, so
`retain_grad()` on it would see no gradient. Here the [N, 2] tensor returned as `means2d` is the
very tensor the rasterization consumes, so its `.grad` is the view-space gradient.

Semantics as the other backends (see `cgc_core.render`), with gsplat's own differences:
- gsplat's kernels compute in float32 (inputs are cast; outputs are float32);
- its tile binning uses an axis-aligned box of 3.33 sigma per axis (radii [N, 2]; opacities are
  not passed, so the box is not shrunk by opacity), not the square of radius 3 sqrt(lambda_max);
  `radii` here is the larger of the two, and its off-screen cull uses that box too. Every pixel
  where alpha >= 1/255 lies inside gsplat's box; cgc's square can leave out tails with alpha up to
  opacity exp(-4.5) (< 0.011, only for opacity > 0.353), so gsplat can blend a few faint tail
  pairs the other backends do not. Below opacity 0.353 the two blend the same pairs;
- alpha is clamped at 0.999, not 0.99 (the same for opacities below 0.99).

tests/core/render/test_gsplat_torch_stages.py runs this module on a CPU through gsplat's
pure-PyTorch stages (`GsplatStages`) and checks every output and gradient against the CPU
backend within exactly those differences; on a GPU the same tests run gsplat's CUDA kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from cgc_core.config import RenderConfig

from .project import TILE_SIZE


@dataclass(frozen=True)
class GsplatStages:
    """The four gsplat stage functions this backend calls, each with the signature of its
    namesake in `gsplat.cuda._wrapper` (gsplat 1.5.3).

    The default (`cuda_stages`) is gsplat's CUDA kernels. Another set (e.g. adapters over gsplat's
    pure-PyTorch `gsplat.cuda._torch_impl`, as tests/core/render/gsplat_torch_stages.py) runs this
    module's own code path on another device, which is how it is checked without a GPU.
    """

    fully_fused_projection: Callable[..., tuple]
    """(means, covars, quats, scales, viewmats, Ks, width, height, eps2d=, near_plane=,
    far_plane=, packed=) -> radii [1, N, 2] int32, means2d [1, N, 2], depths [1, N],
    conics [1, N, 3], compensations."""
    isect_tiles: Callable[..., tuple]
    """(means2d [1, N, 2], radii [1, N, 2], depths [1, N], tile_size, tiles_x, tiles_y,
    packed=) -> tiles_per_gauss, isect_ids [M] int64, flatten_ids [M] int32."""
    isect_offset_encode: Callable[..., Tensor]
    """(isect_ids [M], n_images, tiles_x, tiles_y) -> offsets [1, tiles_y, tiles_x] int32."""
    rasterize_to_pixels: Callable[..., tuple]
    """(means2d [1, N, 2], conics [1, N, 3], colors [1, N, C], opacities [1, N], width, height,
    tile_size, offsets, flatten_ids, backgrounds= [1, C]) -> colors [1, H, W, C],
    alphas [1, H, W, 1]."""
    device_type: str = "cuda"
    """The device type the stages run on; inputs on another device are refused."""


def cuda_stages() -> GsplatStages:
    """gsplat's CUDA kernels (imports gsplat; they need CUDA tensors)."""
    from gsplat.cuda import _wrapper

    return GsplatStages(
        fully_fused_projection=_wrapper.fully_fused_projection,
        isect_tiles=_wrapper.isect_tiles,
        isect_offset_encode=_wrapper.isect_offset_encode,
        rasterize_to_pixels=_wrapper.rasterize_to_pixels,
    )


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
    stages: GsplatStages | None = None,
):
    """Renders with gsplat on CUDA; arguments and result as `cgc_core.render.rasterize`.

    stages: the gsplat stage functions to call; None = gsplat's CUDA kernels (`cuda_stages`).
    """
    from . import RenderOutput

    if stages is None:
        stages = cuda_stages()
    if means.device.type != stages.device_type:
        raise ValueError(
            f"the gsplat backend needs {stages.device_type.upper()} tensors, got {means.device}"
        )
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

    radii, means2d_b, depths_b, conics_b, _ = stages.fully_fused_projection(
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
    _, isect_ids, flatten_ids = stages.isect_tiles(
        means2d[None], radii, depths_b, TILE_SIZE, tiles_x, tiles_y, packed=False
    )
    offsets = stages.isect_offset_encode(isect_ids, 1, tiles_x, tiles_y)
    image, alphas = stages.rasterize_to_pixels(
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
