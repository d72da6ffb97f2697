"""The photometric (rendering) loss against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from cgc_core.losses import depth_loss, l1_loss, rendering_loss, ssim


def test_l1_by_hand():
    a = torch.tensor([[[0.0, 0.5, 1.0]], [[0.2, 0.2, 0.2]]])  # [2, 1, 3]
    b = torch.tensor([[[0.5, 0.5, 0.0]], [[0.0, 0.4, 0.2]]])
    # |diffs| = 0.5, 0, 1, 0.2, 0.2, 0 -> sum 1.9 over 6 values
    assert l1_loss(a, b).item() == pytest.approx(1.9 / 6)


def test_ssim_of_identical_images_is_one():
    img = torch.rand(20, 17, 3, generator=torch.Generator().manual_seed(0))
    assert ssim(img, img).item() == pytest.approx(1.0, abs=1e-6)
    assert rendering_loss(img, img, 0.2).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_of_constant_images_by_hand():
    # Constant images a and b: away from the border every local mean is a (b) and every local
    # variance and covariance is 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    # = (0.25 + 1e-4) / (0.3125 + 1e-4) = 0.80006. The zero padding changes a 5-pixel band along
    # the border (about 5% of a 200 x 200 image), hence the loose tolerance.
    a, b, c1 = 0.5, 0.25, 0.01**2
    expected_inside = (2 * a * b + c1) / (a * a + b * b + c1)
    value = ssim(torch.full((200, 200, 1), a), torch.full((200, 200, 1), b)).item()
    assert value == pytest.approx(expected_inside, abs=0.02)


def test_rendering_loss_combines_l1_and_dssim():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(16, 16, 3, generator=g), torch.rand(16, 16, 3, generator=g)
    expected = 0.8 * l1_loss(x, y) + 0.2 * (1 - ssim(x, y))
    assert rendering_loss(x, y, 0.2).item() == pytest.approx(expected.item())


def test_ssim_equals_the_full_11x11_window_computation():
    """The separable blur must give what 3DGS's 2D-window convolution gives."""
    import math

    import torch.nn.functional as F

    from cgc_core.losses import ssim

    gen = torch.Generator().manual_seed(3)
    a, b = torch.rand(20, 17, 3, generator=gen), torch.rand(20, 17, 3, generator=gen)
    x = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-x * x / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, window, padding=5, groups=3)

    p, q = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    mu1, mu2 = blur(p), blur(q)
    s1, s2, s12 = blur(p * p) - mu1**2, blur(q * q) - mu2**2, blur(p * q) - mu1 * mu2
    c1, c2 = 0.01**2, 0.03**2
    expected = (
        ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    ).mean()
    assert math.isclose(float(ssim(a, b)), float(expected), rel_tol=1e-5)


def test_depth_loss_by_hand_on_measured_pixels_only():
    measured = torch.tensor([[1.0, 2.0], [0.0, 4.0]])        # one pixel without a measurement
    alphas = torch.tensor([[1.0, 0.5], [1.0, 1.0]])
    exact = alphas * measured
    assert float(depth_loss(exact, alphas, measured)) == 0.0
    rendered = exact + torch.tensor([[0.3, 0.0], [9.0, -0.6]])  # the 9 falls where d = 0
    # mean |error| over the three measured pixels, over their median depth (2)
    assert float(depth_loss(rendered, alphas, measured)) == pytest.approx((0.3 + 0.6) / 3 / 2.0)
    assert float(depth_loss(rendered, alphas, torch.zeros(2, 2))) == 0.0


def test_a_weight_of_ones_is_the_plain_loss_and_zeros_leave_pixels_out():
    generator = torch.Generator().manual_seed(0)
    rendered = torch.rand(24, 32, 3, generator=generator, requires_grad=True)
    target = torch.rand(24, 32, 3, generator=generator)
    plain = rendering_loss(rendered, target, 0.2)
    ones = rendering_loss(rendered, target, 0.2, torch.ones(24, 32, dtype=torch.bool))
    assert torch.allclose(plain, ones, atol=1e-6)
    keep = torch.ones(24, 32, dtype=torch.bool)
    keep[:, :16] = False  # the left half left out
    rendering_loss(rendered, target, 0.2, keep).backward()
    # No gradient reaches a left-out pixel farther than the SSIM window's reach (5 pixels)
    # from a kept one.
    assert rendered.grad[:, :11].abs().max() == 0
    assert rendered.grad[:, 16:].abs().min() > 0
