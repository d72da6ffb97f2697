"""Scene clustering: every Gaussian into an object, from its feature and its position.

1. Gaussians less opaque than `min_opacity` are left out (floaters, filler).
2. Feature modes, with no preset count: on an even sample, the feature with the most neighbours
   within cosine `cluster_threshold` founds a mode that takes those neighbours; repeat on the
   rest (a greedy mode search, like mean shift with a flat kernel); every Gaussian joins its
   nearest mode within the threshold. A second search on what is left finds small objects.
3. Each feature group splits into spatially connected parts on voxels of `voxel_size`: two
   look-alike objects apart become two objects. Small parts touching a much larger part of a
   similar feature join it (an object's edge); parts with under `min_gaussians` Gaussians, or
   sparser than `min_density_share` times the map's surface density (Gaussians per voxel),
   are floaters, unless such a sparse part holds most of its feature group and is not flat.
4. Touching parts whose union is as convex as they are apart become one object (`merge_parts`:
   a lid on its tin, which every mask gives apart); the object keeps each part's feature.
5. Objects whose oriented box is large, or large and flat, are background (table, floor, walls).
6. With a previous table (the map grew), each new object takes the id, label and display colour
   of the old object it overlaps (voxels) and resembles (mean feature), as ConceptGraphs
   associates detections; unmatched ones get fresh ids, never reused. Old objects that match
   nothing are dropped with their labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import ConvexHull, Delaunay, QhullError, cKDTree

from cgc_core.config import ObjectsConfig
from cgc_core.objects.colors import base_rgb, colour_shares, display_colour, opacity_weights
from cgc_core.objects.voxels import (
    connected_parts_per_group,
    neighbour_offsets,
    overlap_share,
    voxel_centres,
    voxel_keys,
)

UNASSIGNED = -1
"""Object id of Gaussians that belong to no object (floaters, transparent, odd features)."""


@dataclass
class ObjectInfo:
    """One object of the scene."""

    id: int
    """Stable id: kept across re-clustering while the object is matched."""
    label: str
    """Name given by a user or the LabelObject service ('' until then)."""
    color: tuple[int, int, int]
    """Display colour (RGB 0-255) for point clouds and markers; follows the id."""
    color_name: str
    """Its Gaussians' most common named colour (CIELAB; cgc_core.objects.colors)."""
    color_shares: dict[str, float]
    """{colour name: share of the object's opacity}, largest first."""
    count: int
    """Gaussians in the object."""
    centroid: np.ndarray
    """[3] mean of the Gaussian centres."""
    aabb_min: np.ndarray
    """[3] axis-aligned box, low corner."""
    aabb_max: np.ndarray
    """[3] axis-aligned box, high corner."""
    obb_center: np.ndarray
    """[3] oriented box centre."""
    obb_extent: np.ndarray
    """[3] oriented box side lengths."""
    obb_rotation: np.ndarray
    """[3, 3] oriented box axes (columns) in world coordinates."""
    mean_feature: np.ndarray
    """[D] unit mean feature: the object's discriminative feature."""
    part_features: np.ndarray
    """[P, D] unit mean feature of each part the object was merged from (`merge_convex_parts`),
    largest part first; [1, D] for an object of one part. A query for the object takes a
    Gaussian or pixel whose feature is within the threshold of any of them."""
    background: bool
    """Large extended cluster (table, floor, wall)."""
    voxels: np.ndarray = field(repr=False)
    """[V] sorted int64 voxel keys the object occupies (re-clustering matches on them)."""

    @property
    def volume(self) -> float:
        """Oriented box volume."""
        return float(np.prod(self.obb_extent))

    def to_json(self, with_voxels: bool = True) -> dict:
        data = {"id": self.id, "label": self.label, "color": list(self.color),
                "color_name": self.color_name, "color_shares": self.color_shares,
                "count": self.count, "centroid": self.centroid.tolist(),
                "aabb_min": self.aabb_min.tolist(), "aabb_max": self.aabb_max.tolist(),
                "obb_center": self.obb_center.tolist(), "obb_extent": self.obb_extent.tolist(),
                "obb_rotation": self.obb_rotation.tolist(),
                "mean_feature": [round(float(v), 6) for v in self.mean_feature],
                "part_features": [[round(float(v), 6) for v in f] for f in self.part_features],
                "background": self.background}
        if with_voxels:
            data["voxels"] = self.voxels.tolist()
        return data

    @classmethod
    def from_json(cls, data: dict) -> ObjectInfo:
        array = np.asarray
        return cls(id=int(data["id"]), label=str(data.get("label", "")),
                   color=tuple(int(c) for c in data["color"]), color_name=data["color_name"],
                   color_shares=dict(data.get("color_shares", {})), count=int(data["count"]),
                   centroid=array(data["centroid"], float), aabb_min=array(data["aabb_min"], float),
                   aabb_max=array(data["aabb_max"], float),
                   obb_center=array(data["obb_center"], float),
                   obb_extent=array(data["obb_extent"], float),
                   obb_rotation=array(data["obb_rotation"], float),
                   mean_feature=array(data["mean_feature"], np.float32),
                   part_features=array(data.get("part_features", [data["mean_feature"]]),
                                       np.float32).reshape(-1, len(data["mean_feature"])),
                   background=bool(data["background"]),
                   voxels=array(data.get("voxels", []), np.int64))


