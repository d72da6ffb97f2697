"""Real spherical harmonics for view-dependent colour, degrees 0-3 (the 3DGS basis).

Colours are stored as SH coefficients with the DC term offset so that `rgb = SH(dir) + 0.5`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

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


def eval_sh(degree: int, coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Evaluate SH colour.

    Args:
        degree: active degree (0..3); coefficients beyond it are ignored.
        coeffs: [N, K, 3] with K >= (degree + 1)^2.
        dirs: [N, 3] viewing directions (camera centre -> Gaussian); normalised here.
    Returns:
        [N, 3] RGB, clamped at 0 (not above: HDR-ish values are allowed as in 3DGS).
    """
    result = C0 * coeffs[:, 0]
    if degree > 0:
        d = torch.nn.functional.normalize(dirs, dim=-1)
        x, y, z = d[:, 0:1], d[:, 1:2], d[:, 2:3]
        result = result - C1 * y * coeffs[:, 1] + C1 * z * coeffs[:, 2] - C1 * x * coeffs[:, 3]
        if degree > 1:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            result = (result + C2[0] * xy * coeffs[:, 4] + C2[1] * yz * coeffs[:, 5]
                      + C2[2] * (2.0 * zz - xx - yy) * coeffs[:, 6]
                      + C2[3] * xz * coeffs[:, 7] + C2[4] * (xx - yy) * coeffs[:, 8])
            if degree > 2:
                result = (result
                          + C3[0] * y * (3.0 * xx - yy) * coeffs[:, 9]
                          + C3[1] * xy * z * coeffs[:, 10]
                          + C3[2] * y * (4.0 * zz - xx - yy) * coeffs[:, 11]
                          + C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy) * coeffs[:, 12]
                          + C3[4] * x * (4.0 * zz - xx - yy) * coeffs[:, 13]
                          + C3[5] * z * (xx - yy) * coeffs[:, 14]
                          + C3[6] * x * (xx - 3.0 * yy) * coeffs[:, 15])
    return torch.clamp_min(result + 0.5, 0.0)
