"""The live session on captures without depth: where its first Gaussians go.

Without depth or a point cloud, the live session (`cgc stream`, the node) places new Gaussians
along pixel rays at a guessed depth. Three ways, side by side in one run, each `cgc stream`ed
and `cgc eval`ed in its own process:

- `guess`: at `live.default_depth` (1 m) until something is rendered, then at the median
  rendered depth (cgc before 2026-12-07: `depth_from_axes: false`, `rays_depth_spread: 1`);
- `axes`: at the depth where the keyframes' optical axes meet, the young map grown again there
  once they tell it (`rays_depth_spread: 1`);
- `axes + spread` (the default): the same, each ray's depth spread log-uniformly over half to
  twice the guess.

Scenes: built-in scenes with their depth maps and point cloud removed (`--seeds`, streamed with
their SAM-like masks: mIoU / mBIoU and PSNR), and a real capture without depth (`--capture`,
e.g. instant-ngp's fox, with the default mask source: PSNR / SSIM only).

    .venv/bin/python bench/bench_live_without_depth.py --seeds 0,302 --capture FOX \
        --iterations 1000 --work W

Prints and writes bench/results/live_without_depth.md and .json (or --out).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

VARIANTS = {
    "guess": {"live": {"depth_from_axes": False, "rays_depth_spread": 1.0}},
    "axes": {"live": {"rays_depth_spread": 1.0}},
    "axes + spread": {},
}


def cgc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cgc_core.app.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, check=True)


def without_depth(seed: int, work: Path) -> Path:
    """A built-in scene (cached) copied without its depth maps and point cloud."""
    scene = work / f"scene_{seed}"
    if not (scene / "transforms.json").is_file():
        cgc("synth", "--seed", str(seed), str(scene))
    copy = work / f"no_depth_{seed}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(scene, copy, ignore=shutil.ignore_patterns("depth", "points3d.ply", "sparse"))
    transforms = json.loads((copy / "transforms.json").read_text())
    transforms.pop("ply_file_path", None)
    for frame in transforms["frames"]:
        frame.pop("depth_file_path", None)
    (copy / "transforms.json").write_text(json.dumps(transforms, indent=1))
    return copy


def stream_and_eval(scene: Path, masks: Path | None, variant: str, args, work: Path) -> dict:
    out = work / f"run_{scene.name}_{variant.replace(' + ', '_')}"
    if out.exists():
        shutil.rmtree(out)
    config = work / f"{variant.replace(' + ', '_')}.json"  # JSON is YAML
    config.write_text(json.dumps(VARIANTS[variant]))
    command = ["stream", str(scene), "--out", str(out), "--rate", str(args.rate),
               "--iterations", str(args.iterations), "--device", "cpu", "--quiet",
               "--eval-every", "0", "--config", str(config)]
    if masks is not None:
        command += ["--masks", str(masks)]
    start = time.perf_counter()
    cgc(*command)
    wall = time.perf_counter() - start
    cgc("eval", str(out), "--json", str(out / "eval.json"))
    scores = json.loads((out / "eval.json").read_text())
    stream = json.loads((out / "stream.json").read_text())
    keyframes = stream.get("keyframes", [])
    return {"scene": scene.name, "variant": variant, "wall_s": round(wall, 1),
            "keyframes": len(keyframes) if isinstance(keyframes, list) else keyframes,
            "scores": scores, "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}


def cell(scores: dict, key: str, digits: int = 1) -> str:
    value = scores.get(key)
    if value is None and isinstance(scores.get("colour"), dict):
        value = scores["colour"].get(key)
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = ["# The live session without depth: where its first Gaussians go", "",
             f"- command: `{meta['command']}`", f"- date: {meta['date']}",
             f"- machine: {meta['machine']}",
             f"- stream: {meta['rate']} frames/s, {meta['iterations']} iterations in all",
             "- variants: `guess` = at `live.default_depth` then the median rendered depth "
             "(before); `axes` = where the keyframes' axes meet; `axes + spread` = the same, "
             "spread over half to twice (the default)", "",
             "| scene | variant | mIoU | mBIoU | PSNR (dB) | SSIM | keyframes | wall s | "
             "load average |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        s = row["scores"]
        lines.append(f"| {row['scene']} | {row['variant']} | {cell(s, 'mIoU')} | "
                     f"{cell(s, 'mBIoU')} | {cell(s, 'psnr', 2)} | {cell(s, 'ssim', 3)} | "
                     f"{row['keyframes']} | {row['wall_s']} | {row['load']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,302", help="built-in scenes, streamed without depth")
    parser.add_argument("--capture", type=Path, default=None,
                        help="a real capture without depth (e.g. instant-ngp's fox)")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/live_without_depth"))
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "live_without_depth.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python bench/bench_live_without_depth.py " + " ".join(sys.argv[1:]),
            "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            "machine": f"{cpu_name()}, {os.cpu_count()} cores shared with other jobs, no GPU",
            "rate": args.rate, "iterations": args.iterations}
    scenes = [(without_depth(int(s), args.work), "masks_inconsistent")
              for s in args.seeds.split(",") if s]
    if args.capture is not None:
        scenes.append((args.capture, None))
    rows = []
    for scene, masks in scenes:
        for variant in args.variants.split(","):
            rows.append(stream_and_eval(scene, None if masks is None else scene / masks,
                                        variant, args, args.work))
            print(json.dumps(rows[-1]), flush=True)
            args.out.write_text(markdown(meta, rows))
            args.out.with_suffix(".json").write_text(json.dumps({**meta, "runs": rows},
                                                                indent=1))
    print(markdown(meta, rows))


if __name__ == "__main__":
    main()
