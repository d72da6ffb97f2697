"""Fast CPU backend: the C++ extension `_raster_cpu` (OpenMP, hand-written backwards).

Two autograd functions: the projection (`project_cpu`, the maths of `project.py` fused into one
pass) and the rasterization (`rasterize_cpu`, the per-pixel rule of `reference.py`'s docstring,
16-pixel SIMD rows over 16 x 16 tiles). float32 and float64. Sources in csrc/: raster_cpu.h (the
design, shared pieces and every declaration), bin_cpu.cpp, forward_cpu.cpp, backward_cpu.cpp,
project_cpu.cpp, sh_cpu.cpp and bindings.cpp.

Also SH colour (`sh_colors_cpu`, `model/sh.py`'s eval_sh fused into one pass per Gaussian), here
because it lives in the same extension.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cgc_core.config import RenderConfig

from .project import Projection, tile_grid

try:
    from . import _raster_cpu
except ImportError as err:  # the .so is built, not shipped in git
    _raster_cpu = None
    _IMPORT_ERROR = err
else:
    _IMPORT_ERROR = None


def is_available() -> bool:
    """True when the C++ extension is built and importable."""
    return _raster_cpu is not None


def _extension():
    if _raster_cpu is None:
        raise RuntimeError(
            "the CPU rasterizer extension cgc_core.render._raster_cpu is not built: run "
            "scripts/setup.sh (or `python setup.py build_ext --inplace` in the repository root)"
            f" [{_IMPORT_ERROR}]"
        )
    return _raster_cpu


class _ProjectCPU(torch.autograd.Function):
    """Autograd wrapper of the fused projection (project_cpu.cpp): gradients for means, quats and
    scales; radii are not differentiable; the camera gets none (see `project_cpu`)."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmat, K, width, height, near, far, eps2d):
        means2d, conics, depths, radii = _extension().project_forward(
            means, quats, scales, viewmat, K, width, height, near, far, eps2d)
        ctx.save_for_backward(means, quats, scales, viewmat, K)
        ctx.camera = (width, height, near, far, eps2d)
        ctx.mark_non_differentiable(radii)
        return means2d, conics, depths, radii

    @staticmethod
    def backward(ctx, g_means2d, g_conics, g_depths, _g_radii):
        means, quats, scales, viewmat, K = ctx.saved_tensors
        zeros = lambda t, *shape: t if t is not None else means.new_zeros(shape)  # noqa: E731
        n = means.shape[0]
        g_means, g_quats, g_scales = _extension().project_backward(
            means,
            quats,
            scales,
            viewmat,
            K,
            *ctx.camera,
            zeros(g_means2d, n, 2).contiguous(),
            zeros(g_conics, n, 3).contiguous(),
            zeros(g_depths, n).contiguous(),
        )
        return g_means, g_quats, g_scales, None, None, None, None, None, None, None


def project_cpu(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    near: float = RenderConfig.near,
    far: float = RenderConfig.far,
    eps2d: float = RenderConfig.eps2d,
) -> Projection:
    """`project.project_gaussians` fused in C++ with a hand-written backward (~15x faster).

    Same arguments and result, to float rounding (tests/core/render/test_project.py);
    differentiable w.r.t. means, quats and scales. The camera (viewmat, K) gets no gradient:
    raises ValueError if it requires one (use `project_gaussians` for that).
    """
    if viewmat.requires_grad or K.requires_grad:
        raise ValueError("project_cpu gives the camera no gradient; use project.project_gaussians")
    dtype = means.dtype
    means2d, conics, depths, radii = _ProjectCPU.apply(
        means.contiguous(),
        quats.to(dtype).contiguous(),
        scales.to(dtype).contiguous(),
        viewmat.detach().to(dtype).contiguous(),
        K.detach().to(dtype).contiguous(),
        width,
        height,
        float(near),
        float(far),
        float(eps2d),
    )
    return Projection(means2d=means2d, conics=conics, depths=depths, radii=radii)


