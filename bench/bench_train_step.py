"""Rasterizer cost of training steps on REAL trained Gaussians: old vs new tile binning, one run.

The CPU backend bins each Gaussian into the tiles of its 3-sigma square cut to its alpha >= 1/255
box (`project.alpha_tile_rects`); the old rule used the square alone. Both rules give
bit-identical renders and gradients (checked here on every call), only the number of (tile,
Gaussian) pairs differs. This times both, interleaved camera by camera (the order rotates), so
that other load on the machine hits both alike; compare the ratios, not the absolute times.
With --baseline-so, a third variant "base" runs the old rule on another build of the extension
(e.g. one from before a kernel change; it needs no alpha-box support), also checked bit-equal.

Per model: every training camera of the scene at the training resolution (--scale 0.5: 160 x
120), colours = [SH DC colour, 16 features] (19 channels, no depth, as a feature step of
training), a fixed random upstream gradient on colours and alphas. Forward = projection + square
rects + binning + rasterization (what `cgc_core.render.rasterize` runs for backend "cpu");
backward = loss.backward() (rasterization and projection backwards). Reported: per-call medians
over cameras x repeats, the sum over cameras (ms per epoch of views), and pairs per camera.

Models: "late" (--late, a finished run), "early" (--early, a 300-iteration run), and "late,
op 0.1, scale x2" (the late model with every opacity 0.1 and scales doubled: big faint Gaussians,
like early training).

    .venv/bin/python bench/bench_train_step.py [--repeats 3] [--late CKPT] [--early CKPT]
                                               [--scene DIR] [--scale 0.5] [--threads 1]
                                               [--baseline-so PATH/_raster_cpu*.so]

Writes bench/results/train_step.md (--out). Runs with OMP_WAIT_POLICY=PASSIVE unless set.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgc_core.data import load_scene  # noqa: E402
from cgc_core.model.sh import eval_sh  # noqa: E402
from cgc_core.render import cpu  # noqa: E402
from cgc_core.render.project import tile_rects  # noqa: E402


def load_model(path: str, opacity: float | None = None, scale_factor: float = 1.0) -> dict:
    """Leaf tensors (requires_grad) of a checkpoint's splats, in `rasterize`'s terms."""
    state = torch.load(path, weights_only=True, map_location="cpu")
    splats = (state["trainer"] if "trainer" in state else state)["splats"]  # session or trainer
    colors = torch.cat([eval_sh(0, splats["sh0"], splats["shN"], splats["means"]),
                        splats["features"]], dim=1)
    opacities = torch.sigmoid(splats["opacities"])
    if opacity is not None:
        opacities = torch.full_like(opacities, opacity)
    model = {
        "means": splats["means"],
        "quats": splats["quats"],
        "scales": splats["log_scales"].exp() * scale_factor,
        "opacities": opacities,
        "colors": colors,
    }
    return {k: v.detach().float().contiguous().requires_grad_(True) for k, v in model.items()}


def load_cameras(scene_dir: str, scale: float) -> list[tuple]:
    scene = load_scene(scene_dir)
    cams = []
    for name in scene.train_names:
        cam = scene.camera(name).scaled(scale)
        viewmat = torch.tensor(cam.world_to_cam, dtype=torch.float32)
        K = torch.tensor(cam.K, dtype=torch.float32)
        cams.append((viewmat, K, cam.width, cam.height))
    return cams


def render(model: dict, viewmat, K, width: int, height: int, alpha_box: bool):
    """The CPU path of `cgc_core.render.rasterize` (no depth), with the binning rule selectable."""
    proj = cpu.project_cpu(model["means"], model["quats"], model["scales"], viewmat, K, width,
                           height)
    rects = tile_rects(proj.means2d, proj.radii, width, height)
    colors = model["colors"]
    background = colors.new_zeros(colors.shape[1])
    image, alphas = cpu.rasterize_cpu(proj.means2d, proj.conics, colors, model["opacities"],
                                      background, proj.depths, rects, width, height,
                                      alpha_box=alpha_box)
    return proj, rects, image, alphas


def pair_count(model: dict, proj, rects, width: int, height: int, alpha_box: bool) -> int:
    box = (proj.means2d, proj.conics, model["opacities"]) if alpha_box else ()
    _, ids = cpu.bin_gaussians(proj.depths, rects, width, height, *box)
    return ids.numel()


def load_extension(path: str):
    """Another build of the extension as a module (cpu._raster_cpu can be swapped for it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_raster_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step(model: dict, camera: tuple, grads: tuple, alpha_box: bool) -> tuple[float, float, dict]:
    """One forward + backward; returns (forward s, backward s, outputs and gradients)."""
    for p in model.values():
        p.grad = None
    t0 = time.perf_counter()
    proj, _, image, alphas = render(model, *camera, alpha_box)
    t1 = time.perf_counter()
    ((image * grads[0]).sum() + (alphas * grads[1]).sum()).backward()
    t2 = time.perf_counter()
    result = {"image": image.detach(), "alphas": alphas.detach(), "radii": proj.radii}
    result.update({f"{k}.grad": p.grad for k, p in model.items()})
    return t1 - t0, t2 - t1, result


def measure(model: dict, cams: list, repeats: int, extensions: dict) -> dict:
    """extensions: variant -> extension module; "new" bins with the alpha box, the others not."""
    variants = list(extensions)
    times = {v: {"fwd": [], "bwd": []} for v in variants}
    pairs = {v: 0 for v in ("old", "new")}
    gen = torch.Generator().manual_seed(0)
    upstream = []
    for viewmat, K, w, h in cams:
        channels = model["colors"].shape[1]
        upstream.append((torch.randn(h, w, channels, generator=gen), torch.randn(h, w,
                                                                                generator=gen)))
        with torch.no_grad():
            proj, rects, _, _ = render(model, viewmat, K, w, h, True)
            for rule in pairs:
                pairs[rule] += pair_count(model, proj, rects, w, h, rule == "new")

    def run(variant, camera, grads):
        cpu._raster_cpu = extensions[variant]
        try:
            return step(model, camera, grads, variant == "new")
        finally:
            cpu._raster_cpu = extensions["new"]

    for variant in variants:  # warm-up
        run(variant, cams[0], upstream[0])
    for rep in range(repeats):
        for i, (camera, grads) in enumerate(zip(cams, upstream)):
            shift = (i + rep) % len(variants)
            results = {}
            for variant in variants[shift:] + variants[:shift]:
                fwd, bwd, results[variant] = run(variant, camera, grads)
                times[variant]["fwd"].append(fwd)
                times[variant]["bwd"].append(bwd)
            for variant in variants[:-1]:
                for name, value in results[variant].items():
                    if not torch.equal(results["new"][name], value):
                        raise AssertionError(f"camera {i}: {name} differs, {variant} vs new")
    out = {"pairs": {rule: pairs[rule] / len(cams) for rule in pairs}}
    for variant in variants:
        for part in ("fwd", "bwd"):
            values = times[variant][part]
            out[f"{variant}_{part}_ms"] = statistics.median(values) * 1e3
            out[f"{variant}_{part}_epoch_ms"] = sum(values) * 1e3 / repeats
    return out


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def table(results: dict, variants: list[str]) -> str:
    """Markdown table: pairs, then forward, backward and per-epoch times of every variant with
    the ratios new / old (binning) and, with a baseline, new / base (everything)."""
    ratios = [("new", "old")] + ([("new", "base")] if "base" in variants else [])
    head = ["model", "N", "pairs/cam old", "pairs new", "new/old"]
    for part in ("fwd ms", "bwd ms", "fwd+bwd per epoch ms"):
        head += [f"{part} {v}" for v in variants] + [f"{a}/{b}" for a, b in ratios]
    rows = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, (n, r) in results.items():
        po, pn = r["pairs"]["old"], r["pairs"]["new"]
        cells = [name, str(n), f"{po:.0f}", f"{pn:.0f}", f"{pn / po:.3f}"]
        epoch = {v: r[f"{v}_fwd_epoch_ms"] + r[f"{v}_bwd_epoch_ms"] for v in variants}
        for values in ({v: r[f"{v}_fwd_ms"] for v in variants},
                       {v: r[f"{v}_bwd_ms"] for v in variants}, epoch):
            cells += [f"{values[v]:.1f}" for v in variants]
            cells += [f"{values[a] / values[b]:.3f}" for a, b in ratios]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--late", default="/tmp/bl/run_base/checkpoint.pt")
    parser.add_argument("--early", default="/tmp/bl/run_base300/checkpoint.pt")
    parser.add_argument("--scene", default="/tmp/bl/scene")
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=3)
    # One thread by default: on a shared machine, 2-thread wall times swung up to 10x (a
    # descheduled OpenMP thread stalls every parallel region); one thread measures the work.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-so", help="another build of _raster_cpu, timed as 'base'")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_step.md"))
    args = parser.parse_args()
    if "OMP_WAIT_POLICY" not in os.environ:  # read once at start-up: re-run with it set
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    torch.set_num_threads(args.threads)

    extensions = {"old": cpu._extension(), "new": cpu._extension()}
    if args.baseline_so:
        extensions = {"base": load_extension(args.baseline_so), **extensions}
    variants = list(extensions)
    cams = load_cameras(args.scene, args.scale)
    models = {
        "late": lambda: load_model(args.late),
        "early (300 it)": lambda: load_model(args.early),
        "late, op 0.1, scale x2": lambda: load_model(args.late, opacity=0.1, scale_factor=2.0),
    }
    load_before = os.getloadavg()[0]
    results = {}
    for name, make in models.items():
        model = make()
        results[name] = (model["means"].shape[0], measure(model, cams, args.repeats, extensions))
        r = results[name][1]
        fwd = " / ".join(f"{r[f'{v}_fwd_ms']:.1f}" for v in variants)
        bwd = " / ".join(f"{r[f'{v}_bwd_ms']:.1f}" for v in variants)
        print(
            f"{name:24s} pairs {r['pairs']['old']:.0f} -> {r['pairs']['new']:.0f}  "
            f"fwd {fwd} ms  bwd {bwd} ms ({' / '.join(variants)})",
            flush=True,
        )
    text = table(results, variants)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} torch threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    command = "`" + " ".join([".venv/bin/python", "bench/bench_train_step.py", *sys.argv[1:]]) + "`"
    doc = (
        "# Training-step rasterizer cost on real Gaussians: old vs new tile binning\n\n"
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}  \n"
        f"Machine: {machine}  \nCommand: {command}  \n"
        f"Load average (1 min) at start / end: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
        "(other processes shared the cores: absolute times are inflated, the ratios of the "
        "interleaved runs are the result)\n\n"
        f"{len(cams)} training cameras at {cams[0][2]} x {cams[0][3]}, 19 channels (SH DC colour "
        "+ 16 features), no depth, float32; "
        f"{args.repeats} repeats, variants in rotating order per camera. old = tiles of the "
        "3-sigma square; new = the square cut to the alpha >= 1/255 box "
        "(`project.alpha_tile_rects`); both on this build of the extension"
        + (f"; base = the old rule on the build {args.baseline_so}" if args.baseline_so else "")
        + ". Outputs and gradients of all variants were checked equal (torch.equal) on every "
        "call. ms = median per call; per epoch = sum over the cameras.\n\n"
        + text
        + "\n"
    )
    print("\n" + text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(doc)


if __name__ == "__main__":
    main()
