"""A prompt's mask kept to the pieces near the prompted object (`query.mask_reach`), on trained
maps, query time only.

For each run given: held-out mIoU / mBIoU with Eq. 6 alone (reach 0) and with each reach, every
other query and clustering key at today's defaults (a saved run's own values are replaced), and
the objects whose score moves by more than a point. The maps are scored as they are; nothing is
trained.

    .venv/bin/python bench/bench_mask_reach.py RUN [RUN ...] [--reach 0,0.05,0.1,0.2]
        [--label mask_reach]

Prints a line per run as it goes, then writes bench/results/<label>.md and .json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name, publish  # noqa: E402

from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402
from cgc_core.config import ObjectsConfig, QueryConfig  # noqa: E402


def bench_run(run_dir: Path, reaches: list[float]) -> dict:
    run = load_run(run_dir)
    scores, objects, seconds = {}, {}, {}
    for reach in reaches:
        query = dataclasses.replace(QueryConfig(), mask_reach=reach)
        started = time.perf_counter()
        result = evaluate_run(run.splats, run.scene, run.config.render, query.threshold, query,
                              ObjectsConfig())
        seconds[reach] = time.perf_counter() - started
        scores[reach] = (result["mIoU"], result["mBIoU"])
        objects[reach] = {name: o["mIoU"] for name, o in result["per_object"].items()}
    base = objects[reaches[0]]
    moved = {reach: {name: (base[name], score) for name, score in per.items()
                     if abs(score - base[name]) > 1.0}
             for reach, per in objects.items() if reach != reaches[0]}
    return {"run": str(run_dir), "scores": scores, "moved": moved, "seconds": seconds}


def write_results(rows: list[dict], reaches: list[float], label: str) -> None:
    out = ROOT / "bench" / "results" / f"{label}.md"
    lines = [
        "# A prompt's mask kept to the pieces near the prompted object (`query.mask_reach`)", "",
        f"- command: `py bench/bench_mask_reach.py {' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_name()}, 2 cores, no GPU", f"- date: {datetime.date.today()}",
        "- query time only, on saved maps; every other query and clustering key at today's "
        "defaults", "",
        "Held-out mIoU / mBIoU per reach (metres; 0: Eq. 6 alone), and the seconds one "
        "evaluation took:", "",
        "| run | " + " | ".join(f"reach {r:g}" for r in reaches) + " |",
        "|---|" + "---|" * len(reaches)]
    for row in rows:
        lines.append(f"| {Path(row['run']).parent.name}/{Path(row['run']).name} | " + " | ".join(
            f"{row['scores'][r][0]:.1f} / {row['scores'][r][1]:.1f} ({row['seconds'][r]:.1f} s)"
            for r in reaches) + " |")
    means = [sum(row["scores"][r][0] for row in rows) / len(rows) for r in reaches]
    lines += ["| **mean mIoU** | " + " | ".join(f"**{m:.2f}**" for m in means) + " |", "",
              "Objects whose mIoU moved by more than a point (reach 0 → reach):", ""]
    for row in rows:
        for reach, moved in row["moved"].items():
            if moved:
                lines.append(f"- {Path(row['run']).name}, reach {reach:g}: " + ", ".join(
                    f"{name} {a:.1f} → {b:.1f}" for name, (a, b) in moved.items()))
    publish(out, "\n".join(lines) + "\n", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--reach", default="0,0.05,0.1,0.2",
                        help="comma-separated reaches in metres; the first is the baseline")
    parser.add_argument("--label", default="mask_reach")
    args = parser.parse_args()
    reaches = [float(r) for r in args.reach.split(",")]
    rows = []
    for run in args.runs:
        row = bench_run(Path(run), reaches)
        print(Path(run).name, " | ".join(f"{r:g}: {row['scores'][r][0]:.1f}" for r in reaches),
              flush=True)
        rows.append(row)
    write_results(rows, reaches, args.label)


if __name__ == "__main__":
    main()
