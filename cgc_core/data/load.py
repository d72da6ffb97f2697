"""`load_scene`: a scene folder of any supported layout, read by the right reader."""

from __future__ import annotations

from pathlib import Path

from cgc_core.data.colmap import find_colmap_model, read_colmap_scene
from cgc_core.data.nerfstudio import read_nerfstudio_scene
from cgc_core.data.scene import TRANSFORMS_FILE, Scene, SceneError


def load_scene(path: str | Path, missing_images: str = "skip") -> Scene:
    """Load a scene folder, detecting its layout (nerfstudio first, then COLMAP).

    `path` may also point at a `transforms.json` file directly. Raises SceneError (one line, naming
    the file) for a missing scene, missing poses, missing image files, bad JSON or an unsupported
    camera model. Frames whose image file is missing are skipped with one warning, or refused
    with `missing_images="error"`.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".json":
        return read_nerfstudio_scene(path.parent, transforms_path=path,
                                     missing_images=missing_images)
    if not path.is_dir():
        raise SceneError(f"scene folder not found: {path}")
    if (path / TRANSFORMS_FILE).exists():
        return read_nerfstudio_scene(path, missing_images=missing_images)
    if find_colmap_model(path) is not None:
        return read_colmap_scene(path, missing_images=missing_images)
    raise SceneError(f"no scene found in {path}: expected {TRANSFORMS_FILE} or a COLMAP model in "
                     "sparse/0/ or sparse/")
