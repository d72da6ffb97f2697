"""Differentiable Gaussian-splatting rasterizer: one function, several backends, same outputs.

Backends:
- ``"gsplat"``: gsplat's CUDA kernels (CUDA tensors only; needs gsplat importable).
- ``"cpu"``: the native C++ kernel with a hand-written backward (`cpu.py`); CPU tensors.
- ``"reference"``: pure PyTorch with autograd (`reference.py`); any device. The oracle.

All share gsplat's / 3DGS's semantics: EWA projection (`project.py`), 16 x 16 tiles, per-tile
depth order (ties by index), front-to-back alpha blending with alpha = min(0.99,
opacity exp(-sigma)), pairs with alpha < 1/255 skipped, and a pixel stopping before the Gaussian
that would take its transmittance to <= 1e-4. Camera: OpenCV axes, world-to-camera `viewmat`;
pixel (u, v) = (column, row) has its centre at (u + 0.5, v + 0.5).
"""

from __future__ import annotations

import importlib.util
import typing
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from cgc_core.config import RenderBackend, RenderConfig

from . import cpu
from .project import project_gaussians, tile_rects
from .reference import rasterize_reference

__all__ = ["RenderOutput", "rasterize", "available_backends", "resolve_backend"]

BACKENDS = tuple(b for b in typing.get_args(RenderBackend) if b != "auto")


@dataclass
class RenderOutput:
    """What every backend returns for one camera."""

    colors: Tensor  # [H, W, C] alpha-blended channels + background * final transmittance
    alphas: Tensor  # [H, W] 1 - final transmittance
    depths: Tensor | None  # [H, W] alpha-blended camera z (sum_i w_i z_i); None without depth
    means2d: Tensor  # [N, 2] projected centres (pixels), non-leaf: call retain_grad() before
    #                   backward() and read .grad for the view-space gradient (densification)
    radii: Tensor  # [N] int32 pixel radius, 0 = culled / not visible


def _gsplat_importable() -> bool:
    return importlib.util.find_spec("gsplat") is not None


def available_backends() -> list[str]:
    """Backends usable on this machine, fastest first (gsplat only with CUDA)."""
    names = []
    if torch.cuda.is_available() and _gsplat_importable():
        names.append("gsplat")
    if cpu.is_available():
        names.append("cpu")
    names.append("reference")
    return names


def resolve_backend(name: str, device: torch.device | str) -> str:
    """The concrete backend for `name` on `device`.

    "auto" picks "gsplat" on CUDA when gsplat is importable, "cpu" on the CPU, and "reference"
    elsewhere (e.g. CUDA without gsplat). Raises ValueError for an unknown name or a backend that
    cannot run on `device`, RuntimeError when the CPU extension is not built.
    """
    device = torch.device(device)
    if name == "auto":
        if device.type == "cuda" and _gsplat_importable():
            return "gsplat"
        name = "cpu" if device.type == "cpu" else "reference"
    if name not in BACKENDS:
        raise ValueError(f"unknown render backend {name!r}; choose one of {('auto',) + BACKENDS}")
    if name == "gsplat":
        if device.type != "cuda":
            raise ValueError(f"the gsplat backend needs CUDA tensors, got device {device}")
        if not _gsplat_importable():
            raise ValueError(
                "the gsplat backend needs the gsplat package (pip install gsplat==1.5.3)"
            )
    if name == "cpu":
        if device.type != "cpu":
            raise ValueError(f"the cpu backend needs CPU tensors, got device {device}")
        if not cpu.is_available():
            cpu._extension()  # raises the "run scripts/setup.sh" error
    return name


# Colours given as a function of which Gaussians the projection keeps: [N] bool -> [N, C].
ColorsOf = Callable[[Tensor], Tensor]


