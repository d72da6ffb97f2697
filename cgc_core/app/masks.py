"""The segment maps a run trains on: given as a folder of PNGs, or computed once by the
configured mask source and cached in the run folder (so a resumed run does not segment again)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from cgc_core.config import CGCConfig, SegmenterConfig
from cgc_core.data import Scene
from cgc_core.io import read_label_png, write_label_png
from cgc_core.segment import make_mask_source


def segment_maps(scene: Scene, names: list[str], masks_dir: Path | None, config: CGCConfig,
                 cache_dir: Path, log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """{frame name: [H, W] int32 segment ids} for each of `names`.

    From `masks_dir` (one PNG per image stem, on the grid of the images the user gave: undistorted
    here with the images when the camera has a lens) when given, else from `config.segmenter` on
    the (undistorted) training image, each map written to `cache_dir/<name>.png` as soon as it is
    computed and read back from there next time.
    """
    if masks_dir is not None:
        source = make_mask_source(SegmenterConfig(kind="precomputed", masks_dir=str(masks_dir)))
        return {name: scene.undistort_segments(name, source(scene.load_raw_image(name), name))
                for name in names}
    source, maps = None, {}
    for i, name in enumerate(names):
        cached = cache_dir / f"{name}.png"
        if cached.is_file():
            maps[name] = read_label_png(cached)
            continue
        if source is None:
            source = make_mask_source(config.segmenter)
            log(f"segmenting {len(names)} training views with '{config.segmenter.kind}' ...")
        camera = scene.camera(name)
        # the view's depth lets the fallback propose planes and objects (SAM ignores it)
        maps[name] = source(scene.load_image(camera), name, depth=scene.load_depth(camera),
                            intrinsics=camera.K)
        write_label_png(cached, maps[name])
        log(f"  segmented {i + 1}/{len(names)}: {name} ({int(maps[name].max())} segments)")
    return maps
