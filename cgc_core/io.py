"""Reading and writing the files cgc works with, with one clear error per bad file.

Every reader raises `DataError` (a ValueError) whose message names the offending file, so the
command line can print it as a one-line error. Every writer of cgc goes through `atomic_path`: it
writes a temporary file beside the target, fsyncs it, renames it and fsyncs the folder, so a crash
never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError


class DataError(ValueError):
    """A missing, unreadable or malformed input file (the message names it)."""


def _open_image(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"cannot read image {path}: {error}") from None
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as [H, W, 3] uint8 RGB (alpha dropped, greyscale expanded)."""
    image = _open_image(Path(path))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def read_label_png(path: str | Path) -> np.ndarray:
    """An 8- or 16-bit single-channel PNG of integer labels as [H, W] int32."""
    image = _open_image(Path(path))
    if image.mode in ("L", "P", "I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.int32)
    if image.mode == "1":
        return np.asarray(image).astype(np.int32)
    raise DataError(
        f"{path}: expected a single-channel 8- or 16-bit label PNG, got mode {image.mode}"
    )


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """[H, W] non-negative integer labels as an 8-bit PNG when they fit, else 16-bit."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [H, W], got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ValueError("labels must lie in [0, 65535] to be stored as PNG")
    dtype = np.uint8 if labels.size == 0 or labels.max() < 256 else np.uint16
    _atomic_save_image(Path(path), Image.fromarray(labels.astype(dtype)))


def write_rgb(path: str | Path, image: np.ndarray) -> None:
    """[H, W, 3] uint8 as PNG or JPEG (by suffix)."""
    _atomic_save_image(Path(path), Image.fromarray(np.asarray(image, dtype=np.uint8)))


def read_depth(path: str | Path) -> np.ndarray:
    """Depth in metres as [H, W] float32; non-finite and non-positive values become 0 (invalid).

    `.npy` holds metres; a 16-bit PNG holds millimetres (the ROS 16UC1 convention).
    """
    path = Path(path)
    if path.suffix == ".npy":
        if not path.is_file():
            raise DataError(f"file not found: {path}")
        try:
            depth = np.load(path).astype(np.float32)
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read depth {path}: {error}") from None
    else:
        depth = read_label_png(path).astype(np.float32) / 1000.0
    if depth.ndim != 2:
        raise DataError(f"{path}: depth must be a single-channel image, got shape {depth.shape}")
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return depth


def write_depth_png(path: str | Path, depth_m: np.ndarray) -> None:
    """Depth in metres as a 16-bit PNG in millimetres (0 = invalid)."""
    depth = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    _atomic_save_image(Path(path), Image.fromarray(mm))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2) + "\n").encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on success it replaces `path` atomically.

    The temporary file has the target's suffix (so writers that pick the format by suffix work)
    and gets the permissions an ordinary new file would (0666 less the umask; mkstemp's 0600
    would hide outputs from other users). After the writer returns, the file is fsynced, renamed
    over `path`, and the folder is fsynced, so a crash or power loss at any moment leaves either
    the old file or the new one, never a torn one. If the writer raises, the temporary file is
    removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write `payload` to `path` atomically and durably (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


def _atomic_save_image(path: Path, image: Image.Image) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp)
