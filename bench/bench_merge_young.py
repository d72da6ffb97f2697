"""Part merging (`objects.merge_parts`) on young live maps: does it join neighbours?

The parts test reads geometry, and a live map's geometry is blobby before it has trained. This
bench streams built-in scenes into a live session (`cgc stream`, the node's engine) and stops
early, then clusters each young map with part merging off and on, side by side:

- `young`: the default config, SAM-like inconsistent masks, --iterations (default 190, before
  the live schedule's first opacity reset at 200) in all;
- `recovering`: the same at --recovering-iterations (default 330): 130 iterations after the
  first opacity reset (a stream makes no reset in its last 100 iterations), when much of the
  model is not yet opaque again, as the node's is for a while after each reset;
- `stress`: growth forced on every pixel up to 100k Gaussians (the node bench's stress map:
  `live.grow_points` 40000, `live.grow_alpha` 1.01), exact segments, --stress-iterations
  (default 380: long after the first reset, before the second).

Per map: the ground-truth objects that come out split, merged with another or missing
(bench_objects' matching), and mIoU / mBIoU of pixel prompts on the held-out views with the
whole-object prompts that part merging feeds (`query.whole_objects`).

    .venv/bin/python bench/bench_merge_young.py [--seeds 0,100,302] [--work DIR]

Prints and writes bench/results/merge_young.md and .json. Maps are kept under --work and reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_objects import match_clusters  # noqa: E402
from bench_train import cpu_name  # noqa: E402
from objects_truth import gaussian_instances, object_names  # noqa: E402

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402
from cgc_core.app.stream import stream_scene  # noqa: E402
from cgc_core.config import apply_overrides  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene  # noqa: E402
from cgc_core.objects import cluster_objects  # noqa: E402

STRESS = {"live": {"grow_points": 40000, "grow_alpha": 1.01}, "model": {"max_gaussians": 100000}}


def young_map(work: Path, seed: int, family: str, iterations: int) -> Path:
    """The streamed run folder of one (scene, family), made once."""
    scene_dir = work / f"scene_seed{seed}"
    if not (scene_dir / "transforms.json").is_file():
        make_synthetic_scene(scene_dir, seed=seed)
    run_dir = work / f"{family}{iterations}_seed{seed}"
    if (run_dir / "run.json").is_file():
        return run_dir
    stress = family == "stress"
    config = apply_overrides(load_config(), STRESS if stress else {})
    masks = scene_dir / ("instances" if stress else "masks_inconsistent")
    stream_scene(scene_dir, run_dir, config=config, masks_dir=masks, rate=2.0,
                 iterations=iterations, eval_every=0, progress=False, log=lambda _: None)
    return run_dir


def compare(run_dir: Path) -> dict:
    """Matching and prompt quality of one map with part merging off and on."""
    run = load_run(run_dir, device="cpu")
    scene, config = run.scene, run.config
    splats = {k: v.detach() for k, v in run.splats.items()}
    names = object_names(scene.root)
    truth = gaussian_instances(splats["means"].numpy().astype(np.float64), scene,
                               scene.test_names + scene.train_names[::4])
    out = {"gaussians": len(splats["means"])}
    for merge in (False, True):
        objects = dataclasses.replace(config.objects, merge_parts=merge)
        query = dataclasses.replace(config.query, whole_objects=merge)
        table = cluster_objects(splats, objects)
        rows = match_clusters(truth, table.gaussian_object, names)
        quality = evaluate_run(splats, scene, config.render, query.threshold, query, objects)
        out["on" if merge else "off"] = {
            "split": sorted(r["object"] for r in rows if r["split"]),
            "merged": sorted(f"{r['object']}+{'+'.join(r['merged_with'])}"
                             for r in rows if r["merged_with"]),
            "missing": sorted(r["object"] for r in rows if r["missing"]),
            "objects_from_parts": sum(len(o.part_features) > 1 for o in table.objects
                                      if not o.background),
            "mIoU": round(quality["mIoU"], 1), "mBIoU": round(quality["mBIoU"], 1),
        }
    return out


def render_markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# Part merging on young live maps ({meta['date']}, {meta['cpu']})", "",
             f"`{meta['command']}`", "",
             "Each map streamed at 2 frames/s into a live session and stopped early (see the "
             "script's docstring). Split / merged / missing: ground-truth objects by their "
             "Gaussians (bench_objects' matching, 20 % cut-off); mIoU / mBIoU of pixel prompts "
             "on the held-out views.", "",
             "| map | seed | iterations | Gaussians | off: split / merged / missing | "
             "on: split / merged / missing | objects from parts (on) | mIoU off / on | "
             "mBIoU off / on |",
             "|---|---|---|---|---|---|---|---|---|"]

    def cell(side: dict) -> str:
        return " / ".join(", ".join(side[k]) or "-" for k in ("split", "merged", "missing"))

    for r in rows:
        off, on = r["off"], r["on"]
        lines.append(f"| {r['family']} | {r['seed']} | {r['iterations']} | {r['gaussians']} | "
                     f"{cell(off)} | {cell(on)} | {on['objects_from_parts']} | "
                     f"{off['mIoU']} / {on['mIoU']} | {off['mBIoU']} / {on['mBIoU']} |")
    for key in ("mIoU", "mBIoU"):
        off = np.mean([r["off"][key] for r in rows])
        on = np.mean([r["on"][key] for r in rows])
        lines.append(f"\nMean {key}: off {off:.1f}, on {on:.1f}.")
    joined = sum(len(r["on"]["merged"]) - len(r["off"]["merged"]) for r in rows)
    lines.append(f"\nObjects merged with a neighbour by part merging (on minus off): {joined}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,100,302")
    parser.add_argument("--iterations", type=int, default=190)
    parser.add_argument("--recovering-iterations", type=int, default=330)
    parser.add_argument("--stress-iterations", type=int, default=380)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cgc_merge_young"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "merge_young")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        for family, iterations in (("young", args.iterations),
                                   ("recovering", args.recovering_iterations),
                                   ("stress", args.stress_iterations)):
            run_dir = young_map(args.work, seed, family, iterations)
            row = {"family": family, "seed": seed, "iterations": iterations,
                   **compare(run_dir)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    meta = {"date": datetime.date.today().isoformat(), "cpu": cpu_name(),
            "command": "bench/bench_merge_young.py " + " ".join(sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    text = render_markdown(meta, rows)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
