"""Ground truth for the objects bench, from a built-in scene's instance maps and depth.

- `gaussian_instances`: the true object of each Gaussian: its centre is projected into views, and
  where it lies on the visible surface (within `tolerance` of the view's depth) the instance id
  under it votes; the majority wins.
- `visible_surface`: an object's true visible surface in a view, its instance pixels
  back-projected with the view's depth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cgc_core.data import Scene
from cgc_core.data.synth import FIRST_OBJECT_ID, backproject_valid, project
from cgc_core.io import read_label_png


def object_names(scene_root: Path) -> dict[int, str]:
    """{instance id: name} of the objects (not sky, floor, table or scenery)."""
    names = {int(k): v for k, v in json.loads((scene_root / "objects.json").read_text()).items()}
    synth = json.loads((scene_root / "synth.json").read_text())
    scenery = {int(s["id"]) for s in synth.get("scenery", []) if isinstance(s, dict) and "id" in s}
    return {i: n for i, n in names.items() if i >= FIRST_OBJECT_ID and i not in scenery}


def instances(scene: Scene, frame: str) -> np.ndarray:
    return read_label_png(scene.root / "instances" / f"{frame}.png")


def gaussian_instances(means: np.ndarray, scene: Scene, frames: list[str],
                       tolerance: float = 0.02) -> np.ndarray:
    """[N] instance id of each Gaussian centre [N, 3] (0: never seen on a surface)."""
    votes: dict[int, np.ndarray] = {}
    for frame in frames:
        cam = scene.camera(frame)
        depth = scene.load_depth(cam)
        ids = instances(scene, frame)
        uv, z = project(cam, means)
        col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        inside = (z > 0) & (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
        idx = np.flatnonzero(inside)
        d = depth[row[idx], col[idx]]
        on_surface = (d > 0) & (np.abs(d - z[idx]) < tolerance)
        idx = idx[on_surface]
        for instance in np.unique(ids[row[idx], col[idx]]):
            hit = idx[ids[row[idx], col[idx]] == instance]
            votes.setdefault(int(instance), np.zeros(len(means)))[hit] += 1
    if not votes:
        return np.zeros(len(means), dtype=np.int64)
    keys = np.array(sorted(votes))
    table = np.stack([votes[k] for k in keys], axis=1)
    out = keys[np.argmax(table, axis=1)]
    out[table.max(axis=1) == 0] = 0
    return out


def visible_surface(scene: Scene, frame: str, instance: int) -> np.ndarray:
    """[P, 3] world points of `instance`'s pixels in `frame`, back-projected with its depth."""
    cam = scene.camera(frame)
    depth = scene.load_depth(cam).copy()
    depth[instances(scene, frame) != instance] = 0.0
    points, _ = backproject_valid(cam, depth)
    return points
