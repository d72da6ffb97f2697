"""Sparse voxel keys and connected components of points on them.

A voxel is named by one int64: its three integer coordinates (floor(x / size)), each offset by
2^20 and packed into 21 bits, which covers ±2^20 voxels per axis (±21 km at 2 cm) with no
dense grid. Neighbouring voxels differ by fixed key offsets, so the 26-neighbourhood of a set of
voxels is 13 sorted searches, not a grid.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
# Half of the 26 neighbour offsets: an undirected graph needs each pair once.
_HALF_NEIGHBOURS = [d for d in itertools.product((-1, 0, 1), repeat=3) if d > (0, 0, 0)]


def voxel_keys(points: np.ndarray, size: float) -> np.ndarray:
    """[P] int64 key of the voxel of each [P, 3] point (voxels of side `size`)."""
    return pack_cells(np.floor(np.asarray(points, dtype=np.float64) / size).astype(np.int64))


def pack_cells(cells: np.ndarray) -> np.ndarray:
    """[P] int64 keys of [P, 3] integer voxel coordinates."""
    cells = np.clip(cells + _OFFSET, 1, _MASK - 1)  # far floaters share the edge voxels
    return (cells[:, 0] << (2 * _BITS)) | (cells[:, 1] << _BITS) | cells[:, 2]


def connected_parts_per_group(points: np.ndarray, group: np.ndarray, size: float) -> np.ndarray:
    """[P] part index of each [P, 3] point: connected components (neighbouring voxels of side
    `size`) within each group ([P] int >= 0); parts of different groups never join.

    All groups go through one graph: each group's voxels are shifted along x by a multiple of
    the points' x span (plus a gap), so that no voxel of one group neighbours another's.
    """
    cells = np.floor(np.asarray(points, dtype=np.float64) / size).astype(np.int64)
    cells -= cells.min(axis=0)
    span = int(cells[:, 0].max()) + 2
    if span * (int(group.max()) + 1) + 1 < _OFFSET:
        cells[:, 0] += group * span
        return connected_voxel_groups(pack_cells(cells))
    parts = np.empty(len(points), dtype=np.int64)  # too wide to shift: one graph per group
    next_part = 0
    for g in np.unique(group):
        members = group == g
        labels = connected_voxel_groups(pack_cells(cells[members]))
        parts[members] = next_part + labels
        next_part += int(labels.max()) + 1
    return parts


def _key_offset(d: tuple[int, int, int]) -> int:
    return (d[0] << (2 * _BITS)) + (d[1] << _BITS) + d[2]


def neighbour_offsets() -> list[int]:
    """Key differences from a voxel to its 26 neighbours."""
    return [_key_offset(d) for d in itertools.product((-1, 0, 1), repeat=3) if d != (0, 0, 0)]


def connected_voxel_groups(keys: np.ndarray) -> np.ndarray:
    """[P] component index (0..C-1) of each point, two points being connected when their voxels
    (`keys` [P]) are equal or 26-neighbours (transitively)."""
    unique, inverse = np.unique(keys, return_inverse=True)
    rows, cols = [], []
    for d in _HALF_NEIGHBOURS:
        target = unique + _key_offset(d)
        pos = np.searchsorted(unique, target)
        pos = np.minimum(pos, len(unique) - 1)
        hit = unique[pos] == target
        rows.append(np.flatnonzero(hit))
        cols.append(pos[hit])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)),
                       shape=(len(unique), len(unique)))
    _, labels = connected_components(graph, directed=False)
    return labels[inverse]


def overlap_share(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / min(|A|, |B|) of two sorted unique voxel key arrays (0 when one is empty)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return len(np.intersect1d(a, b, assume_unique=True)) / min(len(a), len(b))


def voxel_centres(keys: np.ndarray, size: float) -> np.ndarray:
    """[V, 3] centres of the voxels `keys` [V] of side `size` (the inverse of `voxel_keys`)."""
    cells = np.stack([(keys >> (2 * _BITS)) & _MASK, (keys >> _BITS) & _MASK, keys & _MASK], 1)
    return (cells - _OFFSET + 0.5) * size