def _check_inputs(means, quats, scales, opacities, colors, viewmat, K, background) -> None:
    n = means.shape[0]
    expected = {
        "means": (means, (n, 3)),
        "quats": (quats, (n, 4)),
        "scales": (scales, (n, 3)),
        "opacities": (opacities, (n,)),
        "viewmat": (viewmat, (4, 4)),
        "K": (K, (3, 3)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")
    if colors is None:  # a ColorsOf, checked once it has been called
        return
    _check_colors(colors, n, background)


def _check_colors(colors, n, background) -> None:
    if colors.dim() != 2 or colors.shape[0] != n or colors.shape[1] < 1:
        raise ValueError(f"colors must have shape [{n}, C] with C >= 1, got {list(colors.shape)}")
    if background is not None and tuple(background.shape) != (colors.shape[1],):
        raise ValueError(
            f"background must have shape [{colors.shape[1]}], got {list(background.shape)}"
        )


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor | ColorsOf,  # [N, C], or a function giving them
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor | None = None,  # [C]
    render_depth: bool = True,
    near: float = RenderConfig.near,
    far: float = RenderConfig.far,
    eps2d: float = RenderConfig.eps2d,
    backend: str = RenderConfig.backend,
) -> RenderOutput:
    """Renders Gaussians into one pinhole camera; differentiable w.r.t. every Gaussian parameter.

    Args:
        means: [N, 3] world-space centres.
        quats: [N, 4] rotations (w, x, y, z), normalised inside.
        scales: [N, 3] linear scales (already exp'd).
        opacities: [N] in (0, 1) (already sigmoid'd).
        colors: [N, C] any C >= 1 channels (3 RGB, 16 features, 19 both); or a function of
            the [N] bool mask of the Gaussians the projection keeps (radii > 0) that returns
            them, for colours that cost per Gaussian (SH): rows of the others are never read.
            (The gsplat backend projects inside its kernels, so it calls it with all True.)
        viewmat: [4, 4] world-to-camera, OpenCV axes (x right, y down, z forward).
        K: [3, 3] intrinsics.
        width, height: image size in pixels.
        background: [C] colour seen through the final transmittance; None = zeros.
        render_depth: also blend camera z into `depths` (one extra channel; no background).
        near, far: Gaussians with camera z outside [near, far] are culled.
        eps2d: low-pass dilation added to every 2D covariance's diagonal.
        backend: "auto", "gsplat", "cpu" or "reference" (see `resolve_backend`).

    Returns:
        RenderOutput. N = 0 gives the background with zero alpha.
    """
    colors_of = colors if callable(colors) else None
    _check_inputs(means, quats, scales, opacities, None if colors_of else colors, viewmat, K,
                  background)
    name = resolve_backend(backend, means.device)
    if name == "gsplat":
        if colors_of is not None:
            colors = colors_of(torch.ones(means.shape[0], dtype=torch.bool, device=means.device))
            _check_colors(colors, means.shape[0], background)
        if background is None:
            background = colors.new_zeros(colors.shape[1])
        background = background.to(colors)
        from .gsplat_backend import rasterize_gsplat

        return rasterize_gsplat(
            means,
            quats,
            scales,
            opacities,
            colors,
            viewmat,
            K,
            width,
            height,
            background=background,
            render_depth=render_depth,
            near=near,
            far=far,
            eps2d=eps2d,
        )

    camera_grad = viewmat.requires_grad or K.requires_grad
    if name == "cpu" and not camera_grad:  # the same projection, fused in C++
        proj = cpu.project_cpu(means, quats, scales, viewmat, K, width, height, near, far, eps2d)
    else:
        proj = project_gaussians(means, quats, scales, viewmat, K, width, height, near, far, eps2d)
    if colors_of is not None:
        colors = colors_of(proj.radii > 0)
        _check_colors(colors, means.shape[0], background)
    channels = colors.shape[1]
    if background is None:
        background = colors.new_zeros(channels)
    background = background.to(colors)
    feats, bg = colors, background
    if render_depth:  # depth is one more channel, with a zero background
        feats = torch.cat([colors, proj.depths[:, None].to(colors.dtype)], dim=1)
        bg = torch.cat([background, background.new_zeros(1)])
    rects = tile_rects(proj.means2d, proj.radii, width, height)
    raster = cpu.rasterize_cpu if name == "cpu" else rasterize_reference
    image, alphas = raster(
        proj.means2d, proj.conics, feats, opacities, bg, proj.depths, rects, width, height
    )
    return RenderOutput(
        colors=image[..., :channels],
        alphas=alphas,
        depths=image[..., channels] if render_depth else None,
        means2d=proj.means2d,
        radii=proj.radii,
    )
