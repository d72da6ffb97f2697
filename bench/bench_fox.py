"""A real capture on a CPU: instant-ngp's fox (50 phone photos, 1080x1920, OpenCV distortion,
no depth, no point cloud) trained at several resolutions, side by side.

The capture is not in this repository (NVIDIA Source Code License, non-commercial use): extract
it with `git archive` from a clone of NVlabs/instant-ngp (`data/nerf/fox`) and pass its folder.
Its transforms.json lists 67 frames for 50 images; cgc skips the 17 with one warning.

For each training resolution (the longer side, `train.max_resolution`), `cgc train` with the
default config otherwise; then PSNR / SSIM of the held-out views (every 8th photo) at that
resolution, neutral exposure. The segment maps are computed once, before any run, by the
default mask source on each photo scaled to 320 px on its longer side and scaled back up
(nearest), and given to every run as `--masks`: the runs differ in resolution only.

    .venv/bin/python bench/bench_fox.py --scene /path/to/fox [--resolutions 160,320]
                                        [--iterations N] [--work DIR] [--label fox]

Prints and writes bench/results/<label>.md and .json (rewritten after every run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.app.evaluate import colour_quality  # noqa: E402
from cgc_core.app.run_folder import load_run, run_resolution, train_scene  # noqa: E402
from cgc_core.config import CGCConfig, apply_overrides  # noqa: E402
from cgc_core.data import load_scene  # noqa: E402
from cgc_core.io import write_label_png  # noqa: E402
from cgc_core.segment import make_mask_source  # noqa: E402

MASK_SIDE = 320


def masks(scene_dir: Path, work: Path) -> tuple[Path, float]:
    """The training views' segment maps (raw grid, PNG per stem), made once; (folder, seconds)."""
    out = work / "masks"
    scene = load_scene(scene_dir)
    if out.is_dir() and all((out / f"{n}.png").is_file() for n in scene.train_names):
        return out, float("nan")
    source = make_mask_source(CGCConfig().segmenter)
    start = time.perf_counter()
    for name in scene.train_names:
        image = scene.load_raw_image(name)
        height, width = image.shape[:2]
        scale = MASK_SIDE / max(height, width)
        small = Image.fromarray(image).resize((round(width * scale), round(height * scale)),
                                              Image.BOX)
        ids = source(np.asarray(small), name)
        full = Image.fromarray(ids.astype(np.int32)).resize((width, height), Image.NEAREST)
        write_label_png(out / f"{name}.png", np.asarray(full))
    return out, time.perf_counter() - start


def run(scene_dir: Path, masks_dir: Path, out: Path, resolution: int,
        iterations: int | None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    train = {"max_resolution": resolution}
    if iterations:
        train["iterations"] = iterations
    config = apply_overrides(CGCConfig(), {"train": train})
    start, cpu_start = time.perf_counter(), time.process_time()
    train_scene(scene_dir, out, config=config, masks_dir=masks_dir, progress=False,
                log=lambda message: None)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    trained = load_run(out)
    colour = colour_quality(trained.splats, trained.scene, trained.config.render,
                            run_resolution(trained))
    return {"resolution": resolution, "train_resolution": trained.info["train_resolution"],
            "iterations": trained.info["iterations"],
            "num_gaussians": trained.info["num_gaussians"], "wall_seconds": round(seconds, 1),
            "train_seconds": trained.info["train_seconds"], "cpu_seconds": round(cpu_seconds, 1),
            "psnr": colour["psnr"],
            "ssim": colour["ssim"], "views": colour["views"]}


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# {meta['label']}: instant-ngp's fox on a CPU, by training resolution", "",
             f"- command: `{meta['command']}`", f"- date: {meta['date']}",
             f"- machine: {meta['machine']}; load average at the start {meta['load']}",
             f"- segment maps: {meta['masks']}", "",
             "| longer side | trained at | iterations | Gaussians | train s | wall s | CPU s "
             "| PSNR (dB) | SSIM | CPU s / first row's |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = rows[0]["cpu_seconds"] if rows else None
    for r in rows:
        lines.append(f"| {r['resolution']} | {r['train_resolution'][0]}x"
                     f"{r['train_resolution'][1]} | {r['iterations']} | {r['num_gaussians']} | "
                     f"{r['train_seconds']:.0f} | {r['wall_seconds']:.0f} | "
                     f"{r['cpu_seconds']:.0f} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['cpu_seconds'] / base:.2f} |")
    lines += ["", "CPU s: the process's CPU time over all its threads, the figure that does not "
              "depend on what else the shared cores ran (on 2 free cores, wall time is about "
              "half of it). PSNR / SSIM on the held-out views (every 8th photo, "
              f"{rows[0]['views'] if rows else 0} views) at each run's own training resolution, "
              "on the undistorted photos; there is no ground truth for masks in this capture."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--resolutions", default="160,320")
    parser.add_argument("--iterations", type=int, default=0,
                        help="iterations per run (0: the default, train.iterations)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "fox")
    parser.add_argument("--label", default="fox")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    masks_dir, mask_seconds = masks(args.scene, args.work)
    meta = {"label": args.label, "command": "python bench/bench_fox.py " + " ".join(sys.argv[1:]),
            "date": datetime.date.today().isoformat(),
            "machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU",
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "masks": f"default mask source at {MASK_SIDE} px, scaled up (made in "
                     f"{mask_seconds:.0f} s)" if mask_seconds == mask_seconds else
                     f"default mask source at {MASK_SIDE} px, scaled up (cached in {masks_dir})"}
    rows = []
    for resolution in (int(r) for r in args.resolutions.split(",")):
        rows.append(run(args.scene, masks_dir, args.work / f"run_{resolution}", resolution,
                        args.iterations))
        print(json.dumps(rows[-1]), flush=True)
        text = markdown(meta, rows)
        results = ROOT / "bench" / "results"
        (results / f"{args.label}.md").write_text(text)
        (results / f"{args.label}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
