"""gsplat's pure-PyTorch stages (`gsplat.cuda._torch_impl`) behind the signatures of its CUDA
wrappers, so that `cgc_core.render.gsplat_backend` runs its own code path on a CPU.

gsplat 1.5.3 ships `_fully_fused_projection`, `_isect_tiles`, `_isect_offset_encode` and
`_rasterize_to_pixels` in plain torch. Three of them run on a CPU as they are; the adapters below
only translate the wrapper's arguments (quats + scales instead of a covariance, keyword flags).
`_rasterize_to_pixels` does not run on a CPU as shipped: it asks the CUDA kernel
`rasterize_to_indices_in_range` which (Gaussian, pixel) pairs contribute, and blends them with
nerfacc (`accumulate`). `torch_stages().rasterize_to_pixels` therefore runs gsplat's own
`_rasterize_to_pixels` with those two helpers swapped for the CPU ports below:

- `rasterize_to_indices_in_range_cpu`: the per-pixel rule of gsplat's kernel
  (csrc/RasterizeToIndices3DGS.cu): walk the tile's list front to back from batch `range_start`,
  alpha = min(0.999, opacity exp(-sigma)), skip sigma < 0 or alpha < 1/255, stop before the
  Gaussian that takes the transmittance to <= 1e-4; pairs grouped by pixel, in list order.
- `accumulate_cpu`: `_torch_impl.accumulate` with nerfacc's two calls written in torch
  (weights = alpha x exclusive product of (1 - alpha) along each pixel's pairs, summed per pixel).

The backward is torch autograd through that blend (as gsplat's torch path intends), not gsplat's
CUDA backward.
"""

from __future__ import annotations

import math
from unittest import mock

import torch
from gsplat.cuda import _torch_impl, _wrapper
from torch import Tensor

from cgc_core.render.gsplat_backend import GsplatStages

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat/cuda/include/Common.h
ALPHA_CLAMP = 0.999  # the kernels' min(0.999f, ...)
T_STOP = 1e-4  # "next_T <= 1e-4: this pixel is done"


def fully_fused_projection(
    means, covars, quats, scales, viewmats, Ks, width, height, eps2d=0.3, near_plane=0.01,
    far_plane=1e10, radius_clip=0.0, packed=False, sparse_grad=False, calc_compensations=False,
    camera_model="pinhole", opacities=None,
):
    """`_wrapper.fully_fused_projection` (unpacked, no radius clip, no opacity box) in torch."""
    assert not packed and not sparse_grad and radius_clip == 0.0 and opacities is None
    if covars is None:
        covars, _ = _torch_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    else:  # [..., N, 6] upper triangle -> [..., N, 3, 3]
        a, b, c, d, e, f = covars.unbind(-1)
        covars = torch.stack([a, b, c, b, d, e, c, e, f], -1).unflatten(-1, (3, 3))
    return _torch_impl._fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d, near_plane, far_plane,
        calc_compensations, camera_model,
    )


def isect_tiles(
    means2d, radii, depths, tile_size, tile_width, tile_height, sort=True, segmented=False,
    packed=False, n_images=None, image_ids=None, gaussian_ids=None,
):
    """`_wrapper.isect_tiles` (unpacked) in torch, sorted stably: the CUDA kernel writes each
    Gaussian's pairs in index order and sorts them with CUB's (stable) radix sort, so equal depths
    keep index order; `_isect_tiles` sorts with an unstable torch.sort."""
    assert not packed
    tiles_per_gauss, isect_ids, flatten_ids = _torch_impl._isect_tiles(
        means2d, radii, depths, tile_size, tile_width, tile_height, sort=False
    )
    if sort:
        isect_ids, order = torch.sort(isect_ids, stable=True)
        flatten_ids = flatten_ids[order]
    return tiles_per_gauss, isect_ids, flatten_ids


def isect_offset_encode(isect_ids, n_images, tile_width, tile_height):
    """`_wrapper.isect_offset_encode` in torch."""
    return _torch_impl._isect_offset_encode(isect_ids, n_images, tile_width, tile_height)


