"""Segments without weights against the SAM-like masks: mIoU of the learned model per mask source.

For each built-in scene (a folder made by `cgc synth`, e.g. bench/out/robust/scene_seedS) and
each named mask source below, this trains the default config with no `--masks` (the configured
mask source segments the training views, as `cgc train` does for a user without SAM weights),
evaluates on the held-out test views, and compares with the per-view baseline of the very maps
the run trained on (bench_train.per_view_baseline: the segment under each object's most interior
ground-truth pixel, an oracle choice that favours the baseline). The scene's SAM-like inconsistent
masks (masks_inconsistent/) are shown beside: their per-view score, and the model trained on them
when `--sam-run SEED=RUN_DIR` names such a run (evaluated here with today's query code).

    .venv/bin/python bench/bench_segments_quality.py --scenes bench/out/robust \\
        --seeds 0,500,1002 [--sources default,felzenszwalb_full] [--sam-run 0=RUN ...]
        [--iterations N] [--label segments_without_weights] [--work DIR] [--reuse]

`--reuse` evaluates a run already in the work folder instead of training it again; `--from
JSON` takes the cells an earlier invocation measured (one scene at a time, then one table).
Prints and writes bench/results/<label>.md and .json, rewritten after every run.
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

from bench_train import cpu_name, per_view_baseline  # noqa: E402

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import MASKS_DIR, load_run, train_scene  # noqa: E402
from cgc_core.config import apply_overrides  # noqa: E402
from cgc_core.data import load_scene  # noqa: E402
from cgc_core.data.synth import scene_family  # noqa: E402
from cgc_core.io import read_label_png  # noqa: E402
from cgc_core.segment import make_mask_source  # noqa: E402

SOURCES = {
    "default": {},
    "colour_only": {"segmenter": {"kind": "felzenszwalb", "depth_proposals": False}},
    "felzenszwalb_full": {"segmenter": {"kind": "felzenszwalb", "depth_proposals": False,
                                        "working_pixels": 0}},
}
"""Mask sources without weights, as config overrides: 'default' is what `cgc train` does today
without a checkpoint; 'colour_only' the same without depth proposals; 'felzenszwalb_full' the
fallback before issue 27 (Felzenszwalb at the image's own size, no depth)."""


def run_maps(run_dir: Path) -> dict[str, np.ndarray]:
    """{frame: [H, W] segment ids} the run trained on (its masks/ cache)."""
    return {p.stem: read_label_png(p) for p in sorted((run_dir / MASKS_DIR).glob("*.png"))}


def test_maps(scene_dir: Path, config) -> dict[str, np.ndarray]:
    """{frame: [H, W] segment ids} of the held-out views, by the mask source the run used (the
    per-view baseline is scored on them)."""
    scene = load_scene(scene_dir)
    source = make_mask_source(config.segmenter)
    return {camera.name: source(scene.load_image(camera), camera.name,
                                depth=scene.load_depth(camera), intrinsics=camera.K)
            for camera in scene.test_cameras}


def segments_per_view(maps: dict[str, np.ndarray]) -> float:
    return float(np.median([int(m.max()) for m in maps.values()])) if maps else float("nan")


def evaluate(run, config) -> dict:
    return evaluate_run(run.splats, run.scene, config.render, config.query.threshold,
                        query=config.query, objects=config.objects)


def sam_row(scene_dir: Path, sam_run: Path | None) -> dict:
    """The SAM-like masks' per-view score and, given its run, the model trained on them."""
    baseline = per_view_baseline(scene_dir)
    names = [p.stem for p in (scene_dir / "masks_inconsistent").glob("*.png")]
    counts = [int(read_label_png(scene_dir / "masks_inconsistent" / f"{n}.png").max())
              for n in names]
    row = {"per_view_mIoU": baseline["mIoU"], "per_view_mBIoU": baseline["mBIoU"],
           "segments": float(np.median(counts)), "mIoU": float("nan"), "mBIoU": float("nan"),
           "run": None}
    if sam_run is not None:
        run = load_run(sam_run)
        results = evaluate(run, run.config)
        row.update(mIoU=results["mIoU"], mBIoU=results["mBIoU"], run=str(sam_run),
                   train_seconds=run.info["train_seconds"])
    return row


def source_row(scene_dir: Path, run_dir: Path, overrides: dict, iterations: int | None,
               reuse: bool) -> dict:
    config = apply_overrides(load_config(), overrides)
    if iterations:
        config = apply_overrides(config, {"train": {"iterations": iterations}})
    if reuse and (run_dir / "run.json").is_file():
        run = load_run(run_dir)
    else:
        start = time.perf_counter()
        run = train_scene(scene_dir, run_dir, config=config, masks_dir=None, progress=False,
                          log=lambda text: None)
        print(f"  trained {run_dir.name} in {time.perf_counter() - start:.0f} s", flush=True)
    maps = run_maps(run_dir)
    baseline = per_view_baseline(scene_dir, test_maps(scene_dir, config))
    results = evaluate(run, run.config)
    return {"per_view_mIoU": baseline["mIoU"], "per_view_mBIoU": baseline["mBIoU"],
            "segments": segments_per_view(maps), "mIoU": results["mIoU"],
            "mBIoU": results["mBIoU"], "diff_mIoU": results["mIoU"] - baseline["mIoU"],
            "train_seconds": run.info["train_seconds"], "run": str(run_dir)}


def earlier_cells(paths: list[str]) -> dict[tuple[int, str], dict]:
    """{(seed, source or 'sam_like'): cell} from this script's earlier .json files; a SAM-like
    cell only when it has a model figure or none of the files gives one."""
    cells: dict[tuple[int, str], dict] = {}
    for path in paths:
        for row in json.loads(Path(path).read_text())["rows"]:
            for name, cell in row["sources"].items():
                cells[(row["seed"], name)] = cell
            known = cells.get((row["seed"], "sam_like"))
            if known is None or known.get("run") is None:
                cells[(row["seed"], "sam_like")] = row["sam_like"]
    return cells


def fmt(value: float, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def render_markdown(meta: dict, rows: list[dict]) -> str:
    sources = meta["sources"]
    lines = [
        "# Segments without weights: the learned model per mask source",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}",
        f"- date: {meta['date']}",
        f"- iterations: {meta['iterations_text']}; default config otherwise",
        f"- scenes: {meta['scenes']} (`cgc synth --seed S`, family = S // 100)",
        "",
        "mIoU in percent on the held-out test views. Per-view: the mask source's own maps used "
        "view by view (oracle segment choice); model: CGC trained on those maps; diff = model "
        "minus per-view (the target: >= +10 for the default source). Segments: median per "
        "training view (the per-view score is on the held-out views, segmented by the same "
        "source). SAM-like: the scene's synthetic SAM-like inconsistent masks"
        " (model: an earlier run on them, evaluated in this run).",
        "",
    ]
    if meta.get("from"):
        lines += [f"Cells taken from earlier runs of this script: {', '.join(meta['from'])}.", ""]
    header = "| family | seed | SAM-like segs | SAM-like per-view | SAM-like model |"
    rule = "|---|---|---|---|---|"
    for name in sources:
        header += f" {name} segs | {name} per-view | {name} model | {name} diff |"
        rule += "---|---|---|---|"
    lines += [header, rule]
    for row in rows:
        sam = row["sam_like"]
        line = (f"| {row['family']} | {row['seed']} | {fmt(sam['segments'])} | "
                f"{fmt(sam['per_view_mIoU'])} | {fmt(sam['mIoU'])} |")
        for name in sources:
            cell = row["sources"].get(name)
            if cell is None:
                line += " | | | |"
            else:
                line += (f" {fmt(cell['segments'])} | {fmt(cell['per_view_mIoU'])} | "
                         f"**{fmt(cell['mIoU'])}** | {fmt(cell['diff_mIoU'], sign=True)} |")
        lines.append(line)
    lines += ["", "Train seconds per run:", ""]
    for row in rows:
        parts = [f"{name} {row['sources'][name]['train_seconds']:.0f} s"
                 for name in sources if name in row["sources"]]
        lines.append(f"- {row['family']} {row['seed']}: " + ", ".join(parts))
    return "\n".join(lines) + "\n"


def write_results(out_md: Path, meta: dict, rows: list[dict]) -> None:
    out_md.write_text(render_markdown(meta, rows))
    out_md.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", default=str(ROOT / "bench" / "out" / "robust"),
                        help="folder holding scene_seedS/ folders made by cgc synth")
    parser.add_argument("--seeds", default="0,500,1002")
    parser.add_argument("--sources", default="default",
                        help=f"comma-separated, of: {', '.join(SOURCES)}")
    parser.add_argument("--sam-run", action="append", default=[], metavar="SEED=RUN_DIR",
                        help="a run trained on the scene's SAM-like masks, evaluated beside")
    parser.add_argument("--iterations", type=int, help="default: the config's per-device choice")
    parser.add_argument("--label", default="segments_without_weights")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "segments"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--reuse", action="store_true",
                        help="evaluate runs already in --work instead of training them again")
    parser.add_argument("--from", dest="earlier", action="append", default=[], metavar="JSON",
                        help="rows this script wrote before (its .json): their cells are taken "
                             "as measured, the rest measured here")
    parser.add_argument("--no-training", action="store_true",
                        help="leave a cell empty rather than train its run")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    for name in sources:
        if name not in SOURCES:
            raise SystemExit(f"unknown source {name!r}: expected one of {list(SOURCES)}")
    sam_runs = {int(k): Path(v) for k, _, v in (item.partition("=") for item in args.sam_run)}
    scenes, work = Path(args.scenes), Path(args.work)
    out_md = Path(args.results) / f"{args.label}.md"
    meta = {
        "command": f".venv/bin/python bench/bench_segments_quality.py {' '.join(sys.argv[1:])}",
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU",
        "date": datetime.date.today().isoformat(), "scenes": str(scenes), "sources": sources,
        "iterations_text": str(args.iterations) if args.iterations else
        "the config's per-device choice",
    }
    earlier = earlier_cells(args.earlier)
    meta["from"] = args.earlier
    rows = []
    for seed in seeds:
        scene_dir = scenes / f"scene_seed{seed}"
        family = scene_family(seed).name
        sam = earlier.get((seed, "sam_like"))
        if sam is None or (seed in sam_runs and sam.get("run") != str(sam_runs[seed])):
            sam = sam_row(scene_dir, sam_runs.get(seed))
        row = {"family": family, "seed": seed, "sam_like": sam, "sources": {}}
        rows.append(row)
        for name in sources:
            run_dir = work / f"run_{name}_seed{seed}"
            if args.no_training and (seed, name) not in earlier and \
                    not (run_dir / "run.json").is_file():
                continue  # not measured: an empty cell
            cell = earlier.get((seed, name)) or source_row(
                scene_dir, work / f"run_{name}_seed{seed}", SOURCES[name], args.iterations,
                args.reuse)
            row["sources"][name] = cell
            print(f"[{family} {seed}] {name}: {cell['segments']:.0f} segments, per-view "
                  f"{cell['per_view_mIoU']:.1f}, model {cell['mIoU']:.1f} "
                  f"({cell['diff_mIoU']:+.1f}); SAM-like per-view "
                  f"{row['sam_like']['per_view_mIoU']:.1f}, model {row['sam_like']['mIoU']:.1f}",
                  flush=True)
            write_results(out_md, meta, rows)
        write_results(out_md, meta, rows)
    print(render_markdown(meta, rows))
    print(f"wrote {out_md}")


if __name__ == "__main__":
    main()
