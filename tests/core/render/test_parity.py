"""The fast CPU backend against the pure-PyTorch reference: forward outputs and every gradient.

The scenes mix ordinary Gaussians with the cases that break rasterizers: centres behind the camera
or behind the near plane, far off-screen, huge (covering the image), tiny (sub-pixel, all
dilation), and a stack of very opaque Gaussians that makes pixels stop early. The image size is
not a multiple of the tile size, so partial tiles are covered too.
"""

from __future__ import annotations

import pytest
import torch
from render_scenes import (
    HEIGHT,
    WIDTH,
    hard_scene,
    intrinsics,
    leaves,
    look_at_viewmat,
    random_scene,
)

from cgc_core.render import rasterize
from cgc_core.render.project import project_gaussians


def render_with_grads(
    scene: dict, backend: str, dtype: torch.dtype, *, render_depth: bool = True, seed: int = 7
):
    """Renders, back-propagates a random linear function of every output; returns outputs and
    gradients."""
    for p in leaves(scene):
        p.grad = None
    channels = scene["colors"].shape[1]
    background = torch.linspace(0.1, 0.9, channels, dtype=dtype)
    out = rasterize(
        scene["means"],
        scene["quats"],
        scene["scales"],
        scene["opacities"],
        scene["colors"],
        look_at_viewmat(dtype),
        intrinsics(WIDTH, HEIGHT, dtype),
        WIDTH,
        HEIGHT,
        background=background,
        render_depth=render_depth,
        backend=backend,
    )
    out.means2d.retain_grad()
    gen = torch.Generator().manual_seed(seed)
    loss = (out.colors * torch.randn(out.colors.shape, generator=gen, dtype=dtype)).sum()
    loss = loss + (out.alphas * torch.randn(out.alphas.shape, generator=gen, dtype=dtype)).sum()
    if render_depth:
        loss = loss + (out.depths * torch.randn(out.depths.shape, generator=gen, dtype=dtype)).sum()
    loss.backward()
    result = {
        "colors": out.colors.detach(),
        "alphas": out.alphas.detach(),
        "radii": out.radii,
        "means2d.grad": out.means2d.grad.clone(),
    }
    if render_depth:
        result["depths"] = out.depths.detach()
    for name in ("means", "quats", "scales", "opacities", "colors"):
        result[f"{name}.grad"] = scene[name].grad.clone()
    return result


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float, name: str
) -> None:
    """|a - e| <= atol * max(1, max|e|) + rtol |e|: atol is relative to the tensor's scale, since
    gradients reach the hundreds and float32 round-off is relative to that."""
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    err = (actual - expected).abs() - rtol * expected.abs()
    worst = err.max().item() if err.numel() else 0.0
    assert worst <= atol * scale, f"{name}: worst excess {worst:.3e} > {atol * scale:.3e}"


TOLERANCES = {torch.float32: (1e-4, 1e-5), torch.float64: (1e-9, 1e-11)}


@pytest.mark.parametrize("channels", [1, 3, 19])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_matches_reference_on_hard_scenes(channels, dtype):
    scene = hard_scene(channels, dtype, seed=channels)
    expected = render_with_grads(scene, "reference", dtype)
    actual = render_with_grads(scene, "cpu", dtype)
    rtol, atol = TOLERANCES[dtype]
    for name, value in expected.items():
        assert_close(actual[name].to(value.dtype), value, rtol, atol, name)
    # The scene really exercises what it claims to.
    radii = expected["radii"]
    assert (radii[120:123] == 0).all(), "behind-camera / near-plane Gaussians must be culled"
    assert (radii[123:126] == 0).all(), "off-screen Gaussians must be culled"
    assert (radii[126:128] > max(WIDTH, HEIGHT)).all(), "huge Gaussians must cover the image"
    assert expected["alphas"].max() > 0.9999 - 1e-6, "the opaque stack must stop some pixels early"
    assert expected["colors.grad"][126:128].abs().sum() > 0, "huge Gaussians must get gradients"
    assert (expected["means.grad"][120:126] == 0).all(), "culled Gaussians get no gradient"


def test_cpu_matches_reference_without_depth():
    scene = hard_scene(3, torch.float64, seed=5)
    expected = render_with_grads(scene, "reference", torch.float64, render_depth=False)
    actual = render_with_grads(scene, "cpu", torch.float64, render_depth=False)
    assert "depths" not in actual
    for name, value in expected.items():
        assert_close(actual[name].to(value.dtype), value, 1e-9, 1e-11, name)


