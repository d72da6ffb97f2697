"""The objects of a RUN folder: RUN/objects.json keeps ids, labels and colours between commands.

    RUN/objects.json   {"version": 1, "next_id", "voxel_size", "objects": [ObjectInfo.to_json()]}

`run_objects` re-clusters the model with the stored table as the previous one, so ids and labels
survive a retrained or grown model wherever the objects still overlap.
"""

from __future__ import annotations

from pathlib import Path

from cgc_core.config import ObjectsConfig
from cgc_core.io import DataError, read_json, write_json
from cgc_core.objects.cluster import ObjectTable, cluster_objects

OBJECTS_FILE = "objects.json"


def load_object_table(run_dir: Path) -> ObjectTable | None:
    """The table stored in RUN/objects.json, or None if there is none."""
    path = Path(run_dir) / OBJECTS_FILE
    if not path.is_file():
        return None
    try:
        return ObjectTable.from_json(read_json(path))
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not an object table ({error})") from None


def save_object_table(run_dir: Path, table: ObjectTable) -> Path:
    path = Path(run_dir) / OBJECTS_FILE
    write_json(path, table.to_json())
    return path


def run_objects(run_dir: Path, splats, config: ObjectsConfig) -> ObjectTable:
    """Cluster a run's model, keeping the stored ids and labels, and store the result."""
    table = cluster_objects(splats, config, previous=load_object_table(run_dir))
    save_object_table(run_dir, table)
    return table


def label_object(table: ObjectTable, object_id: int, label: str) -> None:
    """Name an object (ValueError for an unknown id or an empty label)."""
    if not label.strip():
        raise ValueError("a label needs at least one non-space character")
    table.get(object_id).label = label.strip()
