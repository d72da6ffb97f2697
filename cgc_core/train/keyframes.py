"""Which frames become keyframes, which keyframe to forget, and which one to train next.

Rules and starting numbers follow MonoGS, SplaTAM and Gaussian-SLAM (`LiveConfig` names each);
all pose maths is on camera-to-world 4x4 matrices in OpenCV axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cgc_core.config import LiveConfig


def pose_change(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(translation in metres, rotation in degrees) between two camera-to-world poses [4, 4]."""
    translation = float(np.linalg.norm(a[:3, 3] - b[:3, 3]))
    relative = a[:3, :3].T @ b[:3, :3]
    cosine = np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)
    return translation, math.degrees(math.acos(cosine))


def visible_overlap(a: Tensor, b: Tensor) -> float:
    """Intersection over union of two visibility sets.

    Args:
        a, b: [N] bool, which Gaussians each view sees (radii > 0); the same N (one model).
    """
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


@dataclass
class KeyframeEvidence:
    """What the session measured of a new frame against the last keyframe."""

    translation: float        # metres since the last keyframe
    rotation_deg: float       # degrees since the last keyframe
    median_depth: float       # metres (measured, else rendered; 0 when unknown)
    overlap: float            # IoU of visible Gaussians with the last keyframe
    empty_fraction: float     # share of pixels with rendered alpha < keyframe_alpha


def keyframe_reason(evidence: KeyframeEvidence, config: LiveConfig) -> str | None:
    """Why the frame should become a keyframe ("moved", "turned", "overlap", "empty"), or None."""
    if evidence.median_depth > 0 and \
            evidence.translation > config.keyframe_translation * evidence.median_depth:
        return "moved"
    if evidence.rotation_deg > config.keyframe_rotation_deg:
        return "turned"
    if evidence.overlap < config.keyframe_overlap:
        return "overlap"
    if evidence.empty_fraction > config.keyframe_empty_fraction:
        return "empty"
    return None


def most_redundant(poses: list[np.ndarray], depth_scale: float) -> int:
    """Index of the keyframe closest in pose to another one: the one a full buffer forgets.

    The newest (last) keyframe is never chosen. Distance mixes translation (in units of
    `depth_scale` metres) and rotation (in units of 20 degrees).

    Args:
        poses: camera-to-world [4, 4] of the keyframes, oldest first (at least 2).
        depth_scale: a typical scene depth in metres (> 0).
    """
    if len(poses) < 2:
        raise ValueError("need at least two keyframes to choose one to forget")
    centres = np.stack([p[:3, 3] for p in poses])
    axes = np.stack([p[:3, 2] for p in poses])  # viewing directions
    moved = np.linalg.norm(centres[:, None] - centres[None], axis=-1) / max(depth_scale, 1e-6)
    turned = np.degrees(np.arccos(np.clip(axes @ axes.T, -1.0, 1.0))) / 20.0
    distance = moved + turned
    np.fill_diagonal(distance, np.inf)
    nearest = distance.min(axis=1)
    nearest[-1] = np.inf  # never the newest
    return int(np.argmin(nearest))


class KeyframePicker:
    """Chooses the keyframe of each iteration.

    While the newest keyframe is fresh (fewer than `fresh_iterations` uses), it gets
    `newest_share` of the iterations and the rest go uniformly over a window of recent keyframes
    plus a few random older ones (Gaussian-SLAM, MonoGS). Otherwise every keyframe comes once per
    round in a random order (3DGS's epochs), which is also the offline schedule.
    """

    def __init__(self, config: LiveConfig, generator: np.random.Generator, *,
                 favour_newest: bool):
        self.config = config
        self.rng = generator
        self.favour_newest = favour_newest
        self.round: list[int] = []

    def pick(self, count: int, uses_of_newest: int) -> int:
        """Index (0 = oldest) of the keyframe to train, among `count` (> 0) keyframes."""
        c = self.config
        if self.favour_newest and count > 1 and uses_of_newest < c.fresh_iterations:
            if self.rng.random() < c.newest_share:
                return count - 1
            window = list(range(max(0, count - 1 - c.window), count - 1))
            older = count - 1 - len(window)
            if older > 0:
                window += list(self.rng.choice(older, size=min(older, c.window_random_older),
                                               replace=False))
            return int(window[self.rng.integers(len(window))])
        self.round = [i for i in self.round if i < count]
        if not self.round:
            self.round = [int(i) for i in self.rng.permutation(count)]
        return self.round.pop()

    def forget(self, index: int) -> None:
        """Keyframe `index` was evicted: later indices shift down by one."""
        self.round = [i - (i > index) for i in self.round if i != index]

    def state(self) -> dict:
        return {"round": list(self.round)}

    def load_state(self, state: dict) -> None:
        self.round = [int(i) for i in state["round"]]


def median_depth(depth: Tensor | None) -> float:
    """Median of the valid (finite, > 0) values of a depth map [H, W]; 0 when none."""
    if depth is None:
        return 0.0
    valid = depth[torch.isfinite(depth) & (depth > 0)]
    return float(valid.median()) if valid.numel() else 0.0