@torch.no_grad()
def rasterize_to_indices_in_range_cpu(
    range_start: int,
    range_end: int,
    transmittances: Tensor,  # [I, H, W]
    means2d: Tensor,  # [I, N, 2]
    conics: Tensor,  # [I, N, 3]
    opacities: Tensor,  # [I, N]
    image_width: int,
    image_height: int,
    tile_size: int,
    isect_offsets: Tensor,  # [I, tiles_y, tiles_x]
    flatten_ids: Tensor,  # [n_isects]
) -> tuple[Tensor, Tensor, Tensor]:
    """The CPU port of `_wrapper.rasterize_to_indices_in_range` (module docstring).

    Returns:
        gaussian ids [M], pixel ids [M] (row-major) and image ids [M], grouped by (image, pixel)
        with each pixel's pairs front to back, as the CUDA kernel writes them.
    """
    n_images, n = means2d.shape[0], means2d.shape[-2]
    tiles_y, tiles_x = isect_offsets.shape[-2:]
    block = tile_size * tile_size
    ends = torch.cat([isect_offsets.flatten().long(), flatten_ids.new_tensor([len(flatten_ids)])])
    xy, con, op = means2d.reshape(-1, 2), conics.reshape(-1, 3), opacities.reshape(-1)
    found = []  # (global pixel index, gaussian id) per tile, in list order per pixel
    for tile in range(n_images * tiles_y * tiles_x):
        image, rest = divmod(tile, tiles_y * tiles_x)
        ty, tx = divmod(rest, tiles_x)
        lo = int(ends[tile]) + block * range_start
        hi = min(int(ends[tile + 1]), int(ends[tile]) + block * range_end)
        if lo >= hi:
            continue
        ids = flatten_ids[lo:hi].long()  # flat indices in [I * N]
        rows = torch.arange(ty * tile_size, min((ty + 1) * tile_size, image_height))
        cols = torch.arange(tx * tile_size, min((tx + 1) * tile_size, image_width))
        py, px = torch.meshgrid(rows, cols, indexing="ij")
        py, px = py.flatten(), px.flatten()
        dx = xy[ids, 0][None] - (px[:, None] + 0.5)  # [P, G]
        dy = xy[ids, 1][None] - (py[:, None] + 0.5)
        a, b, c = con[ids].unbind(-1)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp_max(op[ids] * torch.exp(-sigma), ALPHA_CLAMP)
        counted = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        trans = transmittances[image, py, px][:, None] * torch.cumprod(
            torch.where(counted, 1.0 - alpha, torch.ones_like(alpha)), dim=1
        )
        stops = counted & (trans <= T_STOP)  # that pair and every later one are left out
        kept = counted & (torch.cumsum(stops.int(), dim=1) == 0)
        pix, g = kept.nonzero(as_tuple=True)  # row-major: by pixel, then list order
        global_pixel = image * image_height * image_width + py[pix] * image_width + px[pix]
        found.append((global_pixel, ids[g] % n))
    if not found:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty, empty
    pixels = torch.cat([p for p, _ in found])
    gaussians = torch.cat([g for _, g in found])
    order = torch.sort(pixels, stable=True).indices  # tiles interleave rows: regroup by pixel
    pixels, gaussians = pixels[order], gaussians[order]
    per_image = image_width * image_height
    return gaussians, pixels % per_image, pixels // per_image


def accumulate_cpu(
    means2d: Tensor,  # [I, N, 2]
    conics: Tensor,  # [I, N, 3]
    opacities: Tensor,  # [I, N]
    colors: Tensor,  # [I, N, C]
    gaussian_ids: Tensor,  # [M]
    pixel_ids: Tensor,  # [M]
    image_ids: Tensor,  # [M]
    image_width: int,
    image_height: int,
) -> tuple[Tensor, Tensor]:
    """`_torch_impl.accumulate` without nerfacc (module docstring); differentiable.

    Returns:
        colors [I, H, W, C] and alphas [I, H, W, 1].
    """
    n_images, channels = means2d.shape[0], colors.shape[-1]
    pixel_coords = torch.stack([pixel_ids % image_width, pixel_ids // image_width], -1) + 0.5
    deltas = pixel_coords - means2d[image_ids, gaussian_ids]  # [M, 2]
    c = conics[image_ids, gaussian_ids]
    sigmas = (
        0.5 * (c[:, 0] * deltas[:, 0] ** 2 + c[:, 2] * deltas[:, 1] ** 2)
        + c[:, 1] * deltas[:, 0] * deltas[:, 1]
    )
    alphas = torch.clamp_max(opacities[image_ids, gaussian_ids] * torch.exp(-sigmas), ALPHA_CLAMP)
    rays = image_ids * image_height * image_width + pixel_ids  # grouped, front to back
    total = n_images * image_height * image_width
    # nerfacc.render_weight_from_alpha: exclusive product of (1 - alpha) along each ray
    _, counts = torch.unique_consecutive(rays, return_counts=True)
    ray_of_pair = torch.repeat_interleave(torch.arange(len(counts)), counts)
    first = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    position = torch.arange(len(rays)) - first
    longest = int(counts.max()) if len(counts) else 0
    padded = torch.ones(len(counts), longest + 1, dtype=alphas.dtype)
    padded = padded.index_put((ray_of_pair, position + 1), 1.0 - alphas)
    trans = torch.cumprod(padded, dim=1)[ray_of_pair, position]
    weights = alphas * trans
    # nerfacc.accumulate_along_rays: per-ray sums
    renders = torch.zeros(total, channels, dtype=colors.dtype).index_add(
        0, rays, weights[:, None] * colors[image_ids, gaussian_ids]
    )
    accs = torch.zeros(total, dtype=weights.dtype).index_add(0, rays, weights)
    image_shape = (n_images, image_height, image_width)
    return renders.reshape(*image_shape, channels), accs.reshape(*image_shape, 1)


def rasterize_to_pixels(
    means2d, conics, colors, opacities, image_width, image_height, tile_size, isect_offsets,
    flatten_ids, backgrounds=None, masks=None, packed=False, absgrad=False,
):
    """`_wrapper.rasterize_to_pixels` (unpacked, no masks) via gsplat's `_rasterize_to_pixels`,
    with its CUDA and nerfacc helpers swapped for the CPU ports above (one batch of Gaussians per
    tile per call covers every list here: batch_per_iter x 256 pairs)."""
    assert masks is None and not packed and not absgrad
    with (
        mock.patch.object(_wrapper, "rasterize_to_indices_in_range",
                          rasterize_to_indices_in_range_cpu),
        mock.patch.object(_torch_impl, "accumulate", accumulate_cpu),
    ):
        return _torch_impl._rasterize_to_pixels(
            means2d, conics, colors, opacities, image_width, image_height, tile_size,
            isect_offsets, flatten_ids, backgrounds,
            batch_per_iter=math.ceil(len(flatten_ids) / tile_size**2) + 1,
        )


def torch_stages() -> GsplatStages:
    """gsplat's torch stages, for `rasterize_gsplat(..., stages=torch_stages())` on a CPU."""
    return GsplatStages(
        fully_fused_projection=fully_fused_projection,
        isect_tiles=isect_tiles,
        isect_offset_encode=isect_offset_encode,
        rasterize_to_pixels=rasterize_to_pixels,
        device_type="cpu",
    )
