"""Atomic, durable writes: all or nothing, ordinary permissions, no temporary files left."""

import os
import stat

import numpy as np
import pytest

from cgc_core.io import atomic_path, read_json, read_label_png, write_json, write_label_png


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_writes_replace_the_file_and_leave_nothing_else(tmp_path):
    target = tmp_path / "sub" / "run.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert read_json(target) == {"a": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.json"]


def test_written_files_get_ordinary_permissions(tmp_path):
    """mkstemp creates 0600 files; outputs must be readable as any new file would be."""
    write_json(tmp_path / "run.json", {})
    write_label_png(tmp_path / "mask.png", np.ones((4, 5), dtype=np.int32))
    for name in ("run.json", "mask.png"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o666 & ~_umask(), (name, oct(mode))
    assert read_label_png(tmp_path / "mask.png").shape == (4, 5)


def test_a_failing_writer_keeps_the_previous_file(tmp_path):
    target = tmp_path / "model.ply"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".ply"
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.ply"]
