"""The binning rule's alpha box (project.alpha_tile_rects and its C++ twin): it never drops a
tile holding a pixel whose alpha reaches 1/255, and cutting the bins to it changes no output or
gradient of the CPU backend, bit for bit.

The Gaussians are adversarial: opacities just above (and below) 1/255, very elongated footprints
at many angles, centres on and next to tile borders and pixel centres, sub-pixel ones.
"""

from __future__ import annotations

import math

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

from cgc_core.render import cpu, rasterize
from cgc_core.render.project import (
    ALPHA_MIN,
    TILE_SIZE,
    alpha_tile_rects,
    intersect_rects,
    tile_grid,
    tile_rects,
)

W, H = 100, 75  # 7 x 5 tiles, the last column and row partial


def adversarial_gaussians(dtype: torch.dtype, seed: int = 0) -> dict:
    """Screen-space Gaussians (means2d, conics, opacities) built to sit on the alpha box's edge."""
    gen = torch.Generator().manual_seed(seed)
    f32_min = torch.tensor(ALPHA_MIN, dtype=torch.float32)
    opacities = [
        ALPHA_MIN * (1 + 1e-7),
        ALPHA_MIN * (1 + 1e-5),
        ALPHA_MIN * 1.001,
        ALPHA_MIN * 1.02,
        torch.nextafter(f32_min, torch.tensor(1.0)).item(),  # float32's next above 1/255
        f32_min.item(),  # float32(1/255) itself
        ALPHA_MIN * (1 - 1e-6),  # below: never visible
        0.02,
        0.3,
        0.99,
        0.999,
    ]
    # Centres on tile borders, a hair off them, on pixel centres and between pixels.
    offsets = [0.0, 1e-4, -1e-4, 0.5, -0.5, 0.5 + 1e-5, 0.25, 7.9]
    means, conics, ops = [], [], []
    for k in range(600):
        tx = int(torch.randint(0, 8, (1,), generator=gen))
        ty = int(torch.randint(0, 6, (1,), generator=gen))
        off_x = offsets[int(torch.randint(0, len(offsets), (1,), generator=gen))]
        off_y = offsets[int(torch.randint(0, len(offsets), (1,), generator=gen))]
        means.append([TILE_SIZE * tx + off_x, TILE_SIZE * ty + off_y])
        # cov2d = R diag(l1, l2) R^T: l2 from sub-pixel (0.3 = eps2d alone) up, l1 up to very
        # elongated; angles include the axes and the diagonals, where rounding is worst.
        l2 = 0.3 * math.exp(float(torch.rand(1, generator=gen)) * 4.0)
        l1 = l2 * math.exp(float(torch.rand(1, generator=gen)) * math.log(2e4))
        if k % 7 == 0:
            l1 = l2  # round
        angle = [0.0, math.pi / 4, math.pi / 2, -math.pi / 4, 0.3][k % 5]
        angle += 1e-3 * float(torch.randn(1, generator=gen)) if k % 3 else 0.0
        cs, sn = math.cos(angle), math.sin(angle)
        cxx = cs * cs * l1 + sn * sn * l2
        cyy = sn * sn * l1 + cs * cs * l2
        cxy = cs * sn * (l1 - l2)
        det = cxx * cyy - cxy * cxy
        conics.append([cyy / det, -cxy / det, cxx / det])
        ops.append(opacities[k % len(opacities)])
    return {
        "means2d": torch.tensor(means, dtype=dtype),
        "conics": torch.tensor(conics, dtype=dtype),
        "opacities": torch.tensor(ops, dtype=dtype),
    }


