"""The gsplat backend's own code path, run on a CPU through gsplat's pure-PyTorch stages
(gsplat_torch_stages.py), against the CPU backend on the same Gaussians.

What differs between the two by design (gsplat_backend's docstring):

- the tile box: gsplat lists a Gaussian in the tiles of an axis-aligned box of 3.33 sigma per
  axis, cgc in the tiles of the square of half-side 3 sqrt(lambda_max) cut to its alpha box. A
  pixel where alpha = opacity exp(-s) >= 1/255 has s <= log(255 opacity) < log(255), so its
  Mahalanobis distance is < sqrt(2 log 255) = 3.33: it is always inside gsplat's box. It is inside
  cgc's square whenever opacity exp(-4.5) < 1/255, i.e. opacity < 0.353 (outside the square the
  Mahalanobis distance exceeds 3). Below that opacity both backends blend exactly the same
  (Gaussian, pixel) pairs, and only float32 round-off separates them; above it, a tail pair with
  alpha in [1/255, opacity exp(-4.5)] (< 0.011) can be blended by gsplat only, in tiles its box
  reaches and cgc's does not. Such a pair changes a pixel by at most its alpha times the largest
  value blended there (it takes alpha of the transmittance from what lies behind and gives it to
  its own colour), which is the bound `tile_box_tails` computes;
- the alpha clamp: 0.999 in gsplat's kernels, 0.99 in cgc's; equal below opacity 0.99.
"""

from __future__ import annotations

import pytest
import torch
from gsplat_torch_stages import fully_fused_projection, torch_stages
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
from cgc_core.render.gsplat_backend import rasterize_gsplat
from cgc_core.render.project import ALPHA_MIN, TILE_SIZE, project_gaussians, tile_grid, tile_rects

GRADIENTS = ("means", "quats", "scales", "opacities", "colors")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
GSPLAT_PATHS = [
    "gsplat-torch",  # gsplat_backend through gsplat's torch stages, on the CPU: runs in CI
    pytest.param("gsplat-cuda", marks=[needs_cuda, pytest.mark.gpu]),  # gsplat's CUDA kernels
]


def render(scene: dict, path: str, *, render_depth: bool = True, camera_grad: bool = False):
    """Renders the CPU leaves of `scene` with "cpu" (the CPU backend), "gsplat-torch"
    (gsplat_backend through gsplat's torch stages) or "gsplat-cuda" (`rasterize(backend="gsplat")`
    on copies on the GPU), back-propagates a random linear function of every output, and returns
    outputs and gradients (on the CPU)."""
    device = "cuda" if path == "gsplat-cuda" else "cpu"
    params = {k: v.detach().to(device).requires_grad_(True) for k, v in scene.items()}
    channels = scene["colors"].shape[1]
    viewmat = look_at_viewmat().to(device).requires_grad_(camera_grad)
    args = (*leaves(params), viewmat, intrinsics(WIDTH, HEIGHT).to(device), WIDTH, HEIGHT)
    background = torch.linspace(0.1, 0.9, channels, device=device)
    if path == "gsplat-torch":
        out = rasterize_gsplat(
            *args, background=background, render_depth=render_depth, stages=torch_stages()
        )
    else:
        backend = "gsplat" if path == "gsplat-cuda" else path
        out = rasterize(*args, background=background, render_depth=render_depth, backend=backend)
    out.means2d.retain_grad()
    gen = torch.Generator().manual_seed(7)
    outputs = {"colors": out.colors, "alphas": out.alphas}
    if render_depth:
        outputs["depths"] = out.depths
    loss = sum((t * torch.randn(t.shape, generator=gen).to(device)).sum() for t in outputs.values())
    loss.backward()
    result = {name: t.detach() for name, t in outputs.items()}
    result["means2d"] = out.means2d.detach()
    result["means2d.grad"] = out.means2d.grad
    result.update({f"{name}.grad": params[name].grad for name in GRADIENTS})
    if camera_grad:
        result["viewmat.grad"] = viewmat.grad
    result["radii"] = out.radii
    return {name: t.cpu() for name, t in result.items()}


def assert_close(actual, expected, rtol, atol, name, where=None):
    """|a - e| <= atol max(1, max|e|) + rtol |e| (atol relative to the tensor's scale: float32
    round-off is), over the entries `where` selects (all by default)."""
    scale = max(1.0, expected.abs().max().item())
    excess = (actual - expected).abs() - rtol * expected.abs()
    if where is not None:
        excess = excess[where]
    worst = excess.max().item() if excess.numel() else 0.0
    assert worst <= atol * scale, f"{name}: worst excess {worst:.3e} > {atol * scale:.3e}"


