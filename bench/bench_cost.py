"""What a change costs a user in time: `cgc train` per scene and the main job, this checkout
against another, side by side in one run (issue 24's cost targets).

Each repeat runs, for both versions in turn (alternating, so both see the same machine load):
`cgc train SCENE` on every scene (each version's own default config, the scene's SAM-like
inconsistent masks), then `cgc eval` of it, and, with --main-job, `python -m cgc_eval.main_job`
(the built-in scene streamed to the real node, objects queried, report written; each checkout's
own ROS package via its scripts/ros_env.sh). Reported: wall-clock seconds (median over repeats),
the time ratio other / this, and the held-out mIoU beside them.

    .venv/bin/python bench/bench_cost.py --other /path/to/old/checkout [--other-label L]
        [--scenes DIR,DIR] [--main-job] [--repeats 1] [--work DIR] [--out FILE.md]

The other checkout needs its C++ extension built in place (`python setup.py build_ext
--inplace`) and, for --main-job, its ROS package (`VENV=$PWD/.venv scripts/build_ros.sh` run
there). Scenes are folders made by `cgc synth` (this checkout's: older versions read them too).
Prints and writes FILE.md and FILE.json (default bench/results/cost.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name, publish  # noqa: E402


def timed(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    """Run argv in cwd, output to log; wall-clock seconds. Raises on failure."""
    started = time.monotonic()
    with open(log, "w") as out:
        result = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with {result.returncode}: see {log}")
    return time.monotonic() - started


def train_once(checkout: Path, scene: Path, run: Path) -> dict:
    """`cgc train` + `cgc eval` of one scene with the checkout's code and default config."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    python = [sys.executable, "-m", "cgc_core.app.cli"]
    seconds = timed(python + ["train", str(scene), "--out", str(run), "--masks",
                              str(scene / "masks_inconsistent"), "--quiet"],
                    checkout, env, run.with_suffix(".train.log"))
    timed(python + ["eval", str(run), "--json", str(run / "eval_bench.json")], checkout, env,
          run.with_suffix(".eval.log"))
    scores = json.loads((run / "eval_bench.json").read_text())
    info = json.loads((run / "run.json").read_text())
    return {"seconds": round(seconds, 1), "train_seconds": info.get("train_seconds"),
            "mIoU": round(scores["mIoU"], 2), "gaussians": info.get("num_gaussians")}


def main_job_once(checkout: Path, out: Path) -> dict:
    """The main job with the checkout's code and ROS package (`cgc_ros.main_job` before it moved
    to `cgc_eval`)."""
    module = "cgc_eval.main_job" if (checkout / "cgc_eval" / "main_job.py").is_file() \
        else "cgc_ros.main_job"
    command = f"source scripts/ros_env.sh && exec {sys.executable} -m {module} {out}"
    env = dict(os.environ, VENV=str(Path(sys.executable).parents[1]))
    env.pop("PYTHONPATH", None)
    seconds = timed(["bash", "-c", command], checkout, env, out.with_suffix(".log"))
    player = json.loads((out / "player.json").read_text())
    return {"seconds": round(seconds, 1), "mIoU": round(player["final"]["mIoU"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--other-label", default="other")
    parser.add_argument("--scenes", default="", help="comma-separated scene folders")
    parser.add_argument("--main-job", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "cost")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cost.md")
    args = parser.parse_args()
    scenes = [Path(s).resolve() for s in args.scenes.split(",") if s]
    for scene in scenes:
        if not (scene / "masks_inconsistent").is_dir():
            parser.error(f"{scene}: not a built-in scene (no masks_inconsistent/)")
    if not scenes and not args.main_job:
        parser.error("nothing to measure: give --scenes and/or --main-job")
    versions = {"this checkout": ROOT, args.other_label: args.other.resolve()}
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, list[dict]]] = {v: {} for v in versions}
    for repeat in range(args.repeats):
        for task in [s.name for s in scenes] + (["main job"] if args.main_job else []):
            for index, (label, checkout) in enumerate(versions.items()):
                side = "this" if index == 0 else "other"
                folder = args.work / f"{side}_{task.replace(' ', '_')}_{repeat}"
                if task == "main job":
                    row = main_job_once(checkout, folder)
                else:
                    row = train_once(checkout, next(s for s in scenes if s.name == task), folder)
                results[label].setdefault(task, []).append(row)
                print(f"{task} | {label} | {row}", flush=True)

    this, other = versions
    tasks = list(results[this])
    lines = [
        "# What a change costs in time: this checkout against another", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, load average at end "
        f"{os.getloadavg()[0]:.1f}",
        f"- command: `.venv/bin/python bench/bench_cost.py --other {args.other} --other-label "
        f"'{other}' --scenes {args.scenes} {'--main-job ' if args.main_job else ''}"
        f"--repeats {args.repeats}`",
        f"- each version's own default config; median of {args.repeats}; alternating versions",
        "", f"| task | {this}: s | {other}: s | time ratio (this / {other}) | "
        f"{this}: mIoU | {other}: mIoU |", "|---|---|---|---|---|---|"]
    summary = {}
    for task in tasks:
        mine = statistics.median(r["seconds"] for r in results[this][task])
        theirs = statistics.median(r["seconds"] for r in results[other][task])
        miou_mine = statistics.median(r["mIoU"] for r in results[this][task])
        miou_theirs = statistics.median(r["mIoU"] for r in results[other][task])
        summary[task] = {"this": mine, "other": theirs, "ratio": round(mine / theirs, 3)}
        lines.append(f"| {task} | {mine:.1f} | {theirs:.1f} | {mine / theirs:.2f}x | "
                     f"{miou_mine:.1f} | {miou_theirs:.1f} |")
    lines += ["", "Train tasks: `cgc train` wall time, set-up and segment loading included; "
              "mIoU from `cgc eval`. Main job: `python -m cgc_eval.main_job OUT` from start to "
              "report; mIoU through the node's services.", ""]
    publish(args.out, "\n".join(lines),
            {"platform": platform.platform(), "summary": summary, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