@dataclass
class ObjectTable:
    """The objects of one clustering of a model."""

    objects: list[ObjectInfo]
    """Sorted by id."""
    gaussian_object: np.ndarray | None
    """[N] object id of each Gaussian of the clustered model (UNASSIGNED = none); None when the
    table was read from disk (it belongs to the model it was computed on)."""
    next_id: int
    """The id the next new object gets: ids are never reused."""
    voxel_size: float
    """Voxel side the objects' `voxels` are keyed with."""

    def get(self, object_id: int) -> ObjectInfo:
        """The object with this id; ValueError naming the known ids if there is none."""
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        known = ", ".join(str(o.id) for o in self.objects) or "none"
        raise ValueError(f"unknown object id {object_id} (known: {known})")

    def members(self, object_id: int) -> np.ndarray:
        """[N] bool, the Gaussians of an object (needs `gaussian_object`)."""
        if self.gaussian_object is None:
            raise ValueError("this object table has no Gaussian assignment; re-cluster the model")
        self.get(object_id)
        return self.gaussian_object == object_id

    def prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        """([K, D] float32 unit part features of every object, [K] int64 the object id of each):
        what a pixel or Gaussian is compared with to find its object."""
        if not self.objects:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        features = np.concatenate([o.part_features for o in self.objects]).astype(np.float32)
        owners = np.concatenate([np.full(len(o.part_features), o.id, np.int64)
                                 for o in self.objects])
        return features, owners

    @property
    def has_merged_objects(self) -> bool:
        """Whether an object was merged from parts (`whole_object_features` can add to a query)."""
        return any(len(o.part_features) > 1 for o in self.objects)

    def whole_object_features(self, feature: torch.Tensor, threshold: float,
                              seed: np.ndarray | None) -> torch.Tensor:
        """[P, D]: `feature` [D] (a pixel prompt's) first, then the features of the object's other
        parts when the prompt lies on an object merged from parts (a lid on its tin), so that a
        query selects it whole; [1, D] otherwise.

        The object is the one, not background, with a part within cosine `threshold` of `feature`
        whose voxels hold `seed` [3] (the prompt's surface point) or a neighbour of its voxel.
        """
        feature = feature.detach().reshape(1, -1).float().cpu()
        if seed is None:
            return feature
        unit = torch.nn.functional.normalize(feature[0], dim=0).numpy()
        key = int(voxel_keys(np.asarray(seed, np.float64).reshape(1, 3), self.voxel_size)[0])
        near = key + np.array([0] + neighbour_offsets(), dtype=np.int64)
        best, parts = threshold, None
        for obj in self.objects:
            if obj.background or len(obj.part_features) < 2:
                continue
            cosine = obj.part_features @ unit
            if cosine.max() >= best and np.isin(near, obj.voxels).any():
                best, parts = float(cosine.max()), obj.part_features[cosine < threshold]
        if parts is None or len(parts) == 0:
            return feature
        return torch.cat([feature, torch.from_numpy(parts).float()])

    def to_json(self, with_voxels: bool = True) -> dict:
        return {"version": 1, "next_id": self.next_id, "voxel_size": self.voxel_size,
                "objects": [o.to_json(with_voxels) for o in self.objects]}

    @classmethod
    def from_json(cls, data: dict) -> ObjectTable:
        return cls([ObjectInfo.from_json(o) for o in data["objects"]], None,
                   int(data["next_id"]), float(data["voxel_size"]))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1, eps=1e-8)