def tile_box_tails(scene: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The (Gaussian, pixel) pairs that one backend's tile box holds and the other's does not,
    with alpha >= 1/255 there: gsplat's boxes from gsplat's own projection stage, cgc's from
    `tile_rects` (float64 throughout).

    Returns:
        tails [N, H, W] bool, and alphas [N, H, W] (float64, 0 where not a pair).
    """
    s = {k: v.detach().double() for k, v in scene.items()}
    view, K = look_at_viewmat(torch.float64), intrinsics(WIDTH, HEIGHT, torch.float64)
    proj = project_gaussians(s["means"], s["quats"], s["scales"], view, K, WIDTH, HEIGHT)
    radii_xy = fully_fused_projection(
        s["means"], None, s["quats"], s["scales"], view[None], K[None], WIDTH, HEIGHT,
    )[0][0].double()  # [N, 2]
    tiles_x, tiles_y = tile_grid(WIDTH, HEIGHT)
    m = proj.means2d
    box = torch.stack([
        torch.floor((m[:, 0] - radii_xy[:, 0]) / TILE_SIZE).clamp(0, tiles_x),
        torch.floor((m[:, 1] - radii_xy[:, 1]) / TILE_SIZE).clamp(0, tiles_y),
        torch.ceil((m[:, 0] + radii_xy[:, 0]) / TILE_SIZE).clamp(0, tiles_x),
        torch.ceil((m[:, 1] + radii_xy[:, 1]) / TILE_SIZE).clamp(0, tiles_y),
    ], -1)
    gsplat_rects = torch.where((radii_xy > 0).all(-1, keepdim=True), box, torch.zeros_like(box))
    cgc_rects = tile_rects(m, proj.radii, WIDTH, HEIGHT, proj.conics, s["opacities"]).double()

    rows, cols = torch.meshgrid(
        torch.arange(HEIGHT, dtype=torch.float64), torch.arange(WIDTH, dtype=torch.float64),
        indexing="ij",
    )
    tx, ty = torch.floor(cols / TILE_SIZE), torch.floor(rows / TILE_SIZE)

    def inside(rects):
        r = rects[:, :, None, None]
        return (r[:, 0] <= tx) & (tx < r[:, 2]) & (r[:, 1] <= ty) & (ty < r[:, 3])

    dx, dy = m[:, 0, None, None] - (cols + 0.5), m[:, 1, None, None] - (rows + 0.5)
    a, b, c = (proj.conics[:, i, None, None] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp_max(s["opacities"][:, None, None] * torch.exp(-sigma), 0.99)
    counted = (sigma >= 0) & (alpha >= ALPHA_MIN) & (proj.radii > 0)[:, None, None]
    tails = counted & (inside(gsplat_rects) ^ inside(cgc_rects))
    return tails, torch.where(counted, alpha, torch.zeros_like(alpha))


def low_opacity_hard_scene(channels: int) -> dict:
    """`hard_scene` (culled, near, off-screen, huge, tiny, an opaque stack, equal depths) with
    every opacity scaled into (0, 0.34]: below 0.353 both tile boxes hold the same pairs."""
    scene = {k: v.detach() for k, v in hard_scene(channels, torch.float32, seed=channels).items()}
    scene["opacities"] = scene["opacities"] * (0.34 / scene["opacities"].max())
    return scene


@pytest.mark.parametrize("path", GSPLAT_PATHS)
@pytest.mark.parametrize("channels", [3, 19])
def test_gsplat_path_matches_cpu_backend_where_the_tile_boxes_agree(channels, path):
    """Every output and every gradient, the camera's included, to float32 round-off."""
    scene = low_opacity_hard_scene(channels)
    tails, _ = tile_box_tails(scene)
    assert not tails.any(), "the scene must hold no pair that only one tile box lists"
    expected = render(scene, "cpu", camera_grad=True)
    actual = render(scene, path, camera_grad=True)
    # The two projections compute cov2d in different orders (gsplat: J R S S^T R^T J^T, cgc:
    # (J W R S)(J W R S)^T) and gsplat's torch path differentiates by autograd, cgc by hand:
    # float32 round-off, amplified in the gradients of the smallest Gaussians.
    for name, value in expected.items():
        if name == "radii":  # gsplat's radius is its own rule (max of the 3.33 sigma box)
            # and so is its off-screen test; a Gaussian only one of them keeps adds nothing.
            only_one = (actual[name] > 0) ^ (value > 0)
            assert (actual["colors.grad"][only_one] == 0).all()
            assert (expected["colors.grad"][only_one] == 0).all()
            continue
        rtol, atol = (1e-4, 2e-5) if not name.endswith(".grad") else (1e-3, 1e-4)
        where = value.new_ones(value.shape, dtype=torch.bool)
        if name == "means2d":  # culled Gaussians' centres are meaningless (and differ)
            where = (expected["radii"] > 0)[:, None].expand_as(value)
        assert_close(actual[name], value, rtol, atol, name, where)
    # The scene exercises what the module docstring claims: early stops, partial tiles, depth.
    assert expected["alphas"].max() > 0.99, "the opaque stack must stop some pixels"
    assert expected["depths"].max() > 1.0
    assert expected["viewmat.grad"].abs().sum() > 0


@pytest.mark.parametrize("path", GSPLAT_PATHS)
def test_gsplat_path_without_depth_matches_cpu_backend(path):
    scene = low_opacity_hard_scene(3)
    expected = render(scene, "cpu", render_depth=False)
    actual = render(scene, path, render_depth=False)
    assert "depths" not in actual
    for name in ("colors", "alphas", "means2d.grad", "colors.grad", "means.grad"):
        assert_close(actual[name], expected[name], 1e-3, 1e-4, name)


@pytest.mark.parametrize("path", GSPLAT_PATHS)
def test_gsplat_path_differs_from_cpu_backend_only_by_tile_box_tails(path):
    """Opaque Gaussians (up to 0.98): pixels off the tail pairs agree to round-off, pixels on them
    by at most the tails' alpha times the largest value blended; the gradients of Gaussians that
    touch no such pixel agree to round-off."""
    channels = 4
    scene = hard_scene(channels, torch.float32, seed=9)
    scene = {k: v.detach()[:-2] for k, v in scene.items()}  # without the two at opacity > 0.99
    tails, alphas = tile_box_tails(scene)
    tail_pixels = tails.any(0)  # [H, W]
    assert tail_pixels.any(), "the scene must have pairs that only gsplat's box lists"
    expected = render(scene, "cpu")
    actual = render(scene, path)

    bound = (alphas * tails).sum(0)  # [H, W] sum of tail alphas per pixel
    largest = {"colors": max(1.0, scene["colors"].abs().max().item()), "alphas": 1.0,
               "depths": expected["depths"].max().item() * 1.01}
    for name, value in largest.items():
        diff = (actual[name] - expected[name]).abs()
        diff = diff if diff.dim() == 2 else diff.amax(-1)
        assert diff[~tail_pixels].max() <= 2e-5 * value, f"{name} off the tails"
        # 1e-4: a tail can also move a pixel's early stop by one Gaussian (T <= 1e-4 left)
        assert (diff <= bound * value + 1e-4 * value + 2e-5).all(), f"{name} on the tails"
    assert (actual["colors"] - expected["colors"]).abs().max() > 1e-4, "tails must show"

    # A Gaussian's gradient sums over the pixels where it is blended; off the tail pixels every
    # pixel blends the same pairs in both backends.
    touches_tails = ((alphas > 0) & tail_pixels).flatten(1).any(1)  # [N]
    assert (~touches_tails).sum() > 50
    for name in ("means2d.grad", "means.grad", "scales.grad", "opacities.grad", "colors.grad"):
        rows = ~touches_tails
        assert_close(actual[name][rows], expected[name][rows], 1e-3, 1e-4, name)


@pytest.mark.parametrize("path", GSPLAT_PATHS)
def test_gsplat_path_clamps_alpha_at_0999(path):
    """gsplat's kernels clamp alpha at 0.999, cgc's at 0.99: one opaque Gaussian straight ahead."""
    scene = random_scene(1, 1, seed=3, depth=(2.0, 2.0), spread=0.0, log_scale=(0.0, 0.0),
                         opacity=(0.9999, 0.9999))
    centre = (HEIGHT // 2, WIDTH // 2)
    assert render(scene, path)["alphas"][centre].item() == pytest.approx(0.999, abs=1e-6)
    assert render(scene, "cpu")["alphas"][centre].item() == pytest.approx(0.99, abs=1e-6)


def test_gsplat_path_renders_background_for_no_gaussians():
    channels = 19
    empty = [torch.zeros(shape, requires_grad=True) for shape in
             ((0, 3), (0, 4), (0, 3), (0,), (0, channels))]
    background = torch.arange(channels, dtype=torch.float32) / channels
    out = rasterize_gsplat(*empty, look_at_viewmat(), intrinsics(WIDTH, HEIGHT), WIDTH, HEIGHT,
                           background=background, stages=torch_stages())
    assert torch.equal(out.colors, background.expand(HEIGHT, WIDTH, channels))
    assert (out.alphas == 0).all() and (out.depths == 0).all()
    assert out.means2d.shape == (0, 2) and not out.means2d.is_leaf


def test_gsplat_path_refuses_tensors_on_another_device():
    scene = random_scene(4, 3, seed=1)
    with pytest.raises(ValueError, match="CUDA tensors"):
        rasterize_gsplat(*leaves(scene), look_at_viewmat(), intrinsics(WIDTH, HEIGHT), WIDTH,
                         HEIGHT, background=torch.zeros(3))
