"""Lens distortion: a built-in scene taken through an OpenCV lens, trained with its coefficients,
against the same scene taken by a pinhole camera, and against ignoring the coefficients.

For each seed, three runs with the default config on the scene's SAM-like inconsistent masks:

    pinhole   `cgc synth --seed S`: the scene as every other bench sees it
    lens      `cgc synth --seed S --distortion K1,K2`: images, depth, masks, test masks and
              prompts on the distorted grid, transforms.json with the coefficients; cgc
              undistorts for training and scores on the raw (distorted) grid
    ignored   the lens scene with the coefficients set to 0 in a copy of its transforms.json
              (cgc before lens support: the distorted images taken as pinhole images)

Each run is scored by mIoU / mBIoU on the held-out test masks (on the grid of the images given)
and PSNR / SSIM of the held-out colour (at the training resolution, on the pinhole view).

    .venv/bin/python bench/bench_distortion.py [--seeds 0] [--distortion -0.25,0.08]
                                               [--work DIR] [--label distortion]

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.app.evaluate import colour_quality, evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run, run_resolution, train_scene  # noqa: E402
from cgc_core.config import CGCConfig  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene  # noqa: E402

VARIANTS = ("pinhole", "lens", "ignored")


def scenes(work: Path, seed: int, distortion: tuple[float, ...]) -> dict[str, Path]:
    """{variant: scene folder}, made once and cached in `work`."""
    pinhole, lens, ignored = (work / f"{v}_{seed}" for v in VARIANTS)
    if not (pinhole / "synth.json").is_file():
        make_synthetic_scene(pinhole, seed=seed)
    if not (lens / "synth.json").is_file():
        make_synthetic_scene(lens, seed=seed, distortion=distortion)
    if not (ignored / "transforms.json").is_file():
        ignored.mkdir(parents=True, exist_ok=True)
        for entry in lens.iterdir():  # the same files, but the lens left out of the cameras
            target = ignored / entry.name
            if entry.name not in ("transforms.json", "sparse") and not target.exists():
                target.symlink_to(entry.resolve())
        meta = json.loads((lens / "transforms.json").read_text())
        for key in ("k1", "k2", "k3", "k4", "p1", "p2"):
            meta.pop(key, None)
        (ignored / "transforms.json").write_text(json.dumps(meta))
    return {"pinhole": pinhole, "lens": lens, "ignored": ignored}


def run_variant(scene: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    train_scene(scene, out, config=CGCConfig(), masks_dir=scene / "masks_inconsistent",
                progress=False, log=lambda message: None)
    seconds = time.perf_counter() - start
    run = load_run(out)
    masks = evaluate_run(run.splats, run.scene, run.config.render, run.config.query.threshold,
                         run.config.query, run.config.objects)
    colour = colour_quality(run.splats, run.scene, run.config.render, run_resolution(run))
    return {"mIoU": masks["mIoU"], "mBIoU": masks["mBIoU"], "psnr": colour["psnr"],
            "ssim": colour["ssim"], "train_seconds": round(seconds, 1),
            "train_resolution": run.info["train_resolution"]}


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# {meta['label']}: lens distortion (k = {meta['distortion']})", "",
             f"- command: `{meta['command']}`", f"- date: {meta['date']}",
             f"- machine: {meta['machine']}", "",
             "| seed | variant | mIoU | mBIoU | PSNR (dB) | SSIM | train s | vs pinhole mIoU / "
             "mBIoU |", "|---|---|---:|---:|---:|---:|---:|---|"]
    by_seed = {}
    for row in rows:
        by_seed.setdefault(row["seed"], {})[row["variant"]] = row
    for seed, variants in by_seed.items():
        base = variants.get("pinhole")
        for name in VARIANTS:
            if name not in variants:
                continue
            r = variants[name]
            delta = "" if base is None or name == "pinhole" else \
                f"{r['mIoU'] - base['mIoU']:+.1f} / {r['mBIoU'] - base['mBIoU']:+.1f}"
            lines.append(f"| {seed} | {name} | {r['mIoU']:.1f} | {r['mBIoU']:.1f} | "
                         f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['train_seconds']:.0f} | "
                         f"{delta} |")
    lines += ["", "Masks and ground truth are scored on the grid of the images given (distorted "
              "for `lens` and `ignored`); PSNR / SSIM on the held-out views at the training "
              "resolution, on the pinhole view (undistorted photos for `lens`, the raw photos "
              "for `ignored`, so its PSNR compares the model with what it was told the camera "
              "saw)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--distortion", default="-0.25,0.08")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "distortion")
    parser.add_argument("--label", default="distortion")
    args = parser.parse_args()
    distortion = tuple(float(v) for v in args.distortion.split(","))
    meta = {"label": args.label, "distortion": list(distortion),
            "command": "python bench/bench_distortion.py " + " ".join(sys.argv[1:]),
            "date": datetime.date.today().isoformat(),
            "machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU"}
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        folders = scenes(args.work, seed, distortion)
        for variant in VARIANTS:
            row = {"seed": seed, "variant": variant,
                   **run_variant(folders[variant], args.work / f"run_{variant}_{seed}")}
            rows.append(row)
            print(json.dumps(row), flush=True)
            text = markdown(meta, rows)
            results = ROOT / "bench" / "results"
            (results / f"{args.label}.md").write_text(text)
            (results / f"{args.label}.json").write_text(json.dumps({**meta, "rows": rows},
                                                                   indent=1))
    print(text)


if __name__ == "__main__":
    main()