def feature_modes(features: torch.Tensor, threshold: float, min_support: int) -> torch.Tensor:
    """[K, D] unit feature modes of [S, D] unit features, K found, not given.

    Greedy: the feature with the most others within cosine `threshold` founds a mode that takes
    them (their mean); repeated on what is left until the best support is under `min_support`.
    """
    near = ((features @ features.T) >= threshold).float()  # [S, S], symmetric
    support = near.sum(dim=1)
    alive = torch.ones(len(features))
    rows = torch.arange(len(features))  # sample index of each row of `near`
    modes = []
    while len(rows):
        best = int(torch.argmax(support * alive - (1 - alive)))
        if alive[best] == 0 or float(support[best]) < min_support:
            break
        members = near[best] * alive
        modes.append(_unit(features[rows[members.bool()]].mean(dim=0)))
        alive -= members
        support -= near @ members  # matrix-vector: a column gather of a bool matrix is slow
        if float(alive.sum()) < 0.6 * len(alive):  # drop taken rows: later steps get cheaper
            keep = alive.bool()
            near, support, rows = near[keep][:, keep], support[keep], rows[keep]
            alive = torch.ones(len(rows))
    if not modes:
        return features.new_zeros(0, features.shape[1])
    return torch.stack(modes)


def assign_to_modes(features: torch.Tensor, modes: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """[P] index of the nearest mode of each [P, D] unit feature, -1 where even the nearest is
    below cosine `threshold`."""
    if len(modes) == 0:
        return torch.full((len(features),), -1, dtype=torch.long)
    best, index = (features @ modes.T).max(dim=1)
    return torch.where(best >= threshold, index, torch.full_like(index, -1))


def feature_groups(features: torch.Tensor, config: ObjectsConfig, seed: int) -> torch.Tensor:
    """[P] feature group (mode index) of each [P, D] unit feature, -1 for none.

    Modes are searched on an even sample and every feature joins its nearest one within the
    threshold. Then modes are searched again on a sample of what no mode took (a small object has
    too few Gaussians in the first sample to found a mode), and only those leftovers may join the
    new modes: reassigning everything would let near-duplicate modes cut objects in two.
    """
    generator = np.random.default_rng(seed)
    index = torch.full((len(features),), -1, dtype=torch.long)
    found = 0
    for _ in range(config.mode_rounds):
        pool = np.flatnonzero(index.numpy() < 0)
        if len(pool) < config.min_gaussians:
            break
        sample = pool if len(pool) <= config.cluster_sample else np.sort(
            generator.choice(pool, config.cluster_sample, replace=False))
        min_support = max(3, int(np.ceil(config.min_mode_share * len(sample))))
        modes = feature_modes(features[sample], config.cluster_threshold, min_support)
        joined = assign_to_modes(features[pool], modes, config.cluster_threshold)
        index[pool] = torch.where(joined >= 0, joined + found, joined)
        found += len(modes)
    return index

def _boxes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                        np.ndarray]:
    """(aabb_min, aabb_max, obb_center, obb_extent, obb_rotation) of [P, 3] points (open3d).

    The oriented box is the smaller of open3d's minimal box and its PCA box: the minimal one
    comes back empty (zero extent) on some inputs, and PCA boxes are loose on cubes. A flat or
    tiny set gets its axis-aligned box."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    aabb = cloud.get_axis_aligned_bounding_box()
    lo, hi = np.asarray(aabb.min_bound), np.asarray(aabb.max_bound)
    best = (lo, hi, (lo + hi) / 2, hi - lo, np.eye(3))
    if len(points) < 4:
        return best
    for make in (cloud.get_minimal_oriented_bounding_box, cloud.get_oriented_bounding_box):
        try:
            obb = make()
        except RuntimeError:  # qhull: all points on a plane or a line
            continue
        extent = np.asarray(obb.extent)
        if extent.min() > 0 and np.prod(extent) < np.prod(best[3]) * (1 + 1e-9) + 1e-18:
            best = (lo, hi, np.asarray(obb.center), extent, np.asarray(obb.R))
    return best

def describe_object(object_id: int, points: np.ndarray, features: torch.Tensor,
                    rgb: np.ndarray, weights: np.ndarray, config: ObjectsConfig,
                    part_of: np.ndarray | None = None) -> ObjectInfo:
    """An ObjectInfo of Gaussians given by centres [P, 3], unit features [P, D], base colours
    [P, 3] and opacities [P]; `part_of` [P] labels the parts it was merged from (None: one)."""
    lo, hi, center, extent, rotation = _boxes(points)
    part_of = np.zeros(len(points), np.int64) if part_of is None else part_of
    labels, sizes = np.unique(part_of, return_counts=True)
    part_features = torch.stack([_unit(features[torch.from_numpy(part_of == label)].mean(dim=0))
                                 for label in labels[np.argsort(-sizes, kind="stable")]])
    shares = colour_shares(rgb, weights)
    return ObjectInfo(
        id=object_id, label="", color=display_colour(object_id),
        color_name=next(iter(shares), ""), color_shares=shares, count=len(points),
        centroid=points.mean(axis=0), aabb_min=lo, aabb_max=hi, obb_center=center,
        obb_extent=extent, obb_rotation=rotation,
        mean_feature=_unit(features.mean(dim=0)).cpu().numpy(),
        part_features=part_features.cpu().numpy(),
        background=is_background(extent, config),
        voxels=np.unique(voxel_keys(points, config.voxel_size)))


DENSE_SURFACE_QUANTILE = 0.9
"""`surface_density` is the density that this share of the Gaussians of large parts reach."""


def surface_density(counts: np.ndarray, density: np.ndarray, min_gaussians: int) -> float:
    """The density of the map's dense surfaces ([P] counts and densities per part): the
    Gaussians per voxel that 90 % of the Gaussians of parts with at least `min_gaussians` stay
    under. Weighting by Gaussians lets objects and the table set it, not the many small
    fringes, and the high quantile keeps it on the objects where growth left wide, thin patches
    over the floor and the room; 0 when no part is that large."""
    large = counts >= min_gaussians
    if not large.any():
        return 0.0
    order = np.argsort(density[large])
    cumulative = np.cumsum(counts[large][order])
    rank = np.searchsorted(cumulative, DENSE_SURFACE_QUANTILE * cumulative[-1])
    return float(density[large][order][rank])


def largest_part_per_group(groups: np.ndarray, parts: np.ndarray,
                           counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per feature group, the part with the most Gaussians ([M] groups and parts of M
    Gaussians, [P] `counts` per part; a part absorbed across groups counts for the group most of
    its Gaussians come from). Returns (group ids, their largest parts' ids)."""
    pairs, sizes = np.unique(np.stack([parts, groups], axis=1), axis=0, return_counts=True)
    # each part's own group: the one that gave it most Gaussians
    order = np.lexsort((-sizes, pairs[:, 0]))
    first = np.r_[True, np.diff(pairs[order, 0]) != 0]
    part, group = pairs[order][first, 0], pairs[order][first, 1]
    # per group, its part with the most Gaussians
    order = np.lexsort((-counts[part], group))
    first = np.r_[True, np.diff(group[order]) != 0]
    return group[order][first], part[order][first]


