"""Where the default CPU training iteration spends its time: torch.profiler over training steps.

Trains a built-in scene with the default config (CPU, as `cgc train`): either from scratch, first
`--warm` steps unprofiled (the model grows by densification), or from a finished run's checkpoint
(`--checkpoint`, the grown model, its optimiser state and corrections) continued from step
`--from-step`; then profiles `--steps` steps and reports the operators by self CPU time. Then
it times the parts of a step on their own, interleaved with whole steps (min and median of
`--repeats`): SH colour forward + backward, the photometric loss forward + backward, the render
(projection + rasterization + SH) forward + backward, and the seven Adam steps.

    .venv/bin/python bench/profile_iteration.py [--scene DIR] [--warm 600 | --checkpoint PT
                                                 --from-step 1500] [--steps 100]
                                                [--out bench/results/profile_iteration.md]
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
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from compare_training import trainer_for  # noqa: E402


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def time_parts(trainer, repeats: int) -> dict[str, list[float]]:
    """Seconds of each part of a step on the trainer's model and first view, interleaved."""
    from cgc_core.losses import rendering_loss
    from cgc_core.model.sh import eval_sh
    from cgc_core.model.view import render_view

    splats, view, config = trainer.splats, trainer.views[0], trainer.config
    degree = trainer.sh_degree
    centre = torch.linalg.inv(view.viewmat)[:3, 3]

    def sh():
        eval_sh(degree, splats["sh0"], splats["shN"], splats["means"] - centre).sum().backward()

    def loss():
        image = torch.rand(view.height, view.width, 3, requires_grad=True)
        rendering_loss(image, view.image, config.loss.ssim_lambda).backward()

    def render():
        out = render_view(splats, view.viewmat, view.K, view.width, view.height,
                          sh_degree=degree, render=config.render)
        out.rgb.sum().backward()

    def adam():
        for p in splats.values():
            p.grad = torch.zeros_like(p)
        for optimizer in trainer.optimizers.values():
            optimizer.step()

    parts = {"SH colour fwd + bwd": sh, "photometric loss fwd + bwd": loss,
             "render (incl. SH) fwd + bwd": render, "Adam, 7 optimisers": adam,
             "whole step": trainer.step}
    times: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(repeats):
        for name, part in parts.items():
            start = time.perf_counter()
            part()
            times[name].append(time.perf_counter() - start)
            for p in splats.values():
                p.grad = None
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path,
                        default=ROOT / "bench" / "out" / "robust" / "scene_seed0")
    parser.add_argument("--warm", type=int, default=600)
    parser.add_argument("--checkpoint", type=Path, help="start from this run's checkpoint.pt")
    parser.add_argument("--from-step", type=int, default=1500,
                        help="with --checkpoint: the step to continue from")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "profile_iteration.md")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    trainer = trainer_for(args.scene, {"train": {"device": "cpu"}})
    if args.checkpoint is not None:
        from cgc_core.train.trainer import load_checkpoint

        # The grown model only (of a run or a live session); Adam starts afresh.
        state = load_checkpoint(args.checkpoint)
        splats = state["splats"] if "splats" in state else state["trainer"]["splats"]  # a session
        trainer.splats = torch.nn.ParameterDict(
            {name: torch.nn.Parameter(value) for name, value in splats.items()})
        trainer.optimizers = trainer._make_optimizers()
        trainer.step_count = args.warm = args.from_step
    else:
        trainer.train(args.warm, progress=False)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        trainer.train(args.warm + args.steps, progress=False)
    seconds = time.perf_counter() - start
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows,
                                      max_name_column_width=60)
    parts = time_parts(trainer, args.repeats)
    command = " ".join([".venv/bin/python", "bench/profile_iteration.py", *sys.argv[1:]])
    text = "\n".join([
        "# Profile of the default CPU training iteration", "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} (shared: absolute times are inflated, shares less so)",
        f"- command: `{command}`",
        f"- scene {args.scene.name}, default config"
        f"{f', from {args.checkpoint}' if args.checkpoint else ''}; steps {args.warm + 1}-"
        f"{args.warm + args.steps} profiled, {trainer.splats['means'].shape[0]} Gaussians at the "
        f"end; {seconds / args.steps * 1000:.1f} ms / step under the profiler; torch threads "
        f"{torch.get_num_threads()}", "",
        "## Parts of a step, timed alone (ms)", "",
        "| part | min | median | share of a step (min) |", "|---|---|---|---|",
        *[f"| {name} | {min(ts) * 1000:.1f} | {statistics.median(ts) * 1000:.1f} | "
          f"{min(ts) / min(parts['whole step']):.0%} |" for name, ts in parts.items()], "",
        "## Operators by self CPU time", "",
        "```", table, "```", ""])
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
