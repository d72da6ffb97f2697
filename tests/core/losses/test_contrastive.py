"""Eq. 3 against values worked out by hand (the arithmetic is written in the tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cgc_core.losses import contrastive_clustering, contrastive_clustering_loss
from cgc_core.losses.contrastive import MIN_TEMPERATURE

# The paper's bare temperature (no scale, no clip): the hand-worked values below use it.
BARE = {"temperature_scale": 1.0, "temperature_range": (MIN_TEMPERATURE, math.inf),
        "cluster_balance": 0.0}


def log_softmax_of(own: float, others: list[float]) -> float:
    """log(exp(own) / (exp(own) + sum exp(others))) = -log(1 + sum exp(other - own))."""
    return -math.log(1.0 + sum(math.exp(o - own) for o in others))


LOG_EPS = 100.0


def two_segment_image():
    """3 x 2 image: segment 1 (2 px), segment 2 (3 px), one unlabelled pixel.

    Raw 2-D features (normalised by the loss):
        seg 1: (2, 0) -> (1, 0);   (0, 3) -> (0, 1)
        seg 2: (-1, 0) twice;      (0, -5) -> (0, -1)
        seg 0: (7, 7) (ignored)
    """
    features = torch.tensor([
        [[2.0, 0.0], [0.0, 3.0]],
        [[-1.0, 0.0], [-1.0, 0.0]],
        [[0.0, -5.0], [7.0, 7.0]],
    ])
    segments = torch.tensor([[1, 1], [2, 2], [2, 0]])
    return features, segments


def test_contrastive_two_segments_by_hand():
    features, segments = two_segment_image()
    # Centroids (means of normalised features, not re-normalised):
    #   c1 = (0.5, 0.5), c2 = (-2/3, -1/3)
    # Temperatures: sum ||f - c|| / (N log(N + eps)).
    # seg 1: ||(1,0)-(.5,.5)|| = ||(0,1)-(.5,.5)|| = sqrt(0.5) -> sum sqrt(2)
    phi1 = math.sqrt(2) / (2 * math.log(2 + LOG_EPS))
    # seg 2: ||(-1,0)-c2|| = ||(-1/3, 1/3)|| = sqrt(2)/3 (twice); ||(0,-1)-c2|| = ||(2/3,-2/3)||
    #        = 2 sqrt(2)/3 -> sum 4 sqrt(2)/3
    phi2 = (4 * math.sqrt(2) / 3) / (3 * math.log(3 + LOG_EPS))
    # dot products with c1, c2:
    #   (1,0): 0.5, -2/3   (0,1): 0.5, -1/3   (-1,0): -0.5, 2/3   (0,-1): -0.5, 1/3
    terms = [
        log_softmax_of(0.5 / phi1, [(-2 / 3) / phi2]),
        log_softmax_of(0.5 / phi1, [(-1 / 3) / phi2]),
        2 * log_softmax_of((2 / 3) / phi2, [-0.5 / phi1]),
        log_softmax_of((1 / 3) / phi2, [-0.5 / phi1]),
    ]
    expected = -sum(terms) / 2  # N_k = 2 clusters
    result = contrastive_clustering(features, segments, min_pixels=0, temperature_eps=LOG_EPS,
                                    **BARE)
    assert result.num_clusters == 2
    assert result.num_pixels == 5
    assert result.segment_ids.tolist() == [1, 2]
    assert result.temperatures.tolist() == pytest.approx([phi1, phi2], rel=1e-5)
    assert result.loss.item() == pytest.approx(expected, rel=1e-5)
    # cluster_balance = alpha: cluster weights N^-alpha scaled to sum to Q = 5 over the pixels.
    # alpha = 1: 2 pixels at 5 / (2 * 2) = 1.25 and 3 pixels at 5 / (2 * 3); alpha = 0.5: weights
    # proportional to 1/sqrt(2) and 1/sqrt(3), with 2/sqrt(2) + 3/sqrt(3) = sqrt(2) + sqrt(3).
    for alpha, (w1, w2) in {
        1.0: (1.25, 5 / 6),
        0.5: (5 / math.sqrt(2) / (math.sqrt(2) + math.sqrt(3)),
              5 / math.sqrt(3) / (math.sqrt(2) + math.sqrt(3))),
    }.items():
        balanced = contrastive_clustering(
            features, segments, min_pixels=0, temperature_eps=LOG_EPS,
            **{**BARE, "cluster_balance": alpha})
        by_hand = -(w1 * (terms[0] + terms[1]) + w2 * (terms[2] + terms[3])) / 2
        assert balanced.loss.item() == pytest.approx(by_hand, rel=1e-5)


def test_contrastive_three_segments_by_hand():
    # 3 x 2 image, features already unit length, 2 pixels per segment.
    #   seg 5: (1, 0), (0.6, 0.8)     seg 7: (0, 1), (-0.6, 0.8)     seg 9: (0, -1), (0, -1)
    features = torch.tensor(
        [
            [[1.0, 0.0], [0.6, 0.8]],
            [[0.0, 1.0], [-0.6, 0.8]],
            [[0.0, -1.0], [0.0, -1.0]],
        ]
    )
    segments = torch.tensor([[5, 5], [7, 7], [9, 9]])
    eps = 10.0
    # centroids: c5 = (0.8, 0.4), c7 = (-0.3, 0.9), c9 = (0, -1)
    # spreads: seg 5: ||(0.2,-0.4)|| + ||(-0.2,0.4)|| = 2 sqrt(0.2)
    #          seg 7: ||(0.3,0.1)|| + ||(-0.3,-0.1)|| = 2 sqrt(0.1)
    #          seg 9: 0 -> floored at 1e-4
    phi5 = 2 * math.sqrt(0.2) / (2 * math.log(2 + eps))
    phi7 = 2 * math.sqrt(0.1) / (2 * math.log(2 + eps))
    phi9 = 1e-4

    # dots (f . c5, f . c7, f . c9):
    #   (1,0):     0.8,   -0.3,  0
    #   (.6,.8):   0.8,    0.54, -0.8
    #   (0,1):     0.4,    0.9,  -1
    #   (-.6,.8): -0.16,   0.9,  -0.8
    #   (0,-1):   -0.4,   -0.9,   1   (twice)
    def row(d5, d7, d9, own):
        logits = [d5 / phi5, d7 / phi7, d9 / phi9]
        return log_softmax_of(logits[own], logits[:own] + logits[own + 1 :])

    terms = [
        row(0.8, -0.3, 0.0, 0),
        row(0.8, 0.54, -0.8, 0),
        row(0.4, 0.9, -1.0, 1),
        row(-0.16, 0.9, -0.8, 1),
        2 * row(-0.4, -0.9, 1.0, 2),
    ]
    expected = -sum(terms) / 3
    loss = contrastive_clustering_loss(
        features, segments, min_pixels=0, temperature_eps=eps, **BARE
    )
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_contrastive_ignores_small_and_unlabelled_segments():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(4, 5, 3, generator=g)
    segments = torch.tensor(
        [
            [1, 1, 1, 2, 2],
            [1, 1, 1, 2, 2],
            [3, 3, 0, 2, 2],
            [0, 0, 0, -1, -1],
        ]
    )
    # sizes: seg 1: 6, seg 2: 6, seg 3: 2 (dropped by min_pixels=2: needs MORE than 2),
    # 0 and -1 are unlabelled.
    result = contrastive_clustering(
        features, segments, min_pixels=2, temperature_eps=LOG_EPS, **BARE
    )
    assert result.num_clusters == 2
    assert result.segment_ids.tolist() == [1, 2]
    assert result.num_pixels == 12
    only_big = segments.clone()
    only_big[segments == 3] = 0
    only_big[segments == -1] = 0
    reference = contrastive_clustering_loss(
        features, only_big, min_pixels=0, temperature_eps=LOG_EPS, **BARE
    )
    assert result.loss.item() == pytest.approx(reference.item(), rel=1e-6)
    # Changing the features of ignored pixels changes nothing.
    other = features.clone()
    other[segments <= 0] = 5.0
    other[segments == 3] = -2.0
    again = contrastive_clustering_loss(
        other, segments, min_pixels=2, temperature_eps=LOG_EPS, **BARE
    )
    assert again.item() == pytest.approx(result.loss.item(), rel=1e-6)
    # "More than": with min_pixels=5 the 6-pixel segments still count, with 6 they do not.
    assert (
        contrastive_clustering(
            features, segments, min_pixels=5, temperature_eps=LOG_EPS, **BARE
        ).num_clusters
        == 2
    )
    assert (
        contrastive_clustering(
            features, segments, min_pixels=6, temperature_eps=LOG_EPS, **BARE
        ).num_clusters
        == 0
    )


def test_contrastive_fewer_than_two_clusters_is_zero_with_grad():
    features = torch.randn(3, 3, 4, requires_grad=True)
    one = torch.ones(3, 3, dtype=torch.long)
    none = torch.zeros(3, 3, dtype=torch.long)
    for segments in (one, none):
        loss = contrastive_clustering_loss(
            features, segments, min_pixels=0, temperature_eps=LOG_EPS, **BARE
        )
        assert loss.item() == 0.0
        loss.backward()
        assert torch.all(features.grad == 0)


def test_contrastive_is_invariant_to_feature_scale():
    g = torch.Generator().manual_seed(4)
    features = torch.randn(6, 7, 5, generator=g)
    segments = torch.randint(0, 4, (6, 7), generator=g)
    base = contrastive_clustering_loss(
        features, segments, min_pixels=0, temperature_eps=LOG_EPS, **BARE
    )
    scaled = contrastive_clustering_loss(
        features * 7.3, segments, min_pixels=0, temperature_eps=LOG_EPS, **BARE
    )
    per_pixel = torch.rand(6, 7, 1, generator=g) * 10 + 0.1
    rescaled = contrastive_clustering_loss(
        features * per_pixel, segments, min_pixels=0, temperature_eps=LOG_EPS, **BARE
    )
    assert scaled.item() == pytest.approx(base.item(), rel=1e-5)
    assert rescaled.item() == pytest.approx(base.item(), rel=1e-5)


def test_contrastive_gradient_step_pulls_segments_together():
    g = torch.Generator().manual_seed(5)
    segments = torch.zeros(8, 8, dtype=torch.long)
    segments[:, :3], segments[:, 3:6], segments[:, 6:] = 1, 2, 3
    features = torch.randn(8, 8, 4, generator=g, requires_grad=True)

    def within_similarity(f):
        f = torch.nn.functional.normalize(f.detach(), dim=-1).reshape(-1, 4)
        labels = segments.reshape(-1)
        sims = []
        for s in (1, 2, 3):
            x = f[labels == s]
            sims.append((x @ x.T).mean())
        return torch.stack(sims)

    before = within_similarity(features)
    loss = contrastive_clustering_loss(
        features, segments, min_pixels=0, temperature_eps=LOG_EPS, **BARE
    )
    loss.backward()
    with torch.no_grad():
        stepped = features - 1e-3 * features.grad
    after = within_similarity(stepped)
    assert torch.all(after > before)
    assert (
        contrastive_clustering_loss(
            stepped, segments, min_pixels=0, temperature_eps=LOG_EPS, **BARE
        ).item()
        < loss.item()
    )


def test_contrastive_subsampling_is_an_unbiased_estimate():
    g = torch.Generator().manual_seed(6)
    features = torch.randn(20, 20, 3, generator=g)
    segments = torch.zeros(20, 20, dtype=torch.long)
    segments[:, :7], segments[:, 7:12], segments[:, 12:] = 1, 2, 3
    full = contrastive_clustering(features, segments, min_pixels=0, temperature_eps=LOG_EPS, **BARE)
    # A limit above every segment size changes nothing.
    same = contrastive_clustering(
        features,
        segments,
        min_pixels=0,
        temperature_eps=LOG_EPS,
        **BARE,
        max_pixels_per_segment=1000,
    )
    assert same.loss.item() == pytest.approx(full.loss.item(), rel=1e-6)
    estimates = []
    for seed in range(200):
        sub = contrastive_clustering(
            features,
            segments,
            min_pixels=0,
            temperature_eps=LOG_EPS,
            **BARE,
            max_pixels_per_segment=30,
            generator=torch.Generator().manual_seed(seed),
        )
        assert sub.num_pixels == 90
        estimates.append(sub.loss.item())
    assert np.mean(estimates) == pytest.approx(full.loss.item(), rel=0.02)
