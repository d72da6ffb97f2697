"""Speed and memory of the render backends, side by side, on random scenes that look like a room.

Figures (every backend available here, same scenes, same process tree, same run):
    a      20k Gaussians, 160 x 120, C = 3 (+ depth):           forward + backward
    b      20k Gaussians, 160 x 120, C = 3 + 16 (+ depth):      forward + backward
    c      100k Gaussians, 320 x 240, C = 3 + 16 (+ depth):     forward + backward
    query  100k Gaussians, 320 x 240, 16 feature channels only: forward, no grad ("mask query")

Time: median of --repeats runs after --warmup runs (wall clock, torch threads = all cores), and
the median process CPU time (all threads) beside it, which is less disturbed by other load.
Subprocesses run with OMP_WAIT_POLICY=PASSIVE unless set (see run_isolated).
Memory: each (figure, backend) runs in a fresh subprocess. On the CPU the figure is the peak
resident set size during warm-up and timed runs minus the resident size just before: the kernel's
peak counter (VmHWM in /proc/self/status) is reset by writing "5" to /proc/self/clear_refs.
tracemalloc cannot see torch's allocations, hence the process-level figure; it includes the
allocator's slack. On CUDA it is torch.cuda.max_memory_allocated (reset before the timed runs).

The scene: Gaussians at camera depth 1.5-5 m spread over the whole view (a little beyond it),
scales log-uniform in 0.005-0.05 m per axis, random rotations, opacities uniform in 0.05-0.95,
colours / features uniform in [0, 1].

    .venv/bin/python bench/bench_render.py [--repeats 5] [--warmup 1] [--figures a,b,c,query]
                                           [--portable]

--portable also builds the CPU kernel for baseline x86-64 (SSE2, CGC_PORTABLE_BUILD=1) into
build/portable and times it as a column "cpu-portable": what -march=native is worth here.

Prints the table and writes bench/results/render.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgc_core.render import available_backends, rasterize  # noqa: E402

FIGURES = {
    # name: (N, width, height, channels, backward, render_depth)
    "a": (20_000, 160, 120, 3, True, True),
    "b": (20_000, 160, 120, 19, True, True),
    "c": (100_000, 320, 240, 19, True, True),
    "query": (100_000, 320, 240, 16, False, False),
}
DESCRIPTIONS = {
    "a": "20k Gaussians, 160x120, C=3 (+depth), fwd+bwd",
    "b": "20k Gaussians, 160x120, C=3+16 (+depth), fwd+bwd",
    "c": "100k Gaussians, 320x240, C=3+16 (+depth), fwd+bwd",
    "query": "100k Gaussians, 320x240, 16-ch features, forward only",
}


def room_scene(n: int, width: int, height: int, channels: int, device: str, seed: int = 0) -> dict:
    """Random Gaussians filling the view of a pinhole camera at the origin (module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    fx = fy = 0.9 * width  # ~58 degree horizontal field of view
    z = 1.5 + 3.5 * torch.rand(n, generator=gen)
    u = (torch.rand(n, generator=gen) * 1.1 - 0.05) * width
    v = (torch.rand(n, generator=gen) * 1.1 - 0.05) * height
    means = torch.stack([(u - width / 2) / fx * z, (v - height / 2) / fy * z, z], dim=1)
    scene = {
        "means": means,
        "quats": torch.randn(n, 4, generator=gen),
        "scales": torch.exp(
            math.log(0.005) + (math.log(0.05) - math.log(0.005)) * torch.rand(n, 3, generator=gen)
        ),
        "opacities": 0.05 + 0.9 * torch.rand(n, generator=gen),
        "colors": torch.rand(n, channels, generator=gen),
    }
    scene = {k: t.to(device).requires_grad_(True) for k, t in scene.items()}
    scene["viewmat"] = torch.eye(4, device=device)
    scene["K"] = torch.tensor([[fx, 0, width / 2], [0, fy, height / 2], [0, 0, 1.0]], device=device)
    return scene


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


PORTABLE_BUILD = ROOT / "build" / "portable"
"""Where --portable puts a second build of the CPU extension, compiled without -march=native."""


def build_portable() -> None:
    """Builds the CPU extension again for the baseline x86-64 target (SSE2 only, no AVX2)."""
    env = {**os.environ, "CGC_PORTABLE_BUILD": "1"}
    subprocess.run(
        [
            sys.executable,
            "setup.py",
            "build_ext",
            "--build-lib",
            str(PORTABLE_BUILD),
            "--build-temp",
            str(PORTABLE_BUILD / "temp"),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def use_portable_extension() -> None:
    """Makes the cpu backend run on the portable build (backend "cpu-portable")."""
    import importlib.util

    from cgc_core.render import cpu

    (path,) = (PORTABLE_BUILD / "cgc_core" / "render").glob("_raster_cpu*.so")
    spec = importlib.util.spec_from_file_location("_raster_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cpu._raster_cpu = module


def measure_one(figure: str, backend: str, repeats: int, warmup: int) -> dict:
    """Times one (figure, backend) in this process; returns median seconds and peak bytes."""
    n, width, height, channels, backward, depth = FIGURES[figure]
    device = "cuda" if backend == "gsplat" else "cpu"
    if backend == "cpu-portable":
        use_portable_extension()
        backend = "cpu"
    scene = room_scene(n, width, height, channels, device)
    params = [scene[k] for k in ("means", "quats", "scales", "opacities", "colors")]

    def step():
        with torch.set_grad_enabled(backward):
            out = rasterize(
                scene["means"],
                scene["quats"],
                scene["scales"],
                scene["opacities"],
                scene["colors"],
                scene["viewmat"],
                scene["K"],
                width,
                height,
                render_depth=depth,
                backend=backend,
            )
            if backward:
                out.means2d.retain_grad()
                loss = out.colors.square().sum() + out.alphas.sum()
                if out.depths is not None:
                    loss = loss + out.depths.sum()
                loss.backward()
                for p in params:
                    p.grad = None
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    # The memory baseline is taken before the first run: the allocator keeps freed pages, so a
    # baseline after warm-up would hide the working set.
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _rss_kib("VmRSS") * 1024
    for _ in range(warmup):
        step()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else _rss_kib("VmHWM") * 1024
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_median_s": statistics.median(cpu_times),
        "peak_bytes": peak - base,
    }


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def run_isolated(figure: str, backend: str, repeats: int, warmup: int) -> dict:
    """measure_one in a fresh interpreter, so that memory figures do not see earlier runs."""
    cmd = [
        sys.executable,
        __file__,
        "--one",
        figure,
        backend,
        "--repeats",
        str(repeats),
        "--warmup",
        str(warmup),
    ]
    # Idle OpenMP threads sleep instead of spinning: on a shared machine (other processes on the
    # cores), spinning threads of torch's many short parallel regions made 2-thread runs up to 20x
    # slower than 1-thread ones. Set OMP_WAIT_POLICY yourself to measure otherwise.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.1f}" if s < 10 else f"{s * 1e3:.0f}"


def table(results: dict, backends: list[str]) -> str:
    head = (
        "| figure | "
        + " | ".join(f"{b} ms (cpu-time ms) | {b} peak MiB" for b in backends)
        + " | cpu speed-up vs reference |"
    )
    sep = "|---" * (1 + 2 * len(backends) + 1) + "|"
    rows = [head, sep]
    for fig, per_backend in results.items():
        cells = []
        for b in backends:
            r = per_backend.get(b)
            cells += (
                [
                    f"{fmt_ms(r['median_s'])} ({fmt_ms(r['cpu_median_s'])})",
                    f"{r['peak_bytes'] / 2**20:.0f}",
                ]
                if r
                else ["-", "-"]
            )
        ratio = "-"
        if "cpu" in per_backend and "reference" in per_backend:
            ratio = f"{per_backend['reference']['median_s'] / per_backend['cpu']['median_s']:.1f}x"
        if "cpu-portable" in per_backend:
            portable = per_backend["cpu-portable"]["median_s"] / per_backend["cpu"]["median_s"]
            ratio += f"; vs cpu-portable {portable:.2f}x"
        rows.append(f"| {DESCRIPTIONS[fig]} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--figures", default=",".join(FIGURES))
    parser.add_argument("--backends", default=",".join(available_backends()))
    parser.add_argument(
        "--portable",
        action="store_true",
        help="also build the CPU kernel without -march=native and time it as cpu-portable",
    )
    parser.add_argument("--one", nargs=2, metavar=("FIGURE", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "render.md"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one, args.repeats, args.warmup)))
        return

    backends = args.backends.split(",")
    if args.portable:
        print("building the portable CPU extension ...", flush=True)
        build_portable()
        backends.insert(backends.index("cpu") + 1, "cpu-portable")
    load_before = os.getloadavg()[0]
    results = {}
    for fig in args.figures.split(","):
        results[fig] = {}
        for backend in backends:
            results[fig][backend] = run_isolated(fig, backend, args.repeats, args.warmup)
            r = results[fig][backend]
            print(
                f"{fig:6s} {backend:10s} median {fmt_ms(r['median_s'])} ms  "
                f"min {fmt_ms(r['min_s'])} ms  "
                f"cpu-time {fmt_ms(r['cpu_median_s'])} ms  "
                f"peak +{r['peak_bytes'] / 2**20:.0f} MiB",
                flush=True,
            )
    text = table(results, backends)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads"
    )
    command = "`" + " ".join([".venv/bin/python", "bench/bench_render.py", *sys.argv[1:]]) + "`"
    doc = (
        "# Render backends: speed and memory\n\n"
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}  \n"
        f"Machine: {machine}  \nCommand: {command}  \n"
        f"Load average (1 min) at start / end: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
        "(above ~0.5, other processes shared the cores and wall times are inflated)\n\n"
        f"Median of {args.repeats} runs after {args.warmup} warm-up, wall clock and, in brackets, "
        "process CPU time (all threads; equal to the wall time means the run effectively had one "
        "core). Peak = process peak RSS minus RSS before the first run, warm-up included (CPU; "
        "VmHWM reset through /proc/self/clear_refs), torch.cuda.max_memory_allocated (CUDA). Each "
        "figure and backend runs in a fresh process with OMP_WAIT_POLICY=PASSIVE. "
        "Scenes: Gaussians 1.5-5 m in front of the camera filling the view, scales log-uniform "
        "0.005-0.05 m, "
        "opacities uniform 0.05-0.95. Loss = sum(colors^2) + sum(alphas) + sum(depths).\n\n"
        + text
        + "\n"
    )
    print("\n" + text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(doc)


if __name__ == "__main__":
    main()
