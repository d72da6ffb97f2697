"""What changed since the map saw it: a keyframe's depth that sees through the map.

A Gaussian that the map renders as the visible surface at its pixel, where the measured depth
lies well behind it (beyond the sensor's noise at that depth), stands in space the camera now
sees through: evidence that what it belonged to was taken away. One noisy frame proves nothing,
so the evidence is kept per voxel and the Gaussians go only when `live.change_min_views`
keyframes in a row saw through their voxel and none saw it in place meanwhile.

Only what is in front of the measurement counts: a Gaussian behind the measured surface is
occluded (something stands before it), and one behind the rendered surface is on the far side
of an object; neither is evidence of anything. Invalid depth (REP 118: 0, NaN, ±inf) is no
evidence either.

Keyframes that saw the removed surface in place would keep pulling it back; the session
retires them (their segments leave the contrastive loss with them).

The other way round, a keyframe that measures a surface well in front of the map's
(`arrived_points`) shows something put down since: keyframes that saw free space where it now
stands would train it away (their depth and colour say "table"), so once a later keyframe also
measures it there, they stop training it (`live.change_arrivals`, off by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from torch import Tensor

from cgc_core.config import LiveConfig


@dataclass
class DepthEvidence:
    """What one keyframe's depth says of each Gaussian."""

    through: Tensor
    """[N] bool: the Gaussian is the rendered surface at its pixel and the camera sees well
    behind it there."""
    confirmed: Tensor
    """[N] bool: the measured depth at its pixel agrees with the Gaussian's depth."""


def depth_margin(z: Tensor, config: LiveConfig, min_margin: float | None = None) -> Tensor:
    """[...] metres: how far apart two depths at z [...] must lie to differ beyond the sensor's
    noise (`change_sigmas` σ of a z² noise model, at least `min_margin`, by default
    `change_min_margin`)."""
    sigma = config.change_noise_at_1m * z.square()
    floor = config.change_min_margin if min_margin is None else min_margin
    return torch.clamp(config.change_sigmas * sigma, min=floor)


def _project(points: Tensor, viewmat: Tensor, K: Tensor, shape: tuple[int, int]
             ) -> tuple[Tensor, Tensor, Tensor]:
    """([P] pixel index into a flattened [H, W] image, [P] bool inside it and in front of the
    camera, [P] camera z) of [P, 3] world points."""
    height, width = shape
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[:, 2]
    u = (K[0, 0] * cam[:, 0] / z.clamp_min(1e-3) + K[0, 2]).floor()
    v = (K[1, 1] * cam[:, 1] / z.clamp_min(1e-3) + K[1, 2]).floor()
    inside = (z > 1e-3) & (u >= 0) & (v >= 0) & (u < width) & (v < height)
    return torch.where(inside, v * width + u, torch.zeros_like(u)).long(), inside, z


