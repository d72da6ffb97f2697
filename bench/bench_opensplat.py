"""RGB-only training iteration time: cgc against OpenSplat's CPU build, side by side in one run.

The same built-in scene (its COLMAP model: sparse/0 + images/, 320 x 240, exported to one folder
both trainers read), the same initial Gaussians (one per point of its points3D.bin), RGB loss
only (L1 + 0.2 D-SSIM), no densification, full resolution, on the CPU, alternating the two:

- cgc: `Trainer` with the clustering and regularization terms, pose / exposure corrections and
  densification off, `train.max_resolution` 0 (native), SH degree raised every 1000 steps as
  OpenSplat's `--sh-degree-interval` default; timed in-process over steps skip+1 .. iterations.
- OpenSplat (https://github.com/pierotofy/OpenSplat, AGPL-3.0; built from source outside this
  repository, never committed; see bench/README.md): `opensplat --cpu --num-downscales 0` with
  refinement and alpha resets pushed past the run; its time per iteration is the difference of
  two runs' wall times (skip and iterations steps) divided by the difference in steps, so that
  loading and set-up cancel out.

Both trainers cycle over the scene's images one per iteration (cgc its training split, OpenSplat
every image in the model): the work per iteration is one render + loss + backward + Adam step.

    .venv/bin/python bench/bench_opensplat.py [--opensplat /work/opensplat/build/opensplat]
        [--scene DIR] [--iterations 300] [--skip 50] [--repeats 1] [--threads 0]

Prints and writes bench/results/opensplat.md (+ .json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import publish  # noqa: E402

CGC_CHILD = r"""
import json, sys, time
from pathlib import Path
import torch
if int(sys.argv[4]) > 0:
    torch.set_num_threads(int(sys.argv[4]))
sys.path.insert(0, str(Path(sys.argv[5]) / "scripts"))
from compare_training import trainer_for
iterations, skip = int(sys.argv[2]), int(sys.argv[3])
overrides = {
    "train": {"device": "cpu", "iterations": iterations, "scale_schedule": False,
              "max_resolution": 0, "densify_from": 10**9, "pose_refine": False,
              "exposure_compensation": False, "sh_increase_every": 1000},
    "loss": {"clustering_every": 0, "regularization_every": 0},
}
trainer = trainer_for(Path(sys.argv[1]), overrides)
gaussians = int(trainer.splats["means"].shape[0])
trainer.train(skip, progress=False)
start = time.perf_counter()
trainer.train(iterations, progress=False)
seconds = time.perf_counter() - start
view = trainer.views[0]
print(json.dumps({"seconds": seconds, "steps": iterations - skip, "gaussians": gaussians,
                  "end_gaussians": int(trainer.splats["means"].shape[0]),
                  "size": [view.width, view.height]}))
"""


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def export_colmap(scene: Path, out: Path) -> Path:
    """The scene's COLMAP model and images in the layout OpenSplat reads (sparse/0, images/),
    plus the training split and masks cgc's loader reads beside them: both trainers load this
    one folder (cgc through its COLMAP reader), so both start from its points3D.bin."""
    project = out / "colmap"
    shutil.copytree(scene / "sparse", project / "sparse")
    shutil.copytree(scene / "images", project / "images")
    shutil.copytree(scene / "masks_inconsistent", project / "masks_inconsistent")
    shutil.copy(scene / "split.json", project / "split.json")
    return project


def time_cgc(scene: Path, iterations: int, skip: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-c", CGC_CHILD, str(scene), str(iterations), str(skip),
                          str(threads), str(ROOT)], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["ms_per_iteration"] = result["seconds"] / result["steps"] * 1000
    return result


def run_opensplat(binary: Path, project: Path, iterations: int, work: Path, threads: int) -> float:
    """Wall seconds of one OpenSplat run of `iterations` steps."""
    never = str(10**8)
    command = [str(binary), str(project), "--cpu", "-n", str(iterations), "--num-downscales", "0",
               "--warmup-length", never, "--refine-every", never, "--reset-alpha-every", never,
               "--sh-degree-interval", "1000", "--ssim-weight", "0.2", "-o",
               str(work / "splat.ply")]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    if threads > 0:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def time_opensplat(binary: Path, project: Path, iterations: int, skip: int, threads: int,
                   work: Path) -> dict:
    short = run_opensplat(binary, project, skip, work, threads)
    long = run_opensplat(binary, project, iterations, work, threads)
    steps = iterations - skip
    return {"seconds": long - short, "steps": steps, "short_run_s": short, "long_run_s": long,
            "ms_per_iteration": (long - short) / steps * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--opensplat", type=Path, default=Path("/work/opensplat/build/opensplat"))
    parser.add_argument("--scene", type=Path, default=ROOT / "bench" / "out" / "scene_seed0")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--skip", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch / OpenMP threads for both (0: their default, all cores)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "opensplat.md")
    args = parser.parse_args()
    if not (args.scene / "transforms.json").is_file() and not (args.scene / "sparse").is_dir():
        subprocess.run([sys.executable, "-m", "cgc_core.app.cli", "synth", str(args.scene),
                        "--seed", "0"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if not args.opensplat.is_file():
        sys.exit(f"OpenSplat binary not found: {args.opensplat} (build it as bench/README.md says)")
    runs: dict[str, list[dict]] = {"cgc": [], "OpenSplat": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = export_colmap(args.scene, work)
        for repeat in range(args.repeats):
            runs["cgc"].append(time_cgc(project, args.iterations, args.skip, args.threads))
            runs["OpenSplat"].append(time_opensplat(args.opensplat, project, args.iterations,
                                                    args.skip, args.threads, work))
            print(f"[{repeat + 1}/{args.repeats}] " + ", ".join(
                f"{name} {rs[-1]['ms_per_iteration']:.1f} ms" for name, rs in runs.items()),
                flush=True)
    ms = {name: statistics.median(r["ms_per_iteration"] for r in rs) for name, rs in runs.items()}
    cgc = runs["cgc"][-1]
    command = " ".join([".venv/bin/python", "bench/bench_opensplat.py", *sys.argv[1:]])
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
    lines = [
        "# RGB-only training iteration: cgc against OpenSplat's CPU build", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, load average at end "
        f"{os.getloadavg()[0]:.1f}; threads {args.threads or 'default'}",
        f"- command: `{command}` (cgc {revision})",
        f"- scene {args.scene} ({cgc['size'][0]} x {cgc['size'][1]}), {cgc['gaussians']} initial "
        f"Gaussians from its COLMAP points, steps {args.skip + 1}-{args.iterations} timed, "
        f"median of {args.repeats}", "",
        "| trainer | ms / iteration |", "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in ms.items()], "",
        f"**cgc is {ms['OpenSplat'] / ms['cgc']:.1f}x faster per iteration** "
        "(OpenSplat / cgc).", ""]
    publish(args.out, "\n".join(lines),
            {"command": command, "ms_per_iteration": ms, "runs": runs})


if __name__ == "__main__":
    main()
