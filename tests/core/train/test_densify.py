"""Densification (clone / split / prune / opacity reset) carries the features along."""


import numpy as np
import torch

from cgc_core.config import ModelConfig, TrainConfig
from cgc_core.model.gaussians import create_gaussians
from cgc_core.train.densify import Densifier


def make_splats(n=50, seed=0, sh_degree=2):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 3))
    colors = rng.integers(0, 256, size=(n, 3)).astype(np.uint8)
    return create_gaussians(points, colors, feature_dim=16, sh_degree=sh_degree, init_opacity=0.1,
                            feature_init_std=1.0, generator=torch.Generator().manual_seed(seed))


def _optimizers(splats):
    return {n: torch.optim.Adam([{"params": [splats[n]], "lr": 1e-3}]) for n in splats}


def test_densify_clones_small_splits_large_and_carries_features():
    splats = make_splats(n=4)
    with torch.no_grad():
        splats["log_scales"][:] = torch.log(torch.tensor([[0.001], [0.001], [1.0], [1.0]]))
    optimizers = _optimizers(splats)
    # One optimizer step so there is Adam state to carry along.
    sum(p.sum() for p in splats.values()).backward()
    for opt in optimizers.values():
        opt.step()
    with torch.no_grad():
        splats["log_scales"][:] = torch.log(torch.tensor([[0.001], [0.001], [1.0], [1.0]]))
        splats["opacities"][:] = 3.0  # opaque: nothing pruned for transparency
        splats["features"][:] = torch.arange(4, dtype=torch.float32)[:, None]
    train = TrainConfig(
        densify_from=0,
        densify_until=1000,
        densify_every=1,
        percent_dense=0.01,
        densify_grad_threshold=0.1,
        opacity_reset_every=10_000,
    )
    densifier = Densifier(
        train,
        ModelConfig(max_gaussians=100),
        scene_extent=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    grad = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])  # Gaussians 0 and 2 hot
    densifier.accumulate(grad, torch.ones(4, dtype=torch.int32), width=10, height=10)
    with torch.no_grad():
        snapshot = {k: v.clone() for k, v in splats.items()}
    report = densifier.step(1, splats, optimizers)
    assert report["cloned"] == 1 and report["split"] == 1
    # 4 - 1 split parent + 1 clone + 2 children = 6
    assert splats["means"].shape[0] == 6
    features = sorted(splats["features"][:, 0].tolist())
    assert features == [0.0, 0.0, 1.0, 2.0, 2.0, 3.0]
    children = splats["features"][:, 0] == 2.0
    assert torch.allclose(
        splats["log_scales"][children].exp(), torch.full((2, 3), 1 / 1.6), atol=1e-6
    )
    clones = splats["features"][:, 0] == 0.0
    assert torch.allclose(splats["means"][clones], snapshot["means"][0].expand(2, 3))
    for name, opt in optimizers.items():
        state = opt.state[splats[name]]
        assert state["exp_avg"].shape == splats[name].shape, name
        assert opt.param_groups[0]["params"][0] is splats[name]


def test_prune_removes_transparent_and_opacity_reset_clamps():
    splats = make_splats(n=5)
    with torch.no_grad():
        splats["opacities"][:] = torch.tensor([-10.0, 3.0, 3.0, -10.0, 3.0])
    optimizers = _optimizers(splats)
    train = TrainConfig(densify_from=0, densify_until=1000, densify_every=1, opacity_reset_every=2)
    densifier = Densifier(train, ModelConfig(), 1.0, torch.Generator().manual_seed(0))
    densifier.accumulate(torch.zeros(5, 2), torch.ones(5, dtype=torch.int32), 10, 10)
    report = densifier.step(1, splats, optimizers)
    assert report["pruned"] == 2 and splats["means"].shape[0] == 3
    densifier.step(2, splats, optimizers)
    assert torch.all(torch.sigmoid(splats["opacities"]) <= 2 * train.prune_opacity + 1e-6)


def test_make_room_prunes_the_least_opaque_to_fit_new_gaussians_under_the_cap():
    splats = make_splats(n=10)
    with torch.no_grad():
        splats["opacities"][:] = torch.arange(10, dtype=torch.float32)  # 0 least opaque
        splats["features"][:] = torch.arange(10, dtype=torch.float32)[:, None]
    densifier = Densifier(TrainConfig(), ModelConfig(max_gaussians=12), 1.0,
                          torch.Generator().manual_seed(0))
    assert densifier.make_room(splats, _optimizers(splats), 2) == 2
    assert splats["means"].shape[0] == 10  # room enough: nothing pruned
    assert densifier.make_room(splats, _optimizers(splats), 5) == 5
    kept = sorted(splats["features"][:, 0].tolist())
    assert kept == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]  # the 3 least opaque went
    assert densifier.make_room(splats, _optimizers(splats), 50) == 12  # never past the cap
    assert splats["means"].shape[0] == 0