def _depths(measured: Tensor, alphas: Tensor, rendered_depth: Tensor
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """([H, W] measured depth with 0 where invalid, its validity, the map's opaque surface depth
    with 0 elsewhere, its opacity) of one keyframe's measurement and render."""
    valid = torch.isfinite(measured) & (measured > 0)
    opaque = alphas > 0.5
    return (torch.where(valid, measured, torch.zeros_like(measured)), valid,
            torch.where(opaque, rendered_depth / alphas.clamp_min(1e-6),
                        torch.zeros_like(rendered_depth)), opaque)


def _morph(mask: Tensor, radius: int, grow: bool) -> Tensor:
    """[H, W] bool `mask` grown (dilated) or shrunk (eroded) by a square of `radius` pixels."""
    if radius <= 0:
        return mask
    sign = 1.0 if grow else -1.0
    pooled = F.max_pool2d(sign * mask[None, None].float(), 2 * radius + 1, stride=1,
                          padding=radius)[0, 0]
    return sign * pooled > 0.5


def depth_evidence(means: Tensor, viewmat: Tensor, K: Tensor, measured: Tensor, alphas: Tensor,
                   rendered_depth: Tensor, config: LiveConfig) -> DepthEvidence:
    """Compare the map with one keyframe's depth.

    Args:
        means: [N, 3] Gaussian centres (world).
        viewmat: [4, 4] world-to-camera (OpenCV axes); K: [3, 3] at the depth's resolution.
        measured: [H, W] metres (0 or non-finite: invalid).
        alphas: [H, W] rendered alpha; rendered_depth: [H, W] alpha-blended z (sum w_i z_i).
    """
    measured, valid, surface, opaque = _depths(measured, alphas, rendered_depth)
    behind = valid & opaque & (measured > surface + depth_margin(surface, config))
    # Thin bands along silhouettes are what a small pose or calibration error gives; a region
    # that was taken away is wider than twice the erosion.
    behind = _morph(behind, config.change_erode_px, grow=False)
    index, inside, z = _project(means, viewmat, K, measured.shape)
    at_surface = surface.reshape(-1)[index]
    at_measured = measured.reshape(-1)[index]
    margin = depth_margin(z, config)
    on_surface = inside & (at_surface > 0) & ((z - at_surface).abs() < margin)
    through = on_surface & behind.reshape(-1)[index]
    confirmed = inside & (at_measured > 0) & ((z - at_measured).abs() < margin)
    return DepthEvidence(through=through, confirmed=confirmed)


def voxel_keys(points: np.ndarray, size: float) -> np.ndarray:
    """[P] int64 key of the `size`-metre voxel holding each of [P, 3] points."""
    cells = np.floor(points / size).astype(np.int64) + (1 << 20)
    return (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]


class ChangeVotes:
    """Per voxel, how many keyframes in a row saw through it (and none saw it in place)."""

    def __init__(self, config: LiveConfig):
        self.config = config
        self.streak: dict[int, int] = {}

    def vote(self, means: np.ndarray, evidence: DepthEvidence) -> np.ndarray:
        """One keyframe's evidence in; [N] bool out: the Gaussians to forget now (seen through
        in this keyframe, in a voxel seen through by `change_min_views` keyframes in a row)."""
        through = evidence.through.cpu().numpy()
        confirmed = evidence.confirmed.cpu().numpy()
        keys = voxel_keys(means, self.config.change_voxel)
        seen_through, n_through = np.unique(keys[through], return_counts=True)
        seen_in_place, n_in_place = np.unique(keys[confirmed], return_counts=True)
        in_place = dict(zip(seen_in_place.tolist(), n_in_place.tolist()))
        behind = dict(zip(seen_through.tolist(), n_through.tolist()))
        for key in set(in_place) | set(behind):
            if behind.get(key, 0) > in_place.get(key, 0):
                self.streak[key] = self.streak.get(key, 0) + 1
            else:  # seen in place: what was seen through before was noise
                self.streak.pop(key, None)
        if not through.any():
            return through
        counts = np.array([self.streak.get(k, 0) for k in keys[through].tolist()])
        forget = np.zeros_like(through)
        forget[np.flatnonzero(through)[counts >= self.config.change_min_views]] = True
        return forget

    def forget_voxels(self, means: np.ndarray) -> None:
        """The votes of the voxels of [P, 3] forgotten Gaussians are spent."""
        for key in np.unique(voxel_keys(means, self.config.change_voxel)).tolist():
            self.streak.pop(key, None)

    def state_dict(self) -> dict:
        return {"streak": dict(self.streak)}

    def load_state_dict(self, state: dict) -> None:
        self.streak = {int(k): int(v) for k, v in state.get("streak", {}).items()}


def saw_in_place(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor,
                 config: LiveConfig) -> int:
    """How many of [P, 3] world `points` the keyframe (viewmat [4, 4], K [3, 3], depth [H, W])
    saw where they are: inside its image, with its measured depth there equal to theirs."""
    return depth_agreement(points, viewmat, K, depth, config)[0]


def saw_region(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor, config: LiveConfig,
               need: int) -> str | None:
    """How a keyframe saw a region that depth has since seen through: "in place" (it measured
    at least `need` of [P, 3] world `points` where they are, so it would train them back),
    "free" (it did, but only within the see-through margin, `change_min_margin`, and measured
    a surface more than `change_free_margin` behind at least `need` of them: floaters hugging
    that surface), or None."""
    if saw_in_place(points, viewmat, K, depth, config) < need:
        return None
    free = depth_agreement(points, viewmat, K, depth, config,
                           min_margin=config.change_free_margin)[1]
    return "free" if free >= need else "in place"


def _depth_relation(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor,
                    config: LiveConfig, min_margin: float | None = None
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """([P] pixel index into the flattened depth, [P] bool measured in place, [P] bool measured
    well behind, [P] bool measured at all) for [P, 3] world `points` (see `depth_agreement`)."""
    index, inside, z = _project(points, viewmat, K, depth.shape)
    measured = depth.reshape(-1)[index]
    valid = inside & torch.isfinite(measured) & (measured > 0)
    margin = depth_margin(z, config, min_margin)
    return (index, valid & ((measured - z).abs() < margin), valid & (measured - z > margin),
            valid)


def depth_agreement(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor,
                    config: LiveConfig, min_margin: float | None = None) -> tuple[int, int]:
    """(in place, seen through): how many of [P, 3] world `points` the keyframe measured at
    their depth, and how many it measured well behind them (free space where they are); "well"
    is `depth_margin` with its floor at `min_margin` (default `change_min_margin`)."""
    _, seen, through, _ = _depth_relation(points, viewmat, K, depth, config, min_margin)
    return int(seen.sum()), int(through.sum())


def later_word(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor,
               config: LiveConfig) -> str | None:
    """What a later keyframe says of a pending change at [P, 3] world `points`: "through" (free
    space at at least `change_stale_share` of them, and at more than it measured them in place),
    "in place" (the other way round), "both" (as many of each, enough of both) or None (too
    few of either: it did not see the place)."""
    in_place, through = depth_agreement(points, viewmat, K, depth, config)
    need = max(1, int(np.ceil(config.change_stale_share * len(points))))
    if through >= need and through > in_place:
        return "through"
    if in_place >= need and in_place > through:
        return "in place"
    return "both" if min(in_place, through) >= need else None


def saw_free_space(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor,
                   config: LiveConfig, need: int) -> bool:
    """Whether a keyframe measured free space at [P, 3] world `points` that a later one found
    a surface at (an arrival): well behind at least `need` of them, and at most of those it
    measured at all. A new object on a spot the keyframe saw empty is free space there from
    end to end; the side of an object that only the later keyframe sees is hidden behind the
    object's other side from the earlier one, but for a rim that pose error and pixel size push
    past its silhouette."""
    _, _, through, valid = _depth_relation(points, viewmat, K, depth, config)
    free = int(through.sum())
    return free >= need and free > 0.5 * int(valid.sum())


def footprint(points: Tensor, viewmat: Tensor, K: Tensor, depth: Tensor, config: LiveConfig,
              how: str, radius: int) -> Tensor:
    """[H, W] bool: the pixels where a keyframe measured [P, 3] world `points` `how` ("in place"
    or "through", as `depth_agreement` counts them), grown by `radius` pixels: what the
    keyframe says of a region that has changed since, to be left out of its loss."""
    index, seen, through, _ = _depth_relation(points, viewmat, K, depth, config)
    pixels = torch.zeros(depth.numel(), dtype=torch.bool, device=depth.device)
    pixels[index[seen if how == "in place" else through]] = True
    return _morph(pixels.reshape(depth.shape), radius, grow=True)


def arrived_points(measured: Tensor, alphas: Tensor, rendered_depth: Tensor, viewmat: Tensor,
                   K: Tensor, config: LiveConfig) -> Tensor:
    """[P, 3] world points where a keyframe measures a surface well in front of the map's opaque
    surface (beyond the sensor's noise there): something put down since the map saw the place,
    or passing through (a later keyframe tells). The pixels are eroded by `change_erode_px`
    first, as the see-through ones are, so that silhouette bands from pose error do not count.

    Args:
        measured: [H, W] metres (0 or non-finite: invalid).
        alphas: [H, W] rendered alpha; rendered_depth: [H, W] alpha-blended z (sum w_i z_i).
        viewmat: [4, 4] world-to-camera (OpenCV axes); K: [3, 3] at the depth's resolution.
    """
    measured, valid, surface, opaque = _depths(measured, alphas, rendered_depth)
    front = valid & opaque & (measured < surface - depth_margin(surface, config))
    front = _morph(front, config.change_erode_px, grow=False)
    v, u = torch.nonzero(front, as_tuple=True)
    z = measured[v, u]
    cam = torch.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * z, (v + 0.5 - K[1, 2]) / K[1, 1] * z, z],
                      dim=-1)
    return (cam - viewmat[:3, 3]) @ viewmat[:3, :3]