def unique_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[U, 2] the distinct (a, b) pairs of two [P] int64 arrays, sorted by a then b (a lexsort:
    np.unique(axis=0) is several times slower)."""
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return np.stack([a[first], b[first]], axis=1)


def _pair_codes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Sorted-order codes of (a, b) pairs with 0 <= b < n."""
    return np.sort(a * n + b)


def spatial_parts(points: np.ndarray, group: np.ndarray, voxel_size: float) -> np.ndarray:
    """[N] part index of each Gaussian (-1 where `group` [N] is -1): the spatially connected
    components (neighbouring voxels) of each feature group."""
    parts = np.full(len(points), -1, dtype=np.int64)
    grouped = np.flatnonzero(group >= 0)
    if len(grouped):
        parts[grouped] = connected_parts_per_group(points[grouped], group[grouped], voxel_size)
    return parts

def part_mean_features(features: torch.Tensor, parts: np.ndarray) -> torch.Tensor:
    """[P, D] unit mean of `features` [N, D] over each part label 0..P-1 of `parts` [N] (-1:
    none; P = the largest label + 1)."""
    index = np.flatnonzero(parts >= 0)
    count = int(parts[index].max()) + 1 if len(index) else 0
    total = torch.zeros(count, features.shape[1]).index_add_(
        0, torch.from_numpy(parts[index]), features[index])
    return _unit(total)


