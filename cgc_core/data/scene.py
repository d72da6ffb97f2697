"""A posed image collection on disk: the one `Scene` type every reader returns, and what the
readers share (split rules, checks). `cgc_core.data.load.load_scene` picks the reader.

Two layouts are recognised:

- nerfstudio / Blender: `transforms.json` in the scene root (see `cgc_core.data.nerfstudio`);
- COLMAP: a model in `sparse/0/` or `sparse/` (text or binary) with the images in `images/`
  (see `cgc_core.data.colmap`).

Cameras follow the conventions of `cgc_core.cameras` (OpenCV axes, camera-to-world, pixel centres
at integer + 0.5, depth in metres along the optical axis) whatever the file format stores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cgc_core.cameras import Camera
from cgc_core.io import DataError, read_depth, read_json, read_rgb
from cgc_core.lens import raw_size, undistort

TRANSFORMS_FILE = "transforms.json"
SPLIT_FILE = "split.json"
TEST_MASK_DIR = "test_mask"
LLFF_HOLD = 8
"""Without any split information every 8th frame (0, 8, 16, ...) is a test view: the mip-NeRF 360
/ 3DGS convention, so numbers stay comparable with published results."""


class SceneError(DataError):
    """A scene folder that cannot be loaded; the one-line message names the offending file."""


@dataclass
class Scene:
    """Posed views of one static scene.

    The cameras are ordered (by file name for COLMAP, as listed for nerfstudio); `train_names` and
    `test_names` are disjoint subsets of the camera names, each in camera order. Treat `cameras`
    as fixed after construction: `camera(name)` looks names up in an index built then.
    """

    root: Path
    cameras: list[Camera]
    train_names: list[str]
    test_names: list[str]
    points: np.ndarray | None = field(default=None, repr=False)
    """[P, 3] float64 initial point cloud in world coordinates (COLMAP points3D or nerfstudio
    `ply_file_path`), or None."""
    point_colors: np.ndarray | None = field(default=None, repr=False)
    """[P, 3] uint8 RGB of `points`, or None."""
    _by_name: dict[str, Camera] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {cam.name: cam for cam in self.cameras}

    @property
    def train_cameras(self) -> list[Camera]:
        return [self._by_name[name] for name in self.train_names]

    @property
    def test_cameras(self) -> list[Camera]:
        return [self._by_name[name] for name in self.test_names]

    def camera(self, name: str) -> Camera:
        """The camera of frame `name` (an image stem); KeyError naming the scene if unknown."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no frame named {name!r} in scene {self.root}") from None

    def load_image(self, cam: Camera | str) -> np.ndarray:
        """[H, W, 3] uint8 RGB of a camera (or frame name), undistorted onto its pinhole view when
        it has a lens (`cgc_core.lens`); SceneError if missing or mis-sized."""
        cam = self.camera(cam) if isinstance(cam, str) else cam
        return undistort(cam, self.load_raw_image(cam))

    def load_raw_image(self, cam: Camera | str) -> np.ndarray:
        """[Hr, Wr, 3] uint8 RGB of a camera as the file holds it (distorted when it has a lens)."""
        cam = self.camera(cam) if isinstance(cam, str) else cam
        if cam.image_path is None:
            raise SceneError(f"{self.root}: frame {cam.name!r} has no image file")
        try:
            image = read_rgb(cam.image_path)
        except SceneError:
            raise
        except DataError as error:
            raise SceneError(str(error)) from None
        width, height = raw_size(cam)
        if image.shape[:2] != (height, width):
            raise SceneError(f"{cam.image_path}: image is {image.shape[1]}x{image.shape[0]}, "
                             f"its camera says {width}x{height}")
        return image

    def undistort_segments(self, cam: Camera | str, segments: np.ndarray) -> np.ndarray:
        """[H, W] segment ids given on the raw image's grid (a `--masks` PNG) -> the camera's
        pinhole grid (nearest: ids never blend); unchanged for a camera without a lens."""
        cam = self.camera(cam) if isinstance(cam, str) else cam
        return undistort(cam, segments, nearest=True)

    def load_depth(self, cam: Camera | str) -> np.ndarray | None:
        """[H, W] float32 depth in metres (0 = invalid) of a camera, or None if it has none;
        undistorted (nearest) onto its pinhole view when it has a lens."""
        cam = self.camera(cam) if isinstance(cam, str) else cam
        depth = self.load_raw_depth(cam)
        return None if depth is None else undistort(cam, depth, nearest=True)

    def load_raw_depth(self, cam: Camera | str) -> np.ndarray | None:
        """[Hr, Wr] float32 depth of a camera as the file holds it (on the raw grid), or None."""
        cam = self.camera(cam) if isinstance(cam, str) else cam
        if cam.depth_path is None:
            return None
        try:
            depth = read_depth(cam.depth_path)
        except SceneError:
            raise
        except DataError as error:
            raise SceneError(str(error)) from None
        width, height = raw_size(cam)
        if depth.shape != (height, width):
            raise SceneError(f"{cam.depth_path}: depth is {depth.shape[1]}x{depth.shape[0]}, "
                             f"its camera says {width}x{height}")
        return depth


