"""Live mapping against offline training, on the built-in scenes: quality and latency.

For each seed: the scene (cached), offline `cgc train` on its SAM-like inconsistent masks
(cached in the work folder: training is deterministic), and `cgc stream` of the same views and
masks at --rate frames per second, then trained on to the same total iterations. Both are
evaluated on the held-out views (mIoU / mBIoU). A probe measures latency: 20 s after each
keyframe arrives, it renders that keyframe's own view from the session's snapshot and scores a
pixel prompt per ground-truth object (the most interior pixel of its instance mask) against the
instance mask (IoU, cosine threshold `query.threshold`).

    .venv/bin/python bench/bench_stream.py [--seeds 0,3,100] [--rate 1] [--work DIR]
        [--set train.live_pose_settle_steps=0 ...]

`--set` changes the stream's config only (the offline runs stay the cached defaults); the
streams then go to WORK/stream_<label>_S, so that variants share the offline runs.

Prints and writes bench/results/stream.md and stream.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scenes import parse_overrides  # noqa: E402
from bench_train import cpu_name  # noqa: E402

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run, train_scene  # noqa: E402
from cgc_core.app.stream import stream_scene  # noqa: E402
from cgc_core.config import apply_overrides  # noqa: E402
from cgc_core.data import load_scene  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene, scene_family  # noqa: E402
from cgc_core.io import read_label_png  # noqa: E402
from cgc_core.query import feature_at, mask_from_feature, render_feature_map  # noqa: E402

NON_OBJECTS = {"background", "floor", "table", "wall", "walls"}


def interior_pixel(mask: np.ndarray) -> tuple[int, int]:
    """(u, v) of the pixel farthest from the mask's border."""
    v, u = np.unravel_index(np.argmax(distance_transform_edt(mask)), mask.shape)
    return int(u), int(v)


class LatencyProbe:
    """Scores each keyframe's own view `delay` seconds after its arrival."""

    def __init__(self, scene_dir: Path, delay: float):
        self.scene_dir, self.delay = scene_dir, delay
        self.scene = load_scene(scene_dir)
        names = json.loads((scene_dir / "objects.json").read_text())
        self.object_ids = {int(i) for i, n in names.items() if n not in NON_OBJECTS}
        self.results: list[dict] = []
        self.stop = threading.Event()

    def attach(self, session) -> None:
        self.session = session
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        done = set()
        while not self.stop.is_set():
            now = self.session.elapsed()
            due = [r for r in list(self.session.timeline)
                   if r["id"] not in done and now >= r["arrival"] + self.delay]
            for record in due:
                done.add(record["id"])
                self.results.append(self.score(record))
            time.sleep(0.2)

    def score(self, record: dict) -> dict:
        snap = self.session.snapshot()
        config = self.session.config
        cam = self.scene.camera(record["name"])
        instances = read_label_png(self.scene_dir / "instances" / f"{record['name']}.png")
        features = render_feature_map(snap.splats, cam, config.render)
        ious = []
        for obj in sorted(self.object_ids & set(np.unique(instances).tolist())):
            truth = instances == obj
            if truth.sum() < 50:
                continue
            u, v = interior_pixel(truth)
            mask = mask_from_feature(features, feature_at(features, u, v),
                                     config.query.threshold).cpu().numpy()
            ious.append(100.0 * (mask & truth).sum() / max(1, (mask | truth).sum()))
        return {"keyframe": record["id"], "name": record["name"],
                "age": round(self.session.elapsed() - record["arrival"], 2),
                "iteration": snap.step, "iou": float(np.mean(ious)) if ious else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,3,100")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=20.0, help="latency probe delay (s)")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "stream"))
    parser.add_argument("--label", default="stream")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.SUB=VALUE",
                        help="config override of the streams only, a YAML scalar (repeatable)")
    args = parser.parse_args()
    overrides = parse_overrides(args.overrides)
    apply_overrides(load_config(), overrides)  # refuse a bad key before any training
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(args.work)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        scene_dir = work / f"scene_{seed}"
        if not (scene_dir / "transforms.json").is_file():
            make_synthetic_scene(scene_dir, seed=seed)
        masks = scene_dir / "masks_inconsistent"
        config = load_config()
        offline_dir = work / f"offline_{seed}"
        if not (offline_dir / "run.json").is_file():
            train_scene(scene_dir, offline_dir, config=config, masks_dir=masks, progress=False)
        offline = load_run(offline_dir)
        offline_eval = evaluate_run(offline.splats, offline.scene, offline.config.render,
                                    offline.config.query.threshold, offline.config.query)
        probe = LatencyProbe(scene_dir, args.delay)
        stream_dir = work / (f"stream_{args.label}_{seed}" if overrides else f"stream_{seed}")
        start = time.monotonic()
        run = stream_scene(scene_dir, stream_dir, config=apply_overrides(load_config(), overrides),
                           masks_dir=masks,
                           rate=args.rate, iterations=offline.info["iterations"],
                           eval_every=0, progress=False, on_start=probe.attach)
        probe.stop.set()
        stream_seconds = time.monotonic() - start
        stream_eval = evaluate_run(run.splats, run.scene, run.config.render,
                                   run.config.query.threshold, run.config.query)
        latency = [r["iou"] for r in probe.results if r["iou"] is not None]
        rows.append({
            "seed": seed, "family": scene_family(seed).name,
            "offline": [offline_eval["mIoU"], offline_eval["mBIoU"]],
            "stream": [stream_eval["mIoU"], stream_eval["mBIoU"]],
            "keyframes": len(json.loads((stream_dir / "stream.json").read_text())["keyframes"]),
            "frames": len(run.scene.train_names),
            "offline_seconds": offline.info["train_seconds"], "stream_seconds": stream_seconds,
            "latency_iou": latency, "latency": probe.results})
        write(rows, args)


def write(rows: list[dict], args) -> None:
    lines = [
        f"# Live stream vs offline training ({datetime.date.today()})",
        "",
        f"Command: `.venv/bin/python bench/bench_stream.py --seeds {args.seeds} --rate "
        f"{args.rate:g}{''.join(' --set ' + o for o in args.overrides)}`  ",
        f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, CPU. Both on the scene's "
        "inconsistent masks, the same total iterations; stream at "
        f"{args.rate:g} frame/s, then trained on.",
        "",
        "| seed | family | offline mIoU / mBIoU | stream mIoU / mBIoU | stream - offline | "
        f"keyframes / frames | IoU {args.delay:g} s after arrival: median, min, share >= 70 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = np.array(r["latency_iou"]) if r["latency_iou"] else np.array([np.nan])
        lines.append(
            f"| {r['seed']} | {r['family']} | {r['offline'][0]:.1f} / {r['offline'][1]:.1f} | "
            f"{r['stream'][0]:.1f} / {r['stream'][1]:.1f} | "
            f"{r['stream'][0] - r['offline'][0]:+.1f} | {r['keyframes']} / {r['frames']} | "
            f"{np.median(lat):.1f}, {np.min(lat):.1f}, {np.mean(lat >= 70):.0%} |")
    off = np.mean([r["offline"][0] for r in rows])
    st = np.mean([r["stream"][0] for r in rows])
    lines += ["", f"Mean mIoU: offline {off:.1f}, stream {st:.1f} ({st - off:+.1f}); worst "
              f"scene {min(r['stream'][0] - r['offline'][0] for r in rows):+.1f}.", ""]
    text = "\n".join(lines)
    print(text)
    results = ROOT / "bench" / "results"
    (results / f"{args.label}.md").write_text(text)
    (results / f"{args.label}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
