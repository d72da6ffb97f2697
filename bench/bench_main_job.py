"""The main job's time and quality, against `cgc stream` on the same scene.

    source scripts/ros_env.sh
    .venv/bin/python bench/bench_main_job.py [--run OUT] [--rate 2] [--iterations 2000]

1. Runs the main job (`python -m cgc_eval.main_job OUT`, what scripts/run.sh runs after set-up:
   the built-in scene streamed to the real node, objects queried, report written) and times it;
   with `--run OUT` an existing main-job folder is measured instead.
2. Runs `cgc stream` on that folder's scene with the same masks (SAM-like, inconsistent), the
   same frame rate, the same iterations and the node's params file as config.
3. Scores both on the held-out views: the node's map with `cgc eval`'s protocol (a prompt's
   feature, masks in every held-out view), plus what the player measured through the node's
   services; the stream's run with `cgc eval`'s protocol.

Writes bench/results/main_job.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402
from cgc_core.app.stream import stream_scene  # noqa: E402
from cgc_core.data.load import load_scene  # noqa: E402
from cgc_eval.report import SavedMap, machine  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing main-job folder to measure")
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--stream-run", type=Path,
                        help="reuse this `cgc stream` run of the same scene instead of streaming "
                             "again (written by an earlier bench run into its work folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "main_job")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_main_job_"))
    run_dir = args.run
    if run_dir is None:
        run_dir = work / "run"
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "cgc_eval.main_job", str(run_dir), "--rate",
                        str(args.rate), "--iterations", str(args.iterations)], cwd=ROOT,
                       check=True)
        print(f"main job: {time.monotonic() - started:.0f} s", flush=True)
    run = json.loads((run_dir / "run.json").read_text())
    player = json.loads((run_dir / "player.json").read_text())
    scene = load_scene(Path(run["scene"]))
    config = load_config(Path(run["params_file"]))

    saved = SavedMap(run_dir / "map")
    node_map = evaluate_run(saved.splats, scene, config.render, config.query.threshold,
                            config.query)
    if args.stream_run is None:
        started = time.monotonic()
        streamed = stream_scene(scene.root, work / "stream", config=config,
                                masks_dir=scene.root / "masks_inconsistent",
                                rate=player["rate"], iterations=player["iterations"],
                                eval_every=0, progress=False)
        stream_seconds = time.monotonic() - started
        print(f"cgc stream run: {work / 'stream'}", flush=True)
    else:
        streamed = load_run(args.stream_run, device="cpu")
        stream_seconds = json.loads((args.stream_run / "run.json").read_text()).get(
            "train_seconds")
    stream = evaluate_run(streamed.splats, scene, config.render, config.query.threshold,
                          config.query)
    trained = player["status_trained"]  # when learning ended, before frames were sent again
    session = trained["session"]
    result = {
        "date": datetime.date.today().isoformat(), "machine": machine(),
        "scene": run["scene"], "rate": player["rate"], "iterations": player["iterations"],
        "main_job_seconds": run["timings"].get("total"), "timings": run["timings"],
        "player_timings": player["timings"], "node_steps": session["step"],
        "gaussians": session["num_gaussians"], "keyframes": session["keyframes"],
        "frames_taken": trained["frames_taken"], "frames_dropped": trained["frames_dropped"],
        "frames_refused": trained.get("frames_rejected", 0),
        "node_services": {k: round(player["final"][k], 2) for k in ("mIoU", "mBIoU")},
        "node_map": {k: round(node_map[k], 2) for k in ("mIoU", "mBIoU")},
        "stream": {k: round(stream[k], 2) for k in ("mIoU", "mBIoU")},
        "stream_seconds": round(stream_seconds, 1),
        "quality_over_time": player["quality"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        f"# The main job through the node vs `cgc stream` ({result['date']})", "",
        f"{m['cpu']}, {m['cores']} cores (shared with other work: upper bounds on time). "
        f"`bench/bench_main_job.py`: built-in scene ({Path(run['scene']).name}, seed 0, "
        f"320x240, 40 + 8 views, SAM-like inconsistent masks), {result['rate']:g} frames/s, "
        f"{result['iterations']} iterations.", "",
        "| figure | value |", "|---|---|",
        f"| main job, scene to report (s) | {result['main_job_seconds']} |",
        f"| of which streaming and learning to {result['iterations']} iterations (s) | "
        f"{player['timings'].get('learn')} |",
        f"| frames taken / dropped / refused by the node (of 40) | {result['frames_taken']} / "
        f"{result['frames_dropped']} / {result['frames_refused']} |",
        f"| node at the end: iterations, keyframes, Gaussians | {result['node_steps']}, "
        f"{result['keyframes']}, {result['gaussians']} |",
        f"| held-out mIoU / mBIoU through the node's services | "
        f"{result['node_services']['mIoU']} / {result['node_services']['mBIoU']} |",
        f"| held-out mIoU / mBIoU of the node's saved map (`cgc eval` protocol) | "
        f"{result['node_map']['mIoU']} / {result['node_map']['mBIoU']} |",
        f"| held-out mIoU / mBIoU of `cgc stream` (same scene, masks, rate, iterations) | "
        f"{result['stream']['mIoU']} / {result['stream']['mBIoU']} |",
        f"| difference, node map - cgc stream (mIoU points) | "
        f"{result['node_map']['mIoU'] - result['stream']['mIoU']:+.2f} |",
        f"| `cgc stream` time (s) | {result['stream_seconds']} |", "",
        "Held-out mIoU through the node while it learned (seconds since the node came up):", "",
        "| time (s) | iteration | keyframes | Gaussians | views | mIoU | mBIoU |",
        "|---|---|---|---|---|---|---|",
        *(f"| {q['time']} | {q['iteration']} | {q['keyframes']} | {q['gaussians']} | "
          f"{q.get('views', '')} | {q['mIoU']} | {q['mBIoU']} |" for q in player["quality"]),
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
