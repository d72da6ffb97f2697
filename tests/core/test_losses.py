"""Loss terms against values worked out by hand (the arithmetic is written in the tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cgc_core.losses import (
    contrastive_clustering,
    contrastive_clustering_loss,
    farthest_neighbors,
    hull_layer_candidates,
    l1_loss,
    nearest_neighbors,
    rendering_loss,
    spatial_similarity_loss,
    ssim,
)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def log_softmax_of(own: float, others: list[float]) -> float:
    """log(exp(own) / (exp(own) + sum exp(others))) = -log(1 + sum exp(other - own))."""
    return -math.log(1.0 + sum(math.exp(o - own) for o in others))


# ------------------------------------------------------------------------------ rendering


def test_l1_by_hand():
    a = torch.tensor([[[0.0, 0.5, 1.0]], [[0.2, 0.2, 0.2]]])  # [2, 1, 3]
    b = torch.tensor([[[0.5, 0.5, 0.0]], [[0.0, 0.4, 0.2]]])
    # |diffs| = 0.5, 0, 1, 0.2, 0.2, 0 -> sum 1.9 over 6 values
    assert l1_loss(a, b).item() == pytest.approx(1.9 / 6)


def test_ssim_of_identical_images_is_one():
    img = torch.rand(20, 17, 3, generator=torch.Generator().manual_seed(0))
    assert ssim(img, img).item() == pytest.approx(1.0, abs=1e-6)
    assert rendering_loss(img, img, 0.2).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_of_constant_images_by_hand():
    # Constant images a and b: away from the border every local mean is a (b) and every local
    # variance and covariance is 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    # = (0.25 + 1e-4) / (0.3125 + 1e-4) = 0.80006. The zero padding changes a 5-pixel band along
    # the border (about 5% of a 200 x 200 image), hence the loose tolerance.
    a, b, c1 = 0.5, 0.25, 0.01**2
    expected_inside = (2 * a * b + c1) / (a * a + b * b + c1)
    value = ssim(torch.full((200, 200, 1), a), torch.full((200, 200, 1), b)).item()
    assert value == pytest.approx(expected_inside, abs=0.02)


def test_rendering_loss_combines_l1_and_dssim():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(16, 16, 3, generator=g), torch.rand(16, 16, 3, generator=g)
    expected = 0.8 * l1_loss(x, y) + 0.2 * (1 - ssim(x, y))
    assert rendering_loss(x, y, 0.2).item() == pytest.approx(expected.item())


# --------------------------------------------------------------------- contrastive clustering

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
    c1 = (0.5, 0.5)
    c2 = (-2 / 3, -1 / 3)
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
    result = contrastive_clustering(features, segments, min_pixels=0, temperature_eps=LOG_EPS)
    assert result.num_clusters == 2
    assert result.num_pixels == 5
    assert result.segment_ids.tolist() == [1, 2]
    assert result.temperatures.tolist() == pytest.approx([phi1, phi2], rel=1e-5)
    assert result.loss.item() == pytest.approx(expected, rel=1e-5)


def test_contrastive_three_segments_by_hand():
    # 3 x 2 image, features already unit length, 2 pixels per segment.
    #   seg 5: (1, 0), (0.6, 0.8)     seg 7: (0, 1), (-0.6, 0.8)     seg 9: (0, -1), (0, -1)
    features = torch.tensor([
        [[1.0, 0.0], [0.6, 0.8]],
        [[0.0, 1.0], [-0.6, 0.8]],
        [[0.0, -1.0], [0.0, -1.0]],
    ])
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
        return log_softmax_of(logits[own], logits[:own] + logits[own + 1:])

    terms = [
        row(0.8, -0.3, 0.0, 0), row(0.8, 0.54, -0.8, 0),
        row(0.4, 0.9, -1.0, 1), row(-0.16, 0.9, -0.8, 1),
        2 * row(-0.4, -0.9, 1.0, 2),
    ]
    expected = -sum(terms) / 3
    loss = contrastive_clustering_loss(features, segments, min_pixels=0, temperature_eps=eps)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_contrastive_ignores_small_and_unlabelled_segments():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(4, 5, 3, generator=g)
    segments = torch.tensor([
        [1, 1, 1, 2, 2],
        [1, 1, 1, 2, 2],
        [3, 3, 0, 2, 2],
        [0, 0, 0, -1, -1],
    ])
    # sizes: seg 1: 6, seg 2: 6, seg 3: 2 (dropped by min_pixels=2: needs MORE than 2),
    # 0 and -1 are unlabelled.
    result = contrastive_clustering(features, segments, min_pixels=2, temperature_eps=LOG_EPS)
    assert result.num_clusters == 2
    assert result.segment_ids.tolist() == [1, 2]
    assert result.num_pixels == 12
    only_big = segments.clone()
    only_big[segments == 3] = 0
    only_big[segments == -1] = 0
    reference = contrastive_clustering_loss(features, only_big, min_pixels=0,
                                            temperature_eps=LOG_EPS)
    assert result.loss.item() == pytest.approx(reference.item(), rel=1e-6)
    # Changing the features of ignored pixels changes nothing.
    other = features.clone()
    other[segments <= 0] = 5.0
    other[segments == 3] = -2.0
    again = contrastive_clustering_loss(other, segments, min_pixels=2, temperature_eps=LOG_EPS)
    assert again.item() == pytest.approx(result.loss.item(), rel=1e-6)
    # "More than": with min_pixels=5 the 6-pixel segments still count, with 6 they do not.
    assert contrastive_clustering(features, segments, 5, LOG_EPS).num_clusters == 2
    assert contrastive_clustering(features, segments, 6, LOG_EPS).num_clusters == 0


def test_contrastive_fewer_than_two_clusters_is_zero_with_grad():
    features = torch.randn(3, 3, 4, requires_grad=True)
    one = torch.ones(3, 3, dtype=torch.long)
    none = torch.zeros(3, 3, dtype=torch.long)
    for segments in (one, none):
        loss = contrastive_clustering_loss(features, segments, 0, LOG_EPS)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.all(features.grad == 0)


def test_contrastive_is_invariant_to_feature_scale():
    g = torch.Generator().manual_seed(4)
    features = torch.randn(6, 7, 5, generator=g)
    segments = torch.randint(0, 4, (6, 7), generator=g)
    base = contrastive_clustering_loss(features, segments, 0, LOG_EPS)
    scaled = contrastive_clustering_loss(features * 7.3, segments, 0, LOG_EPS)
    per_pixel = torch.rand(6, 7, 1, generator=g) * 10 + 0.1
    rescaled = contrastive_clustering_loss(features * per_pixel, segments, 0, LOG_EPS)
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
    loss = contrastive_clustering_loss(features, segments, 0, LOG_EPS)
    loss.backward()
    with torch.no_grad():
        stepped = features - 1e-3 * features.grad
    after = within_similarity(stepped)
    assert torch.all(after > before)
    assert contrastive_clustering_loss(stepped, segments, 0, LOG_EPS).item() < loss.item()


def test_contrastive_subsampling_is_an_unbiased_estimate():
    g = torch.Generator().manual_seed(6)
    features = torch.randn(20, 20, 3, generator=g)
    segments = torch.zeros(20, 20, dtype=torch.long)
    segments[:, :7], segments[:, 7:12], segments[:, 12:] = 1, 2, 3
    full = contrastive_clustering(features, segments, 0, LOG_EPS)
    # A limit above every segment size changes nothing.
    same = contrastive_clustering(features, segments, 0, LOG_EPS, max_pixels_per_segment=1000)
    assert same.loss.item() == pytest.approx(full.loss.item(), rel=1e-6)
    estimates = []
    for seed in range(200):
        sub = contrastive_clustering(features, segments, 0, LOG_EPS, max_pixels_per_segment=30,
                                     generator=torch.Generator().manual_seed(seed))
        assert sub.num_pixels == 90
        estimates.append(sub.loss.item())
    assert np.mean(estimates) == pytest.approx(full.loss.item(), rel=0.02)


# ------------------------------------------------------------------- spatial similarity (Eq. 4)


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
    features = torch.tensor([[2 * math.cos(a), 2 * math.sin(a)] for a in angles],
                            requires_grad=True)
    near_w, far_w = 0.05, 0.15
    near_sum = sum(sigmoid(1 - math.cos(angles[j] - angles[i]))
                   for j in range(6) for i in NEAR[j])
    far_sum = sum(sigmoid(math.cos(angles[j] - angles[i])) for j in range(6) for i in FAR[j])
    expected = near_w / (6 * 2) * near_sum + far_w / (6 * 2) * far_sum
    # M = 6 >= N: every Gaussian is a sample (in order), K = L = 2.
    loss = spatial_similarity_loss(means, features, 6, 2, 2, near_w, far_w)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    only_near = spatial_similarity_loss(means, features, 6, 2, 2, near_w, far_w,
                                        use_dissimilarity=False)
    only_far = spatial_similarity_loss(means, features, 6, 2, 2, near_w, far_w,
                                       use_similarity=False)
    assert only_near.item() == pytest.approx(near_w / 12 * near_sum, rel=1e-6)
    assert only_far.item() == pytest.approx(far_w / 12 * far_sum, rel=1e-6)


def test_spatial_gradients_reach_features_only_and_scale_does_not_matter():
    g = torch.Generator().manual_seed(7)
    means = torch.randn(300, 3, generator=g, requires_grad=True)
    features = torch.randn(300, 8, generator=g, requires_grad=True)
    loss = spatial_similarity_loss(means, features, 50, 2, 5, 0.05, 0.15,
                                   generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert means.grad is None
    assert features.grad is not None and features.grad.abs().sum() > 0
    scaled = spatial_similarity_loss(means, features * 4.0, 50, 2, 5, 0.05, 0.15,
                                     generator=torch.Generator().manual_seed(0))
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-6)


def test_spatial_tiny_sets():
    features = torch.randn(2, 4, requires_grad=True)
    means = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]])
    # N = 2: one neighbour each, which is both the nearest and the farthest.
    f = torch.nn.functional.normalize(features.detach(), dim=-1)
    cos = float(f[0] @ f[1])
    expected = 0.05 / 2 * 2 * sigmoid(1 - cos) + 0.15 / 2 * 2 * sigmoid(cos)
    loss = spatial_similarity_loss(means, features, 10, 2, 5, 0.05, 0.15)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    one = spatial_similarity_loss(means[:1], features[:1], 10, 2, 5, 0.05, 0.15)
    assert one.item() == 0.0


def brute_farthest_distances(points, queries, k):
    d = np.linalg.norm(points[queries][:, None, :] - points[None, :, :], axis=-1)
    d[np.arange(len(queries)), queries] = -1.0  # never the query itself
    return -np.sort(-d, axis=1)[:, :k]


def point_sets():
    rng = np.random.default_rng(0)
    sets = {}
    for seed in range(4):
        r = np.random.default_rng(seed)
        sets[f"gauss{seed}"] = r.normal(size=(int(r.integers(100, 3000)), 3))
    sets["cube_grid"] = np.stack(np.meshgrid(*[np.arange(6.0)] * 3), -1).reshape(-1, 3)
    plane = rng.normal(size=(500, 2))
    sets["coplanar"] = plane @ np.array([[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]]) + 3.0
    sets["collinear"] = rng.normal(size=(200, 1)) * np.array([[1.0, -2.0, 0.3]])
    sets["coincident"] = np.tile([[1.0, 2.0, 3.0]], (100, 1))
    sets["duplicates"] = np.repeat(rng.normal(size=(40, 3)), 5, axis=0)
    sets["sphere"] = rng.normal(size=(400, 3))
    sets["sphere"] /= np.linalg.norm(sets["sphere"], axis=1, keepdims=True)
    for n in range(2, 9):
        sets[f"tiny{n}"] = rng.normal(size=(n, 3))
    sets["tiny_coplanar7"] = np.c_[rng.normal(size=(7, 2)), np.zeros(7)]
    return sets


@pytest.mark.parametrize("name", list(point_sets()))
def test_onion_peeling_farthest_equals_brute_force(name):
    points = point_sets()[name]
    n = len(points)
    rng = np.random.default_rng(1)
    queries = rng.choice(n, size=min(n, 64), replace=False)
    for k in (1, 2, 5):
        k_eff = min(k, n - 1)
        found = farthest_neighbors(points, queries, k_eff, brute_force_max_points=0)
        assert found.shape == (len(queries), k_eff)
        assert not np.any(found == queries[:, None])
        found_d = np.linalg.norm(points[found] - points[queries][:, None, :], axis=-1)
        np.testing.assert_allclose(found_d, brute_farthest_distances(points, queries, k_eff),
                                   rtol=1e-9, atol=1e-9)


def test_hull_layers_are_small_for_a_blob():
    points = np.random.default_rng(2).normal(size=(20000, 3))
    candidates = hull_layer_candidates(points, 5)
    assert len(candidates) < 0.1 * len(points)


def test_nearest_neighbours_with_duplicates_never_return_the_query():
    points = np.repeat(np.random.default_rng(3).normal(size=(50, 3)), 3, axis=0)
    queries = np.arange(0, 150, 7)
    near = nearest_neighbors(points, queries, 2)
    assert not np.any(near == queries[:, None])
    d = np.linalg.norm(points[near] - points[queries][:, None, :], axis=-1)
    np.testing.assert_allclose(d, 0.0)  # the two copies of each point


def test_farthest_search_in_blocks_matches(monkeypatch):
    # Points on a sphere are all hull vertices, so every point is a candidate; a tiny distance
    # block forces the query loop through many blocks.
    import cgc_core.losses as losses

    points = np.random.default_rng(4).normal(size=(300, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    queries = np.arange(0, 300, 3)
    whole = farthest_neighbors(points, queries, 5, brute_force_max_points=0)
    monkeypatch.setattr(losses, "_MAX_DISTANCE_BLOCK", 1000)
    blocked = farthest_neighbors(points, queries, 5, brute_force_max_points=0)
    np.testing.assert_array_equal(blocked, whole)
    np.testing.assert_allclose(
        np.linalg.norm(points[whole] - points[queries][:, None, :], axis=-1),
        brute_farthest_distances(points, queries, 5), rtol=1e-12)


def test_ssim_equals_the_full_11x11_window_computation():
    """The separable blur must give what 3DGS's 2D-window convolution gives."""
    import math

    import torch.nn.functional as F

    from cgc_core.losses import ssim

    gen = torch.Generator().manual_seed(3)
    a, b = torch.rand(20, 17, 3, generator=gen), torch.rand(20, 17, 3, generator=gen)
    x = torch.arange(11, dtype=torch.float32) - 5
    g = torch.exp(-x * x / (2 * 1.5 ** 2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(3, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, window, padding=5, groups=3)

    p, q = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    mu1, mu2 = blur(p), blur(q)
    s1, s2, s12 = blur(p * p) - mu1 ** 2, blur(q * q) - mu2 ** 2, blur(p * q) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = (((2 * mu1 * mu2 + c1) * (2 * s12 + c2))
                / ((mu1 ** 2 + mu2 ** 2 + c1) * (s1 + s2 + c2))).mean()
    assert math.isclose(float(ssim(a, b)), float(expected), rel_tol=1e-5)
