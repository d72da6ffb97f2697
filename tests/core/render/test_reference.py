"""The oracle itself: finite-difference gradients and a closed-form single Gaussian."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cgc_core.render import rasterize


def tiny_scene(dtype=torch.float64):
    """Four well-separated, partly overlapping Gaussians 2-3 m in front of an identity camera."""
    means = torch.tensor(
        [[0.0, 0.0, 2.0], [0.15, 0.1, 2.5], [-0.2, 0.05, 3.0], [0.05, -0.15, 2.2]], dtype=dtype
    )
    quats = torch.tensor(
        [[1.0, 0.1, -0.2, 0.3], [0.9, 0.3, 0.1, 0.0], [0.5, 0.5, -0.5, 0.2], [1.0, 0.0, 0.0, 0.4]],
        dtype=dtype,
    )
    scales = torch.tensor(
        [[0.08, 0.05, 0.04], [0.06, 0.09, 0.05], [0.1, 0.07, 0.08], [0.05, 0.05, 0.07]], dtype=dtype
    )
    opacities = torch.tensor([0.7, 0.5, 0.9, 0.6], dtype=dtype)
    colors = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.1, 0.3]], dtype=dtype)
    return [t.clone().requires_grad_(True) for t in (means, quats, scales, opacities, colors)]


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_gradients_match_finite_differences(backend):
    width, height = 20, 18  # 2 x 2 tiles, partial ones included
    view = torch.eye(4, dtype=torch.float64)
    K = torch.tensor([[30.0, 0, 10.3], [0, 31.0, 8.8], [0, 0, 1]], dtype=torch.float64)
    background = torch.tensor([0.2, 0.4], dtype=torch.float64)

    # A few random linear functionals of every output: gradcheck then needs a handful of backward
    # passes instead of one per pixel, and each functional still sees every output value.
    n_out = height * width * 4
    probe = torch.randn(n_out, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def render(means, quats, scales, opacities, colors):
        out = rasterize(
            means,
            quats,
            scales,
            opacities,
            colors,
            view,
            K,
            width,
            height,
            background=background,
            backend=backend,
        )
        flat = torch.cat([out.colors.reshape(-1), out.alphas.reshape(-1), out.depths.reshape(-1)])
        return flat @ probe

    inputs = tiny_scene()
    assert render(*inputs).abs().sum() > 0
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_single_gaussian_matches_closed_form(backend):
    """An isotropic Gaussian: the EWA footprint and blend written out by hand, in numpy."""
    width, height = 32, 24
    f, cx, cy = 30.0, 16.2, 11.7
    x0, y0, z0, s, opacity = 0.1, -0.05, 2.0, 1.5, 0.8
    color, background = np.array([0.9, 0.3, 0.1]), np.array([0.0, 0.5, 1.0])

    # Expected, independently: for an isotropic cov3d = s^2 I, cov2d = s^2 J J^T + 0.3 I.
    jac = np.array([[f / z0, 0.0, -f * x0 / z0**2], [0.0, f / z0, -f * y0 / z0**2]])
    cov2d = s * s * jac @ jac.T + 0.3 * np.eye(2)
    mean2d = np.array([f * x0 / z0 + cx, f * y0 / z0 + cy])
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d = np.stack([mean2d[0] - u, mean2d[1] - v], axis=-1)
    sigma = 0.5 * np.einsum("hwi,ij,hwj->hw", d, np.linalg.inv(cov2d), d)
    alpha = np.minimum(0.99, opacity * np.exp(-sigma))
    alpha = np.where(alpha >= 1 / 255, alpha, 0.0)
    expected_colors = alpha[..., None] * color + (1 - alpha[..., None]) * background
    expected_radius = math.ceil(3 * math.sqrt(np.linalg.eigvalsh(cov2d).max()))
    assert expected_radius > 2 * width, "the footprint must cover every tile for this closed form"

    dt = torch.float64
    out = rasterize(
        torch.tensor([[x0, y0, z0]], dtype=dt),
        torch.tensor([[0.3, 0.2, -0.5, 0.1]], dtype=dt),
        torch.full((1, 3), s, dtype=dt),
        torch.tensor([opacity], dtype=dt),
        torch.tensor(color[None], dtype=dt),
        torch.eye(4, dtype=dt),
        torch.tensor([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=dt),
        width,
        height,
        background=torch.tensor(background, dtype=dt),
        backend=backend,
    )
    np.testing.assert_allclose(out.colors.detach().numpy(), expected_colors, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.alphas.detach().numpy(), alpha, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.depths.detach().numpy(), alpha * z0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.means2d.detach().numpy()[0], mean2d, rtol=0, atol=1e-12)
    assert out.radii.tolist() == [expected_radius]
    assert alpha.max() > 0.7, "the test must look at a visible Gaussian"


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_means2d_grad_is_the_view_space_gradient(backend):
    """The trainer's densification statistic: retain_grad on means2d, read it after backward."""
    # The tiny scene plus a copy of its first Gaussian moved behind the camera.
    params = [t.detach() for t in tiny_scene(torch.float32)]
    params = [torch.cat([t, t[:1]]) for t in params]
    params[0][4] = torch.tensor([0.0, 0.0, -1.0])
    means, quats, scales, opacities, colors = [t.requires_grad_(True) for t in params]
    K = torch.tensor([[30.0, 0, 10.0], [0, 30.0, 9.0], [0, 0, 1]])
    out = rasterize(
        means, quats, scales, opacities, colors, torch.eye(4), K, 20, 18, backend=backend
    )
    assert not out.means2d.is_leaf
    out.means2d.retain_grad()
    out.colors[..., 0].sum().backward()
    grad = out.means2d.grad
    assert grad.shape == (5, 2)
    assert (grad[:4].abs().sum(dim=1) > 0).all(), "visible Gaussians get a view-space gradient"
    assert out.radii[4] == 0 and (grad[4] == 0).all(), "the Gaussian behind the camera gets none"
