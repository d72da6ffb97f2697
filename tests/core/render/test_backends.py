"""Backend selection and argument checking of `cgc_core.render`, and the gsplat backend on CUDA."""

from __future__ import annotations

import pytest
import torch
from render_scenes import intrinsics, leaves, look_at_viewmat, random_scene

from cgc_core.render import available_backends, rasterize, resolve_backend

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_cpu_backends_are_available_here():
    names = available_backends()
    assert "cpu" in names and "reference" in names
    if not torch.cuda.is_available():
        assert "gsplat" not in names, "gsplat cannot run without CUDA"
    assert names[-1] == "reference", "the oracle runs everywhere"



def test_resolve_backend():
    assert resolve_backend("auto", "cpu") == "cpu"
    assert resolve_backend("reference", torch.device("cpu")) == "reference"
    with pytest.raises(ValueError, match="unknown render backend"):
        resolve_backend("opengl", "cpu")
    with pytest.raises(ValueError, match="needs CUDA"):
        resolve_backend("gsplat", "cpu")


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_colours_given_as_a_function_of_the_visible_gaussians(backend):
    """`rasterize` calls a colours function with the projection's radii > 0 and renders what the
    same colours given as a tensor render; a row left wrong outside the mask changes nothing."""
    scene = random_scene(60, 3, seed=11)
    with torch.no_grad():
        scene["means"][:8] = scene["means"][:8] - 20.0 * scene["means"][:8]  # behind: culled
    args = (scene["means"], scene["quats"], scene["scales"], scene["opacities"])
    camera = (look_at_viewmat(), intrinsics(40, 30), 40, 30)
    masks = []

    def colours_of(visible):
        masks.append(visible)
        return torch.where(visible[:, None], scene["colors"], torch.nan)

    got = rasterize(*args, colours_of, *camera, backend=backend)
    want = rasterize(*args, scene["colors"], *camera, backend=backend)
    assert torch.equal(masks[0], want.radii > 0) and 0 < int(masks[0].sum()) <= 52
    for name in ("colors", "alphas", "depths", "means2d", "radii"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    with pytest.raises(ValueError, match="colors must have shape"):
        rasterize(*args, lambda visible: scene["colors"][:, :0], *camera, backend=backend)


def test_bad_shapes_are_rejected_with_the_argument_name():
    scene = random_scene(5, 3, seed=0)
    args = [scene[k] for k in ("means", "quats", "scales", "opacities", "colors")]
    args[1] = args[1][:, :3]
    with pytest.raises(ValueError, match="quats"):
        rasterize(*args, look_at_viewmat(), intrinsics(32, 24), 32, 24)
    with pytest.raises(ValueError, match="background"):
        rasterize(
            *[scene[k] for k in ("means", "quats", "scales", "opacities", "colors")],
            look_at_viewmat(),
            intrinsics(32, 24),
            32,
            24,
            background=torch.zeros(4),
        )


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("channels", [3, 19])
def test_gsplat_matches_reference_on_cuda(channels):
    """gsplat bins by its own box (see gsplat_backend), so pixels may differ by far tails only."""
    width, height = 64, 48
    scene = {
        k: v.detach().cuda().requires_grad_(True)
        for k, v in random_scene(300, channels, seed=2).items()
    }
    results = {}
    for backend in ("gsplat", "reference"):
        for p in leaves(scene):
            p.grad = None
        out = rasterize(
            *leaves(scene),
            look_at_viewmat().cuda(),
            intrinsics(width, height).cuda(),
            width,
            height,
            backend=backend,
        )
        out.means2d.retain_grad()
        (out.colors.sum() + out.depths.sum()).backward()
        results[backend] = (
            out.colors.detach(),
            out.alphas.detach(),
            out.depths.detach(),
            out.means2d.grad.clone(),
            scene["colors"].grad.clone(),
        )
    for got, want in zip(results["gsplat"], results["reference"]):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    assert results["gsplat"][1].max() > 0.5
