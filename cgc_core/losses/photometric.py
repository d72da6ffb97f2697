"""The 3DGS photometric (rendering) loss: (1 - l) * L1 + l * (1 - SSIM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def l1_loss(rendered: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error.

    Args:
        rendered: [...] any shape.
        target: same shape as `rendered`.
    Returns:
        [] scalar.
    """
    return (rendered - target).abs().mean()


def _gaussian_kernel_1d(size: int, sigma: float, like: Tensor) -> Tensor:
    """[size] normalised 1D Gaussian."""
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size // 2)
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def ssim(img1: Tensor, img2: Tensor, reduce: bool = True) -> Tensor:
    """Structural similarity, computed exactly as the 3DGS training code does.

    11 x 11 Gaussian window with sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 (images in [0, 1]), a 'same'
    convolution with zero padding (so the statistics near the image border see zeros, as in 3DGS),
    and the mean of the SSIM map over pixels and channels.

    Args:
        img1: [H, W, C] image.
        img2: [H, W, C] image.
        reduce: False returns the SSIM map [H, W, C] instead of its mean.
    Returns:
        [] scalar; 1 when the images are equal.
    """
    if img1.shape != img2.shape or img1.dim() != 3:
        raise ValueError(f"ssim wants two [H, W, C] images, got {tuple(img1.shape)} and "
                         f"{tuple(img2.shape)}")
    size, sigma = 11, 1.5
    c1, c2 = 0.01**2, 0.03**2
    channels = img1.shape[-1]
    a = img1.permute(2, 0, 1)[None]  # [1, C, H, W]
    b = img2.permute(2, 0, 1)[None]
    g = _gaussian_kernel_1d(size, sigma, a)
    rows = g.view(1, 1, size, 1).expand(channels, 1, size, 1).contiguous()
    cols = g.view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()

    def blur(x: Tensor) -> Tensor:
        # The 2D Gaussian window is separable and zero padding commutes with it, so two 1D passes
        # give the same result as 3DGS's 11 x 11 convolution at 2 x 11 instead of 121 MACs a pixel.
        x = F.conv2d(x, rows, padding=(size // 2, 0), groups=channels)
        return F.conv2d(x, cols, padding=(0, size // 2), groups=channels)

    mu1, mu2 = blur(a), blur(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = blur(a * a) - mu1_sq
    sigma2_sq = blur(b * b) - mu2_sq
    sigma12 = blur(a * b) - mu12
    ssim_map = ((2.0 * mu12 + c1) * (2.0 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean() if reduce else ssim_map[0].permute(1, 2, 0)


def depth_loss(rendered_depth: Tensor, alphas: Tensor, measured: Tensor) -> Tensor:
    """L1 between rendered and measured depth on the pixels with a measurement, relative to their
    median: mean |sum_i w_i z_i - alpha * d| / median(d). Comparing the blended z with alpha * d
    (not z / alpha with d) keeps the term smooth where the model is still half transparent; RGB-D
    3DGS mapping (SplaTAM, MonoGS) adds such a term to the photometric one.

    Args:
        rendered_depth: [H, W] alpha-blended camera z; alphas: [H, W] accumulated opacity.
        measured: [H, W] metres, 0 (or non-finite) where there is no measurement.
    Returns:
        [] scalar; 0 when no pixel has a measurement.
    """
    valid = torch.isfinite(measured) & (measured > 0)
    if not bool(valid.any()):
        return rendered_depth.sum() * 0.0
    target = measured[valid]
    return (rendered_depth[valid] - alphas[valid] * target).abs().mean() / target.median()


def rendering_loss(rendered: Tensor, target: Tensor, ssim_lambda: float,
                   weight: Tensor | None = None) -> Tensor:
    """The 3DGS photometric loss: (1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM).

    Args:
        rendered: [H, W, 3] rendered colour.
        target: [H, W, 3] ground-truth colour.
        ssim_lambda: weight of the D-SSIM term (`LossConfig.ssim_lambda`, 3DGS: 0.2).
        weight: optional [H, W] per-pixel weight (0 leaves a pixel out: a changed region of an
            old keyframe); both terms are then means of weighted per-pixel terms over all
            pixels, so a weight of ones gives the unweighted loss.
    Returns:
        [] scalar.
    """
    if weight is None:
        return (1.0 - ssim_lambda) * l1_loss(rendered, target) + ssim_lambda * (
            1.0 - ssim(rendered, target))
    weight = weight[..., None].to(rendered.dtype)
    return (1.0 - ssim_lambda) * ((rendered - target).abs() * weight).mean() + ssim_lambda * (
        (1.0 - ssim(rendered, target, reduce=False)) * weight).mean()
