"""The node fed as ordinary drivers feed it (issue 25): frames taken per publication order, and
held-out quality by pixel prompt through `~/segment_object` against the same map queried offline
and against `cgc stream`.

    source scripts/ros_env.sh
    .venv/bin/python bench/bench_driver.py frames [--runs 5] [--orders image_last,...]
    .venv/bin/python bench/bench_driver.py quality [--seeds 0,100,200] [--iterations 2000]

`frames`: per run, a fresh node (pose_source topic, external segments) and a fresh
tests/ros/driver_client.py process (a separate ROS 2 process) streaming the built-in scene's 40
training views at 320x240, 2 frames/s, five messages back to back per frame on sensor-data QoS,
in the given order; the node trains throughout (it starts on the first keyframe), so every frame
after the first arrives under training load. Counts come from the node's ~/status.

`quality`: per seed, the client streams the scene with its SAM-like masks, waits for
--iterations, prompts every object in every held-out view by pixel at that view's pose and
saves the map; the saved map is then queried offline with the very same prompts
(cgc_core.service.query, what `cgc eval` uses), and `cgc stream` runs on the same scene, masks,
rate and iterations (held-out mIoU by `cgc eval`'s protocol, and by the same per-view prompts).

Writes bench/results/driver_frames.{md,json} or driver_quality.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "ros"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.data.synth import make_synthetic_scene  # noqa: E402

CLIENT = ROOT / "tests" / "ros" / "driver_client.py"


def ros_environment() -> dict[str, str]:
    done = subprocess.run(["bash", "-c", "source scripts/ros_env.sh >&2 && env -0"], cwd=ROOT,
                          capture_output=True, check=True)
    env = dict(i.split("=", 1) for i in done.stdout.decode().split("\0") if "=" in i)
    env.update(ROS_DOMAIN_ID=str(random.SystemRandom().randint(1, 101)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    return env


NODE_ENV: dict[str, str] = {}
"""Environment only the node gets (--node-env), to try transport settings on one side."""


def run_node_and_client(env, work: Path, scene: Path, client_args: list[str],
                        params: list[str], timeout: float) -> tuple[dict, str]:
    """Start the node, run the client to its end, stop the node: (client JSON, node log)."""
    python = str(Path(env["VENV"]) / "bin" / "python")
    log_path = work / f"node_{time.monotonic_ns()}.log"
    node_env = dict(env, RCUTILS_CONSOLE_OUTPUT_FORMAT="{message}", **NODE_ENV)
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            [python, "-m", "cgc_ros.node", "--ros-args", "-r", "__ns:=/bench",
             "--params-file", str(ROOT / "config" / "cgc.yaml"),
             "-p", "pose_source:=topic", "-p", "external_segments:=true",
             "-p", f"map_directory:={work}/maps", *[a for p in params for a in ("-p", p)]],
            cwd=ROOT, env=node_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            done = subprocess.run([python, str(CLIENT), "/bench", str(scene), *client_args],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        finally:
            os.killpg(node.pid, 2)
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, 9)
    text = log_path.read_text()
    if done.returncode != 0:
        raise RuntimeError(f"client failed:\n{done.stderr[-3000:]}\nnode log:\n{text[-3000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line), text


def frames(args, env) -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scene = make_synthetic_scene(work / "scene", seed=args.seed, n_train=40, n_test=2)
        masks = scene / "masks_inconsistent"
        for order in args.orders.split(","):
            for run in range(args.runs):
                out, log = run_node_and_client(
                    env, work, scene, ["--order", order, "--frames", "40", "--rate",
                                       str(args.rate), "--masks", str(masks)],
                    args.param, timeout=300)
                s = out["status"]
                rejected = {k.removeprefix("rejected."): v for k, v in s.items()
                            if k.startswith("rejected.")}
                row = {"order": order, "run": run + 1, "sent": out["frames_sent"],
                       "accepted": s.get("frames_accepted", 0),
                       "dropped": s.get("frames_dropped", 0), "rejected": rejected,
                       "camera_info_reused": s.get("camera_info_reused", 0),
                       "received": {k.removeprefix("received."): v for k, v in s.items()
                                    if k.startswith("received.")},
                       "missing": s.get("frames_missing", 0),
                       "iterations": s.get("session", {}).get("step", 0),
                       "latency_ms": s.get("latency_ms", {}),
                       "refusal_lines": [x for x in log.splitlines() if "refused" in x][:5]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    today, cpu = datetime.date.today().isoformat(), cpu_name()
    command = (f"bench/bench_driver.py frames --runs {args.runs} --orders {args.orders} "
               f"--seed {args.seed}" + "".join(f" --param {p}" for p in args.param)
               + "".join(f" --node-env {e}" for e in args.node_env))
    lines = [f"# Frames taken with a driver-like client ({today})", "",
             f"Command: `{command}`  ", f"Machine: {cpu}, 2 cores shared with other work.", "",
             "40 frames of 320x240 at 2 frames/s; five messages per frame back to back on "
             "sensor-data QoS; the node training throughout.", "",
             "| order | run | accepted / sent | dropped | refused (reason: count) | "
             "camera_info reused | iterations | image -> segmentation median (ms) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        refused = ", ".join(f"{k}: {v}" for k, v in r["rejected"].items()) or "none"
        seg = r["latency_ms"].get("segmentation", {}).get("median", "")
        lines.append(f"| {r['order']} | {r['run']} | {r['accepted']} / {r['sent']} | "
                     f"{r['dropped']} | {refused} | {r['camera_info_reused']} | "
                     f"{r['iterations']} | {seg} |")
    write(args.out or ROOT / "bench" / "results" / "driver_frames", lines, rows)
    return 0


def offline_scores(map_dir: Path, scene_dir: Path) -> dict:
    """The node's saved map queried offline (`held_out_scores`)."""
    from cgc_core.app.config_file import load_config
    from cgc_core.service.maps import checkpoint_of
    from cgc_core.train.live import LiveSession

    config = load_config(ROOT / "config" / "cgc.yaml")
    session = LiveSession.load(checkpoint_of(map_dir), config=config, device="cpu")
    return held_out_scores(session.snapshot().splats, config, scene_dir)


