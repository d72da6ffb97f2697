"""`cgc demo`, the offline demo (scripts/run.sh runs the node instead: cgc_eval.main_job): make
a synthetic scene with SAM-like inconsistent masks, train CGC on it, evaluate on held-out views,
and render pictures, all into one folder."""

from __future__ import annotations

import time
from pathlib import Path

from cgc_core.app.config_file import load_config
from cgc_core.config import apply_overrides


def run_demo(out: Path, *, seed: int = 0, iterations: int | None = None, log=print) -> dict:
    from cgc_core.app.evaluate import evaluate_run
    from cgc_core.app.pictures import write_frame_renders
    from cgc_core.app.run_folder import train_scene
    from cgc_core.data.synth import synth_command
    from cgc_core.io import write_json
    from cgc_core.metrics import format_table

    start = time.perf_counter()
    out = Path(out)
    scene_dir, run_dir = out / "scene", out / "run"
    log(f"[1/4] synthetic scene -> {scene_dir}")
    synth_command(scene_dir, seed=seed)
    config = load_config()
    if iterations is not None:
        apply_overrides(config, {"train": {"iterations": iterations}})
    log("[2/4] training on deliberately inconsistent (SAM-like) masks")
    run = train_scene(scene_dir, run_dir, config=config, masks_dir=scene_dir / "masks_inconsistent")
    log("[3/4] evaluating on held-out test views")
    results = evaluate_run(run.splats, run.scene, config.render, config.query.threshold,
                           config.query, config.objects)
    table = format_table(results)
    log(table)
    write_json(out / "eval.json", results)
    (out / "eval.md").write_text(table + "\n")
    log("[4/4] rendering a test view")
    frame = run.scene.test_names[0]
    renders = write_frame_renders(run, frame, out / "renders")
    for path in renders:
        log(f"  {path}")
    log(f"done in {time.perf_counter() - start:.0f} s: {out}")
    return results
