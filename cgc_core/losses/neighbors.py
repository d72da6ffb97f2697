"""Neighbour geometry for the spatial-similarity loss (Eq. 4): the K nearest Gaussians from a
KD-tree, and the L farthest exactly from convex-hull "onion peeling", never from an N x N distance
matrix.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError, cKDTree

# Below this many points the farthest search is a brute-force distance matrix (M x N is small),
# which also sidesteps Qhull on tiny or degenerate sets.
_BRUTE_FORCE_MAX_POINTS = 64
# Largest query x candidate distance block held at once (float64 entries: 128 MiB).
_MAX_DISTANCE_BLOCK = 1 << 24


def nearest_neighbors(points: np.ndarray, query_index: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest other points of each query point (KD-tree).

    Args:
        points: [N, 3] float array.
        query_index: [M] indices into `points`.
        k: neighbours per query; must be <= N - 1.
    Returns:
        [M, k] int64 indices, nearest first, never the query itself.
    """
    tree = cKDTree(points)
    _, idx = tree.query(points[query_index], k=k + 1, workers=-1)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(query_index), k + 1)
    # Normally the query is its own nearest neighbour; with duplicated positions another point
    # at distance 0 may come first, so drop the query wherever it is, else the last column.
    not_self = idx != query_index[:, None]
    no_self = not_self.all(axis=1)
    not_self[no_self, -1] = False
    return idx[not_self].reshape(len(query_index), k)


def _layer_vertices(points: np.ndarray, remaining: np.ndarray,
                    num_layers: int) -> tuple[np.ndarray, bool]:
    """One onion layer: a subset H of `remaining` whose convex hull contains all of `remaining`.

    Returns (indices into `points` of H, exhausted) where `exhausted` says that peeling must stop
    (H is everything that is left, or the rest coincides with H).
    The set may be degenerate (coplanar, collinear, coincident): the hull is then taken in the
    affine hull of the set, found from the singular values of the centred coordinates.
    """
    pts = points[remaining]
    if len(pts) <= 4:
        return remaining, True
    try:
        # The common case, a set spanning 3D: Qhull directly (no rank test to pay for).
        return remaining[ConvexHull(pts).vertices], False
    except (QhullError, ValueError):
        pass  # flat (or nearly): find its affine hull and take the hull there
    centred = pts - pts.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(s > 1e-9 * s[0])) if s[0] > 0 else 0
    if rank == 0:
        # All coincide, so all are equally far from any query: num_layers + 1 of them are as
        # good as all of them (k farthest, plus one in case the query is among them). Stop.
        return remaining[:num_layers + 1], True
    coords = centred @ vt[:rank].T  # [n, rank]: coordinates in the affine hull
    if rank == 1:
        t = coords[:, 0]
        return remaining[[int(np.argmin(t)), int(np.argmax(t))]], False
    try:
        return remaining[ConvexHull(coords).vertices], False
    except (QhullError, ValueError):
        return remaining, True  # cannot peel: every remaining point is a candidate (exact)


def hull_layer_candidates(points: np.ndarray, num_layers: int) -> np.ndarray:
    """Union of the first `num_layers` convex-hull layers ("onion peeling") of a point set.

    Why this finds the farthest points exactly. Fix a query x. The distance p -> ||p - x|| is
    convex, so its maximum over a convex polytope conv(S) is attained at a vertex: the farthest
    point of S from x is a vertex of its convex hull. Peel: S_1 = S, H_i = vertices of
    conv(S_i), S_{i+1} = S_i minus H_i. Take any p in S that is not in H_1..H_k. For each i <= k,
    p lies in S_i, inside conv(S_i) = conv(H_i), so some h_i in H_i is at least as far from x as
    p. The h_i are distinct (the layers are disjoint), so k points of the first k layers are at
    least as far as p: the k farthest points of S from ANY query can be chosen inside the first k
    layers. Only conv(H_i) containing S_i is used, so H_i may be any such subset (that is how the
    degenerate cases are handled, and why falling back to "all of S_i" is always correct).

    Excluding the query itself (it is at distance 0, so never needed unless all distances tie at
    0) costs nothing: a point p farther than 0 is beaten by k layer points all farther than 0,
    none of which is the query; and the union holds at least k + 1 points whenever N > k (a layer
    has >= 2 points unless the set is exhausted).

    Exact up to rounding: a set (or what is left of it) that Qhull finds flat is peeled in its
    affine hull (plane or line); thickness below 1e-9 of its extent counts as flat.

    Args:
        points: [N, 3] float array.
        num_layers: how many layers to peel (k).
    Returns:
        [C] int64 indices of the candidate points.
    """
    points = np.asarray(points, dtype=np.float64)
    remaining = np.arange(len(points), dtype=np.int64)
    layers = []
    for _ in range(num_layers):
        if len(remaining) == 0:
            break
        layer, exhausted = _layer_vertices(points, remaining, num_layers)
        layers.append(layer)
        if exhausted:
            break
        mask = np.ones(len(points), dtype=bool)
        mask[layer] = False
        remaining = remaining[mask[remaining]]
    if not layers:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(layers))


def farthest_neighbors(points: np.ndarray, query_index: np.ndarray, k: int,
                       brute_force_max_points: int = _BRUTE_FORCE_MAX_POINTS) -> np.ndarray:
    """Indices of the k farthest other points of each query point, exact.

    Searches only the first k convex-hull layers (`hull_layer_candidates`, the proof is there)
    unless the set has at most `brute_force_max_points` points.

    Args:
        points: [N, 3] float array.
        query_index: [M] indices into `points`.
        k: neighbours per query; must be <= N - 1.
    Returns:
        [M, k] int64 indices, farthest first, never the query itself.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) <= brute_force_max_points:
        candidates = np.arange(len(points), dtype=np.int64)
    else:
        candidates = hull_layer_candidates(points, k)
    cand = torch.from_numpy(points[candidates])
    # C is usually a small fraction of N (a few hull layers), but for points that all lie on a
    # convex surface (a sphere) every point is a hull vertex: bound the [rows, C] block in memory.
    rows = max(1, _MAX_DISTANCE_BLOCK // max(1, len(candidates)))
    out = np.empty((len(query_index), k), dtype=np.int64)
    for start in range(0, len(query_index), rows):
        q = query_index[start:start + rows]
        d = torch.cdist(torch.from_numpy(points[q]), cand)  # [rows, C]
        d[torch.from_numpy(candidates[None, :] == q[:, None])] = -1.0  # never the query itself
        _, top = torch.topk(d, k, dim=1, largest=True, sorted=True)
        out[start:start + rows] = candidates[top.numpy()]
    return out
