"""Soak: the ROS 2 node fed a long stream, sampled every few seconds for leaks and backlog.

Starts `python -m cgc_ros.node` and a driver (this file with --drive; two processes, real ROS 2,
a random domain). The driver plays a built-in synthetic scene's training views over and over at
--rate frames a second (Image + CameraInfo + 16UC1 depth + PoseStamped + exact segments, stamped
with the wall clock), and every --sample seconds writes a row: the node's resident memory (its
whole process group, from /proc), its input queue (length, high water, bound), the Gaussian
count, frames accepted / dropped / rejected, segmentation published (by the node's counters and
as received here) and the publish rate over the last interval.

    .venv/bin/python bench/bench_soak.py [--minutes 30] [--rate 10] [--sample 10]
        [--max-gaussians 30000] [--max-keyframes 40]

Writes OUT.csv (the rows), OUT.png (the plot), OUT.md (targets, figures, the command). Targets
(issue 15): RSS at the end within 10 % of RSS at 5 minutes; the input queue never past its
bound; segmentation published for >= 95 % of the frames the worker accepts; the node alive.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

COLUMNS = ["t_s", "rss_mib", "queue_length", "queue_high_water", "queue_bound", "gaussians",
           "keyframes", "frames_sent", "frames_taken", "frames_accepted", "frames_dropped",
           "frames_rejected", "segmentation_published", "segmentation_received",
           "publish_hz", "accept_hz", "iterations_per_second", "internal_errors"]


def group_rss_mib(pgid: int) -> float:
    """Resident memory of every process in group `pgid` (the node and anything it started)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            with open(f"/proc/{entry}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total / 1024


# ------------------------------------------------------------------------------------ driver

def drive(args) -> int:
    """In the ROS environment: publish frames at --rate, sample every --sample s into --csv."""
    import rclpy
    from sensor_msgs.msg import Image

    from cgc_core.data.load import load_scene
    from cgc_core.io import read_label_png
    from cgc_eval.driver import NodeDriver, set_stamp

    rclpy.init()
    driver = NodeDriver("cgc_soak", args.namespace)
    node = driver.node
    state = {"received": 0}
    node.create_subscription(Image, "cgc/segmentation",
                             lambda m: state.update(received=state["received"] + 1), 50)

    scene = load_scene(Path(args.scene))
    frames = [driver.frame_messages(  # messages built once; only the stamps change
        camera, scene.load_image(camera), scene.load_depth(camera),
        read_label_png(Path(args.scene) / "instances" / f"{camera.name}.png"), 0.0,
        depth_encoding="16UC1") for camera in scene.train_cameras]
    driver.wait_for_inputs(20.0)

    out = open(args.csv, "w", newline="")
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    start = time.monotonic()
    next_frame, next_sample, sent, index = start, start, 0, 0
    last = {"t": 0.0, "published": 0, "accepted": 0}
    while True:
        now = time.monotonic()
        if now >= next_sample:
            status = driver.status
            session = status.get("session", {})
            t = now - start
            published = status.get("segmentation_published", 0)
            accepted = status.get("frames_accepted", 0)
            span = max(t - last["t"], 1e-9)
            row = [round(t, 1), round(group_rss_mib(args.node_pgid), 1),
                   status.get("queue_length"), status.get("queue_high_water"),
                   status.get("queue_bound"), session.get("num_gaussians"),
                   session.get("keyframes"), sent, status.get("frames_taken"), accepted,
                   status.get("frames_dropped"), status.get("frames_rejected", 0), published,
                   state["received"], round((published - last["published"]) / span, 2),
                   round((accepted - last["accepted"]) / span, 2),
                   session.get("iterations_per_second"), status.get("internal_errors", 0)]
            writer.writerow(row)
            out.flush()
            last = {"t": t, "published": published, "accepted": accepted}
            next_sample += args.sample
            if t >= args.minutes * 60:
                break
        if now >= next_frame:
            frame = frames[index % len(frames)]
            set_stamp(frame, time.time())
            driver.publish(frame)
            sent += 1
            index += 1
            next_frame += 1.0 / args.rate
        rclpy.spin_once(node, timeout_sec=max(0.0, min(next_frame, next_sample)
                                               - time.monotonic()))
    out.close()
    driver.destroy()
    rclpy.try_shutdown()
    return 0


# ------------------------------------------------------------------------------------ report

def summarise(rows: list[dict], args, command: str, alive: bool) -> tuple[str, bool]:
    def at(minute: float) -> dict:
        return min(rows, key=lambda r: abs(float(r["t_s"]) - 60 * minute))

    five, final = at(5), rows[-1]
    rss5, rss_end = float(five["rss_mib"]), float(final["rss_mib"])
    growth = (rss_end - rss5) / rss5 if rss5 else float("nan")
    high = max(int(r["queue_high_water"] or 0) for r in rows)
    bound = int(final["queue_bound"] or 0)
    accepted = int(final["frames_accepted"] or 0)
    published = int(final["segmentation_published"] or 0)
    share = published / accepted if accepted else float("nan")
    checks = {
        f"RSS at {float(final['t_s']) / 60:.1f} min within 10 % of RSS at 5 min":
            (abs(growth) <= 0.10, f"{rss5:.0f} MiB -> {rss_end:.0f} MiB ({100 * growth:+.1f} %)"),
        "input queue never past its bound": (high <= bound, f"high water {high}, bound {bound}"),
        "segmentation for >= 95 % of accepted frames":
            (share >= 0.95, f"{published} of {accepted} ({100 * share:.1f} %)"),
        "node alive at the end, no internal errors":
            (alive and int(final["internal_errors"] or 0) == 0,
             f"alive: {alive}, internal errors: {final['internal_errors']}"),
    }
    ok = all(passed for passed, _ in checks.values())
    lines = [
        f"# Soak: {args.minutes:g} min at {args.rate:g} Hz through the ROS 2 node",
        "",
        f"{datetime.date.today()}, {os.cpu_count()} CPUs (shared with other work), scene seed "
        f"{args.seed} at {args.width}x{args.height}, {args.views} views repeated, "
        f"`model.max_gaussians` {args.max_gaussians}, `live.max_keyframes` "
        f"{args.max_keyframes}, queue_length {args.queue_length}. Sampled every "
        f"{args.sample:g} s: `{Path(args.out).name}.csv`, plot `{Path(args.out).name}.png`.",
        "",
        "    " + command,
        "",
        "| target | result | figures |",
        "|---|---|---|",
        *[f"| {name} | {'pass' if passed else 'FAIL'} | {figures} |"
          for name, (passed, figures) in checks.items()],
        "",
        f"Frames sent {final['frames_sent']}, taken by the worker {final['frames_taken']}, "
        f"accepted {accepted}, dropped by the bounded queue {final['frames_dropped']} "
        f"(drop-oldest: the worker takes the newest), rejected {final['frames_rejected']}; "
        f"segmentation received by the driver {final['segmentation_received']}. Gaussians at "
        f"the end {final['gaussians']}, keyframes {final['keyframes']}, "
        f"{final['iterations_per_second']} training iterations/s.",
        "",
    ]
    return "\n".join(lines), ok


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [float(r["t_s"]) / 60 for r in rows]

    def col(name):
        return [float(r[name]) if r[name] not in ("", "None") else float("nan") for r in rows]

    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    axes[0].plot(minutes, col("rss_mib"))
    axes[0].set_ylabel("node RSS (MiB)")
    axes[1].plot(minutes, col("queue_length"), label="length")
    axes[1].plot(minutes, col("queue_high_water"), label="high water")
    axes[1].plot(minutes, col("queue_bound"), "--", label="bound")
    axes[1].set_ylabel("input queue")
    axes[1].legend(loc="upper left")
    axes[2].plot(minutes, col("gaussians"))
    axes[2].set_ylabel("Gaussians")
    axes[3].plot(minutes, col("publish_hz"), label="segmentation published")
    axes[3].plot(minutes, col("accept_hz"), label="frames accepted")
    axes[3].set_ylabel("Hz")
    axes[3].set_xlabel("minutes")
    axes[3].legend(loc="upper left")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--sample", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--max-gaussians", type=int, default=30_000)
    parser.add_argument("--max-keyframes", type=int, default=40)
    parser.add_argument("--queue-length", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak"))
    # driver mode (run by main in the ROS environment)
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--scene", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--node-pgid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        return drive(args)

    from bench_node import ros_environment

    from cgc_core.data.synth import make_synthetic_scene

    command = "python bench/bench_soak.py " + shlex.join(sys.argv[1:])
    env = ros_environment()
    python = str(Path(env["VENV"]) / "bin" / "python")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        scene = make_synthetic_scene(Path(work) / "scene", seed=args.seed, width=args.width,
                                     height=args.height, n_train=args.views, n_test=1)
        log = open(out.with_suffix(".log"), "w")
        node = subprocess.Popen(
            [python, "-m", "cgc_ros.node", "--ros-args", "-r", "__ns:=/soak",
             "-p", "pose_source:=topic", "-p", "external_segments:=true",
             "-p", f"map_directory:={work}/maps", "-p", "max_stamp_skew:=60.0",
             "-p", f"queue_length:={args.queue_length}",
             "-p", f"model.max_gaussians:={args.max_gaussians}",
             "-p", f"live.max_keyframes:={args.max_keyframes}"],
            cwd=ROOT, env=dict(env, RCUTILS_LOGGING_USE_STDOUT="1"), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            time.sleep(8)
            subprocess.run([python, __file__, "--drive", "--namespace", "/soak", "--scene",
                            str(scene), "--csv", str(out.with_suffix(".csv")), "--node-pgid",
                            str(node.pid), "--minutes", str(args.minutes), "--rate",
                            str(args.rate), "--sample", str(args.sample)],
                           cwd=ROOT, env=env, check=True, timeout=args.minutes * 60 + 300)
            alive = node.poll() is None
        finally:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGINT)
                try:
                    node.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(node.pid, signal.SIGKILL)
            log.close()
    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    plot(rows, out.with_suffix(".png"))
    text, ok = summarise(rows, args, command, alive)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
