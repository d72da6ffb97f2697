"""CGC training quality across the built-in scene families, one row per scene.

The seed of `cgc synth` picks the scene family (seed // 100: tabletop, small, wide, split,
merges; see cgc_core/data/synth.py). For each seed this makes the scene (cached in the work
folder and reused while its family parameters are unchanged), trains with the default config
(plus --set overrides) on the scene's SAM-like inconsistent masks, evaluates on the held-out test
views (mIoU / mBIoU over test_mask/, prompts from prompts.json) and compares with the per-view
baseline of bench_train.py: the same inconsistent masks used view by view, the segment under each
object's most interior ground-truth pixel taken as its prediction (an oracle choice that favours
the baseline).

    .venv/bin/python bench/bench_scenes.py [--seeds 0,3,100,...] [--set key.sub=value ...]
                                           [--iterations N] [--label NAME] [--work DIR]
                                           [--reuse-runs LABEL]

Prints and writes bench/results/<label>.md and bench/results/<label>.json (default label
"scenes"); both are rewritten after every scene, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name, per_view_baseline  # noqa: E402

from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run, train_scene  # noqa: E402
from cgc_core.config import apply_overrides, load_config  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene, scene_family  # noqa: E402

DEFAULT_SEEDS = "0,3,100,101,200,201,302,304,400,401"
"""Two scenes per family: tabletop 0 (the model wins) and 3 (it loses to the per-view masks),
small 100-101, wide 200-201, split 302 (two-tone block, tin) and 304 (tin, crate), merges
400-401."""


def parse_overrides(items: list[str]) -> dict:
    """["loss.use_similarity=false", "train.iterations=50"] -> nested dict of YAML scalars."""
    overrides: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set wants key.sub=value, got {item!r}")
        value = yaml.safe_load(text) if text.strip() else None
        if isinstance(value, (dict, list)):
            raise SystemExit(f"--set {key}: a scalar value is needed, got {text!r}")
        node = overrides
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SystemExit(f"--set {key}: '{part}' was set to a value before")
        node[parts[-1]] = value
    return overrides


def scene_is_current(scene_dir: Path, seed: int) -> bool:
    """A cached scene of this seed made with the current family parameters."""
    try:
        info = json.loads((scene_dir / "synth.json").read_text())
    except (OSError, ValueError):
        return False
    family = dataclasses.asdict(scene_family(seed))
    return (info.get("seed") == seed and info.get("family_params") == json.loads(
        json.dumps(family)) and (scene_dir / "prompts.json").is_file()
        and (scene_dir / "transforms.json").is_file())


def make_scene(work: Path, seed: int, fresh: bool) -> tuple[Path, float | None]:
    """The scene folder of `seed` (made unless cached); seconds spent making it, None if cached."""
    scene_dir = work / f"scene_seed{seed}"
    if not fresh and scene_is_current(scene_dir, seed):
        return scene_dir, None
    if scene_dir.exists():
        shutil.rmtree(scene_dir)
    start = time.perf_counter()
    make_synthetic_scene(scene_dir, seed=seed)
    return scene_dir, time.perf_counter() - start


def finite(values: list[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def summary(rows: list[dict], reduce) -> dict:
    keys = ("per_view_mIoU", "per_view_mBIoU", "mIoU", "mBIoU", "diff_mIoU", "diff_mBIoU",
            "train_seconds")
    out = {}
    for key in keys:
        values = finite([row[key] for row in rows])
        out[key] = reduce(values) if values else float("nan")
    return out


def worst_object(results: dict) -> str:
    per_object = results.get("per_object", {})
    if not per_object:
        return ""
    name, scores = min(per_object.items(), key=lambda item: item[1]["mIoU"])
    return f"{name} {scores['mIoU']:.1f}"


def render_markdown(meta: dict, rows: list[dict], complete: bool) -> str:
    lines = [
        "# CGC training across scene families (synthetic scenes, inconsistent masks)",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}",
        f"- date: {meta['date']}",
        f"- config overrides: {meta['overrides_text']}",
        f"- iterations: {meta['iterations_text']}; mask threshold t = {meta['threshold']}",
        f"- scenes: `cgc synth --seed S` (family = S // 100), cached in {meta['work']}",
    ]
    if meta.get("reused_runs"):
        lines.append(f"- models: the runs `run_{meta['reused_runs']}_seedS` trained earlier, "
                     "evaluated with today's query code (train seconds are theirs)")
    if not complete:
        lines.append(f"- **incomplete**: {len(rows)} of {len(meta['seeds'])} scenes so far")
    lines += [
        "",
        "mIoU / mBIoU in percent on the held-out test views. Per-view: the same inconsistent masks "
        "used view by view (oracle segment choice). Diff: model minus per-view.",
        "",
        "| family | seed | objects | per-view mIoU | per-view mBIoU | model mIoU | model mBIoU | "
        "diff mIoU | diff mBIoU | worst object (mIoU) | train (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cells(row: dict) -> str:
        return (f"{row['per_view_mIoU']:.1f} | {row['per_view_mBIoU']:.1f} | {row['mIoU']:.1f} | "
                f"{row['mBIoU']:.1f} | {row['diff_mIoU']:+.1f} | {row['diff_mBIoU']:+.1f}")

    for row in rows:
        lines.append(f"| {row['family']} | {row['seed']} | {row['objects']} | {cells(row)} | "
                     f"{row['worst_object']} | {row['train_seconds']:.0f} |")
    if rows:
        lines.append(f"| **mean** | | | {cells(meta['mean'])} | | "
                     f"{meta['mean']['train_seconds']:.0f} |")
        lines.append(f"| **min** | | | {cells(meta['min'])} | | |")
        families = list(dict.fromkeys(row["family"] for row in rows))
        lines += ["", "Mean per family:", "",
                  "| family | scenes | per-view mIoU | per-view mBIoU | model mIoU | model mBIoU | "
                  "diff mIoU | diff mBIoU |",
                  "|---|---|---|---|---|---|---|---|"]
        for family in families:
            members = [row for row in rows if row["family"] == family]
            stats = summary(members, lambda v: sum(v) / len(v))
            lines.append(f"| {family} | {len(members)} | {cells(stats)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=DEFAULT_SEEDS,
                        help=f"comma-separated scene seeds (default {DEFAULT_SEEDS})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.SUB=VALUE",
                        help="config override, value parsed as a YAML scalar (repeatable)")
    parser.add_argument("--iterations", type=int,
                        help="training iterations (default: the config's per-device choice)")
    parser.add_argument("--label", default="scenes",
                        help="names the result files bench/results/<label>.md/.json and runs")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "scenes"),
                        help="scenes (cached) and runs")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"),
                        help="folder for <label>.md and <label>.json")
    parser.add_argument("--fresh-scenes", action="store_true",
                        help="regenerate the scenes even when cached")
    parser.add_argument("--reuse-runs", metavar="LABEL",
                        help="evaluate the runs WORK/run_LABEL_seedS trained earlier instead of "
                             "training (query-time changes need no retraining); seeds without "
                             "one are trained")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for seed in seeds:
        scene_family(seed)  # refuse a bad seed before hours of training
    overrides = parse_overrides(args.overrides)
    if args.iterations is not None:
        if args.iterations <= 0:
            raise SystemExit("--iterations must be positive")
        overrides.setdefault("train", {})["iterations"] = args.iterations
    config = apply_overrides(load_config(), overrides)  # checked now, applied per scene below
    work = Path(args.work)
    out_md = Path(args.results) / f"{args.label}.md"
    out_json = out_md.with_suffix(".json")
    out_md.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "label": args.label,
        "command": f".venv/bin/python bench/bench_scenes.py {' '.join(sys.argv[1:])}".rstrip(),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU",
        "date": datetime.date.today().isoformat(),
        "overrides": overrides,
        "overrides_text": ", ".join(f"`{item}`" for item in args.overrides) or "none",
        "iterations_text": str(args.iterations) if args.iterations else "the config's per-device "
                                                                           "choice",
        "threshold": config.query.threshold,
        "work": str(work),
        "seeds": seeds,
        "reused_runs": args.reuse_runs,
    }
    rows: list[dict] = []
    for seed in seeds:
        family = scene_family(seed).name
        scene_dir, synth_seconds = make_scene(work, seed, args.fresh_scenes)
        made = "cached" if synth_seconds is None else f"made in {synth_seconds:.1f} s"
        print(f"[{family} {seed}] scene {scene_dir} ({made})", flush=True)
        baseline = per_view_baseline(scene_dir)
        config = apply_overrides(load_config(), overrides)
        earlier = work / f"run_{args.reuse_runs}_seed{seed}"
        if args.reuse_runs and (earlier / "run.json").is_file():
            run = load_run(earlier)
            print(f"[{family} {seed}] evaluating the run trained earlier in {earlier}", flush=True)
        else:
            run = train_scene(scene_dir, work / f"run_{args.label}_seed{seed}", config=config,
                              masks_dir=scene_dir / "masks_inconsistent", progress=False)
        results = evaluate_run(run.splats, run.scene, config.render, config.query.threshold,
                               query=config.query, objects=config.objects)
        row = {
            "family": family, "seed": seed, "objects": len(results.get("per_object", {})),
            "per_view_mIoU": baseline["mIoU"], "per_view_mBIoU": baseline["mBIoU"],
            "mIoU": results["mIoU"], "mBIoU": results["mBIoU"],
            "diff_mIoU": results["mIoU"] - baseline["mIoU"],
            "diff_mBIoU": results["mBIoU"] - baseline["mBIoU"],
            "worst_object": worst_object(results),
            "train_seconds": run.info["train_seconds"], "iterations": run.info["iterations"],
            "train_resolution": run.info["train_resolution"],
            "num_gaussians": run.info["num_gaussians"],
            "per_object": {"per_view": baseline["per_object"], "model": results["per_object"]},
        }
        rows.append(row)
        print(f"[{family} {seed}] per-view {baseline['mIoU']:.1f} / {baseline['mBIoU']:.1f}, "
              f"model {results['mIoU']:.1f} / {results['mBIoU']:.1f} "
              f"({row['diff_mIoU']:+.1f} mIoU) in {row['train_seconds']:.0f} s", flush=True)
        meta["mean"] = summary(rows, lambda v: sum(v) / len(v))
        meta["min"] = summary(rows, min)
        complete = len(rows) == len(seeds)
        text = render_markdown(meta, rows, complete)
        out_md.write_text(text)
        out_json.write_text(json.dumps(
            {**{k: v for k, v in meta.items() if not k.endswith("_text")},
             "complete": complete, "scenes": rows}, indent=2) + "\n")
    print(text)
    print(f"wrote {out_md} and {out_json}")


if __name__ == "__main__":
    main()
