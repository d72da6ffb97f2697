"""The farthest-neighbour search (convex-hull onion peeling) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from cgc_core.losses import farthest_neighbors, hull_layer_candidates, nearest_neighbors


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
        np.testing.assert_allclose(
            found_d, brute_farthest_distances(points, queries, k_eff), rtol=1e-9, atol=1e-9
        )


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
    import cgc_core.losses.neighbors as losses

    points = np.random.default_rng(4).normal(size=(300, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    queries = np.arange(0, 300, 3)
    whole = farthest_neighbors(points, queries, 5, brute_force_max_points=0)
    monkeypatch.setattr(losses, "_MAX_DISTANCE_BLOCK", 1000)
    blocked = farthest_neighbors(points, queries, 5, brute_force_max_points=0)
    np.testing.assert_array_equal(blocked, whole)
    np.testing.assert_allclose(
        np.linalg.norm(points[whole] - points[queries][:, None, :], axis=-1),
        brute_farthest_distances(points, queries, 5),
        rtol=1e-12,
    )
