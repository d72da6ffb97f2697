"""A training run on disk: `cgc train` writes it, `cgc segment / eval / render` read it.

RUN/
    run.json        what was trained: scene path, masks, effective config, iterations, timings
    model.ply       the Gaussians (3DGS PLY + f_seg_* features), readable by splat viewers
    checkpoint.pt   resumable trainer state (written atomically)
    masks/          segment maps computed by the configured mask source (cached for resuming)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cgc_core.app.masks import segment_maps
from cgc_core.config import CGCConfig, apply_overrides
from cgc_core.data import Scene, load_scene
from cgc_core.devices import resolve_device
from cgc_core.io import DataError, read_json, write_json
from cgc_core.model.gaussians import load_ply, save_ply
from cgc_core.train.from_scene import trainer_from_scene
from cgc_core.train.trainer import load_checkpoint

RUN_FILE = "run.json"
MODEL_FILE = "model.ply"
CHECKPOINT_FILE = "checkpoint.pt"
MASKS_DIR = "masks"


@dataclass
class Run:
    """A trained model with the scene and configuration it was trained with."""

    root: Path
    config: CGCConfig
    scene: Scene
    splats: torch.nn.ParameterDict
    info: dict
    """The contents of run.json."""


def train_scene(scene_path: Path, out: Path, *, config: CGCConfig, masks_dir: Path | None = None,
                resume: bool = False, progress: bool = True,
                log: Callable[[str], None] = print) -> Run:
    """`cgc train`: fit the model to the scene's training views and write RUN/."""
    scene = load_scene(scene_path)
    if not scene.train_names:
        raise DataError(f"{scene_path}: the scene has no training views")
    device = resolve_device(config.train.device, "train.device")
    out.mkdir(parents=True, exist_ok=True)
    maps = segment_maps(scene, scene.train_names, masks_dir, config, out / MASKS_DIR, log=log)
    trainer = trainer_from_scene(scene, maps, config, device)
    config, iterations, views = trainer.config, trainer.iterations, trainer.views
    initial = trainer.splats["means"].shape[0]
    checkpoint = out / CHECKPOINT_FILE
    if resume and checkpoint.is_file():
        trainer.load_state_dict(load_checkpoint(checkpoint))
        log(f"resumed from {checkpoint} at iteration {trainer.step_count}")
    log(f"training {len(views)} views at {views[0].width}x{views[0].height} on {device}, "
        f"{iterations} iterations, {initial} initial Gaussians")
    start = time.perf_counter()
    trainer.train(iterations, progress=progress, checkpoint=checkpoint,
                  checkpoint_every=config.train.checkpoint_every)
    seconds = time.perf_counter() - start
    trainer.save_checkpoint(checkpoint)
    save_ply(trainer.splats, out / MODEL_FILE)
    info = {"scene": str(Path(scene_path).resolve()),
            "masks": None if masks_dir is None else str(Path(masks_dir).resolve()),
            "iterations": iterations, "train_resolution": [views[0].width, views[0].height],
            "train_seconds": round(seconds, 2), "device": str(device),
            "num_gaussians": int(trainer.splats["means"].shape[0]),
            "config": dataclasses.asdict(config)}
    write_json(out / RUN_FILE, info)
    log(f"trained in {seconds:.1f} s: {info['num_gaussians']} Gaussians -> {out / MODEL_FILE}")
    return Run(out, config, scene, trainer.splats, info)


def load_run(run_dir: Path, device: str = "auto") -> Run:
    """Open RUN/ for queries (segment, eval, render)."""
    run_dir = Path(run_dir)
    info = read_json(run_dir / RUN_FILE)
    config = apply_overrides(CGCConfig(), info["config"])
    splats = load_ply(run_dir / MODEL_FILE, device=resolve_device(device))
    return Run(run_dir, config, load_scene(Path(info["scene"])), splats, info)
