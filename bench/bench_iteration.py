"""Training iteration time of the default CPU training, this checkout against another, side by side.

Each version trains the same scene with the same seed and its own default config for the same
number of iterations, in a fresh process, alternating versions so both see the same machine
load. Reported: seconds per iteration (median over repeats) and the ratio.

    .venv/bin/python bench/bench_iteration.py --other /path/to/old/checkout [--scene DIR]
        [--iterations 2000] [--repeats 1]

The other checkout needs its C++ extension built in place (copy the .so or
`python setup.py build_ext --inplace`). Prints and writes bench/results/iteration.md.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs inside the child process, with PYTHONPATH set to the checkout under test.
CHILD = r"""
import json, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(sys.argv[3]) / "scripts"))
from compare_training import trainer_for
trainer = trainer_for(Path(sys.argv[1]), {"train": {"device": "cpu"}})
until = min(int(sys.argv[2]), trainer.iterations)
start = time.perf_counter()
trainer.train(until, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "iterations": until,
                  "gaussians": int(trainer.splats["means"].shape[0])}))
"""


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def run_once(code: Path, scene: Path, iterations: int) -> dict:
    # Passive OpenMP waiting, as importing cgc_core sets it (the child imports torch first):
    # spinning idle threads make a shared machine's timings meaningless.
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_WAIT_POLICY": "PASSIVE"}
    # cwd = the checkout: `python -c` puts the working folder first on sys.path.
    out = subprocess.run([sys.executable, "-c", CHILD, str(scene), str(iterations), str(ROOT)],
                         env=env, cwd=code, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--other-label", default="other")
    parser.add_argument("--scene", type=Path, default=ROOT / "bench" / "out" / "scene_seed0")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "iteration.md")
    args = parser.parse_args()
    if not (args.scene / "transforms.json").is_file():
        subprocess.run([sys.executable, "-m", "cgc_core.app.cli", "synth", str(args.scene),
                        "--seed", "0"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    versions = {"this checkout": ROOT, args.other_label: args.other.resolve()}
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    for repeat in range(args.repeats):
        for name, code in versions.items():
            result = run_once(code, args.scene, args.iterations)
            runs[name].append(result)
            print(f"[{repeat + 1}/{args.repeats}] {name}: {result['seconds']:.1f} s for "
                  f"{result['iterations']} iterations, {result['gaussians']} Gaussians", flush=True)
    per_iteration = {name: statistics.median(r["seconds"] / r["iterations"] for r in rs)
                     for name, rs in runs.items()}
    ours, theirs = per_iteration["this checkout"], per_iteration[args.other_label]
    command = " ".join([".venv/bin/python", "bench/bench_iteration.py", *sys.argv[1:]])
    lines = [
        "# Training iteration time: this checkout against another", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, load average at end "
        f"{os.getloadavg()[0]:.1f}",
        f"- command: `{command}`",
        f"- scene: {args.scene} (seed 0), each version's own default config, "
        f"{args.iterations} iterations, median of {args.repeats}", "",
        "| version | seconds | ms / iteration | final Gaussians |", "|---|---|---|---|",
    ]
    for name, rs in runs.items():
        seconds = statistics.median(r["seconds"] for r in rs)
        lines.append(f"| {name} | {seconds:.1f} | {per_iteration[name] * 1000:.1f} | "
                     f"{rs[-1]['gaussians']} |")
    lines += ["", f"**Speed-up: {theirs / ours:.2f}x** ({args.other_label} / this checkout)."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
