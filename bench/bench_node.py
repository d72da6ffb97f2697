"""The ROS 2 node's latency while it trains: image -> ~/segmentation, and segment_object by pixel.

Starts `python -m cgc_ros.node` and tests/ros/drive_node.py (two processes, real ROS 2, a random
domain) on a built-in scene at its native 320x240: the driver streams the training views at
--rate frames a second (Image + CameraInfo + 16UC1 depth + PoseStamped + exact segments), waits
for --steps iterations, then prompts every object by pixel on a given pose + CameraInfo. The
node grows up to --grow Gaussians per keyframe (`live.grow_points`), so that the model reaches
the size the issue's targets name (100k) within a short stream.

    .venv/bin/python bench/bench_node.py [--seed 0] [--frames 24] [--rate 2] [--grow 12000]

Needs the built ROS package (scripts/setup.sh). Prints and writes bench/results/node.md and
node.json. The figures come from the node's own ~/status (latencies of the last 100 frames) and
the driver's wall clock per service call.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.data.synth import make_synthetic_scene  # noqa: E402


def ros_environment() -> dict[str, str]:
    done = subprocess.run(["bash", "-c", "source scripts/ros_env.sh >&2 && env -0"], cwd=ROOT,
                          capture_output=True, check=True)
    env = dict(i.split("=", 1) for i in done.stdout.decode().split("\0") if "=" in i)
    env.update(ROS_DOMAIN_ID=str(random.SystemRandom().randint(1, 101)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--grow", type=int, default=12000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="another node parameter, e.g. model.max_gaussians:=100000")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "node")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="copy the scene (DIR/scene) and the node's saved map (DIR/map, a "
                             "run folder for `cgc objects`) here, to study them offline")
    args = parser.parse_args()
    extra = [arg for param in args.param for arg in ("-p", param)]
    env = ros_environment()
    python = str(Path(env["VENV"]) / "bin" / "python")
    with tempfile.TemporaryDirectory() as work:
        scene = make_synthetic_scene(Path(work) / "scene", seed=args.seed,
                                     n_train=args.frames, n_test=2)
        node = subprocess.Popen(
            [python, "-m", "cgc_ros.node", "--ros-args", "-r", "__ns:=/bench",
             "-p", "pose_source:=topic", "-p", "external_segments:=true",
             "-p", f"map_directory:={work}/maps", "-p", f"live.grow_points:={args.grow}", *extra],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        try:
            time.sleep(5)
            done = subprocess.run(
                [python, str(ROOT / "tests" / "ros" / "drive_node.py"), "/bench", str(scene),
                 "stream", "--frames", str(args.frames), "--rate", str(args.rate), "--steps",
                 str(args.steps), "--train-timeout", "600"],
                cwd=ROOT / "tests" / "ros", env=env, capture_output=True, text=True,
                timeout=1200)
        finally:
            os.killpg(node.pid, 2)
            node.wait(timeout=30)
        if args.keep is not None:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(scene, args.keep / "scene")
            if (Path(work) / "maps" / "test_map").is_dir():
                shutil.copytree(Path(work) / "maps" / "test_map", args.keep / "map")
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    status = result["final_status"]
    prompts = result["prompts"]
    seconds = [p["seconds"] for p in prompts]
    table = {
        "date": datetime.date.today().isoformat(), "cpu": cpu_name(), "seed": args.seed,
        "frames": args.frames, "rate": args.rate, "grow_points": args.grow,
        "params": args.param,
        "gaussians": status["session"]["num_gaussians"], "steps": status["session"]["step"],
        "frames_taken": status["frames_taken"], "frames_dropped": status["frames_dropped"],
        "queue_high_water": status["queue_high_water"], "queue_bound": status["queue_bound"],
        "latency_ms": status["latency_ms"],
        "segment_object_s": {"median": float(np.median(seconds)), "max": max(seconds)},
        "segment_object_iou": {p["object"]: round(p.get("iou", 0.0), 3) for p in prompts},
        "probe_iou": result["probe_iou"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(table, indent=2) + "\n")
    seg, wait = status["latency_ms"]["segmentation"], status["latency_ms"]["wait"]
    lines = [
        f"# cgc node latency ({table['date']}, {table['cpu']})", "",
        f"`bench/bench_node.py --seed {args.seed} --frames {args.frames} --rate {args.rate} "
        f"--grow {args.grow} --steps {args.steps}"
        + "".join(f" --param {param}" for param in args.param)
        + "`: built-in scene at 320x240, the node training in its own thread throughout.", "",
        "| figure | value |", "|---|---|",
        f"| Gaussians at the end | {table['gaussians']} |",
        f"| frames taken / dropped (queue bound {table['queue_bound']}, high water "
        f"{table['queue_high_water']}) | {table['frames_taken']} / {table['frames_dropped']} |",
        f"| image -> ~/segmentation, median / max of the last frames (ms) | "
        f"{seg['median']} / {seg['max']} |",
        f"| of which waiting in the queue, median / max (ms) | {wait['median']} / "
        f"{wait['max']} |",
        f"| segment_object by pixel, client to response, median / max (s) | "
        f"{table['segment_object_s']['median']:.2f} / {table['segment_object_s']['max']:.2f} |",
        f"| segment_object IoU per object | {table['segment_object_iou']} |",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
