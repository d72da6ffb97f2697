"""Turn exact instance maps into masks that misbehave across views the way SAM's do.

The paper's premise is that 2D segments are inconsistent between views: ids mean nothing across
images, an object is cut in two in one view and merged with its neighbour in another, boundaries
wander, big surfaces come out in pieces and some pixels get no segment at all. Training on these
corrupted maps of a synthetic scene (whose true instances we know) measures whether the
contrastive features recover consistent 3D objects anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage


def make_inconsistent_masks(
    instances: np.ndarray,
    rng: np.random.Generator,
    *,
    split_prob: float = 0.2,
    merge_prob: float = 0.1,
    merge_with: str = "any",
    merge_reach_px: int = 2,
    jitter_prob: float = 0.3,
    jitter_px: int = 2,
    large_fraction: float = 0.1,
    large_cut_prob: float = 0.8,
    large_max_pieces: int = 4,
    drop_prob: float = 0.02,
    gap_prob: float = 0.3,
    keep_apart: Iterable[Iterable[int]] = (),
) -> np.ndarray:
    """A SAM-like segment map of one view from its exact instance map.

    Args:
        instances: [H, W] int exact instance ids; 0 (the background) is treated as one more
            region, like sky that SAM also segments.
        rng: the only source of randomness: the same generator state gives the same output.
        split_prob: per object, probability of being cut in two by a random line through it.
        merge_prob: per object, probability of being merged with its most-touching neighbour.
        merge_with: "any": that neighbour may be anything (on a table, mostly the table);
            "objects": only another object's segment (never a large surface, nor a piece cut off
            the object itself), so a merge joins neighbouring objects; no merge without one.
        merge_reach_px: how far (pixels) from the object a neighbour may lie to be merged with.
        jitter_prob: per segment, probability that its boundary is dilated or eroded.
        jitter_px: the largest dilation / erosion, in pixels (eroded rims become unlabelled).
        large_fraction: regions covering at least this fraction of the image count as large
            surfaces (floor, table, background) rather than objects.
        large_cut_prob: per large surface, probability of being cut into 2..`large_max_pieces`
            pieces (nearest-seed cells around random seed pixels).
        drop_prob: per segment, probability that it is missed entirely (left unlabelled).
        gap_prob: probability that a pixel on the boundary between two segments is unlabelled.
        keep_apart: groups of instance ids (e.g. the parts of one object that SAM always
            separates) that stay separate segments: their regions (and pieces cut off them) are
            never merged into a neighbour nor dropped (other corruptions still apply).

    Returns:
        [H, W] int32 segment ids, 0 = unlabelled, others 1..K in a random order.
    """
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise ValueError(f"instances must be [H, W], got shape {instances.shape}")
    if merge_with not in ("any", "objects"):
        raise ValueError(f"merge_with must be 'any' or 'objects', got {merge_with!r}")
    # Shift by one so the background is a region too and 0 is free to mean "unlabelled".
    offset = 1 - int(instances.min(initial=0))
    labels = instances.astype(np.int64) + offset
    protected = {int(i) + offset for group in keep_apart for i in group}
    fresh = _IdSource(int(labels.max(initial=0)) + 1)
    ids, areas = np.unique(labels, return_counts=True)
    is_large = areas >= large_fraction * labels.size
    large_ids, object_ids = ids[is_large], ids[~is_large]
    uncut = labels.copy() if merge_with == "objects" else None

    for region in large_ids:
        if rng.random() < large_cut_prob:
            before = fresh.next
            _cut_into_cells(labels, region, int(rng.integers(2, large_max_pieces + 1)), rng, fresh)
            if int(region) in protected:
                protected |= set(range(before, fresh.next))
    # Segments of the large surfaces (after cutting) and the pieces cut off each object: what
    # merge_with="objects" must not merge with.
    surfaces = (set() if uncut is None else
                set(np.unique(labels[np.isin(uncut, large_ids)]).tolist()))
    pieces: dict[int, set[int]] = {}
    for region in object_ids:
        if rng.random() < split_prob:
            before = fresh.next
            _split_by_line(labels, region, rng, fresh)
            pieces[int(region)] = set(range(before, fresh.next))
            if int(region) in protected:
                protected |= pieces[int(region)]
    for region in object_ids:
        if rng.random() < merge_prob and int(region) not in protected:
            own = pieces.get(int(region), set()) if merge_with == "objects" else set()
            _merge_with_neighbour(labels, region, merge_reach_px, surfaces | own)
    for region in np.unique(labels[labels > 0]):
        if rng.random() < jitter_prob:
            _jitter_boundary(labels, region, int(rng.integers(1, jitter_px + 1)), rng)
    for region in np.unique(labels[labels > 0]):
        if rng.random() < drop_prob and int(region) not in protected:
            labels[labels == region] = 0
    _open_boundary_gaps(labels, gap_prob, rng)
    return _shuffle_ids(labels, rng)


class _IdSource:
    """Hands out unused segment ids."""

    def __init__(self, start: int) -> None:
        self.next = start

    def __call__(self) -> int:
        self.next += 1
        return self.next - 1


def _cut_into_cells(labels: np.ndarray, region: int, pieces: int, rng: np.random.Generator,
                    fresh: _IdSource) -> None:
    """Cut a region into `pieces` nearest-seed cells, like SAM fragmenting a big surface."""
    rows, cols = np.nonzero(labels == region)
    if rows.size < pieces:
        return
    seeds = rng.choice(rows.size, size=pieces, replace=False)
    d2 = (rows[:, None] - rows[seeds][None]) ** 2 + (cols[:, None] - cols[seeds][None]) ** 2
    cell = np.argmin(d2, axis=1)
    new_ids = np.array([region] + [fresh() for _ in range(pieces - 1)])
    labels[rows, cols] = new_ids[cell]


def _split_by_line(labels: np.ndarray, region: int, rng: np.random.Generator,
                   fresh: _IdSource) -> None:
    """Cut an object in two along a random line near its centroid."""
    rows, cols = np.nonzero(labels == region)
    if rows.size < 2:
        return
    angle = rng.uniform(0.0, np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    offsets = (rows - rows.mean()) * normal[0] + (cols - cols.mean()) * normal[1]
    # Off-centre cuts too, but never so far that one side is (almost) empty.
    threshold = rng.uniform(-0.5, 0.5) * offsets.std()
    side = offsets > threshold
    if side.any() and not side.all():
        labels[rows[side], cols[side]] = fresh()


def _merge_with_neighbour(labels: np.ndarray, region: int, reach: int = 2,
                          exclude: set[int] = frozenset()) -> None:
    """Give a region the id of the labelled neighbour it shares most boundary with.

    Neighbours are the segments within `reach` pixels, except those in `exclude`.
    """
    mask = labels == region
    if not mask.any():
        return
    ring = ndimage.binary_dilation(mask, iterations=reach) & ~mask
    neighbours = labels[ring]
    neighbours = neighbours[neighbours > 0]
    if exclude:
        neighbours = neighbours[~np.isin(neighbours, list(exclude))]
    if neighbours.size:
        values, counts = np.unique(neighbours, return_counts=True)
        labels[mask] = values[np.argmax(counts)]


def _jitter_boundary(labels: np.ndarray, region: int, radius: int,
                     rng: np.random.Generator) -> None:
    """Grow a segment over its neighbours, or shrink it leaving an unlabelled rim."""
    mask = labels == region
    if rng.random() < 0.5:
        labels[ndimage.binary_dilation(mask, iterations=radius)] = region
    else:
        labels[mask & ~ndimage.binary_erosion(mask, iterations=radius)] = 0


def _open_boundary_gaps(labels: np.ndarray, prob: float, rng: np.random.Generator) -> None:
    """Unlabel a random share of pixels whose right or lower neighbour is another segment."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge &= labels > 0
    labels[edge & (rng.random(labels.shape) < prob)] = 0


def _shuffle_ids(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Renumber segments 1..K in a random order, so ids carry no meaning across views."""
    ids = np.unique(labels[labels > 0])
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int32)
    lookup[ids] = rng.permutation(ids.size).astype(np.int32) + 1
    return lookup[labels]