def bin_gaussians(
    depths: Tensor,
    rects: Tensor,
    width: int,
    height: int,
    means2d: Tensor | None = None,
    conics: Tensor | None = None,
    opacities: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-tile Gaussian lists in front-to-back order (the rule of `project.depth_order`: by
    depth, ties by index; sorted in C++ with a stable radix sort, faster than torch.sort).

    Args:
        depths: [N] camera-space z.
        rects: [N, 4] int32 tile rects (`project.tile_rects`).
        width, height: image size.
        means2d, conics, opacities: [N, 2], [N, 3], [N] (one float dtype), all or none: each rect
            is then cut to `project.alpha_tile_rects` (computed in C++, the same rule).

    Returns:
        tile_offsets [T + 1] int64 (tile t's list is tile_ids[offsets[t]:offsets[t + 1]], tiles
        row-major) and tile_ids [n_isect] int32.
    """
    tiles_x, tiles_y = tile_grid(width, height)
    box = [t for t in (means2d, conics, opacities) if t is not None]
    if len(box) not in (0, 3):
        raise ValueError("bin_gaussians: pass means2d, conics and opacities together, or none")
    box = [t.detach().contiguous() for t in box]  # none: an extension built before them works
    return _extension().bin_gaussians(
        depths.detach().contiguous(), rects.contiguous(), tiles_x, tiles_y, *box
    )


class _RasterizeCPU(torch.autograd.Function):
    """Autograd wrapper: forward saves final T and the last contributor per pixel (as 3DGS does)
    and the tile lists; backward walks each pixel's contributors back to front."""

    @staticmethod
    def forward(
        ctx, means2d, conics, colors, opacities, background, tile_offsets, tile_ids, width, height
    ):
        out, final_t, n_contrib = _extension().rasterize_forward(
            means2d, conics, colors, opacities, background, tile_offsets, tile_ids, width, height
        )
        ctx.save_for_backward(
            means2d,
            conics,
            colors,
            opacities,
            background,
            tile_offsets,
            tile_ids,
            final_t,
            n_contrib,
        )
        ctx.size = (width, height)
        return out, 1.0 - final_t

    @staticmethod
    def backward(ctx, grad_out, grad_alpha):
        (
            means2d,
            conics,
            colors,
            opacities,
            background,
            tile_offsets,
            tile_ids,
            final_t,
            n_contrib,
        ) = ctx.saved_tensors
        width, height = ctx.size
        # An output that did not reach the loss comes as None: it contributes nothing.
        if grad_out is None:
            grad_out = colors.new_zeros(height, width, colors.shape[1])
        if grad_alpha is None:
            grad_alpha = torch.zeros_like(final_t)
        grad_out, grad_alpha = grad_out.contiguous(), grad_alpha.contiguous()
        g_means2d, g_conics, g_colors, g_opacities = _extension().rasterize_backward(
            means2d,
            conics,
            colors,
            opacities,
            background,
            tile_offsets,
            tile_ids,
            final_t,
            n_contrib,
            grad_out,
            grad_alpha,
            width,
            height,
        )
        # The background is seen through the final transmittance of every pixel.
        g_background = (
            (final_t[..., None] * grad_out).sum((0, 1)) if ctx.needs_input_grad[4] else None
        )
        return g_means2d, g_conics, g_colors, g_opacities, g_background, None, None, None, None


def rasterize_cpu(
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
    """Rasterizes projected Gaussians with the C++ kernel (arguments as `rasterize_reference`).

    alpha_box: cut each rect to `project.alpha_tile_rects` (in C++) before binning; False bins
    by `rects` alone (the old rule, for benchmarks). Either way the results are bit-identical.

    Returns:
        colors [H, W, C] and alphas [H, W] (= 1 - final transmittance).
    """
    if means2d.device.type != "cpu":
        raise ValueError(f"the cpu backend needs CPU tensors, got {means2d.device}")
    dtype = means2d.dtype
    conics = conics.contiguous().to(dtype)
    opacities = opacities.contiguous().to(dtype)
    box = (means2d, conics, opacities) if alpha_box else ()
    tile_offsets, tile_ids = bin_gaussians(depths.to(dtype), rects, width, height, *box)
    return _RasterizeCPU.apply(
        means2d.contiguous(),
        conics,
        colors.contiguous().to(dtype),
        opacities,
        background.contiguous().to(dtype),
        tile_offsets,
        tile_ids,
        width,
        height,
    )


class _SHColorsCPU(torch.autograd.Function):
    """Autograd wrapper of the fused SH colour (sh_cpu.cpp): gradients for sh0, shN and dirs;
    the backward recomputes the basis instead of saving it."""

    @staticmethod
    def forward(ctx, degree, sh0, shN, dirs, visible):
        ctx.save_for_backward(sh0, shN, dirs, visible)
        ctx.degree = degree
        return _extension().sh_forward(degree, sh0, shN, dirs, visible)

    @staticmethod
    def backward(ctx, grad_rgb):
        sh0, shN, dirs, visible = ctx.saved_tensors
        g_sh0, g_shN, g_dirs = _extension().sh_backward(
            ctx.degree, sh0, shN, dirs, visible, grad_rgb.contiguous())
        return None, g_sh0, g_shN, g_dirs, None


def sh_colors_cpu(
    degree: int,
    sh0: Tensor,  # [N, 1, 3]
    shN: Tensor,  # [N, K - 1, 3], K >= (degree + 1)^2
    dirs: Tensor,  # [N, 3] camera centre -> Gaussian, any length
    visible: Tensor | None = None,  # [N] bool / int: rows to compute; None = all
) -> Tensor:
    """`model.sh.eval_sh` for degree 1..3 in C++ ([N, 3] RGB clamped at 0), differentiable
    w.r.t. sh0, shN and dirs. Rows with visible == 0 are left at 0 with zero gradients: pass
    the projection's `radii > 0` when only the rasterizer reads the colours (it never reads a
    culled Gaussian's). Equal to the torch version to float rounding, not bit for bit."""
    dtype = dirs.dtype
    if visible is not None:
        visible = visible.to(torch.int32).contiguous()
    return _SHColorsCPU.apply(int(degree), sh0.to(dtype).contiguous(),
                              shN.to(dtype).contiguous(), dirs.contiguous(), visible)
