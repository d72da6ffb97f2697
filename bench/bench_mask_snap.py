"""What snapping segment boundaries to colour edges (`loss.mask_snap_px`) does to the masks
themselves, before any training, side by side with the masks as given, per scene.

Two figures per variant:
- label error of the training views' masks: each segment's pixels that do not belong to the
  true instance most of it covers, as a share of the segment, summed over segments and averaged
  over views. It counts a small segment's stray pixels as Eq. 3 with equal cluster weights does
  (a pixel weighs 1 / its segment's size), so it is the noise the contrastive loss sees;
- the per-view baseline of bench_scenes.py (test views' masks used view by view, mIoU / mBIoU):
  what a user gets from the masks alone, snapped or not.

    .venv/bin/python bench/bench_mask_snap.py [--seeds 0,3,...] [--work DIR] [--label NAME]

Scenes are `cgc synth --seed S`, cached in --work as bench_scenes.py makes them. Prints and writes
bench/results/<label>.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scenes import make_scene  # noqa: E402
from bench_train import cpu_name, per_view_baseline  # noqa: E402

from cgc_core.config import LossConfig  # noqa: E402
from cgc_core.data import load_scene  # noqa: E402
from cgc_core.data.synth import scene_family  # noqa: E402
from cgc_core.io import read_label_png  # noqa: E402
from cgc_core.segment.edges import snap_as_configured  # noqa: E402

SEEDS = "0,3,100,101,200,201,302,400,1,102,301,2,4,401,303,304,103,402,5,104,202,305,403"
"""The 8 bench scenes of docs/results.md, then the 15 held-out ones."""


def label_error(segments: np.ndarray, instances: np.ndarray) -> float:
    """Sum over segments of the share of their pixels outside their majority instance."""
    error = 0.0
    for segment in np.unique(segments[segments > 0]):
        truth = instances[segments == segment]
        error += 1.0 - np.bincount(truth - truth.min()).max() / len(truth)
    return error


def measure(scene_dir: Path, loss: LossConfig) -> dict:
    scene = load_scene(scene_dir)
    given, snapped, errors, seconds = {}, {}, {"given": [], "snapped": []}, 0.0
    for path in sorted((scene_dir / "masks_inconsistent").glob("*.png")):
        frame = path.stem
        segments = read_label_png(path)
        image = scene.load_image(scene.camera(frame))
        start = time.perf_counter()
        moved = snap_as_configured(segments, image, loss)
        seconds += time.perf_counter() - start
        given[frame], snapped[frame] = segments, moved
        if frame in scene.train_names:
            instances = read_label_png(scene_dir / "instances" / path.name).astype(np.int64)
            errors["given"].append(label_error(segments, instances))
            errors["snapped"].append(label_error(moved, instances))
    return {"error_given": float(np.mean(errors["given"])),
            "error_snapped": float(np.mean(errors["snapped"])),
            "per_view_given": per_view_baseline(scene_dir, given),
            "per_view_snapped": per_view_baseline(scene_dir, snapped),
            "ms_per_view": 1000 * seconds / len(given)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=SEEDS)
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "scenes"))
    parser.add_argument("--label", default="mask_snap")
    args = parser.parse_args()
    loss = LossConfig()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        scene_dir, _ = make_scene(Path(args.work), seed, fresh=False)
        result = measure(scene_dir, loss)
        rows.append({"seed": seed, "family": scene_family(seed).name, **{
            k: v if not isinstance(v, dict) else {"mIoU": v["mIoU"], "mBIoU": v["mBIoU"]}
            for k, v in result.items()}})
        row = rows[-1]
        print(f"[{row['family']} {seed}] label error {row['error_given']:.3f} -> "
              f"{row['error_snapped']:.3f}; per-view mIoU {row['per_view_given']['mIoU']:.1f} -> "
              f"{row['per_view_snapped']['mIoU']:.1f}", flush=True)
    write(rows, args, loss)


def write(rows: list[dict], args, loss: LossConfig) -> None:
    out = ROOT / "bench" / "results" / args.label
    lines = [
        "# Segment boundaries snapped to colour edges: the masks before training",
        "",
        f"- command: `.venv/bin/python bench/bench_mask_snap.py --seeds {args.seeds}`",
        f"- machine: {cpu_name()}, {os.cpu_count()} CPUs; date: "
        f"{datetime.date.today().isoformat()}",
        f"- snap: band {loss.mask_snap_px} px, window {loss.mask_snap_window} px, ratio "
        f"{loss.mask_snap_ratio}, contrast {loss.mask_snap_contrast} (the defaults)",
        "- label error: per training view, the sum over segments of the share of each segment's "
        "pixels outside its majority true instance (the noise Eq. 3 with equal cluster weights "
        "sees); mean over views. Per-view: bench_scenes.py's baseline, mIoU / mBIoU.",
        "",
        "| family | seed | label error given | snapped | ratio | per-view given | per-view "
        "snapped | ms / view |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['seed']} | {r['error_given']:.3f} | {r['error_snapped']:.3f} | "
            f"{r['error_snapped'] / max(r['error_given'], 1e-9):.2f} | "
            f"{r['per_view_given']['mIoU']:.1f} / {r['per_view_given']['mBIoU']:.1f} | "
            f"{r['per_view_snapped']['mIoU']:.1f} / {r['per_view_snapped']['mBIoU']:.1f} | "
            f"{r['ms_per_view']:.0f} |")
    mean = {k: float(np.mean([r[k] if not isinstance(r[k], dict) else r[k]["mIoU"]
                              for r in rows]))
            for k in ("error_given", "error_snapped", "per_view_given", "per_view_snapped")}
    lines.append(f"| mean | {len(rows)} scenes | {mean['error_given']:.3f} | "
                 f"{mean['error_snapped']:.3f} | "
                 f"{mean['error_snapped'] / max(mean['error_given'], 1e-9):.2f} | "
                 f"{mean['per_view_given']:.1f} | {mean['per_view_snapped']:.1f} | |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "mean": mean}, indent=1))
    print(f"wrote {out}.md and {out}.json")


if __name__ == "__main__":
    main()