def quality(args, env) -> int:
    from cgc_core.app.config_file import load_config
    from cgc_core.app.run_folder import load_run
    from cgc_core.app.stream import stream_scene

    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            scene = make_synthetic_scene(work / "scene", seed=seed, n_train=40, n_test=8)
            masks = scene / "masks_inconsistent"
            started = time.monotonic()
            out, _ = run_node_and_client(
                env, work, scene, ["--order", args.order, "--frames", "40", "--rate",
                                   str(args.rate), "--masks", str(masks), "--steps",
                                   str(args.iterations), "--heldout", "--save", "driver"],
                [f"train.iterations:={args.iterations}", "cluster_period:=30.0", *args.param],
                timeout=3000)
            node_seconds = time.monotonic() - started
            offline = offline_scores(work / "maps" / "driver", scene)
            config = load_config(ROOT / "config" / "cgc.yaml")
            started = time.monotonic()
            stream_scene(scene, work / "stream", config=config, masks_dir=masks,
                         rate=args.rate, iterations=args.iterations, eval_every=0,
                         progress=False, log=lambda *_: None)
            stream_seconds = time.monotonic() - started
            run = load_run(work / "stream")
            stream = held_out_scores(run.splats, run.config, scene)
            row = {"seed": seed, "order": args.order,
                   "accepted": out["status"].get("frames_accepted", 0),
                   "sent": out["frames_sent"],
                   "node_service": out["heldout"]["mIoU"],
                   "node_service_mBIoU": out["heldout"]["mBIoU"],
                   "node_map_offline_same_prompts": offline["per_view_prompts"],
                   "node_map_eval_protocol": offline["eval_protocol"],
                   "stream_same_prompts": stream["per_view_prompts"],
                   "stream_eval_protocol": stream["eval_protocol"],
                   "service_seconds_median": out["heldout"]["service_seconds_median"],
                   "failures": out["heldout"]["failures"],
                   "node_iterations": out["status"].get("session", {}).get("step", 0),
                   "node_seconds": round(node_seconds, 1),
                   "stream_seconds": round(stream_seconds, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            write_quality(args, rows)  # after each seed, so that a timeout keeps what was measured
    return 0


def write_quality(args, rows: list[dict]) -> None:
    today, cpu = datetime.date.today().isoformat(), cpu_name()
    command = (f"bench/bench_driver.py quality --seeds {args.seeds} --iterations "
               f"{args.iterations} --order {args.order}"
               + "".join(f" --param {p}" for p in args.param))
    lines = [f"# Held-out quality with a driver-like client ({today})", "",
             f"Command: `{command}`  ", f"Machine: {cpu}, 2 cores shared with other work.", "",
             "Built-in scenes, 320x240, 40 + 8 views, SAM-like masks, 2 frames/s. Node: pixel "
             "prompts at every held-out view's pose (camera_info + camera_pose, no image), the "
             "prompt the inside-most pixel of the object's true mask there. Offline: the node's "
             "saved map and the `cgc stream` run, queried with the same prompts, and with "
             "`cgc eval`'s protocol (one prompt per object in a training view).", "",
             "| seed | frames accepted | node, service | node map offline, same prompts | "
             "node map, eval protocol | cgc stream, same prompts | cgc stream, eval protocol "
             "| service - stream (same prompts) | service median (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['accepted']} / {r['sent']} | {r['node_service']} | "
                     f"{r['node_map_offline_same_prompts']} | {r['node_map_eval_protocol']} | "
                     f"{r['stream_same_prompts']} | {r['stream_eval_protocol']} | "
                     f"{r['node_service'] - r['stream_same_prompts']:+.2f} | "
                     f"{r['service_seconds_median']} |")
    if rows:
        mean = {k: np.mean([r[k] for r in rows]) for k in (
            "node_service", "node_map_offline_same_prompts", "stream_same_prompts",
            "stream_eval_protocol")}
        lines += ["", "Means: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items())]
    write(args.out or ROOT / "bench" / "results" / "driver_quality", lines, rows)


def held_out_scores(splats, config, scene_dir: Path) -> dict:
    """Held-out mIoU of a model: with the client's per-view prompts (`heldout_prompts`, the
    mask in the prompt's own view, as the node answers) and by `cgc eval`'s protocol."""
    import torch
    from driver_client import heldout_prompts

    from cgc_core.app.evaluate import evaluate_run
    from cgc_core.data import Prompt
    from cgc_core.data.ground_truth import load_gt_masks
    from cgc_core.data.load import load_scene
    from cgc_core.metrics import evaluate_masks
    from cgc_core.service.query import FeatureCache, object_mask, prompted_objects

    scene = load_scene(scene_dir)
    gt = load_gt_masks(scene_dir)
    features = FeatureCache(splats, scene, config.render)
    prompts = [Prompt(f"{frame}|{name}", frame, (u, v))
               for (frame, name), (u, v) in heldout_prompts(gt).items()]
    with torch.no_grad():
        objects = prompted_objects(prompts, features, config.query, config.objects)
        predictions = {tuple(p.id.split("|")): object_mask(o, p.frame, features, config.query,
                                                           config.query.threshold)
                       for p, o in zip(prompts, objects)}
        protocol = evaluate_run(splats, scene, config.render, config.query.threshold,
                                config.query, config.objects)
    per_view = evaluate_masks(predictions, {(f, n): m for f, objs in gt.items()
                                            for n, m in objs.items()})
    return {"per_view_prompts": round(per_view["mIoU"], 2),
            "eval_protocol": round(protocol["mIoU"], 2)}


def write(out: Path, lines: list[str], rows: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("frames")
    f.add_argument("--runs", type=int, default=5)
    f.add_argument("--orders", default="image_last,image_first,info_every_other")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--rate", type=float, default=2.0)
    q = sub.add_parser("quality")
    q.add_argument("--seeds", default="0,100,200")
    q.add_argument("--iterations", type=int, default=2000)
    q.add_argument("--order", default="image_last")
    q.add_argument("--rate", type=float, default=2.0)
    for p in (f, q):
        p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE")
        p.add_argument("--out", type=Path)
        p.add_argument("--node-env", action="append", default=[], metavar="NAME=VALUE",
                       help="an environment variable for the node only (transport settings)")
    args = parser.parse_args()
    NODE_ENV.update(item.split("=", 1) for item in args.node_env)
    env = ros_environment()
    return frames(args, env) if args.what == "frames" else quality(args, env)


if __name__ == "__main__":
    sys.exit(main())