def read_json_or_scene_error(path: Path):
    """`cgc_core.io.read_json`, re-raised as SceneError (same one-line message)."""
    try:
        return read_json(path)
    except DataError as error:
        raise SceneError(str(error)) from None


def default_split(root: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """Train / test names for a scene whose own files carry no split.

    In order of precedence: `split.json` ({"train": [stems], "test": [stems]}) in the root; else
    frames that have a `test_mask/<frame>/` folder (LERF-Mask layout) are test; else every 8th
    frame, starting with the first, is test (mip-NeRF 360 convention).
    """
    split_path = root / SPLIT_FILE
    if split_path.exists():
        return read_split_file(split_path, names)
    mask_root = root / TEST_MASK_DIR
    if mask_root.is_dir():
        test = {name for name in names if (mask_root / name).is_dir()}
        if test:
            return [n for n in names if n not in test], [n for n in names if n in test]
    test_idx = set(range(0, len(names), LLFF_HOLD))
    return ([n for i, n in enumerate(names) if i not in test_idx],
            [n for i, n in enumerate(names) if i in test_idx])


def read_split_file(path: Path, names: list[str]) -> tuple[list[str], list[str]]:
    """`split.json` → (train, test) in camera order; SceneError for unknown or overlapping names."""
    data = read_json_or_scene_error(path)
    if not isinstance(data, dict) or not isinstance(data.get("train"), list):
        raise SceneError(f"{path}: expected {{\"train\": [frame names], \"test\": [frame names]}}")
    test_list = data.get("test", [])
    if not isinstance(test_list, list):
        raise SceneError(f"{path}: 'test' must be a list of frame names")
    known = set(names)
    for entry in list(data["train"]) + list(test_list):
        if not isinstance(entry, str) or entry not in known:
            raise SceneError(f"{path}: unknown frame {entry!r}")
    train, test = set(data["train"]), set(test_list)
    if train & test:
        raise SceneError(f"{path}: frames in both train and test: {sorted(train & test)[:3]}")
    return [n for n in names if n in train], [n for n in names if n in test]


MISSING_IMAGES = ("skip", "error")
"""What a reader does with a listed frame whose image file is missing (`images_present`)."""


def check_images_exist(cameras: list[Camera]) -> None:
    """SceneError naming the first camera whose image file is missing."""
    for cam in cameras:
        if cam.image_path is None or not Path(cam.image_path).is_file():
            raise SceneError(f"image file not found: {cam.image_path}")


def images_present(cameras: list[Camera], source: Path, missing: str = "skip") -> list[bool]:
    """[len(cameras)] whether each camera's image file exists.

    `missing="skip"` warns once with the count of missing files (and the first one) and lets the
    reader leave those frames out, as instant-ngp and nerfstudio do; `"error"` raises SceneError
    naming the first. A scene with none of its images is refused either way.
    """
    if missing not in MISSING_IMAGES:
        raise ValueError(f"missing_images must be one of {MISSING_IMAGES}, got {missing!r}")
    present = [cam.image_path is not None and Path(cam.image_path).is_file() for cam in cameras]
    absent = [cam for cam, ok in zip(cameras, present) if not ok]
    if absent and (missing == "error" or len(absent) == len(cameras)):
        raise SceneError(f"image file not found: {absent[0].image_path}"
                         + ("" if missing == "error" else f" (none of the {len(cameras)} "
                            f"frames of {source} has its image)"))
    if absent:
        warnings.warn(f"{source}: {len(absent)} of {len(cameras)} frames have no image file "
                      f"(first: {absent[0].image_path}); skipped", stacklevel=3)
    return present


def check_unique_names(cameras: list[Camera], source: Path) -> None:
    """Frame names (image stems) must be unique: prompts and ground truth refer to them."""
    seen: set[str] = set()
    for cam in cameras:
        if cam.name in seen:
            raise SceneError(f"{source}: two images share the frame name {cam.name!r}")
        seen.add(cam.name)