def tiles_with_visible_pixels(g: dict, kernel_dtype: torch.dtype | None) -> torch.Tensor:
    """[N, tiles_y, tiles_x] bool: tiles holding a pixel with alpha >= 1/255, by brute force over
    every pixel. kernel_dtype None: sigma and alpha in float64 (the truth); else the kernels' own
    arithmetic in that dtype (the order of reference.py's docstring)."""
    dtype = kernel_dtype or torch.float64
    means = g["means2d"].to(dtype)
    a, b, c = g["conics"].to(dtype).unbind(-1)
    op = g["opacities"].to(dtype)
    vv, uu = torch.meshgrid(
        torch.arange(H, dtype=dtype), torch.arange(W, dtype=dtype), indexing="ij"
    )
    px, py = uu.reshape(-1) + 0.5, vv.reshape(-1) + 0.5
    dx = means[:, 0:1] - px[None]
    dy = means[:, 1:2] - py[None]
    sigma = 0.5 * (a[:, None] * dx * dx + c[:, None] * dy * dy) + b[:, None] * dx * dy
    alpha = op[:, None] * torch.exp(-sigma.clamp(min=0))
    visible = (sigma >= 0) & (alpha >= ALPHA_MIN)
    tiles_x, tiles_y = tile_grid(W, H)
    tile = (vv.reshape(-1).long() // TILE_SIZE) * tiles_x + uu.reshape(-1).long() // TILE_SIZE
    hit = torch.zeros(means.shape[0], tiles_x * tiles_y, dtype=torch.bool)
    hit.index_put_((torch.arange(means.shape[0])[:, None], tile[None].expand_as(visible)),
                   visible, accumulate=True)
    return hit.reshape(-1, tiles_y, tiles_x)


def rect_masks(rects: torch.Tensor) -> torch.Tensor:
    tiles_x, tiles_y = tile_grid(W, H)
    tx = torch.arange(tiles_x)[None, None, :]
    ty = torch.arange(tiles_y)[None, :, None]
    r = rects.long()[:, :, None, None]
    return (r[:, 0] <= tx) & (tx < r[:, 2]) & (r[:, 1] <= ty) & (ty < r[:, 3])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_box_holds_every_tile_with_a_visible_pixel(dtype):
    g = adversarial_gaussians(dtype)
    rects = alpha_tile_rects(g["means2d"], g["conics"], g["opacities"], W, H)
    inside = rect_masks(rects)
    for kernel_dtype in (None, dtype):
        needed = tiles_with_visible_pixels(g, kernel_dtype)
        missed = needed & ~inside
        assert not missed.any(), f"{int(missed.any(-1).any(-1).sum())} Gaussians lose a tile"
    # ... and it is tight: where the visible pixels stay clear of the image border (so their
    # tiles' bounding box is the ellipse's), at most one tile of margin around them, and mostly
    # none (the box bounds the continuous ellipse, a little more than its pixel centres).
    needed = tiles_with_visible_pixels(g, None)
    rows, cols = needed.any(-1), needed.any(-2)
    tiles_x, tiles_y = tile_grid(W, H)
    checked = exact = 0
    for k in range(needed.shape[0]):
        if not rows[k].any():
            continue
        y, x = rows[k].nonzero(), cols[k].nonzero()
        if x.min() == 0 or y.min() == 0 or x.max() == tiles_x - 1 or y.max() == tiles_y - 1:
            continue
        x0, y0, x1, y1 = rects[k].tolist()
        assert x0 >= x.min() - 1 and x1 <= x.max() + 2 and y0 >= y.min() - 1 and y1 <= y.max() + 2
        checked += 1
        exact += [x0, y0, x1, y1] == [x.min(), y.min(), x.max() + 1, y.max() + 1]
    assert checked >= 25 and exact >= 0.75 * checked, (checked, exact)
    # Below 1/255 nothing can be visible: an empty rect.
    below = g["opacities"].double() < ALPHA_MIN
    assert below.any() and (rects[below] == 0).all()
    assert not needed[below].any()
    # Opacities just above 1/255 do reach pixels (the cases above are not vacuous).
    barely = (g["opacities"].double() >= ALPHA_MIN) & (g["opacities"].double() < 1.001 * ALPHA_MIN)
    assert needed[barely].any(-1).any(-1).sum() >= 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tile_rects_with_conics_is_the_square_cut_to_the_alpha_box(dtype):
    g = adversarial_gaussians(dtype, seed=1)
    radii = torch.randint(0, 40, (g["means2d"].shape[0],), dtype=torch.int32)
    square = tile_rects(g["means2d"], radii, W, H)
    cut = tile_rects(g["means2d"], radii, W, H, g["conics"], g["opacities"])
    box = alpha_tile_rects(g["means2d"], g["conics"], g["opacities"], W, H)
    assert torch.equal(cut, intersect_rects(square, box))
    assert torch.equal(rect_masks(cut), rect_masks(square) & rect_masks(box))
    assert cut.dtype == torch.int32 and (cut[radii == 0] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpp_twin_bins_exactly_like_the_python_rule(dtype):
    """bin_gaussians cuts the rects to the alpha box in C++; its lists equal those of the Python
    rule's rects."""
    for seed in (2, 3):
        g = adversarial_gaussians(dtype, seed)
        n = g["means2d"].shape[0]
        radii = torch.randint(0, 60, (n,), dtype=torch.int32)
        depths = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        square = tile_rects(g["means2d"], radii, W, H)
        python = tile_rects(g["means2d"], radii, W, H, g["conics"], g["opacities"])
        want = cpu.bin_gaussians(depths, python, W, H)
        got = cpu.bin_gaussians(depths, square, W, H, g["means2d"], g["conics"], g["opacities"])
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        old = cpu.bin_gaussians(depths, square, W, H)
        assert got[1].numel() < old[1].numel()


def raster_both_rules(g: dict, dtype: torch.dtype, channels: int = 3) -> list[dict]:
    """rasterize_cpu with and without the alpha box, square = the whole image, so that only the
    alpha box decides: outputs and every gradient."""
    n = g["means2d"].shape[0]
    gen = torch.Generator().manual_seed(5)
    colors = torch.rand(n, channels, generator=gen, dtype=dtype)
    depths = torch.rand(n, generator=gen, dtype=dtype)
    background = torch.linspace(0.2, 0.7, channels, dtype=dtype)
    radii = torch.full((n,), 10_000, dtype=torch.int32)
    grads = (torch.randn(H, W, channels, generator=gen, dtype=dtype),
             torch.randn(H, W, generator=gen, dtype=dtype))
    results = []
    for alpha_box in (False, True):
        leaf = {k: v.clone().requires_grad_(True) for k, v in g.items()}
        leaf["colors"] = colors.clone().requires_grad_(True)
        rects = tile_rects(leaf["means2d"], radii, W, H)
        image, alphas = cpu.rasterize_cpu(
            leaf["means2d"], leaf["conics"], leaf["colors"], leaf["opacities"], background, depths,
            rects, W, H, alpha_box=alpha_box,
        )
        ((image * grads[0]).sum() + (alphas * grads[1]).sum()).backward()
        out = {"image": image.detach(), "alphas": alphas.detach()}
        out.update({f"{k}.grad": v.grad for k, v in leaf.items()})
        results.append(out)
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_box_changes_no_cpu_output_on_adversarial_gaussians(dtype):
    g = adversarial_gaussians(dtype, seed=4)
    # Faint, so that pixels rarely stop and every Gaussian's edge reaches the output.
    g["opacities"] = torch.where(g["opacities"] > 0.05, g["opacities"] * 0.05, g["opacities"])
    old, new = raster_both_rules(g, dtype)
    for name, value in old.items():
        assert torch.equal(new[name], value), name
    assert old["image"].ne(old["image"][0, 0]).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_alpha_box_changes_no_render_or_gradient(dtype):
    """Through rasterize (projection included): the alpha box on (rasterize's default) against
    the square alone (rasterize_cpu with alpha_box=False), bit for bit."""
    for scene in (hard_scene(19, dtype, seed=8),
                  random_scene(600, 3, seed=9, dtype=dtype, log_scale=(-4.5, -1.0),
                               opacity=(0.003, 0.99))):
        camera = (look_at_viewmat(dtype), intrinsics(WIDTH, HEIGHT, dtype), WIDTH, HEIGHT)
        results = []
        for alpha_box in (True, False):
            for p in leaves(scene):
                p.grad = None
            if alpha_box:
                out = rasterize(*leaves(scene), *camera, render_depth=False, backend="cpu")
                image, alphas = out.colors, out.alphas
            else:
                proj = cpu.project_cpu(scene["means"], scene["quats"], scene["scales"], *camera)
                rects = tile_rects(proj.means2d, proj.radii, WIDTH, HEIGHT)
                background = scene["colors"].new_zeros(scene["colors"].shape[1])
                image, alphas = cpu.rasterize_cpu(
                    proj.means2d, proj.conics, scene["colors"], scene["opacities"], background,
                    proj.depths, rects, WIDTH, HEIGHT, alpha_box=False,
                )
            gen = torch.Generator().manual_seed(1)
            loss = (image * torch.randn(image.shape, generator=gen, dtype=dtype)).sum()
            loss = loss + (alphas * torch.randn(alphas.shape, generator=gen, dtype=dtype)).sum()
            loss.backward()
            results.append([image.detach(), alphas.detach()] + [p.grad for p in leaves(scene)])
        for got, want in zip(*results):
            assert torch.equal(got, want)
