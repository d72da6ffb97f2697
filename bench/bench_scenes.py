"""CGC training quality across the built-in scene families, one row per scene.

The seed of `cgc synth` picks the scene family (seed // 100; see cgc_core/data/synth.py):

    0-99 tabletop   100-199 small   200-299 wide   300-399 split   400-499 merges
    robot conditions (issue 24), each alone, then all together:
    500-599 clutter       8-12 objects packed on the table, 3-4 pairs touching (0-1 cm apart)
    600-699 pose          tabletop; training poses with 0.5 deg / 5 mm RMS SLAM-like error
    700-799 photometric   tabletop; exposure gain ±12 % per frame, white balance ±3 %, noise σ 3
    800-899 depth_noise   tabletop; depth noise σ = 2.5 mm · z² (z in m), 2 % holes
    900-999 low           20-45 deg views 0.55-0.9 m from the table centre, 60 training views
    1000-1099 robot       all of the above together

For each seed this makes the scene (cached in the work folder and reused while its family
parameters are unchanged), trains with the default config (plus --set overrides) on the scene's
SAM-like inconsistent masks, evaluates on the held-out test views (mIoU / mBIoU over test_mask/,
prompts from prompts.json) and compares with the per-view baseline of bench_train.py: the same
inconsistent masks used view by view, the segment under each object's most interior ground-truth
pixel taken as its prediction (an oracle choice that favours the baseline). Scenes with
poses_true.json (pose, robot) also get the median rotation / translation error of the training
poses given to training and, when the run saved per-view corrections, of the corrected poses
(`pose_errors`).

    .venv/bin/python bench/bench_scenes.py [--seeds 0,3,100,...] [--families clutter,robot
                                           [--per-family 2]] [--set key.sub=value ...]
                                           [--iterations N] [--label NAME] [--work DIR]
                                           [--reuse-runs LABEL] [--baseline-only]

`--families` adds the first `--per-family` seeds of each named family to --seeds (then empty by
default). `--baseline-only` trains nothing: the per-view masks and the given pose error only.
Prints and writes bench/results/<label>.md and bench/results/<label>.json (default label
"scenes"); both are rewritten after every scene, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name, per_view_baseline  # noqa: E402

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run, train_scene  # noqa: E402
from cgc_core.config import apply_overrides  # noqa: E402
from cgc_core.data.sensor_noise import pose_error, rotation_from_vector  # noqa: E402
from cgc_core.data.synth import (  # noqa: E402
    FAMILIES,
    FAMILY_SEEDS,
    POSES_TRUE_FILE,
    exact_sensor_family,
    family_params,
    make_synthetic_scene,
    scene_family,
)

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


def scene_is_current(scene_dir: Path, seed: int, exact_sensor: bool = False) -> bool:
    """A cached scene of this seed made with the current family parameters."""
    try:
        info = json.loads((scene_dir / "synth.json").read_text())
    except (OSError, ValueError):
        return False
    family = scene_family(seed)
    family = family_params(exact_sensor_family(family) if exact_sensor else family)
    return (info.get("seed") == seed and info.get("family_params") == json.loads(
        json.dumps(family)) and (scene_dir / "prompts.json").is_file()
        and (scene_dir / "transforms.json").is_file())


def make_scene(work: Path, seed: int, fresh: bool, exact_sensor: bool = False
               ) -> tuple[Path, float | None]:
    """The scene folder of `seed` (made unless cached); seconds spent making it, None if cached.
    `exact_sensor`: the same scene without its sensor and pose corruptions (scene_seedS_exact)."""
    scene_dir = work / (f"scene_seed{seed}_exact" if exact_sensor else f"scene_seed{seed}")
    if not fresh and scene_is_current(scene_dir, seed, exact_sensor):
        return scene_dir, None
    if scene_dir.exists():
        shutil.rmtree(scene_dir)
    start = time.perf_counter()
    make_synthetic_scene(scene_dir, seed=seed, exact_sensor=exact_sensor)
    return scene_dir, time.perf_counter() - start


def family_seeds(names: str, per_family: int) -> list[int]:
    """The first `per_family` seeds of each named family ("clutter,robot")."""
    index = {f.name: k for k, f in enumerate(FAMILIES)}
    seeds = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in index:
            raise SystemExit(f"--families: unknown family {name!r} (known: {', '.join(index)})")
        seeds += [index[name] * FAMILY_SEEDS + k for k in range(per_family)]
    return seeds


def corrected_c2w(given_c2w: np.ndarray, pose: list[float]) -> np.ndarray:
    """[4, 4] camera-to-world after a run's per-view correction `pose` = [omega (3, rad), tau
    (3, m)], applied as cgc_core.train.corrections.ViewCorrection.corrected_viewmat does:
    corrected world-to-camera = [R(omega) | tau] @ given world-to-camera."""
    delta = np.eye(4)
    delta[:3, :3] = rotation_from_vector(np.asarray(pose[:3], dtype=np.float64))
    delta[:3, 3] = pose[3:6]
    return np.linalg.inv(delta @ np.linalg.inv(given_c2w))


def pose_errors(scene_dir: Path, run_dir: Path | None = None) -> dict | None:
    """Median pose error of the training views, None for a scene without poses_true.json.

    Returns {"given": {"views", "rotation_deg", "translation_mm"}, "corrected": the same or
    None}: "given" compares the training poses in the scene's transforms.json (what training
    gets) with poses_true.json; "corrected" applies the per-view corrections that the run saved
    in RUN/run.json under "view_corrections" (or "pose_corrections"): a list of {"name",
    "pose": [omega_x, omega_y, omega_z, tau_x, tau_y, tau_z]} (radians, metres, camera frame;
    see `corrected_c2w`), None entries for views not trained. Views without a correction count
    with their given pose.
    """
    truth_file = Path(scene_dir) / POSES_TRUE_FILE
    if not truth_file.is_file():
        return None
    from cgc_core.data import load_scene

    truth = json.loads(truth_file.read_text())
    scene = load_scene(scene_dir)
    given = {cam.name: cam.cam_to_world for cam in scene.train_cameras}

    def medians(poses: dict[str, np.ndarray]) -> dict:
        errors = np.array([pose_error(c2w, np.array(truth[name])) for name, c2w in poses.items()])
        return {"views": len(errors), "rotation_deg": float(np.median(errors[:, 0])),
                "translation_mm": float(np.median(errors[:, 1]) * 1000)}

    result = {"given": medians(given), "corrected": None}
    run_json = Path(run_dir) / "run.json" if run_dir is not None else None
    if run_json is not None and run_json.is_file():
        info = json.loads(run_json.read_text())
        entries = info.get("view_corrections") or info.get("pose_corrections") or []
        corrections = {e["name"]: e["pose"] for e in entries if e and "pose" in e}
        if corrections:
            result["corrected"] = medians({
                name: corrected_c2w(c2w, corrections[name]) if name in corrections else c2w
                for name, c2w in given.items()})
    return result


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
    if meta.get("exact_sensor"):
        lines.append("- **exact sensor**: the scenes without their pose, image and depth "
                     "corruptions (same objects, views and masks; scene_seedS_exact)")
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
    lines += pose_lines(rows)
    return "\n".join(lines) + "\n"


def pose_lines(rows: list[dict]) -> list[str]:
    """The pose-error table of the rows that have one (scenes with poses_true.json)."""
    posed = [row for row in rows if row.get("pose_errors")]
    if not posed:
        return []
    lines = ["", "Training poses against poses_true.json, median over the training views: "
             "given = what training got, corrected = after the run's per-view corrections "
             "(empty when the run saved none).", "",
             "| family | seed | views | given rotation (deg) | given translation (mm) | "
             "corrected rotation (deg) | corrected translation (mm) |",
             "|---|---|---|---|---|---|---|"]
    for row in posed:
        given, corrected = row["pose_errors"]["given"], row["pose_errors"]["corrected"]
        after = (f"{corrected['rotation_deg']:.3f} | {corrected['translation_mm']:.2f}"
                 if corrected else " | ")
        lines.append(f"| {row['family']} | {row['seed']} | {given['views']} | "
                     f"{given['rotation_deg']:.3f} | {given['translation_mm']:.2f} | {after} |")
    return lines


def render_baseline_markdown(meta: dict, rows: list[dict], complete: bool) -> str:
    """--baseline-only: the per-view masks (and given pose error) per scene, nothing trained."""
    lines = [
        "# Per-view masks across scene families (synthetic scenes, nothing trained)",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}",
        f"- date: {meta['date']}",
        f"- scenes: `cgc synth --seed S` (family = S // 100), cached in {meta['work']}",
    ]
    if not complete:
        lines.append(f"- **incomplete**: {len(rows)} of {len(meta['seeds'])} scenes so far")
    lines += [
        "",
        "mIoU / mBIoU in percent on the held-out test views of the SAM-like inconsistent masks "
        "used view by view (oracle segment choice: the segment under each object's most "
        "interior ground-truth pixel).",
        "",
        "| family | seed | objects | train views | test masks | per-view mIoU | per-view mBIoU | "
        "worst object (mIoU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['family']} | {row['seed']} | {row['objects']} | "
                     f"{row['train_views']} | {row['test_masks']} | {row['per_view_mIoU']:.1f} | "
                     f"{row['per_view_mBIoU']:.1f} | {row['worst_object']} |")
    lines += pose_lines(rows)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default=None,
                        help=f"comma-separated scene seeds (default {DEFAULT_SEEDS}, or none "
                             "with --families)")
    parser.add_argument("--families", default="",
                        help="comma-separated family names whose first --per-family seeds are "
                             "added (e.g. clutter,pose,photometric,depth_noise,low,robot)")
    parser.add_argument("--per-family", type=int, default=2,
                        help="seeds per family for --families (default 2)")
    parser.add_argument("--baseline-only", action="store_true",
                        help="train nothing: per-view masks and given pose error only")
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
    parser.add_argument("--exact-sensor", action="store_true",
                        help="the same scenes without their pose, image and depth corruptions "
                             "(scene_seedS_exact): what each condition costs")
    parser.add_argument("--fresh-scenes", action="store_true",
                        help="regenerate the scenes even when cached")
    parser.add_argument("--reuse-runs", metavar="LABEL",
                        help="evaluate the runs WORK/run_LABEL_seedS trained earlier instead of "
                             "training (query-time changes need no retraining); seeds without "
                             "one are trained")
    args = parser.parse_args()
    seed_text = args.seeds if args.seeds is not None else (
        "" if args.families else DEFAULT_SEEDS)
    seeds = [int(s) for s in seed_text.split(",") if s.strip()]
    seeds += [s for s in family_seeds(args.families, args.per_family) if s not in seeds]
    if not seeds:
        raise SystemExit("no seeds: give --seeds or --families")
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
        "exact_sensor": args.exact_sensor,
    }
    rows: list[dict] = []
    for seed in seeds:
        family = scene_family(seed).name
        scene_dir, synth_seconds = make_scene(work, seed, args.fresh_scenes, args.exact_sensor)
        made = "cached" if synth_seconds is None else f"made in {synth_seconds:.1f} s"
        print(f"[{family} {seed}] scene {scene_dir} ({made})", flush=True)
        baseline = per_view_baseline(scene_dir)
        if args.baseline_only:
            info = json.loads((scene_dir / "synth.json").read_text())
            row = {
                "family": family, "seed": seed, "objects": len(info["objects"]),
                "train_views": len(json.loads((scene_dir / "split.json").read_text())["train"]),
                "test_masks": info["test_masks"],
                "per_view_mIoU": baseline["mIoU"], "per_view_mBIoU": baseline["mBIoU"],
                "worst_object": worst_object(baseline),
                "pose_errors": pose_errors(scene_dir),
                "per_object": {"per_view": baseline["per_object"]},
            }
            rows.append(row)
            print(f"[{family} {seed}] per-view {baseline['mIoU']:.1f} / {baseline['mBIoU']:.1f}",
                  flush=True)
            complete = len(rows) == len(seeds)
            text = render_baseline_markdown(meta, rows, complete)
            out_md.write_text(text)
            out_json.write_text(json.dumps(
                {**{k: v for k, v in meta.items() if not k.endswith("_text")},
                 "complete": complete, "scenes": rows}, indent=2) + "\n")
            continue
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
        run_dir = earlier if args.reuse_runs and (earlier / "run.json").is_file() else \
            work / f"run_{args.label}_seed{seed}"
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
            "pose_errors": pose_errors(scene_dir, run_dir),
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