def absorb_fragments(points: np.ndarray, features: torch.Tensor, parts: np.ndarray,
                     config: ObjectsConfig) -> np.ndarray:
    """Merge each small part into the larger part it touches most (neighbouring voxels), when
    their mean features have cosine at least `fragment_min_cosine`: the edges of an object,
    whose features lie between it and its neighbours, otherwise become objects of their own."""
    index = np.flatnonzero(parts >= 0)
    if len(index) == 0:
        return parts
    count = np.bincount(parts[index])
    mean = part_mean_features(features, parts)
    pairs = unique_pairs(voxel_keys(points[index], config.voxel_size), parts[index])
    edges = []
    for offset in neighbour_offsets():
        target = pairs[:, 0] + offset
        for side in ("left", "right"):  # first and last part in the neighbour voxel
            pos = np.searchsorted(pairs[:, 0], target, side=side) - (side == "right")
            pos = np.clip(pos, 0, len(pairs) - 1)
            hit = (pairs[pos, 0] == target) & (pairs[pos, 1] != pairs[:, 1])
            edges.append(np.stack([pairs[hit, 1], pairs[pos[hit], 1]], 1))
    edges = np.concatenate(edges)
    if len(edges) == 0:
        return parts
    edge = unique_pairs(edges[:, 0], edges[:, 1])
    start = np.searchsorted(_pair_codes(edges[:, 0], edges[:, 1], len(count)),
                            _pair_codes(edge[:, 0], edge[:, 1], len(count)))
    ends = np.append(start[1:], len(edges))
    contact = ends - start
    small, large = edge[:, 0], edge[:, 1]
    cosine = (mean[small] * mean[large]).sum(dim=1).numpy()
    ok = (count[small] < config.fragment_share * count[large]) & (
        cosine >= config.fragment_min_cosine)
    target = np.arange(len(count))
    small, large, contact = small[ok], large[ok], contact[ok]
    order = np.lexsort((-contact, small))  # per fragment, the most touching part first
    first = np.unique(small[order], return_index=True)[1]
    target[small[order][first]] = large[order][first]
    for _ in range(8):  # follow chains fragment -> fragment -> object
        target = target[target]
    out = parts.copy()
    out[index] = target[parts[index]]
    return out


def hull_volume(points: np.ndarray) -> float:
    """Volume of the convex hull of [P, 3] points; 0 when they are too few or flat."""
    if len(points) < 4:
        return 0.0
    try:
        return float(ConvexHull(points).volume)
    except QhullError:
        return 0.0


def near_count(tree: cKDTree, points: np.ndarray, reach: float) -> int:
    """How many of [P, 3] `points` lie within `reach` of a point of `tree`."""
    return int(np.isfinite(tree.query(points, distance_upper_bound=reach)[0]).sum())


