"""SH colour: the fused C++ pass (`eval_sh` on a CPU, `render.cpu.sh_colors_cpu`) against the
torch definition (`eval_sh_reference`, autograd): values, gradients, finite differences, the
visibility mask, and a render through `render_view` with either."""

from __future__ import annotations

import pytest
import torch

from cgc_core.config import RenderConfig
from cgc_core.model import sh
from cgc_core.model.view import render_view
from cgc_core.render import cpu, rasterize


def sh_inputs(n: int, dtype: torch.dtype, seed: int, coeffs: int = 15):
    """Random coefficients (a third of the colours come out negative, so the clamp acts) and
    directions of every length, one of them zero."""
    gen = torch.Generator().manual_seed(seed)
    sh0 = torch.randn((n, 1, 3), generator=gen, dtype=torch.float64) * 1.5
    shN = torch.randn((n, coeffs, 3), generator=gen, dtype=torch.float64) * 0.4
    dirs = torch.randn((n, 3), generator=gen, dtype=torch.float64)
    dirs = dirs * torch.exp(2 * torch.randn((n, 1), generator=gen, dtype=torch.float64))
    dirs[0] = 0.0
    return [t.to(dtype).requires_grad_(True) for t in (sh0, shN, dirs)]


def colour_and_grads(fn, degree, inputs, weights, **kwargs):
    for t in inputs:
        t.grad = None
    rgb = fn(degree, *inputs, **kwargs)
    (rgb * weights).sum().backward()
    return [rgb.detach().clone()] + [t.grad.clone() for t in inputs]


@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_sh_matches_torch(degree, dtype):
    inputs = sh_inputs(500, dtype, seed=degree)
    weights = torch.randn((500, 3), generator=torch.Generator().manual_seed(9), dtype=dtype)
    got = colour_and_grads(sh.eval_sh, degree, inputs, weights)
    want = colour_and_grads(sh.eval_sh_reference, degree, inputs, weights)
    assert (want[0] == 0).float().mean() > 0.1  # the clamp is exercised
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-11, atol=1e-12)
    for name, g, w in zip(("rgb", "sh0", "shN", "dirs"), got, want):
        # dL/ddirs scales as 1 / |dir|: compare it relative to each row's size.
        scale = w.abs().amax(dim=-1, keepdim=True).clamp_min(1.0) if name == "dirs" else 1.0
        torch.testing.assert_close(g / scale, w / scale, **tol, msg=name)
    # Coefficients beyond the active degree get exactly zero gradient.
    bases = (degree + 1) ** 2
    assert torch.all(got[2][:, bases - 1:] == 0)


def test_fused_sh_gradients_match_finite_differences():
    sh0, shN, dirs = sh_inputs(12, torch.float64, seed=4, coeffs=15)
    with torch.no_grad():
        dirs[0] = torch.tensor([0.3, -0.2, 0.9])  # away from the zero direction's kink
        sh0 += 2.0  # keep clear of the clamp's kink
    assert torch.autograd.gradcheck(
        lambda a, b, c: cpu.sh_colors_cpu(3, a, b, c), (sh0, shN, dirs), eps=1e-6, atol=1e-7)


def test_invisible_rows_are_zero_with_zero_gradients():
    inputs = sh_inputs(300, torch.float32, seed=5)
    visible = torch.rand(300, generator=torch.Generator().manual_seed(1)) > 0.4
    weights = torch.randn((300, 3))
    masked = colour_and_grads(sh.eval_sh, 3, inputs, weights, visible=visible)
    full = colour_and_grads(sh.eval_sh, 3, inputs, weights)
    for m, f in zip(masked, full):
        assert torch.equal(m[visible], f[visible])
        assert torch.all(m[~visible] == 0)


def test_degree_zero_and_non_cpu_fall_back_to_torch():
    # Degree 0 has no shN term: shN must get no gradient at all (None, as before), not zeros,
    # or Adam would count steps for it.
    sh0, shN, dirs = sh_inputs(50, torch.float32, seed=6)
    sh.eval_sh(0, sh0, shN, dirs).sum().backward()
    assert shN.grad is None and dirs.grad is None
    torch.testing.assert_close(sh0.grad, torch.full_like(sh0, sh.C0) * (
        sh.eval_sh_reference(0, sh0, shN, dirs) > 0)[:, None])


def test_render_view_with_fused_sh_matches_torch_colours():
    """render_view (colour computed after projection, visible Gaussians only, in C++) renders
    what `rasterize` renders from the torch colour of every Gaussian, with the same gradients."""
    gen = torch.Generator().manual_seed(3)
    n = 400
    points = torch.randn((n, 3), generator=gen) * torch.tensor([1.0, 1.0, 0.5])
    points[:, 2] += 3.0
    points[:40, 2] = -2.0  # behind the camera: culled, their colour never read
    splats = torch.nn.ParameterDict({
        "means": points,
        "quats": torch.randn((n, 4), generator=gen),
        "log_scales": torch.full((n, 3), -2.5) + 0.3 * torch.randn((n, 3), generator=gen),
        "opacities": torch.randn(n, generator=gen),
        "sh0": torch.randn((n, 1, 3), generator=gen),
        "shN": 0.3 * torch.randn((n, 15, 3), generator=gen),
    })
    f = 60.0
    K = torch.tensor([[f, 0, 40.0], [0, f, 30.0], [0, 0, 1]])
    viewmat = torch.eye(4)
    background = torch.tensor([0.1, 0.2, 0.3])

    def gradients(out):
        for p in splats.values():
            p.grad = None
        (out.colors[..., :3].square().sum() + out.depths.sum()).backward()
        return [out.colors[..., :3].detach()] + [splats[k].grad.clone() for k in splats]

    fused = gradients(render_view(splats, viewmat, K, 80, 60, sh_degree=3,
                                  render=RenderConfig(backend="cpu"), with_depth=True,
                                  background=background).raw)
    colours = sh.eval_sh_reference(3, splats["sh0"], splats["shN"], splats["means"])
    reference = gradients(rasterize(
        splats["means"], splats["quats"], splats["log_scales"].exp(),
        torch.sigmoid(splats["opacities"]), colours, viewmat, K, 80, 60, background=background,
        backend="cpu"))
    assert float(reference[0].std()) > 0.05  # a real image, not the background
    for name, g, w in zip(["rgb", *splats.keys()], fused, reference):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5, msg=name)
