"""The CPU backend's fused C++ projection (cpu.project_cpu, hand-written backward) against the
torch definition (project.project_gaussians, autograd): outputs, gradients, finite differences."""

from __future__ import annotations

import pytest
import torch
from render_scenes import HEIGHT, WIDTH, hard_scene, intrinsics, look_at_viewmat, random_scene

from cgc_core.render import cpu, rasterize
from cgc_core.render.project import project_gaussians


def both_projections(scene: dict, dtype: torch.dtype):
    args = (
        scene["means"].detach(),
        scene["quats"].detach(),
        scene["scales"].detach(),
        look_at_viewmat(dtype),
        intrinsics(WIDTH, HEIGHT, dtype),
        WIDTH,
        HEIGHT,
    )
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
        torch.testing.assert_close(
            getattr(got, name)[visible],
            getattr(want, name)[visible],
            rtol=rtol,
            atol=rtol,
            msg=name,
        )


def test_renders_without_gradients_match_renders_with_them():
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
        torch.testing.assert_close(
            getattr(without, name),
            getattr(with_grad, name).detach(),
            rtol=1e-4,
            atol=1e-5,
            msg=name,
        )


def projection_grads(project, scene: dict, dtype: torch.dtype, seed: int = 5) -> dict:
    """Gradients of a random linear function of every projection output w.r.t. means, quats and
    scales."""
    inputs = {
        k: scene[k].detach().clone().requires_grad_(True) for k in ("means", "quats", "scales")
    }
    proj = project(
        inputs["means"],
        inputs["quats"],
        inputs["scales"],
        look_at_viewmat(dtype),
        intrinsics(WIDTH, HEIGHT, dtype),
        WIDTH,
        HEIGHT,
    )
    gen = torch.Generator().manual_seed(seed)
    loss = sum(
        (t * torch.randn(t.shape, generator=gen, dtype=dtype)).sum()
        for t in (proj.means2d, proj.conics, proj.depths)
    )
    loss.backward()
    return {k: t.grad for k, t in inputs.items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_projection_gradients_match_torch_autograd(dtype):
    scene = hard_scene(3, dtype, seed=4)
    want = projection_grads(project_gaussians, scene, dtype)
    got = projection_grads(cpu.project_cpu, scene, dtype)
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    for name, value in want.items():
        scale = value.abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(got[name], value, rtol=rtol, atol=rtol * scale, msg=name)


def test_fused_projection_gradients_match_finite_differences():
    scene = random_scene(6, 1, seed=8, dtype=torch.float64)
    camera = (
        look_at_viewmat(torch.float64),
        intrinsics(WIDTH, HEIGHT, torch.float64),
        WIDTH,
        HEIGHT,
    )

    def outputs(means, quats, scales):
        proj = cpu.project_cpu(means, quats, scales, *camera)
        return proj.means2d, proj.conics, proj.depths

    inputs = tuple(
        scene[k].detach().clone().requires_grad_(True) for k in ("means", "quats", "scales")
    )
    assert torch.autograd.gradcheck(outputs, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_a_camera_that_needs_gradients_is_refused():
    scene = random_scene(5, 1, seed=1)
    viewmat = look_at_viewmat().requires_grad_(True)
    with pytest.raises(ValueError, match="no gradient"):
        cpu.project_cpu(
            scene["means"],
            scene["quats"],
            scene["scales"],
            viewmat,
            intrinsics(WIDTH, HEIGHT),
            WIDTH,
            HEIGHT,
        )
    # rasterize falls back to the torch projection, which does differentiate the camera.
    out = rasterize(
        *[scene[k] for k in ("means", "quats", "scales", "opacities", "colors")],
        viewmat,
        intrinsics(WIDTH, HEIGHT),
        WIDTH,
        HEIGHT,
        backend="cpu",
    )
    out.colors.sum().backward()
    assert viewmat.grad is not None and viewmat.grad.abs().sum() > 0
