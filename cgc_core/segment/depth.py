"""Depth-aware segment proposals: support planes removed, then Euclidean clusters, as tabletop
segmentation has long done (RANSAC plane, then clusters of what stands on it).

On an organised depth image the clusters are connected components of a pixel graph whose 4-
neighbour links break where the depth jumps (PCL's organised connected-component segmentation):
two neighbours belong together when their depths differ by at most `edge_ratio` times their depth.
That is a Euclidean cluster with a tolerance that grows with range, as a depth sensor's noise and
pixel footprint do, and it costs one pass over the image instead of a k-d tree.

Invalid depth (REP 118: 0, NaN, +-inf) is in no plane and no cluster: region 0.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """[H, W] bool: finite and positive (REP 118 marks invalid depth as 0, NaN or +-inf)."""
    return np.isfinite(depth) & (depth > 0)


def backproject(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """[H, W, 3] float64 camera-frame points (OpenCV axes) of [H, W] `depth` in metres; invalid
    pixels give NaN."""
    height, width = depth.shape
    z = np.where(valid_depth(depth), depth, np.nan).astype(np.float64)
    u = (np.arange(width, dtype=np.float64) + 0.5 - cx) / fx
    v = (np.arange(height, dtype=np.float64) + 0.5 - cy) / fy
    return np.stack([z * u[None, :], z * v[:, None], z], axis=-1)


def ransac_plane(points: np.ndarray, threshold: float, iterations: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, float] | None:
    """The plane through the most of [N, 3] `points` within `threshold`: `iterations` random
    3-point hypotheses scored at once, the best refitted to its inliers by least squares.

    A small numpy RANSAC rather than open3d's `segment_plane`, whose threads make its answer
    vary from call to call: the same view must always give the same segments (they are cached
    and compared).

    Returns:
        (unit normal [3], offset) with normal . x + offset = 0 on the plane, or None when no
        hypothesis is a plane (collinear points).
    """
    triples = points[rng.integers(0, len(points), size=(iterations, 3))]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    good = lengths > 1e-12
    if not good.any():
        return None
    normals = normals[good] / lengths[good, None]
    offsets = -np.einsum("ij,ij->i", normals, triples[good, 0])
    counts = (np.abs(points @ normals.T + offsets) <= threshold).sum(axis=0)
    best = int(np.argmax(counts))
    normal, offset = normals[best], offsets[best]
    inliers = points[np.abs(points @ normal + offset) <= threshold]
    if len(inliers) >= 3:
        centre = inliers.mean(axis=0)
        normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
        offset = -float(normal @ centre)
    return normal, float(offset)


def support_planes(points: np.ndarray, *, threshold: float, min_fraction: float,
                   max_planes: int, sample: int = 4000, iterations: int = 200,
                   seed: int = 0) -> np.ndarray:
    """Label the large planes of a view: RANSAC (`ransac_plane`) on a random sample of the
    valid points, repeated on what is left, each plane kept while it holds at least
    `min_fraction` of the valid points (a table, floor or wall; an object's face is smaller).

    Args:
        points: [H, W, 3] camera-frame points, NaN where depth is invalid.
        threshold: largest point-to-plane distance of an inlier, metres.
        min_fraction: fewest inliers of a support plane, as a fraction of the valid pixels.
        max_planes: most planes looked for.
        sample: points RANSAC runs on (inliers are then counted on every point).
        iterations: RANSAC hypotheses per plane.
        seed: the random seed (the same view always segments the same way).

    Returns:
        [H, W] int32, k = 1.. the k-th plane found, 0 elsewhere.
    """
    labels = np.zeros(points.shape[:2], dtype=np.int32)
    flat = points.reshape(-1, 3)
    free = np.isfinite(flat[:, 2])
    total = int(free.sum())
    if total < 3 or max_planes <= 0:
        return labels
    rng = np.random.default_rng(seed)
    for plane in range(1, max_planes + 1):
        remaining = np.flatnonzero(free)
        if remaining.size < max(3, min_fraction * total):
            break
        picked = flat[rng.choice(remaining, size=min(sample, remaining.size), replace=False)]
        found = ransac_plane(picked, threshold, iterations, rng)
        if found is None:
            break
        normal, offset = found
        inliers = remaining[np.abs(flat[remaining] @ normal + offset) <= threshold]
        if inliers.size < min_fraction * total:
            break
        labels.reshape(-1)[inliers] = plane
        free[inliers] = False
    return labels


def depth_clusters(depth: np.ndarray, keep: np.ndarray, *, edge_ratio: float) -> np.ndarray:
    """Connected components of the `keep` pixels, 4-neighbours linked where their depths differ
    by at most `edge_ratio` times the nearer one.

    Args:
        depth: [H, W] metres.
        keep: [H, W] bool, the pixels to cluster (valid depth, not on a support plane).
        edge_ratio: relative depth jump that separates two neighbours (0.02: 2 cm at 1 m).

    Returns:
        [H, W] int32, clusters 1..n, 0 outside `keep`.
    """
    height, width = depth.shape
    index = np.arange(height * width).reshape(height, width)
    rows, cols = [], []
    for a, b in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                 ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
        za, zb = depth[a], depth[b]
        linked = keep[a] & keep[b] & (np.abs(za - zb) <= edge_ratio * np.minimum(za, zb))
        rows.append(index[a][linked])
        cols.append(index[b][linked])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)),
                       shape=(height * width, height * width))
    _, component = connected_components(graph, directed=False)
    component = component.reshape(height, width)
    # renumber the components of kept pixels 1..n (every other pixel is a component of its own)
    labels = np.zeros((height, width), dtype=np.int32)
    _, inverse = np.unique(component[keep], return_inverse=True)
    labels[keep] = inverse.astype(np.int32) + 1
    return labels


def depth_regions(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float, *,
                  plane_threshold: float, plane_min_fraction: float, max_planes: int,
                  edge_ratio: float, min_size: int) -> np.ndarray:
    """One view's depth proposals: support planes, then clusters of what is left.

    Args:
        depth: [H, W] metres; 0 / NaN / inf invalid.
        fx, fy, cx, cy: pinhole intrinsics of `depth`'s pixel grid.
        plane_threshold, plane_min_fraction, max_planes: see `support_planes`.
        edge_ratio: see `depth_clusters`.
        min_size: clusters smaller than this many pixels (sensor noise, slivers along an edge)
            are left out (region 0).

    Returns:
        [H, W] int32 regions 1..n (planes first, then clusters), 0 where depth says nothing.
    """
    valid = valid_depth(depth)
    depth = np.where(valid, depth, 0.0).astype(np.float64)
    planes = support_planes(backproject(depth, fx, fy, cx, cy), threshold=plane_threshold,
                            min_fraction=plane_min_fraction, max_planes=max_planes)
    clusters = depth_clusters(depth, valid & (planes == 0), edge_ratio=edge_ratio)
    sizes = np.bincount(clusters.reshape(-1))
    big = sizes >= max(min_size, 1)
    big[0] = False
    clusters = np.where(big[clusters], clusters, 0)
    # each plane may fall apart in the image (a table seen on both sides of an object): its
    # connected pieces are separate regions, as SAM would see them
    regions = np.zeros(planes.shape, dtype=np.int32)
    for plane in range(1, int(planes.max()) + 1):
        pieces, count = ndimage.label(planes == plane)
        regions = np.where(pieces > 0, pieces + int(regions.max()), regions)
    offset = int(regions.max())
    regions = np.where(clusters > 0, clusters + offset, regions)
    _, inverse = np.unique(regions, return_inverse=True)
    out = inverse.reshape(regions.shape).astype(np.int32)
    return out if regions.min() == 0 else out + 1
