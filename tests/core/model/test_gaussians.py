"""The Gaussian model: initialisation, PLY round trip in the 3DGS layout, densification."""

import numpy as np
import pytest
import torch
from plyfile import PlyData

from cgc_core.io import DataError
from cgc_core.model.gaussians import PARAM_NAMES, create_gaussians, load_ply, save_ply
from cgc_core.model.sh import eval_sh, rgb_to_sh0, sh_basis


def make_splats(n=50, seed=0, sh_degree=2):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 3))
    colors = rng.integers(0, 256, size=(n, 3)).astype(np.uint8)
    return (
        create_gaussians(
            points,
            colors,
            feature_dim=16,
            sh_degree=sh_degree,
            init_opacity=0.1,
            feature_init_std=1.0,
            generator=torch.Generator().manual_seed(seed),
        ),
        points,
        colors,
    )


def test_initialisation_follows_the_point_cloud():
    splats, points, colors = make_splats()
    assert set(splats.keys()) == set(PARAM_NAMES)
    assert torch.allclose(splats["means"], torch.tensor(points, dtype=torch.float32))
    assert splats["features"].shape == (50, 16)
    assert splats["shN"].shape == (50, 8, 3)  # (2 + 1)^2 - 1 bands
    # Opacity logit of 0.1, identity rotations, DC colour reproduces the point colour.
    assert torch.allclose(torch.sigmoid(splats["opacities"]), torch.full((50,), 0.1), atol=1e-6)
    assert torch.all(splats["quats"][:, 0] == 1) and torch.all(splats["quats"][:, 1:] == 0)
    rgb = eval_sh(0, splats["sh0"], splats["shN"], torch.ones(50, 3))
    assert torch.allclose(rgb, torch.tensor(colors / 255.0, dtype=torch.float32), atol=1e-5)
    # Scale = RMS distance to the 3 nearest neighbours (checked by brute force).
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    nearest3 = np.sort(d, axis=1)[:, 1:4]
    expected = np.log(np.sqrt((nearest3**2).mean(1)))
    assert np.allclose(splats["log_scales"][:, 0].detach().numpy(), expected, atol=1e-5)


def test_ply_round_trip_keeps_every_parameter(tmp_path):
    splats, _, _ = make_splats(sh_degree=3)
    with torch.no_grad():
        for p in splats.values():
            p.add_(torch.randn_like(p) * 0.1)
    save_ply(splats, tmp_path / "model.ply")
    loaded = load_ply(tmp_path / "model.ply")
    for name in PARAM_NAMES:
        assert torch.allclose(loaded[name], splats[name].detach()), name


def test_ply_uses_the_3dgs_property_layout(tmp_path):
    splats, _, _ = make_splats(n=3, sh_degree=1)
    with torch.no_grad():
        splats["shN"].copy_(torch.arange(27, dtype=torch.float32).reshape(3, 3, 3))
    save_ply(splats, tmp_path / "m.ply")
    vertex = PlyData.read(str(tmp_path / "m.ply"))["vertex"]
    names = [p.name for p in vertex.properties]
    assert names[:6] == ["x", "y", "z", "nx", "ny", "nz"]
    assert names[6:9] == ["f_dc_0", "f_dc_1", "f_dc_2"]
    assert [n for n in names if n.startswith("f_seg_")] == [f"f_seg_{i}" for i in range(16)]
    # f_rest is channel-major (all red bands first): shN[0, band, channel] = 9*0 + 3*band + channel
    # so f_rest_0..2 (red, bands 0..2) hold 0, 3, 6.
    assert [float(vertex[0][f"f_rest_{i}"]) for i in range(3)] == [0.0, 3.0, 6.0]


def test_bad_ply_names_the_file(tmp_path):
    bad = tmp_path / "broken.ply"
    bad.write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(DataError, match="broken.ply"):
        load_ply(bad)
    with pytest.raises(DataError, match="missing.ply"):
        load_ply(tmp_path / "missing.ply")


def test_sh_degree_one_matches_hand_formula():
    coeffs = torch.zeros(1, 4, 3)
    coeffs[0, 0] = rgb_to_sh0(torch.tensor([0.5, 0.5, 0.5]))
    coeffs[0, 2] = torch.tensor([1.0, 0.0, 0.0])  # the z band, red only
    rgb = eval_sh(1, coeffs[:, :1], coeffs[:, 1:], torch.tensor([[0.0, 0.0, 2.0]]))
    c1 = (3 / (4 * np.pi)) ** 0.5
    assert torch.allclose(rgb, torch.tensor([[0.5 + c1, 0.5, 0.5]]), atol=1e-6)


def test_sh_basis_is_orthonormal_on_the_sphere():
    """The 16 real SH functions integrate to the identity over the sphere (Monte Carlo)."""
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(400_000, 3, generator=g, dtype=torch.float64),
                                         dim=-1)
    basis = sh_basis(3, dirs)
    gram = basis.T @ basis * (4 * np.pi / len(dirs))
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=0.02)


def test_eval_sh_ignores_bands_above_the_active_degree():
    g = torch.Generator().manual_seed(1)
    sh0, shN = torch.randn(10, 1, 3, generator=g), torch.randn(10, 15, 3, generator=g)
    dirs = torch.randn(10, 3, generator=g)
    cut = shN.clone()
    cut[:, 3:] = 100.0  # degree-2 and -3 bands: must not matter at degree 1
    assert torch.equal(eval_sh(1, sh0, shN, dirs), eval_sh(1, sh0, cut, dirs))
    assert not torch.equal(eval_sh(2, sh0, shN, dirs), eval_sh(2, sh0, cut, dirs))


def test_eval_sh_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(2)
    sh0 = torch.randn(4, 1, 3, generator=g, dtype=torch.float64, requires_grad=True)
    shN = torch.randn(4, 15, 3, generator=g, dtype=torch.float64, requires_grad=True)
    dirs = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    # Shift the DC term so that no output sits at the clamp, where the gradient jumps.
    with torch.no_grad():
        sh0 += 10.0
    assert torch.autograd.gradcheck(lambda a, b, c: eval_sh(3, a, b, c), (sh0, shN, dirs))
