"""Eq. 4 against values worked out by hand (the arithmetic is written in the tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cgc_core.losses import farthest_neighbors, nearest_neighbors, spatial_similarity_loss

# Eq. 4 complete (both halves), the paper's model.
BOTH_TERMS = {"use_similarity": True, "use_dissimilarity": True}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def line_points():
    # x = 0, 1, 3, 7, 15, 31 on the x axis (all gaps distinct, so neighbours are unique).
    xs = [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    return torch.tensor([[x, 0.0, 0.0] for x in xs])


# Worked out from the distances:
#   from 0:  1, 3, 7, 15, 31          -> near {1, 3},  far {31, 15}
#   from 1:  1, 2, 6, 14, 30          -> near {0, 3},  far {31, 15}
#   from 3:  3, 2, 4, 12, 28          -> near {1, 0},  far {31, 15}
#   from 7:  7, 6, 4, 8, 24           -> near {3, 1},  far {31, 15}
#   from 15: 15, 14, 12, 8, 16        -> near {7, 3},  far {31, 0}
#   from 31: 31, 30, 28, 24, 16       -> near {15, 7}, far {0, 1}
# (by point index: 0->x0, 1->x1, 2->x3, 3->x7, 4->x15, 5->x31)
NEAR = [[1, 2], [0, 2], [1, 0], [2, 1], [3, 2], [4, 3]]
FAR = [[5, 4], [5, 4], [5, 4], [5, 4], [5, 0], [0, 1]]


def test_neighbour_search_on_a_line_by_hand():
    points = line_points().double().numpy()
    everyone = np.arange(6)
    assert nearest_neighbors(points, everyone, 2).tolist() == NEAR
    assert farthest_neighbors(points, everyone, 2).tolist() == FAR
    # Same through the hull layers (forced: no brute force): a line peels end points first.
    assert farthest_neighbors(points, everyone, 2, brute_force_max_points=0).tolist() == FAR


def test_spatial_similarity_by_hand():
    means = line_points()
    angles = [0.0, 0.3, 1.0, 2.0, 2.5, 3.0]  # unit 2-D features at these angles (radians)
    features = torch.tensor(
        [[2 * math.cos(a), 2 * math.sin(a)] for a in angles], requires_grad=True
    )
    near_w, far_w = 0.05, 0.15
    near_sum = sum(sigmoid(1 - math.cos(angles[j] - angles[i])) for j in range(6) for i in NEAR[j])
    far_sum = sum(sigmoid(math.cos(angles[j] - angles[i])) for j in range(6) for i in FAR[j])
    expected = near_w / (6 * 2) * near_sum + far_w / (6 * 2) * far_sum
    # M = 6 >= N: every Gaussian is a sample (in order), K = L = 2.
    loss = spatial_similarity_loss(
        means,
        features,
        num_samples=6,
        near_k=2,
        far_l=2,
        near_weight=near_w,
        far_weight=far_w,
        **BOTH_TERMS,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    only_near = spatial_similarity_loss(
        means,
        features,
        num_samples=6,
        near_k=2,
        far_l=2,
        near_weight=near_w,
        far_weight=far_w,
        use_similarity=True,
        use_dissimilarity=False,
    )
    only_far = spatial_similarity_loss(
        means,
        features,
        num_samples=6,
        near_k=2,
        far_l=2,
        near_weight=near_w,
        far_weight=far_w,
        use_similarity=False,
        use_dissimilarity=True,
    )
    assert only_near.item() == pytest.approx(near_w / 12 * near_sum, rel=1e-6)
    assert only_far.item() == pytest.approx(far_w / 12 * far_sum, rel=1e-6)


def test_spatial_gradients_reach_features_only_and_scale_does_not_matter():
    g = torch.Generator().manual_seed(7)
    means = torch.randn(300, 3, generator=g, requires_grad=True)
    features = torch.randn(300, 8, generator=g, requires_grad=True)
    loss = spatial_similarity_loss(
        means,
        features,
        num_samples=50,
        near_k=2,
        far_l=5,
        near_weight=0.05,
        far_weight=0.15,
        **BOTH_TERMS,
        generator=torch.Generator().manual_seed(0),
    )
    loss.backward()
    assert means.grad is None
    assert features.grad is not None and features.grad.abs().sum() > 0
    scaled = spatial_similarity_loss(
        means,
        features * 4.0,
        num_samples=50,
        near_k=2,
        far_l=5,
        near_weight=0.05,
        far_weight=0.15,
        **BOTH_TERMS,
        generator=torch.Generator().manual_seed(0),
    )
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-6)


def test_spatial_tiny_sets():
    features = torch.randn(2, 4, requires_grad=True)
    means = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    # N = 2: one neighbour each, which is both the nearest and the farthest.
    f = torch.nn.functional.normalize(features.detach(), dim=-1)
    cos = float(f[0] @ f[1])
    expected = 0.05 / 2 * 2 * sigmoid(1 - cos) + 0.15 / 2 * 2 * sigmoid(cos)
    loss = spatial_similarity_loss(
        means,
        features,
        num_samples=10,
        near_k=2,
        far_l=5,
        near_weight=0.05,
        far_weight=0.15,
        **BOTH_TERMS,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    one = spatial_similarity_loss(
        means[:1],
        features[:1],
        num_samples=10,
        near_k=2,
        far_l=5,
        near_weight=0.05,
        far_weight=0.15,
        **BOTH_TERMS,
    )
    assert one.item() == 0.0


def test_spatial_gradients_are_the_same_every_run():
    """Many samples share neighbours; their gradients must be summed in a fixed order (advanced
    indexing's CPU backward summed them in a thread-dependent order: 1e-13 differences that made
    training runs differ)."""
    generator = torch.Generator().manual_seed(0)
    means = torch.randn(5000, 3, generator=generator)
    features = torch.randn(5000, 16, generator=generator, requires_grad=True)
    grads = []
    for _ in range(12):
        loss = spatial_similarity_loss(
            means, features, num_samples=2048, near_k=2, far_l=5, near_weight=0.05,
            far_weight=0.15, **BOTH_TERMS, generator=torch.Generator().manual_seed(1))
        (grad,) = torch.autograd.grad(loss, features)
        grads.append(grad)
    assert all(torch.equal(grads[0], grad) for grad in grads[1:])
