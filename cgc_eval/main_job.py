"""The main job (scripts/run.sh): the real cgc node learning from a stream, then a report.

    python -m cgc_eval.main_job OUT [--scene DIR | --bag DIR --image-topic T ...] [--rate 2]

1. Without --scene or --bag, makes the built-in scene (`cgc synth`, SAM-like inconsistent masks).
2. Starts the node: `python -m cgc_ros.node` (colcon's `cgc_node` runs the same function) with
   the params file `ros2 launch` uses (config/cgc.yaml), its log into OUT/node.log.
3. Starts the player (cgc_eval.player) in a second process: it streams the frames as ROS 2
   messages at --rate, shows progress, queries every object, saves the map into OUT/map.
4. Stops the node (SIGINT, as Ctrl-C) and writes OUT/report.html (cgc_eval.report).

This module starts processes and imports no rclpy: both ROS processes get this environment
(scripts/ros_env.sh), a random ROS_DOMAIN_ID unless one is set, and localhost-only discovery.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from cgc_core.io import write_json

ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = ROOT / "config" / "cgc.yaml"
"""The parameters file launch/cgc.launch.py passes by default."""
NODE_LOG = "node.log"


def ros_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("RCUTILS_CONSOLE_OUTPUT_FORMAT", "[{severity}] [{time}] {message}")
    return env


def start_node(out: Path, params: list[str], env: dict[str, str], params_file: Path,
               timeout: float = 120.0) -> subprocess.Popen:
    """The node, logging into OUT/node.log; returns once it logged that it is ready."""
    argv = [sys.executable, "-m", "cgc_ros.node", "--ros-args", "--params-file", str(params_file)]
    for param in params:
        argv += ["-p", param]
    log = open(out / NODE_LOG, "w")  # noqa: SIM115 - the node writes it until it stops
    node = subprocess.Popen(argv, cwd=ROOT, env=dict(env, ROS_LOG_DIR=str(out / "ros_log")),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "cgc ready" in (out / NODE_LOG).read_text(errors="replace"):
            return node
        if node.poll() is not None:
            break
        time.sleep(0.2)
    stop(node)
    raise RuntimeError(f"the node did not start (see {out / NODE_LOG}):\n"
                       f"{(out / NODE_LOG).read_text(errors='replace')[-2000:]}")


def stop(process: subprocess.Popen, grace: float = 90.0) -> int | None:
    """SIGINT (Ctrl-C: rclpy shuts down cleanly), SIGKILL after `grace` seconds. The node's
    shutdown waits for its busy threads, each for at most 10 s (a clustering of a larger map on
    2 loaded cores runs that long): 20 s was once too short in CI, and the node was killed."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


def make_builtin_scene(out: Path, args) -> tuple[Path, Path]:
    from cgc_core.data.synth import make_synthetic_scene

    print(f"[1/4] built-in scene (seed {args.seed}, {args.width}x{args.height}, "
          f"{args.frames} + {args.test_frames} views) -> {out / 'scene'}", flush=True)
    scene = make_synthetic_scene(out / "scene", seed=args.seed, width=args.width,
                                 height=args.height, n_train=args.frames,
                                 n_test=args.test_frames)
    return scene, scene / "masks_inconsistent"


