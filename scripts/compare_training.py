#!/usr/bin/env python3
"""Show that a change keeps training bit for bit: train N steps with the cgc_core found on
PYTHONPATH and print a hash of every parameter after each step, as JSON lines.

    PYTHONPATH=/path/to/old .venv/bin/python scripts/compare_training.py SCENE N > old.jsonl
    PYTHONPATH=$PWD .venv/bin/python scripts/compare_training.py SCENE N > new.jsonl
    diff old.jsonl new.jsonl      # no output: the same model after every step

SCENE is a built-in scene (`cgc synth SCENE`); training uses its masks_inconsistent/ and the
default config, with `--set key.sub=value` overrides (YAML scalars). The old checkout needs its
C++ extension built in place (`python setup.py build_ext --inplace`, or copy the .so). Works with
checkouts from before the application layer moved to cgc_core.app (commit 41fbbd1 and earlier).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import yaml


def trainer_for(scene_dir: Path, overrides: dict):
    from cgc_core.config import CGCConfig, apply_overrides
    from cgc_core.data import load_scene
    from cgc_core.io import read_label_png

    config = apply_overrides(CGCConfig(), overrides)
    scene = load_scene(scene_dir)
    maps = {n: read_label_png(scene_dir / "masks_inconsistent" / f"{n}.png")
            for n in scene.train_names}
    try:
        from cgc_core.train.from_scene import trainer_from_scene
    except ImportError:  # before the application layer: rebuild what run.train_scene did
        from cgc_core.run import initial_points, planned_iterations, planned_resolution
        from cgc_core.train.schedule import scaled_schedule
        from cgc_core.train.trainer import Trainer
        from cgc_core.train.views import make_training_view, scene_extent

        device = torch.device("cpu")
        iterations = planned_iterations(config, device)
        resolution = planned_resolution(config, device)
        config = scaled_schedule(config, iterations)
        torch.manual_seed(config.train.seed)
        cams = [scene.camera(n) for n in scene.train_names]
        views = [make_training_view(c, scene.load_image(c), maps[c.name], resolution, device)
                 for c in cams]
        extent = scene_extent(cams)
        points, colors = initial_points(scene, cams, extent, config.model.init_points,
                                        np.random.default_rng(config.train.seed))
        return Trainer(config, views, points=points, colors=colors, extent=extent,
                       iterations=iterations, device=device)
    return trainer_from_scene(scene, maps, config, torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides: dict = {"train": {"device": "cpu"}}
    for item in args.set:
        key, value = item.split("=", 1)
        *sections, name = key.split(".")
        node = overrides
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = yaml.safe_load(value)
    trainer = trainer_for(args.scene, overrides)

    def hashes() -> dict:
        return {k: hashlib.sha256(v.detach().contiguous().numpy().tobytes()).hexdigest()[:16]
                for k, v in trainer.splats.items()}

    print(json.dumps({"step": 0, **hashes()}), flush=True)
    for _ in range(args.steps):
        stats = trainer.step()
        print(json.dumps({"step": stats.step, **hashes()}), flush=True)


if __name__ == "__main__":
    main()