def thickness(points: np.ndarray) -> float:
    """Extent (m) of [P, 3] points along their thinnest principal axis."""
    if len(points) < 3:
        return 0.0
    centred = points - points.mean(axis=0)
    thinnest = np.linalg.eigh(centred.T @ centred)[1][:, 0]
    along = centred @ thinnest
    return float(along.max() - along.min())


class FreedSpace:
    """Forgotten Gaussians pooled over the last keyframes until they add up to an object-sized
    removal: a removed object goes in bites (a few keyframes, a few voxels each), while the
    floaters that the same test clears away stay scattered and small."""

    def __init__(self, config: LiveConfig):
        self.config = config
        self.pending: list[tuple[np.ndarray, int]] = []  # (points [P, 3], keyframe id)

    def add(self, points: np.ndarray, keyframe_id: int) -> list[np.ndarray]:
        """Pool [P, 3] points forgotten at a keyframe; returns the regions ([Q, 3] points each)
        that now hold at least `change_region_points`, and drops them from the pool."""
        window = self.config.change_region_window
        self.pending = [(p, k) for p, k in self.pending if keyframe_id - k < window]
        self.pending.append((np.asarray(points, dtype=np.float64), keyframe_id))
        pool = np.concatenate([p for p, _ in self.pending])
        owner = np.concatenate([np.full(len(p), k) for p, k in self.pending])
        pairs = cKDTree(pool).query_pairs(self.config.change_region_reach, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(pool), len(pool)))
        _, labels = connected_components(graph, directed=False)
        sizes = np.bincount(labels)
        big = np.flatnonzero(sizes >= self.config.change_region_points)
        if len(big) == 0:
            return []
        decided = np.isin(labels, big)
        regions = [pool[labels == label] for label in big]
        keep_points, keep_owner = pool[~decided], owner[~decided]
        self.pending = [(keep_points[keep_owner == k], int(k)) for k in np.unique(keep_owner)]
        return regions

    def state_dict(self) -> dict:
        return {"pending": [(p.tolist(), k) for p, k in self.pending]}

    def load_state_dict(self, state: dict) -> None:
        self.pending = [(np.asarray(p, dtype=np.float64).reshape(-1, 3), int(k))
                        for p, k in state.get("pending", [])]