def run(args) -> int:
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    timings = {}
    masks = args.masks
    if args.bag is None and args.scene is None:
        scene, masks = make_builtin_scene(out, args)
        timings["scene"] = round(time.monotonic() - began, 2)
    else:
        scene = args.scene
    external = masks is not None or (args.bag is not None and args.segments_topic is not None)
    env = ros_environment()
    # cluster_period: the launch default (5 s) suits a robot's GPU; on 2 CPU cores a clustering
    # of ~80k Gaussians took a median 5.3 s, so it ran back to back, held one of the two cores
    # and re-assigned object ids (and so labels) every few seconds (bench/results/main_job.md).
    params = ["pose_source:=topic", f"external_segments:={str(external).lower()}",
              f"map_directory:={out}", f"train.iterations:={args.iterations}",
              f"cluster_period:={args.cluster_period}", *args.param]
    print(f"[2/4] starting the cgc node (log: {out / NODE_LOG})", flush=True)
    node = start_node(out, params, env, args.params_file)
    timings["node_start"] = round(time.monotonic() - began - sum(timings.values()), 2)
    player_argv = [sys.executable, "-m", "cgc_eval.player", str(out), "--rate", str(args.rate),
                   "--iterations", str(args.iterations), "--eval-every", str(args.eval_every)]
    if args.bag is not None:
        player_argv += ["--bag", str(args.bag), "--image-topic", args.image_topic,
                        "--camera-info-topic", args.camera_info_topic,
                        "--pose-topic", args.pose_topic]
        for flag, topic in (("--depth-topic", args.depth_topic),
                            ("--segments-topic", args.segments_topic)):
            if topic:
                player_argv += [flag, topic]
    else:
        player_argv += ["--scene", str(scene)]
        if masks is not None:
            player_argv += ["--masks", str(masks)]
    print(f"[3/4] streaming at {args.rate:g} frames/s and learning to {args.iterations} "
          "iterations (the player is a separate ROS 2 process)", flush=True)
    started = time.monotonic()
    try:
        player = subprocess.run(player_argv, cwd=ROOT, env=env, check=False,
                                timeout=args.timeout)
    finally:
        node_exit = stop(node)
    timings["player"] = round(time.monotonic() - started, 2)
    if player.returncode != 0:
        print(f"the player failed (exit code {player.returncode}); node log: "
              f"{out / NODE_LOG}", file=sys.stderr)
        return 1
    timings["total_before_report"] = round(time.monotonic() - began, 2)

    def write_run_record() -> None:  # before the report (which reads it) and with its time
        write_json(out / "run.json", {
            "command": sys.argv, "scene": None if scene is None else str(Path(scene).resolve()),
            "bag": None if args.bag is None else str(args.bag.resolve()),
            "params_file": str(args.params_file), "node_params": params,
            "node_exit": node_exit, "timings": timings})

    write_run_record()
    print("[4/4] writing the report", flush=True)
    from cgc_eval.report import write_report

    report = write_report(out)
    timings["total"] = round(time.monotonic() - began, 2)
    write_run_record()
    print(f"done in {timings['total']:.0f} s: {report}", flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="output folder (report.html, map, node log, ...)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--scene", type=Path, help="a transforms.json or COLMAP folder")
    source.add_argument("--bag", type=Path, help="a rosbag2 folder (read with rosbags)")
    p.add_argument("--masks", type=Path, help="segment PNGs per frame, sent on `segments` "
                   "(default for the built-in scene: its SAM-like masks; none: the node's own "
                   "mask source)")
    p.add_argument("--image-topic", default="/camera/image")
    p.add_argument("--camera-info-topic", default="/camera/camera_info")
    p.add_argument("--pose-topic", default="/camera/pose",
                   help="geometry_msgs/PoseStamped of the optical frame in the map frame")
    p.add_argument("--depth-topic")
    p.add_argument("--segments-topic")
    p.add_argument("--rate", type=float, default=2.0, help="frames per second")
    p.add_argument("--iterations", type=int, default=2000,
                   help="train until the node has run this many iterations")
    p.add_argument("--eval-every", type=float, default=60.0,
                   help="seconds between held-out measurements (0: only at the end)")
    p.add_argument("--cluster-period", type=float, default=30.0,
                   help="seconds between the node's background clusterings into objects")
    p.add_argument("--seed", type=int, default=0, help="built-in scene seed")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--frames", type=int, default=40, help="built-in scene training views")
    p.add_argument("--test-frames", type=int, default=8, help="built-in scene held-out views")
    p.add_argument("--params-file", type=Path, default=PARAMS_FILE)
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="a further node parameter (repeatable)")
    p.add_argument("--timeout", type=float, default=3600.0)
    return p


def main(argv=None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
