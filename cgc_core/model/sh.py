"""Real spherical harmonics for view-dependent colour, degrees 0-3 (the 3DGS basis).

Colours are stored as SH coefficients with the DC term offset so that `rgb = SH(dir) + 0.5`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cgc_core.render import cpu

C0 = 0.5 * math.sqrt(1.0 / math.pi)
C1 = math.sqrt(3.0 / (4.0 * math.pi))
C2 = (
    0.5 * math.sqrt(15.0 / math.pi),
    -0.5 * math.sqrt(15.0 / math.pi),
    0.25 * math.sqrt(5.0 / math.pi),
    -0.5 * math.sqrt(15.0 / math.pi),
    0.25 * math.sqrt(15.0 / math.pi),
)
C3 = (
    -0.25 * math.sqrt(35.0 / (2.0 * math.pi)),
    0.5 * math.sqrt(105.0 / math.pi),
    -0.25 * math.sqrt(21.0 / (2.0 * math.pi)),
    0.25 * math.sqrt(7.0 / math.pi),
    -0.25 * math.sqrt(21.0 / (2.0 * math.pi)),
    0.25 * math.sqrt(105.0 / math.pi),
    -0.25 * math.sqrt(35.0 / (2.0 * math.pi)),
)


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """[..., 3] colours in [0, 1] -> DC coefficients."""
    return (rgb - 0.5) / C0


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """The real SH basis functions of degrees 0..`degree` at unit directions (3DGS's order and
    signs).

    Args:
        dirs: [N, 3] unit vectors.
    Returns:
        [N, (degree + 1)^2].
    """
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    bands = [torch.full_like(x, C0)]
    if degree > 0:
        bands += [-C1 * y, C1 * z, -C1 * x]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        bands += [C2[0] * xy, C2[1] * yz, C2[2] * (2.0 * zz - xx - yy), C2[3] * xz,
                  C2[4] * (xx - yy)]
    if degree > 2:
        bands += [C3[0] * y * (3.0 * xx - yy), C3[1] * xy * z, C3[2] * y * (4.0 * zz - xx - yy),
                  C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy), C3[4] * x * (4.0 * zz - xx - yy),
                  C3[5] * z * (xx - yy), C3[6] * x * (xx - 3.0 * yy)]
    return torch.stack(bands, dim=1)


class _BasisProduct(torch.autograd.Function):
    """sum_k basis[n, k] * coeffs[n, k, c], with a backward of one broadcast product and one
    batched product (autograd's einsum backward took about twice as long on a CPU)."""

    @staticmethod
    def forward(ctx, basis: Tensor, coeffs: Tensor) -> Tensor:  # [N, K], [N, K, 3] -> [N, 3]
        ctx.save_for_backward(basis, coeffs)
        return torch.bmm(basis.unsqueeze(1), coeffs).squeeze(1)

    @staticmethod
    def backward(ctx, grad: Tensor):  # grad: [N, 3]
        basis, coeffs = ctx.saved_tensors
        grad_basis = torch.bmm(coeffs, grad.unsqueeze(2)).squeeze(2) \
            if ctx.needs_input_grad[0] else None
        grad_coeffs = basis.unsqueeze(2) * grad.unsqueeze(1) if ctx.needs_input_grad[1] else None
        return grad_basis, grad_coeffs


def eval_sh(degree: int, sh0: Tensor, shN: Tensor, dirs: Tensor,
            visible: Tensor | None = None) -> Tensor:
    """Evaluate SH colour: `eval_sh_reference`'s result, computed in C++ on the CPU.

    On CPU tensors with the extension built and degree >= 1 this runs the fused C++ pass
    (`render.cpu.sh_colors_cpu`: with the mask, 11.6 -> 5.2 ms forward + backward at 53k
    Gaussians in a training step, bench/results/profile_iteration.md); elsewhere
    `eval_sh_reference`. The two agree to float rounding, not bit for bit.

    Args:
        degree, sh0, shN, dirs: as `eval_sh_reference`.
        visible: [N] bool, or None. Rows where it is False may be left at 0 (with zero
            gradients) instead of computed: pass the projection's `radii > 0` when only the
            rasterizer reads the colours.
    Returns:
        [N, 3] RGB, clamped at 0.
    """
    if degree > 0 and dirs.device.type == "cpu" and cpu.is_available():
        return cpu.sh_colors_cpu(degree, sh0, shN, dirs, visible)
    return eval_sh_reference(degree, sh0, shN, dirs)


def eval_sh_reference(degree: int, sh0: Tensor, shN: Tensor, dirs: Tensor) -> Tensor:
    """Evaluate SH colour in torch (any device): the definition, which the C++ version of
    `eval_sh` is tested against.

    The higher bands are one batched product with the basis rather than one term per band: the
    backward of 15 slices of the coefficients allocated and zero-filled a full [N, K, 3]
    gradient per slice, which cost more than the rasterizer at 65k Gaussians.

    Args:
        degree: active degree (0..3); coefficients beyond it are ignored.
        sh0: [N, 1, 3] DC coefficients; shN: [N, K - 1, 3] with K >= (degree + 1)^2.
        dirs: [N, 3] viewing directions (camera centre -> Gaussian); normalised here.
    Returns:
        [N, 3] RGB, clamped at 0 (not above: HDR-ish values are allowed as in 3DGS).
    """
    result = C0 * sh0[:, 0]
    if degree > 0:
        basis = sh_basis(degree, torch.nn.functional.normalize(dirs, dim=-1))
        k = basis.shape[1]
        result = result + _BasisProduct.apply(basis[:, 1:], shN[:, :k - 1])
    return torch.clamp_min(result + 0.5, 0.0)