def test_cpu_matches_reference_on_a_dense_room_scene():
    """Many Gaussians per tile, as in real use (float32, the training dtype)."""
    scene = random_scene(1500, 4, seed=11, depth=(1.0, 3.0), log_scale=(-4.0, -2.5))
    expected = render_with_grads(scene, "reference", torch.float32)
    actual = render_with_grads(scene, "cpu", torch.float32)
    for name, value in expected.items():
        assert_close(actual[name].to(value.dtype), value, 1e-4, 1e-5, name)
    assert (expected["alphas"] > 0.5).float().mean() > 0.9, "the scene should cover the view"


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_empty_scene_renders_background(backend):
    channels = 19
    empty = lambda *shape: torch.zeros(shape, requires_grad=True)  # noqa: E731
    means, quats, scales, opacities, colors = (
        empty(0, 3),
        empty(0, 4),
        empty(0, 3),
        empty(0),
        empty(0, channels),
    )
    background = torch.arange(channels, dtype=torch.float32) / channels
    out = rasterize(
        means,
        quats,
        scales,
        opacities,
        colors,
        look_at_viewmat(),
        intrinsics(WIDTH, HEIGHT),
        WIDTH,
        HEIGHT,
        background=background,
        backend=backend,
    )
    assert out.colors.shape == (HEIGHT, WIDTH, channels)
    assert torch.equal(out.colors, background.expand(HEIGHT, WIDTH, channels))
    assert torch.equal(out.alphas, torch.zeros(HEIGHT, WIDTH))
    assert torch.equal(out.depths, torch.zeros(HEIGHT, WIDTH))
    assert (
        out.means2d.shape == (0, 2) and out.radii.shape == (0,) and out.radii.dtype == torch.int32
    )
    out.means2d.retain_grad()
    (out.colors.sum() + out.alphas.sum()).backward()
    assert means.grad is not None and means.grad.shape == (0, 3)


@pytest.mark.parametrize("output", ["colors", "alphas"])
def test_gradients_when_only_one_output_is_used_and_background_learns(output):
    """An unused output reaches backward as None; the background gets d loss / d bg = sum T_N g."""
    grads = {}
    for backend in ("reference", "cpu"):
        scene = hard_scene(3, torch.float64, seed=9)
        background = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64, requires_grad=True)
        out = rasterize(
            *leaves(scene),
            look_at_viewmat(torch.float64),
            intrinsics(WIDTH, HEIGHT, torch.float64),
            WIDTH,
            HEIGHT,
            background=background,
            render_depth=False,
            backend=backend,
        )
        getattr(out, output).square().sum().backward()
        grads[backend] = [p.grad for p in leaves(scene)] + [background.grad]
    for got, want in zip(grads["cpu"], grads["reference"]):
        if want is None:  # alphas do not depend on colours or the background
            assert got is None or torch.all(got == 0)
        else:
            assert_close(got, want, 1e-9, 1e-11, output)
    assert (grads["reference"][-1] is None) == (output == "alphas")


def test_cpu_backend_is_deterministic_across_thread_counts():
    """Per-intersection gradient rows (see csrc/backward_cpu.cpp) make the result independent of
    which thread took which tile: 1 and 2 threads must agree bit for bit."""
    scene = random_scene(800, 5, seed=4)
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(render_with_grads(scene, "cpu", torch.float32))
    finally:
        torch.set_num_threads(before)
    for name, value in runs[0].items():
        assert torch.equal(runs[1][name], value), name


def test_cpu_float32_alpha_is_exact_to_an_ulp_or_two():
    """The kernel's own vectorised exp (splat_exp in csrc/raster_cpu.h) against float64 truth: one
    wide Gaussian over a black background, so each pixel's colour is exactly its alpha =
    opacity * exp(-sigma), sigma over its whole range. Truth uses the same float32 sigma (the rule
    in reference.py's docstring), so what is left is the exp's rounding; torch.exp, in the
    float32 reference backend, is held to the same bound."""
    opacity = 0.8
    scene = [
        torch.tensor([[0.02, -0.01, 2.0]]),
        torch.tensor([[0.9, 0.1, -0.2, 0.3]]),
        torch.tensor([[0.25, 0.15, 0.2]]),
        torch.tensor([opacity]),
        torch.ones(1, 1),
    ]
    viewmat, K = look_at_viewmat(), intrinsics(WIDTH, HEIGHT)
    proj = project_gaussians(scene[0], scene[1], scene[2], viewmat, K, WIDTH, HEIGHT)
    rows, cols = torch.meshgrid(torch.arange(HEIGHT), torch.arange(WIDTH), indexing="ij")
    dx, dy = proj.means2d[0, 0] - (cols + 0.5), proj.means2d[0, 1] - (rows + 0.5)
    a, b, c = proj.conics[0]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # float32, as the kernels compute it
    truth = opacity * torch.exp(-sigma.double())
    covered = truth > 1.01 / 255  # away from the cut-off, where rounding may flip the decision
    assert covered.float().mean() > 0.2 and truth.max() > 0.75 and truth[covered].min() < 0.01
    ulp = torch.finfo(torch.float32).eps
    for backend in ("cpu", "reference"):
        colors = rasterize(
            *scene, viewmat, K, WIDTH, HEIGHT, render_depth=False, backend=backend
        ).colors[..., 0]
        relative_error = ((colors.double() - truth).abs() / truth)[covered]
        assert relative_error.max() <= 2 * ulp, (backend, relative_error.max().item() / ulp)
