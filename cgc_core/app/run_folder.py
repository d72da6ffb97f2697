"""A training run on disk: `cgc train` writes it, `cgc segment / eval / render` read it.

It is the one map folder format (cgc_core.service.maps): `cgc train`, `cgc stream` and the
node's `~/save_map` write checkpoint.pt and objects.json alike, and every command reads a map
the node saved (`load_run`: its keyframes stand in for the scene) as the node loads a run.

RUN/
    run.json        what was trained: scene path, masks, effective config, iterations, timings,
                    and each training view's learned pose and exposure correction
                    ("view_corrections": name, rotation_deg, translation_mm, pose, gain, offset)
    model.ply       the Gaussians (3DGS PLY + f_seg_* features), readable by splat viewers
    checkpoint.pt   the whole live session, resumable (written atomically, loads weights-only)
    stream.json     `cgc stream` only: per keyframe, when it arrived, became a keyframe and got
                    its segments; the held-out mIoU along the way
    masks/          segment maps computed by the configured mask source (cached for resuming)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cgc_core.app.masks import segment_maps
from cgc_core.cameras import Camera
from cgc_core.config import CGCConfig, apply_overrides, without_retired
from cgc_core.data import Scene, load_scene
from cgc_core.devices import resolve_device
from cgc_core.io import DataError, read_json, write_json
from cgc_core.model.gaussians import load_ply, save_ply
from cgc_core.service.maps import checkpoint_of
from cgc_core.train.from_scene import session_from_scene
from cgc_core.train.live import LiveSession
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
    """`cgc train`: fit the model to the scene's training views and write RUN/ (a live session
    with every frame given up front, `session_from_scene`)."""
    scene = load_scene(scene_path)
    if not scene.train_names:
        raise DataError(f"{scene_path}: the scene has no training views")
    device = resolve_device(config.train.device, "train.device")
    out.mkdir(parents=True, exist_ok=True)
    maps = segment_maps(scene, scene.train_names, masks_dir, config, out / MASKS_DIR, log=log)
    session = session_from_scene(scene, maps, config, device)
    trainer = session.trainer
    iterations, views = trainer.iterations, trainer.views
    initial = trainer.splats["means"].shape[0]
    checkpoint = out / CHECKPOINT_FILE
    if resume and checkpoint.is_file():
        session.load_state_dict(load_checkpoint(checkpoint))
        log(f"resumed from {checkpoint} at iteration {trainer.step_count}")
    log(f"training {len(views)} views at {views[0].width}x{views[0].height} on {device}, "
        f"{iterations} iterations, {initial} initial Gaussians")
    start = time.perf_counter()
    every = session.config.train.checkpoint_every
    session.train(iterations, progress=progress, on_step=None if every <= 0 else (
        lambda stats: stats.step % every == 0 and session.save(checkpoint)))
    seconds = time.perf_counter() - start
    return write_run(out, session, scene, {
        "scene": str(Path(scene_path).resolve()),
        "masks": None if masks_dir is None else str(Path(masks_dir).resolve()),
        "train_seconds": round(seconds, 2)}, log=log)


def write_run(out: Path, session: LiveSession, scene: Scene, info: dict,
              log: Callable[[str], None] = print) -> Run:
    """Write RUN/ from a session: checkpoint (the whole session), model.ply and run.json, the
    layout that `cgc segment / eval / render` read, whether `cgc train` or `cgc stream` made it.

    Args:
        info: run.json entries of the caller (scene, masks, timings); the model's are added.
    """
    trainer = session.trainer
    session.save(out / CHECKPOINT_FILE)
    save_ply(trainer.splats, out / MODEL_FILE)
    view = trainer.views[0]
    info = {**info, "iterations": trainer.step_count, "train_resolution": [view.width, view.height],
            "device": str(session.device), "num_gaussians": int(trainer.splats["means"].shape[0]),
            "view_corrections": trainer.view_corrections(),
            "config": dataclasses.asdict(session.config)}
    write_json(out / RUN_FILE, info)
    log(f"{info['num_gaussians']} Gaussians after {info['iterations']} iterations -> "
        f"{out / MODEL_FILE}")
    return Run(out, session.config, scene, trainer.splats, info)


def run_resolution(run: Run) -> int:
    """The longer side a run trained at (its `train_resolution`; 0 = native when unknown)."""
    size = run.info.get("train_resolution")
    return int(max(size)) if size else 0


def load_run(run_dir: Path, device: str = "auto") -> Run:
    """Open RUN/ for queries (segment, eval, render), or a map the node saved (no run.json:
    `load_saved_map`)."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not (run_dir / RUN_FILE).is_file():
        return load_saved_map(run_dir, device)
    info = read_json(run_dir / RUN_FILE)
    config = apply_overrides(CGCConfig(), without_retired(info["config"]))
    splats = load_ply(run_dir / MODEL_FILE, device=resolve_device(device))
    return Run(run_dir, config, load_scene(Path(info["scene"])), splats, info)


class KeyframeScene(Scene):
    """The scene of a map the node saved: its keyframes (cameras, images and depth at training
    resolution, as the checkpoint keeps them), all of them training views, no test views."""

    def __init__(self, root: Path, keyframes: list):
        cameras = [k.view.camera for k in keyframes]
        super().__init__(root, cameras, [c.name for c in cameras], [])
        self._images = {k.view.camera.name: (k.view.image * 255).round().byte().cpu().numpy()
                        for k in keyframes}
        self._depths = {k.view.camera.name: None if k.depth is None
                        else k.depth.cpu().numpy().astype(np.float32) for k in keyframes}

    def load_image(self, cam: Camera | str) -> np.ndarray:
        return self._images[cam if isinstance(cam, str) else cam.name]

    def load_depth(self, cam: Camera | str) -> np.ndarray | None:
        depth = self._depths[cam if isinstance(cam, str) else cam.name]
        camera = self.camera(cam) if isinstance(cam, str) else cam
        return depth if depth is not None and depth.shape == (camera.height, camera.width) \
            else None


def load_saved_map(folder: Path, device: str = "auto") -> Run:
    """A map folder without run.json (the node's `~/save_map`) as a Run: the model the node
    serves (`LiveSession.snapshot`), its configuration, and its keyframes as the scene.
    DataError with a one-line reason for a folder that is no map."""
    checkpoint = checkpoint_of(folder)
    session = LiveSession.load(checkpoint, device=resolve_device(device))
    snapshot = session.snapshot()
    if snapshot is None:
        raise DataError(f"{checkpoint}: the saved session has no model")
    splats = torch.nn.ParameterDict({k: torch.nn.Parameter(v, requires_grad=False)
                                     for k, v in snapshot.splats.items()})
    info = {"scene": None, "saved_by": "the node (~/save_map)", "iterations": snapshot.step,
            "num_gaussians": int(len(splats["means"]))}
    return Run(Path(folder), session.config, KeyframeScene(Path(folder), session.keyframes),
               splats, info)
