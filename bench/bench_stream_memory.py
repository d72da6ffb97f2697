"""Bounded memory of a long live stream: a scene's frames looped at a camera's rate.

Feeds a built-in scene's training views (with their inconsistent masks as segments and their
depth), looped, into a live session training in its own thread, for --minutes of wall clock at
--rate frames per second. Every --every seconds it samples the process's resident memory, the
Gaussian count, keyframes, iterations and dropped frames. Checks: the Gaussian count never exceeds
the cap (`model.max_gaussians`), and resident memory at the end is within 10 % of its value at
--reference minutes.

    .venv/bin/python bench/bench_stream_memory.py [--minutes 20] [--rate 5] [--seed 0]
        [--set model.max_gaussians=60000 ...]

Writes bench/results/stream_memory.{md,csv,png}.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
import time
from pathlib import Path

import psutil
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.config import apply_overrides  # noqa: E402
from cgc_core.data import load_scene  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene  # noqa: E402
from cgc_core.io import read_label_png  # noqa: E402
from cgc_core.train.live import LiveSession  # noqa: E402

FIELDS = ["seconds", "rss_mib", "gaussians", "keyframes", "iterations", "frames",
          "frames_dropped"]


def overrides(pairs: list[str]) -> dict:
    result: dict = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--reference", type=float, default=3.0,
                        help="minutes: the memory the end is compared with")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "stream_memory"))
    args = parser.parse_args()
    work = Path(args.work)
    scene_dir = work / f"scene_{args.seed}"
    if not (scene_dir / "transforms.json").is_file():
        make_synthetic_scene(scene_dir, seed=args.seed)
    scene = load_scene(scene_dir)
    frames = []
    for name in scene.train_names:
        cam = scene.camera(name)
        frames.append((cam, scene.load_image(cam), scene.load_depth(cam),
                       read_label_png(scene_dir / "masks_inconsistent" / f"{name}.png")))
    config = apply_overrides(load_config(), overrides(args.set))
    session = LiveSession(config, device="cpu")
    process = psutil.Process()
    samples: list[dict] = []
    start = time.monotonic()
    session.start()
    next_sample, i = start, 0
    try:
        while time.monotonic() - start < args.minutes * 60:
            session.add_frame(*frames[i % len(frames)], stamp=i / args.rate)
            i += 1
            now = time.monotonic()
            if now >= next_sample:
                stats = session.stats()
                samples.append({"seconds": round(now - start, 1),
                                "rss_mib": round(process.memory_info().rss / 2**20, 1),
                                "gaussians": stats.num_gaussians, "keyframes": stats.keyframes,
                                "iterations": stats.step, "frames": stats.frames_received,
                                "frames_dropped": stats.frames_dropped})
                print(samples[-1], flush=True)
                next_sample += args.every
            time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
    finally:
        session.stop()
    write(samples, args, config.model.max_gaussians)


def write(samples: list[dict], args, cap: int) -> None:
    results = ROOT / "bench" / "results"
    with open(results / "stream_memory.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(samples)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    minutes = [s["seconds"] / 60 for s in samples]
    fig, left = plt.subplots(figsize=(8, 4))
    left.plot(minutes, [s["rss_mib"] for s in samples], color="tab:blue")
    left.set_xlabel("minutes")
    left.set_ylabel("resident memory (MiB)", color="tab:blue")
    right = left.twinx()
    right.plot(minutes, [s["gaussians"] for s in samples], color="tab:orange")
    right.axhline(cap, color="tab:orange", linestyle="--", linewidth=0.8)
    right.set_ylabel("Gaussians (dashed: cap)", color="tab:orange")
    left.set_title(f"live stream, {args.rate:g} frames/s looped, seed {args.seed}")
    fig.tight_layout()
    fig.savefig(results / "stream_memory.png", dpi=100)
    reference = min(samples, key=lambda s: abs(s["seconds"] - args.reference * 60))
    end = samples[-1]
    change = 100.0 * (end["rss_mib"] - reference["rss_mib"]) / reference["rss_mib"]
    lines = [
        f"# Memory of a long live stream ({datetime.date.today()})", "",
        f"Command: `.venv/bin/python bench/bench_stream_memory.py --minutes {args.minutes:g} "
        f"--rate {args.rate:g} --seed {args.seed}"
        + "".join(f" --set {s}" for s in args.set) + "`  ",
        f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, CPU. Samples every "
        f"{args.every:g} s in stream_memory.csv, plot in stream_memory.png.", "",
        "| figure | value |", "|---|---|",
        f"| frames sent / dropped | {end['frames']} / {end['frames_dropped']} |",
        f"| iterations | {end['iterations']} |",
        f"| Gaussians: most seen / cap | {max(s['gaussians'] for s in samples)} / {cap} |",
        f"| keyframes at the end | {end['keyframes']} |",
        f"| resident memory at {reference['seconds'] / 60:.1f} min | "
        f"{reference['rss_mib']:.0f} MiB |",
        f"| resident memory at the end ({end['seconds'] / 60:.1f} min) | {end['rss_mib']:.0f} MiB "
        f"({change:+.1f} %) |",
        f"| most resident memory | {max(s['rss_mib'] for s in samples):.0f} MiB |", ""]
    text = "\n".join(lines)
    print(text)
    (results / "stream_memory.md").write_text(text)


if __name__ == "__main__":
    main()
