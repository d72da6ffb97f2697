"""The fused C++ projection (cpu.project_cpu, used for renders without gradients) against the
torch projection that training differentiates (project.project_gaussians)."""

from __future__ import annotations

import pytest
import torch

from cgc_core.render import cpu, rasterize
from cgc_core.render.project import project_gaussians
from render_scenes import HEIGHT, WIDTH, hard_scene, intrinsics, look_at_viewmat, random_scene


def both_projections(scene: dict, dtype: torch.dtype):
    args = (scene["means"].detach(), scene["quats"].detach(), scene["scales"].detach(), look_at_viewmat(dtype),
            intrinsics(WIDTH, HEIGHT, dtype), WIDTH, HEIGHT)
    with torch.no_grad():
        return project_gaussians(*args), cpu.project_cpu(*args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_projection_matches_torch_on_hard_scenes(dtype):
    want, got = both_projections(hard_scene(3, dtype, seed=2), dtype)
    # Culling (behind the camera, off-screen, degenerate) and radii are decisions: exactly equal.
    assert torch.equal(got.radii, want.radii)
    assert (want.radii == 0).sum() >= 6 and (want.radii > max(WIDTH, HEIGHT)).sum() >= 2
    visible = want.radii > 0
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    for name in ("means2d", "conics", "depths"):
        torch.testing.assert_close(getattr(got, name)[visible], getattr(want, name)[visible], rtol=rtol, atol=rtol,
                                   msg=name)


def test_renders_without_gradients_use_it_and_match_renders_with_them():
    scene = random_scene(1500, 4, seed=3, depth=(1.0, 3.0), log_scale=(-4.0, -2.5))
    inputs = [scene[k] for k in ("means", "quats", "scales", "opacities", "colors")]
    camera = (look_at_viewmat(), intrinsics(WIDTH, HEIGHT), WIDTH, HEIGHT)
    with_grad = rasterize(*inputs, *camera, backend="cpu")
    assert with_grad.colors.requires_grad
    with torch.no_grad():
        without = rasterize(*inputs, *camera, backend="cpu")
    assert not without.means2d.requires_grad
    assert torch.equal(without.radii, with_grad.radii)
    for name in ("colors", "alphas", "depths"):
        torch.testing.assert_close(getattr(without, name), getattr(with_grad, name).detach(), rtol=1e-4, atol=1e-5,
                                   msg=name)