def surface_normals(points: np.ndarray, neighbours: int = 16) -> np.ndarray:
    """[P, 3] unit normals of a part's [P, 3] Gaussian centres (open3d: the plane of each
    point's nearest neighbours), up to sign."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(neighbours))
    return np.asarray(cloud.normals)


def face_contact(pa: np.ndarray, pb: np.ndarray, tree_a: cKDTree, tree_b: cKDTree,
                 config: ObjectsConfig) -> tuple[float, float] | None:
    """(share of a's, share of b's) points within `merge_contact` of the other part, when two
    parts ([P, 3], [Q, 3] points with their trees) meet over a face on both sides
    (`merge_min_contact`, `merge_min_contact_share`, `merge_min_mutual_share`); else None."""
    reach = config.merge_contact
    near_a, near_b = near_count(tree_b, pa, reach), near_count(tree_a, pb, reach)
    share_a, share_b = near_a / len(pa), near_b / len(pb)
    if (min(near_a, near_b) >= config.merge_min_contact
            and max(share_a, share_b) >= config.merge_min_contact_share
            and min(share_a, share_b) >= config.merge_min_mutual_share):
        return share_a, share_b
    return None


def facing_shares(pa: np.ndarray, pb: np.ndarray, reach: float,
                  tree_a: cKDTree | None = None, tree_b: cKDTree | None = None,
                  min_toward: float = 0.3) -> tuple[float, float]:
    """(opposed, facing): shares of the contact between two parts ([P, 3] and [Q, 3] points)
    where their surfaces are turned against each other. Each point within `reach` of the other
    part is paired with its nearest point there. Opposed: their `surface_normals`, oriented
    away from their own part's centre, are more than 90 degrees apart. Facing: opposed, and the
    point's own normal also points toward the other part (cosine above `min_toward` with the
    line from its part's centre to the other's).

    Where a lid sits on its tin the walls run on (normals alike); where two objects press
    together their surfaces face each other across the line that joins them. At a seam where
    walls meet a lid's rim the normals are near perpendicular, opposed or not by noise alone:
    the first share counts those, the second hardly."""
    na, nb = surface_normals(pa), surface_normals(pb)
    na = na * np.sign(((pa - pa.mean(0)) * na).sum(1, keepdims=True) + 1e-12)
    nb = nb * np.sign(((pb - pb.mean(0)) * nb).sum(1, keepdims=True) + 1e-12)
    tree_a = cKDTree(pa) if tree_a is None else tree_a
    tree_b = cKDTree(pb) if tree_b is None else tree_b
    axis = pb.mean(0) - pa.mean(0)
    axis = axis / max(float(np.linalg.norm(axis)), 1e-12)
    opposed = facing = total = 0
    for p, n, tree, m, toward in ((pa, na, tree_b, nb, axis), (pb, nb, tree_a, na, -axis)):
        distance, nearest = tree.query(p, distance_upper_bound=reach)
        touching = np.isfinite(distance)
        turned = (n[touching] * m[nearest[touching]]).sum(1) < 0
        opposed += int(turned.sum())
        facing += int((turned & (n[touching] @ toward > min_toward)).sum())
        total += int(touching.sum())
    return opposed / max(total, 1), facing / max(total, 1)


def pressed_together(opposed: float, facing: float, config: ObjectsConfig) -> bool:
    """Whether two touching parts with these `facing_shares` are two objects pressed together:
    their surfaces are turned against each other over the contact by both counts
    (`merge_max_opposed_share`, `merge_max_facing_share`). Either count alone errs on one side:
    the first took a crate's lid for another object, the second a tin's lid."""
    return opposed > config.merge_max_opposed_share and facing > config.merge_max_facing_share


def inside_share(points: np.ndarray, other: np.ndarray) -> float:
    """Share of [P, 3] `points` inside the convex hull of [Q, 3] `other` (0 when it is flat)."""
    if len(other) < 4:
        return 0.0
    try:
        return float((Delaunay(other).find_simplex(points) >= 0).mean())
    except QhullError:
        return 0.0


def blurred_together(pa: np.ndarray, pb: np.ndarray, fa: np.ndarray, fb: np.ndarray,
                     config: ObjectsConfig) -> bool:
    """Whether two parts ([P, 3], [Q, 3] points; [D] unit mean features) are two objects blurred
    into each other: each lies partly inside the other's hull (`merge_mixed_min_inside`), yet
    their features are unalike (`merge_mixed_max_cosine`). Fragments of one object that the
    clustering cut interpenetrate with alike features, and the parts of a tin or a two-tone
    block, unalike, meet at a seam without lying inside each other."""
    if float(np.dot(fa, fb)) >= config.merge_mixed_max_cosine:
        return False
    least = config.merge_mixed_min_inside
    return inside_share(pa, pb) >= least and inside_share(pb, pa) >= least


def merge_convex_parts(points: np.ndarray, parts: np.ndarray,
                       config: ObjectsConfig, features: torch.Tensor | None = None
                       ) -> np.ndarray:
    """[N] object label of each Gaussian: `parts` [N] (-1: none) with the touching parts that form
    one convex whole joined, most convex pair first.

    Two parts join when neither is background, they meet over a face rather than at a point,
    on both sides (`merge_contact`, `merge_min_contact`, `merge_min_contact_share`,
    `merge_min_mutual_share`) and the convex hull of
    their union holds at most `merge_max_hull_ratio` times the sum of their own hulls: a lid on
    its tin fills the joint hull, while an object on a tray or two objects leaning together
    leave it mostly empty. Parts whose surfaces face each other over the contact
    (`pressed_together`: two balls, or a ball leaning on a box, whose union can be as convex as
    a tin's) stay apart. A part that lies mostly against
    the background
    (`merge_max_background_share`: a patch of table that the table's cluster left out, common on
    a map recovering from an opacity reset) merges with nothing. With the Gaussians' [N, D] unit
    `features`, two parts that lie inside each other's hulls with unalike features stay apart
    (`blurred_together`). A label is the smallest part label of its group.
    """
    labels = np.unique(parts[parts >= 0])
    members = {int(label): np.flatnonzero(parts == label) for label in labels}
    background = {label: is_background(_boxes(points[index])[3], config)
                  for label, index in members.items() if len(index) >= 4}
    objects = [label for label, is_ground in background.items() if not is_ground]
    ground_parts = [members[label] for label, is_ground in background.items() if is_ground]
    reach = config.merge_contact
    if ground_parts and objects:  # patches of table the table's cluster left out merge with nothing
        ground = cKDTree(points[np.concatenate(ground_parts)])
        objects = [label for label in objects
                   if near_count(ground, points[members[label]], reach) / len(members[label])
                   < config.merge_max_background_share]
    if len(objects) < 2:
        return parts.copy()
    volume = {label: hull_volume(points[members[label]]) for label in objects}
    mean_feature = None if features is None else part_mean_features(features, parts).numpy()
    trees = {label: cKDTree(points[members[label]]) for label in objects}
    candidates = []
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            pa, pb = points[members[a]], points[members[b]]
            if ((pa.min(0) - reach > pb.max(0)) | (pb.min(0) - reach > pa.max(0))).any():
                continue
            if face_contact(pa, pb, trees[a], trees[b], config) is None or pressed_together(
                    *facing_shares(pa, pb, reach, trees[a], trees[b],
                                   config.merge_facing_min_cosine), config):
                continue
            if features is not None and blurred_together(pa, pb, mean_feature[a],
                                                         mean_feature[b], config):
                continue
            joint = hull_volume(np.vstack([pa, pb]))
            candidates.append((joint / max(volume[a] + volume[b], 1e-12), a, b))
    group = {label: label for label in objects}

    def root(label: int) -> int:
        while group[label] != label:
            label = group[label]
        return label

    for _, a, b in sorted(candidates):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        together = [label for label in objects if root(label) in (ra, rb)]
        union = np.concatenate([members[label] for label in together])
        ratio = hull_volume(points[union]) / max(sum(volume[label] for label in together), 1e-12)
        if ratio <= config.merge_max_hull_ratio:
            group[max(ra, rb)] = min(ra, rb)
    merged = parts.copy()
    for label in objects:
        merged[members[label]] = root(label)
    return merged


def is_background(extent: np.ndarray, config: ObjectsConfig) -> bool:
    """A large box (table, floor, wall), or a large flat one (a piece of them), from its [3] side
    lengths."""
    longest, shortest = float(extent.max()), float(extent.min())
    return longest >= config.background_min_size or (
        longest >= config.background_flat_size and shortest <= config.background_flatness * longest)


@torch.no_grad()
def cluster_objects(splats, config: ObjectsConfig, previous: ObjectTable | None = None,
                    seed: int = 0) -> ObjectTable:
    """Cluster a model's Gaussians into objects.

    Args:
        splats: mapping name -> Tensor with at least means [N, 3], opacities [N] (logits),
            sh0 [N, 1, 3], features [N, D] (a ParameterDict or a dict of detached tensors).
        previous: the table of an earlier clustering of the same (possibly smaller) map: matched
            objects keep their id, label and display colour.
        seed: seeds the sample the feature modes are searched on.
    """
    means = splats["means"].detach().float().cpu()
    n = len(means)
    features = _unit(splats["features"].detach().cpu())
    weights = opacity_weights(splats)
    eligible = np.flatnonzero(weights >= config.min_opacity)
    group = np.full(n, -1, dtype=np.int64)
    if len(eligible):
        group[eligible] = feature_groups(features[eligible], config, seed).numpy()

    points = means.numpy().astype(np.float64)
    parts = spatial_parts(points, group, config.voxel_size)
    parts = absorb_fragments(points, features, parts, config)
    assigned = np.flatnonzero(parts >= 0)
    if len(assigned):  # floaters: few, or thinly spread Gaussians
        counts = np.bincount(parts[assigned])
        occupied = unique_pairs(parts[assigned], voxel_keys(points[assigned],
                                                            config.voxel_size))
        voxels = np.bincount(occupied[:, 0], minlength=len(counts))
        density = counts / np.maximum(voxels, 1)
        floor = config.min_density_share * surface_density(counts, density, config.min_gaussians)
        sparse = density < floor
        # A sparse part that holds most of its feature group and is not flat stays: it is the
        # only stand for a feature the training learned, and a small object in a young map
        # measures as sparse as the flat spreads the density test is for (the node test's mug:
        # 1.3 Gaussians per voxel against a floor of 1.5, and it vanished with its group). The
        # largest shred of a scattered group (trained maps have several) is still a floater.
        group_size = np.bincount(group[group >= 0])
        owners, largest = largest_part_per_group(group[assigned], parts[assigned], counts)
        for g, part in zip(owners, largest):
            if sparse[part] and counts[part] >= max(config.min_gaussians, group_size[g] / 2):
                extent = _boxes(points[parts == part])[3]
                sparse[part] = extent.min() <= config.background_flatness * extent.max()
        floater = (counts < config.min_gaussians) | sparse
        parts[assigned[floater[parts[assigned]]]] = -1

    whole = merge_convex_parts(points, parts, config, features) if config.merge_parts else parts
    rgb = base_rgb(splats).cpu().numpy()
    order = np.argsort(whole, kind="stable")
    bounds = np.flatnonzero(np.diff(whole[order])) + 1
    objects, members_of = [], {}
    for members in np.split(order, bounds):
        if len(members) == 0 or whole[members[0]] < 0:
            continue
        part = int(whole[members[0]])
        members_of[part] = members
        objects.append(describe_object(part, points[members], features[members], rgb[members],
                                       weights[members], config, part_of=parts[members]))
    ids = match_objects(objects, previous, config)
    first_new = previous.next_id if previous is not None else 1
    next_id = first_new
    gaussian_object = np.full(n, UNASSIGNED, dtype=np.int64)
    for obj in sorted(objects, key=lambda o: -o.count):  # new ids: largest objects first
        part = obj.id
        if part in ids:
            old = previous.get(ids[part])
            obj.id, obj.label, obj.color = old.id, old.label, old.color
        else:
            obj.id, obj.color = next_id, display_colour(next_id)
            next_id += 1
        gaussian_object[members_of[part]] = obj.id
    objects.sort(key=lambda o: o.id)
    return ObjectTable(objects, gaussian_object, next_id, config.voxel_size)


def match_objects(objects: list[ObjectInfo], previous: ObjectTable | None,
                  config: ObjectsConfig) -> dict[int, int]:
    """{new object's id: previous object's id} for the pairs whose voxels overlap by at least
    `match_min_overlap` and whose mean features have cosine at least `match_min_cosine`, one to
    one, maximising overlap + cosine (Hungarian assignment)."""
    if previous is None or not previous.objects or not objects:
        return {}
    if previous.voxel_size != config.voxel_size:
        scale = config.voxel_size
        old_voxels = [np.unique(voxel_keys(voxel_centres(o.voxels, previous.voxel_size), scale))
                      for o in previous.objects]
    else:
        old_voxels = [o.voxels for o in previous.objects]
    score = np.full((len(objects), len(previous.objects)), -np.inf)
    for i, new in enumerate(objects):
        for j, old in enumerate(previous.objects):
            if len(new.mean_feature) != len(old.mean_feature):
                continue
            cosine = float(np.dot(new.mean_feature, old.mean_feature))
            if cosine < config.match_min_cosine:
                continue
            overlap = overlap_share(new.voxels, old_voxels[j])
            if overlap >= config.match_min_overlap:
                score[i, j] = overlap + cosine
    finite = np.isfinite(score)
    if not finite.any():
        return {}
    rows, cols = linear_sum_assignment(np.where(finite, -score, 1e6))
    return {objects[i].id: previous.objects[j].id for i, j in zip(rows, cols) if finite[i, j]}

