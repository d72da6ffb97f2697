"""Evaluation ground truth: LERF-Mask style object masks and pixel prompts.

Layout (in the scene root):

- `test_mask/<frame>/<object name>.png`: one binary mask per object visible in a test view
  (0 / 255, or 0 / 1; any PNG mode). `<frame>` is the image stem.
- `prompts.json`: a list of `{"id": str, "frame": str, "point": [u, v], "text": str?}`, one per
  object to segment; `id` matches the object names in `test_mask`, `frame` is an image stem and
  (u, v) = (column, row) in pixels of that frame, pixel centres at integer + 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cgc_core.data.scene import TEST_MASK_DIR, Scene, SceneError, read_json_or_scene_error
from cgc_core.io import write_json, write_label_png

PROMPTS_FILE = "prompts.json"


@dataclass(frozen=True)
class Prompt:
    """A pixel prompt: the object `id` is shown at `point` = (u, v) in frame `frame`."""

    id: str
    frame: str
    point: tuple[float, float]
    text: str | None = None

    def to_json(self) -> dict:
        data = {"id": self.id, "frame": self.frame, "point": [self.point[0], self.point[1]]}
        if self.text is not None:
            data["text"] = self.text
        return data


def read_binary_mask(path: str | Path) -> np.ndarray:
    """A mask image as [H, W] bool: non-zero for 0/1 masks, > 127 for 0/255 (or greyscale) ones."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"file not found: {path}")
    try:
        with Image.open(path) as image:
            # 'I;16' / 'I' masks cannot go through convert('L') faithfully; take their values.
            values = np.asarray(image) if image.mode.startswith("I") else np.asarray(
                image.convert("L"))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise SceneError(f"cannot read mask {path}: {error}") from None
    if values.ndim != 2:
        raise SceneError(f"{path}: a mask must be a single-channel image")
    return values > (127 if values.max(initial=0) > 1 else 0)


def load_gt_masks(root: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """`root/test_mask/<frame>/<object>.png` → {frame: {object: [H, W] bool}}, sorted by name.

    An empty dict when the scene has no `test_mask` folder.
    """
    mask_root = Path(root) / TEST_MASK_DIR
    if not mask_root.is_dir():
        return {}
    masks: dict[str, dict[str, np.ndarray]] = {}
    for frame_dir in sorted(p for p in mask_root.iterdir() if p.is_dir()):
        masks[frame_dir.name] = {f.stem: read_binary_mask(f)
                                 for f in sorted(frame_dir.glob("*.png"))}
    return masks


def write_gt_mask(root: str | Path, frame: str, name: str, mask: np.ndarray) -> Path:
    """Write one [H, W] bool mask as `root/test_mask/<frame>/<name>.png` (0 / 255)."""
    path = Path(root) / TEST_MASK_DIR / frame / f"{name}.png"
    write_label_png(path, np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
    return path


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read and validate a prompts file; SceneError naming the file and the bad entry."""
    path = Path(path)
    data = read_json_or_scene_error(path)
    if not isinstance(data, list):
        raise SceneError(f"{path}: expected a list of prompts")
    prompts, seen = [], set()
    for index, entry in enumerate(data):
        where = f"{path}: prompt {index}"
        if not isinstance(entry, dict):
            raise SceneError(f"{where}: expected an object with 'id', 'frame' and 'point'")
        for key in ("id", "frame"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise SceneError(f"{where}: '{key}' must be a non-empty string")
        point = entry.get("point")
        if (not isinstance(point, (list, tuple)) or len(point) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                           and math.isfinite(x) and x >= 0 for x in point)):
            raise SceneError(f"{where}: 'point' must be [u, v], two non-negative pixel numbers")
        text = entry.get("text")
        if text is not None and not isinstance(text, str):
            raise SceneError(f"{where}: 'text' must be a string")
        if entry["id"] in seen:
            raise SceneError(f"{where}: duplicate id {entry['id']!r}")
        seen.add(entry["id"])
        prompts.append(Prompt(entry["id"], entry["frame"], (float(point[0]), float(point[1])),
                              text))
    return prompts


def check_prompts(prompts: list[Prompt], scene: Scene, source: str | Path) -> None:
    """SceneError (naming `source`) if a prompt names an unknown frame or a pixel off its image."""
    names = {cam.name for cam in scene.cameras}
    for prompt in prompts:
        if prompt.frame not in names:
            raise SceneError(f"{source}: prompt {prompt.id!r} names unknown frame {prompt.frame!r}")
        cam = scene.camera(prompt.frame)
        u, v = prompt.point
        if not (u < cam.width and v < cam.height):
            raise SceneError(f"{source}: prompt {prompt.id!r} point ({u}, {v}) lies outside "
                             f"the {cam.width}x{cam.height} frame {prompt.frame!r}")


def write_prompts(path: str | Path, prompts: list[Prompt]) -> None:
    write_json(path, [p.to_json() for p in prompts])
