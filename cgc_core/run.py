"""A training run on disk, and the offline pipeline steps the `cgc` command exposes.

RUN/
    run.json        what was trained: scene path, masks, effective config, iterations, timings
    model.ply       the Gaussians (3DGS PLY + f_seg_* features), readable by splat viewers
    checkpoint.pt   resumable trainer state (written atomically)
    masks/          segment maps computed by the configured mask source (cached for resuming)
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig, SegmenterConfig, apply_overrides
from cgc_core.data import Scene, load_scene
from cgc_core.io import DataError, read_json, read_label_png, write_json, write_label_png
from cgc_core.model.gaussians import load_ply, save_ply
from cgc_core.segment import make_mask_source
from cgc_core.train.schedule import scaled_schedule
from cgc_core.train.trainer import Trainer, load_checkpoint, resolve_device
from cgc_core.train.views import make_training_view, scene_extent


@dataclass
class Run:
    root: Path
    config: CGCConfig
    scene: Scene
    splats: torch.nn.ParameterDict
    info: dict


def planned_iterations(config: CGCConfig, device: torch.device) -> int:
    t = config.train
    if t.iterations > 0:
        return t.iterations
    return t.gpu_iterations if device.type == "cuda" else t.cpu_iterations


def planned_resolution(config: CGCConfig, device: torch.device) -> int:
    t = config.train
    if t.max_resolution >= 0:
        return t.max_resolution
    return 0 if device.type == "cuda" else t.cpu_max_resolution


def segment_maps(scene: Scene, names: list[str], masks_dir: Path | None, config: CGCConfig,
                 cache_dir: Path, log=print) -> dict[str, np.ndarray]:
    """Segment ids per training frame: from `masks_dir`, else from the configured mask source
    (computed once and cached in `cache_dir`, so a resumed run does not segment again)."""
    if masks_dir is not None:
        source = make_mask_source(SegmenterConfig(kind="precomputed", masks_dir=str(masks_dir)))
        return {name: source(scene.load_image(scene.camera(name)), name) for name in names}
    source, maps = None, {}
    for i, name in enumerate(names):
        cached = cache_dir / f"{name}.png"
        if cached.is_file():
            maps[name] = read_label_png(cached)
            continue
        if source is None:
            source = make_mask_source(config.segmenter)
            log(f"segmenting {len(names)} training views with '{config.segmenter.kind}' ...")
        maps[name] = source(scene.load_image(scene.camera(name)), name)
        write_label_png(cached, maps[name])
        log(f"  segmented {i + 1}/{len(names)}: {name} ({int(maps[name].max())} segments)")
    return maps


def initial_points(scene: Scene, cameras: list[Camera], extent: float, count: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """[P, 3] points and [P, 3] uint8 colours to seed Gaussians: the scene's point cloud, else
    depth back-projection, else random points around the cameras' look-at region."""
    if scene.points is not None and len(scene.points) > 0:
        return scene.points, scene.point_colors
    points, colors = [], []
    per_view = max(1, count // max(1, len(cameras)))
    for cam in cameras:
        depth = scene.load_depth(cam)
        if depth is None:
            continue
        image = scene.load_image(cam)
        rows, cols = np.nonzero(depth > 0)
        if len(rows) == 0:
            continue
        pick = rng.choice(len(rows), size=min(per_view, len(rows)), replace=False)
        rows, cols = rows[pick], cols[pick]
        z = depth[rows, cols]
        # pixel centres at integer + 0.5 (cgc_core/cameras.py)
        x = (cols + 0.5 - cam.cx) / cam.fx * z
        y = (rows + 0.5 - cam.cy) / cam.fy * z
        cam_points = np.stack([x, y, z, np.ones_like(z)], axis=1)
        points.append((cam_points @ cam.cam_to_world.T)[:, :3])
        colors.append(image[rows, cols])
    if points:
        return np.concatenate(points), np.concatenate(colors)
    centres = np.stack([c.cam_to_world[:3, 3] for c in cameras])
    look = np.stack([c.cam_to_world[:3, 2] for c in cameras])
    target = (centres + look * extent / 1.1).mean(0)
    return target + rng.uniform(-extent / 2, extent / 2, size=(count, 3)), None


def train_scene(scene_path: Path, out: Path, *, config: CGCConfig, masks_dir: Path | None = None,
                resume: bool = False, progress: bool = True, log=print) -> Run:
    """`cgc train`: fit the model to the scene's training views and write RUN/."""
    scene = load_scene(scene_path)
    device = resolve_device(config.train.device)
    iterations = planned_iterations(config, device)
    resolution = planned_resolution(config, device)
    config = scaled_schedule(config, iterations)
    names = scene.train_names
    if not names:
        raise DataError(f"{scene_path}: the scene has no training views")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.train.seed)
    maps = segment_maps(scene, names, masks_dir, config, out / "masks", log=log)
    views = [make_training_view(scene.camera(n), scene.load_image(scene.camera(n)), maps[n],
                                resolution, device) for n in names]
    cameras = [scene.camera(n) for n in names]
    extent = scene_extent(cameras)
    rng = np.random.default_rng(config.train.seed)
    points, colors = initial_points(scene, cameras, extent, config.model.init_points, rng)
    trainer = Trainer(config, views, points=points, colors=colors, extent=extent,
                      iterations=iterations, device=device)
    checkpoint = out / "checkpoint.pt"
    if resume and checkpoint.is_file():
        trainer.load_state_dict(load_checkpoint(checkpoint))
        log(f"resumed from {checkpoint} at iteration {trainer.step_count}")
    log(f"training {len(views)} views at {views[0].width}x{views[0].height} on {device}, "
        f"{iterations} iterations, {len(points)} initial Gaussians")
    start = time.perf_counter()
    trainer.train(iterations, progress=progress, checkpoint=checkpoint,
                  checkpoint_every=config.train.checkpoint_every)
    seconds = time.perf_counter() - start
    trainer.save_checkpoint(checkpoint)
    save_ply(trainer.splats, out / "model.ply")
    info = {"scene": str(Path(scene_path).resolve()),
            "masks": None if masks_dir is None else str(Path(masks_dir).resolve()),
            "iterations": iterations, "train_resolution": [views[0].width, views[0].height],
            "train_seconds": round(seconds, 2), "device": str(device),
            "num_gaussians": int(trainer.splats["means"].shape[0]),
            "config": dataclasses.asdict(config)}
    write_json(out / "run.json", info)
    log(f"trained in {seconds:.1f} s: {info['num_gaussians']} Gaussians -> {out / 'model.ply'}")
    return Run(out, config, scene, trainer.splats, info)


def load_run(run_dir: Path, device: str = "auto") -> Run:
    """Open RUN/ for queries (segment, eval, render)."""
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json")
    config = apply_overrides(CGCConfig(), info["config"])
    splats = load_ply(run_dir / "model.ply", device=resolve_device(device))
    return Run(run_dir, config, load_scene(Path(info["scene"])), splats, info)
