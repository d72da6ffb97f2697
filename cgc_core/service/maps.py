"""The map folder: one format for `cgc train`, `cgc stream` and the node's `~/save_map`.

    MAP/
        checkpoint.pt   the whole live session, resumable (weights only: loads without running
                        code from the file); written first, atomically
        objects.json    the object table: ids, labels, colours, voxels (`ObjectTable.to_json`)
        model.ply, run.json, masks/    a `cgc train` / `cgc stream` run's (cgc_core.app.run_folder)

A map the node saved before this format holds `session.pt` instead of `checkpoint.pt`: it still
loads. Anything else is refused with a one-line reason. Map names given by callers are confined
to a map directory (`map_path`).
"""

from __future__ import annotations

from pathlib import Path

from cgc_core.io import DataError
from cgc_core.objects.store import OBJECTS_FILE  # noqa: F401 (API)
from cgc_core.objects.store import load_object_table as read_objects  # noqa: F401 (API)
from cgc_core.objects.store import save_object_table as write_objects  # noqa: F401 (API)
from cgc_core.service.query import MAX_TEXT, QueryError

CHECKPOINT_FILE = "checkpoint.pt"
LEGACY_SESSION_FILE = "session.pt"
"""The node's checkpoint name before the one format (same contents)."""


def checkpoint_of(folder: Path) -> Path:
    """The session file of a map folder (DataError with the reason when there is none)."""
    folder = Path(folder)
    for name in (CHECKPOINT_FILE, LEGACY_SESSION_FILE):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: not a cgc map (no {CHECKPOINT_FILE}; a run trained before "
                    "checkpoints were saved must be trained again)")


def map_path(root: Path, name: str) -> Path:
    """Folder `name` inside the map directory `root`; QueryError for anything that would leave
    it (`..`, an absolute path, a symlink out of it) or name it."""
    if not name or len(name) > MAX_TEXT or any(ord(c) < 32 for c in name):
        raise QueryError(f"map name must be 1 to {MAX_TEXT} printable characters")
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise QueryError(f"map name '{name}' must be relative, without '..'")
    root = Path(root).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):  # a symlink pointing out of the folder
        raise QueryError(f"map name '{name}' leads out of the map directory")
    if path == root:
        raise QueryError(f"map name '{name}' names the map directory itself")
    return path
