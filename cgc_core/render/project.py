"""EWA projection of 3D Gaussians to the image plane, and the tile-binning rule.

Both are shared by the reference and the CPU backend, so that the two backends differ only in
rasterization. The projection is plain torch: autograd computes its backward.

Semantics follow the 3DGS paper (Kerbl et al. 2023) and gsplat's `fully_fused_projection`:

- cov3d = R S S^T R^T with R from the normalised quaternion (w, x, y, z), S = diag(scales);
- t = W mean + t_cw is the camera-space centre (OpenCV axes: x right, y down, z forward);
  a Gaussian is culled when t.z < near or t.z > far;
- J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]], where x/z and y/z are clamped to 1.3x the
  view frustum (the Jacobian of a perspective projection is only a good local approximation near
  the image; far outside it the clamped value keeps the footprint bounded);
- cov2d = J W cov3d W^T J^T + eps2d I (eps2d: low-pass dilation, about one pixel's worth);
- conic = cov2d^-1 stored as (a, b, c) = ([0,0], [0,1], [1,1]);
- radius = ceil(3 sqrt(lambda_max(cov2d))); 0 (= culled) when det(cov2d) <= 0 or when the
  box [mean2d - radius, mean2d + radius] lies fully off-screen.

Pixel convention: pixel (u, v) = (column, row) has its centre at (u + 0.5, v + 0.5); means2d is
in the same continuous pixel coordinates (cx, cy from K are used as given).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from cgc_core.config import RenderConfig
from cgc_core.geometry import quat_to_rotmat

TILE_SIZE = 16
"""Tiles are TILE_SIZE x TILE_SIZE pixels; every backend bins Gaussians into them."""
ALPHA_MIN = 1.0 / 255.0
"""A Gaussian whose alpha at a pixel is below this is skipped there."""
ALPHA_MAX = 0.99
"""Alpha is clamped to this so that 1 - alpha never reaches 0 (the backward divides by it)."""
T_MIN = 1e-4
"""A pixel stops before the Gaussian that would bring its transmittance to or below this."""
MAX_RADIUS = 2**30
"""Pixel radii are clamped to this so that they always fit the int32 `radii`."""


@dataclass
class Projection:
    """Per-Gaussian screen-space quantities of one camera."""

    means2d: Tensor  # [N, 2] projected centres, pixels (in the autograd graph)
    conics: Tensor  # [N, 3] inverse 2D covariance (a, b, c) (in the autograd graph)
    depths: Tensor  # [N]    camera-space z of the centre (in the autograd graph)
    radii: Tensor  # [N]    int32 pixel radius, 0 = culled


def project_gaussians(
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
    """Projects Gaussians to one pinhole camera (EWA splatting, see the module docstring).

    Args:
        means: [N, 3] world-space centres.
        quats: [N, 4] (w, x, y, z) rotations, normalised inside.
        scales: [N, 3] linear scales.
        viewmat: [4, 4] world-to-camera, OpenCV axes.
        K: [3, 3] intrinsics (fx, fy, cx, cy in pixels; pixel centres at integer + 0.5).
        width, height: image size in pixels.
        near, far: z range kept; Gaussians outside are culled (radius 0).
        eps2d: added to the diagonal of every 2D covariance.

    Returns:
        The Projection; entries of culled Gaussians are finite but meaningless.
    """
    viewmat = viewmat.to(means.dtype)
    K = K.to(means.dtype)
    rot_cw, t_cw = viewmat[:3, :3], viewmat[:3, 3]
    t = means @ rot_cw.T + t_cw  # [N, 3] camera space

    tz = t[:, 2]
    in_range = (tz >= near) & (tz <= far)
    # Culled Gaussians still flow through the maths below; a safe z keeps them finite so that
    # their (zero) upstream gradients never meet an inf or nan.
    z = torch.where(in_range, tz, torch.ones_like(tz))
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    # Clamp x/z, y/z to 1.3x the frustum for the Jacobian only (as 3DGS / gsplat).
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    x_z = torch.maximum(torch.minimum(t[:, 0] / z, lim_x_pos), -lim_x_neg)
    y_z = torch.maximum(torch.minimum(t[:, 1] / z, lim_y_pos), -lim_y_neg)

    # cov2d = J W cov3d W^T J^T = V V^T with V = J W R S ([N, 2, 3]): one small bmm instead of
    # the four 3x3 products of the textbook order (measured ~2x cheaper with its backward).
    inv_z = 1.0 / z
    jac_row0 = (fx * inv_z)[:, None] * (rot_cw[0] - x_z[:, None] * rot_cw[2])  # [N, 3] = (J W)[0]
    jac_row1 = (fy * inv_z)[:, None] * (rot_cw[1] - y_z[:, None] * rot_cw[2])  # [N, 3] = (J W)[1]
    jw = torch.stack([jac_row0, jac_row1], dim=1)  # [N, 2, 3]
    v = torch.bmm(jw, quat_to_rotmat(quats)) * scales[:, None, :]
    a = v[:, 0].square().sum(-1) + eps2d
    b = (v[:, 0] * v[:, 1]).sum(-1)
    c = v[:, 1].square().sum(-1) + eps2d
    det = a * c - b * b
    det_ok = det > 0
    safe_det = torch.where(det_ok, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)

    means2d = torch.stack([fx * t[:, 0] * inv_z + cx, fy * t[:, 1] * inv_z + cy], dim=-1)

    with torch.no_grad():
        mid = 0.5 * (a + c)
        lambda_max = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.01))
        radius = torch.ceil(3.0 * torch.sqrt(lambda_max))
        finite = torch.isfinite(radius)
        radius = radius.clamp(max=MAX_RADIUS)
        mx, my = means2d[:, 0], means2d[:, 1]
        on_screen = ((mx + radius > 0) & (mx - radius < width)
                     & (my + radius > 0) & (my - radius < height))
        visible = in_range & det_ok & on_screen & finite
        radii = torch.where(visible, radius, torch.zeros_like(radius)).to(torch.int32)
    return Projection(means2d=means2d, conics=conics, depths=tz, radii=radii)


def tile_grid(width: int, height: int) -> tuple[int, int]:
    """Number of tiles (tiles_x, tiles_y) covering a width x height image."""
    return (width + TILE_SIZE - 1) // TILE_SIZE, (height + TILE_SIZE - 1) // TILE_SIZE


ALPHA_BOX_SLACK = 1e-3
"""Added to log(255 opacity), the largest sigma at which alpha can reach ALPHA_MIN, by the alpha
box of `alpha_tile_rects` (covers the kernels' exp rounding with a wide margin)."""
SIGMA_ROUNDING = 16 * 2.0**-23
"""Bound on the relative rounding error of a kernel's float32 sigma = 0.5 (a dx^2 + c dy^2) +
b dx dy, relative to 0.5 (|a| dx^2 + |c| dy^2) + |b dx dy| (~7 roundings of 2^-24 each, x4)."""


def _rect_from_pixels(lo: Tensor, hi: Tensor, tiles: int) -> tuple[Tensor, Tensor]:
    """Tiles [t0, t1) holding the pixels whose centres u + 0.5 lie in [lo, hi] (float64; t1 = t0
    when no centre does)."""
    first = torch.ceil(lo - 0.5)  # first pixel u with u + 0.5 >= lo
    last = torch.floor(hi - 0.5)  # last pixel u with u + 0.5 <= hi
    t0 = torch.floor(first / TILE_SIZE).clamp(0, tiles)
    t1 = (torch.floor(last / TILE_SIZE) + 1.0).clamp(0, tiles)
    return t0, torch.where(first <= last, t1, t0)


def alpha_tile_rects(
    means2d: Tensor, conics: Tensor, opacities: Tensor, width: int, height: int
) -> Tensor:
    """The tiles that can hold a pixel where a Gaussian's alpha reaches ALPHA_MIN.

    alpha = opacity exp(-sigma) >= 1/255 needs sigma = 0.5 d^T Q d <= s = log(255 opacity) (Q the
    conic, d = mean2d - pixel centre): an ellipse whose axis-aligned box has half-extents
    sqrt(2 s (Q^-1)_xx) and sqrt(2 s (Q^-1)_yy), (Q^-1)_xx = c / det Q, (Q^-1)_yy = a / det Q. The
    box is widened so that no pixel the kernels keep (in their own float32 / float64 arithmetic)
    can fall outside: s gets ALPHA_BOX_SLACK, and is divided by 1 - SIGMA_ROUNDING kappa, where
    kappa = (max(a, c) + |b|) (a + c) / det Q >= (0.5 (|a| dx^2 + |c| dy^2) + |b dx dy|) / sigma
    bounds how much the rounding of the computed sigma can undercut the exact one; the half-extents
    get another 0.1% + 1e-3 pixel. The box is empty when opacity < ALPHA_MIN: alpha <= opacity,
    so no pixel ever passes (compared in float64; float32 has no value between 1/255 and its own
    rounding of it, so that is the float32 kernels' test as well). It is the whole grid when it
    cannot be trusted (Q not positive definite,
    SIGMA_ROUNDING kappa > 1/4, a non-finite centre or extent). Everything in float64, in the
    operation order of its C++ twin (alpha_tile_rect in csrc/raster_cpu.h): both give the same
    rects.

    Returns:
        [N, 4] int32 (x0, y0, x1, y1), tile indices, x1/y1 exclusive, clipped to the grid.
    """
    tiles_x, tiles_y = tile_grid(width, height)
    m = means2d.detach().to(torch.float64)
    con = conics.detach().to(torch.float64)
    a, b, c = con[:, 0], con[:, 1], con[:, 2]
    op = opacities.detach().to(torch.float64)
    s = torch.log(255.0 * op) + ALPHA_BOX_SLACK
    det = a * c - b * b
    kappa = (torch.maximum(a, c) + b.abs()) * (a + c) / det
    s_max = s / (1.0 - SIGMA_ROUNDING * kappa)
    half_x = torch.sqrt(2.0 * s_max * c / det) * 1.001 + 1e-3
    half_y = torch.sqrt(2.0 * s_max * a / det) * 1.001 + 1e-3
    x0, x1 = _rect_from_pixels(m[:, 0] - half_x, m[:, 0] + half_x, tiles_x)
    y0, y1 = _rect_from_pixels(m[:, 1] - half_y, m[:, 1] + half_y, tiles_y)
    rects = torch.stack([x0, y0, x1, y1], dim=-1)
    trusted = (det > 0) & (a > 0) & (c > 0) & (SIGMA_ROUNDING * kappa <= 0.25)
    trusted &= torch.isfinite(half_x) & torch.isfinite(half_y) & torch.isfinite(m).all(dim=-1)
    grid = torch.tensor([0.0, 0.0, tiles_x, tiles_y], dtype=torch.float64, device=m.device)
    rects = torch.where(trusted[:, None], rects, grid)
    can_pass = (op >= ALPHA_MIN) & (s > 0)  # False for a NaN opacity too
    rects = torch.where(can_pass[:, None], rects, torch.zeros_like(rects))
    return rects.to(torch.int32)


def intersect_rects(first: Tensor, second: Tensor) -> Tensor:
    """Tile rects [N, 4] (x0, y0, x1, y1) of both; an empty intersection becomes (0, 0, 0, 0)."""
    lo = torch.maximum(first[:, :2], second[:, :2])
    hi = torch.minimum(first[:, 2:], second[:, 2:])
    rects = torch.cat([lo, hi], dim=-1)
    empty = (lo >= hi).any(dim=-1, keepdim=True)
    return torch.where(empty, torch.zeros_like(rects), rects)


def tile_rects(
    means2d: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    conics: Tensor | None = None,
    opacities: Tensor | None = None,
) -> Tensor:
    """The binning rule, defined once: which tiles a Gaussian is listed in.

    A Gaussian is listed in every tile [16 i, 16 i + 16) x [16 j, 16 j + 16) that its box
    (mean2d - radius, mean2d + radius) overlaps: i in [floor((x - r) / 16), ceil((x + r) / 16)),
    clipped to the grid; the same for j with y. Culled Gaussians (radius 0) get an empty rect.
    Given conics and opacities, the rect is further intersected with `alpha_tile_rects` (the
    tiles that can hold a pixel with alpha >= ALPHA_MIN): no result changes, only fewer (tile,
    Gaussian) pairs. Both backends apply that second box themselves (`rasterize_reference`, and
    `rasterize_cpu` in C++), so passing the square alone is enough. The rects carry no gradient.

    Args:
        means2d: [N, 2] projected centres (pixels).
        radii: [N] int32 radii.
        width, height: image size.
        conics: [N, 3] inverse 2D covariances (a, b, c), or None.
        opacities: [N] opacities in (0, 1), or None.

    Returns:
        [N, 4] int32 (x0, y0, x1, y1), tile indices, x1/y1 exclusive.
    """
    tiles_x, tiles_y = tile_grid(width, height)
    m = means2d.detach()
    r = radii.to(m.dtype)
    # Clamp in floating point before the int cast: culled / far-off centres can be huge.
    x0 = torch.floor((m[:, 0] - r) / TILE_SIZE).clamp(0, tiles_x)
    x1 = torch.ceil((m[:, 0] + r) / TILE_SIZE).clamp(0, tiles_x)
    y0 = torch.floor((m[:, 1] - r) / TILE_SIZE).clamp(0, tiles_y)
    y1 = torch.ceil((m[:, 1] + r) / TILE_SIZE).clamp(0, tiles_y)
    rects = torch.stack([x0, y0, x1, y1], dim=-1).to(torch.int32)
    rects = torch.where((radii > 0)[:, None], rects, torch.zeros_like(rects))
    if conics is not None and opacities is not None:
        rects = intersect_rects(rects, alpha_tile_rects(m, conics, opacities, width, height))
    return rects


def depth_order(depths: Tensor) -> Tensor:
    """Front-to-back order of all Gaussians: by depth, ties by index (a stable sort).

    The CPU backend implements the same rule in C++ (a stable radix sort of the visible ones).

    Args:
        depths: [N] camera-space z.

    Returns:
        [N] int64 Gaussian indices; each tile's list is this order restricted to the tile.
    """
    return torch.sort(depths.detach(), stable=True).indices
