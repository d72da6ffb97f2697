"""Quality and speed of CGC training on the built-in synthetic scene, with the paper's ablation.

One run trains, with the default config and on the same deliberately inconsistent (SAM-like)
masks: the complete model and the ablations of the paper's Table 3 (no 3D loss = no
spatial-similarity regularizer, no similarity term, no dissimilarity term). It evaluates each on
the held-out test views (mIoU / mBIoU over test_mask/, prompts from prompts.json) and compares
with the "no 3D" baseline: the same inconsistent masks used view by view, where for each test view
the segment under the object's most interior ground-truth pixel is taken as the prediction (an
oracle choice that favours the baseline).

    .venv/bin/python bench/bench_train.py [--seed 0] [--variants complete,no_3d,...]
                                          [--iterations N]

Prints and writes bench/results/train.md. For the default training across the scene families
(small objects, wide views, split and merged masks), one row per scene, see bench_scenes.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import train_scene  # noqa: E402
from cgc_core.config import apply_overrides  # noqa: E402
from cgc_core.data import load_scene  # noqa: E402
from cgc_core.data.ground_truth import load_gt_masks  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene  # noqa: E402
from cgc_core.io import read_label_png  # noqa: E402
from cgc_core.metrics import evaluate_masks  # noqa: E402

# Each variant sets both switches, so the table does not depend on the config's defaults
# (the default is "no_dissimilarity", see LossConfig.use_dissimilarity).
VARIANTS = {
    "no_3d_loss": {"loss": {"use_similarity": False, "use_dissimilarity": False}},
    "no_similarity": {"loss": {"use_similarity": False, "use_dissimilarity": True}},
    "no_dissimilarity": {"loss": {"use_similarity": True, "use_dissimilarity": False}},
    "complete": {"loss": {"use_similarity": True, "use_dissimilarity": True}},
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def publish(out: Path, text: str, data: dict) -> None:
    """Print a bench's results table and write it to OUT.md with its data as OUT.json."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")


def per_view_baseline(scene_dir: Path, masks: dict[str, np.ndarray] | None = None) -> dict:
    """The inconsistent masks used view by view (see module docstring); `masks` {frame: [H, W]
    segment ids} replaces the scene's masks_inconsistent/ (bench_mask_snap.py)."""
    gt = load_gt_masks(scene_dir)
    predictions, pairs = {}, {}
    for frame, objects in gt.items():
        segments = masks[frame] if masks is not None else \
            read_label_png(scene_dir / "masks_inconsistent" / f"{frame}.png")
        for name, mask in objects.items():
            pairs[(frame, name)] = mask
            inside = distance_transform_edt(mask)
            row, col = np.unravel_index(np.argmax(inside), mask.shape)
            segment = segments[row, col]
            predictions[(frame, name)] = (
                (segments == segment) if segment > 0 else np.zeros_like(mask)
            )
    return evaluate_masks(predictions, pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--iterations", type=int, help="default: the config's per-device choice")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "train"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results" / "train.md"))
    args = parser.parse_args()
    work = Path(args.work)
    scene_dir = work / f"scene_seed{args.seed}"
    start = time.perf_counter()
    make_synthetic_scene(scene_dir, seed=args.seed)
    synth_seconds = time.perf_counter() - start
    scene = load_scene(scene_dir)
    rows = []
    baseline = per_view_baseline(scene_dir)
    rows.append(("per-view inconsistent masks (no 3D)", baseline, None, None))
    for name in args.variants.split(","):
        config = apply_overrides(load_config(), VARIANTS[name])
        if args.iterations:
            apply_overrides(config, {"train": {"iterations": args.iterations}})
        run = train_scene(
            scene_dir,
            work / f"run_{name}_seed{args.seed}",
            config=config,
            masks_dir=scene_dir / "masks_inconsistent",
            progress=False,
        )
        results = evaluate_run(run.splats, run.scene, config.render, config.query.threshold,
                               query=config.query)
        rows.append((name, results, run.info["train_seconds"], run.info["num_gaussians"]))
        print(
            f"{name}: mIoU {results['mIoU']:.1f} mBIoU {results['mBIoU']:.1f} "
            f"in {run.info['train_seconds']:.0f} s",
            flush=True,
        )
    info = rows[-1][1]
    train_res = f"{scene.cameras[0].width}x{scene.cameras[0].height}"
    lines = [
        "# CGC training benchmark (synthetic scene, inconsistent masks)",
        "",
        f"- command: `.venv/bin/python bench/bench_train.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- machine: {cpu_name()}, {__import__('os').cpu_count()} cores, no GPU",
        f"- date: {datetime.date.today().isoformat()}",
        f"- scene: `cgc synth --seed {args.seed}`: {len(scene.train_names)} train / "
        f"{len(scene.test_names)} test views at {train_res}, made in {synth_seconds:.1f} s; "
        f"{len(info.get('per_object', {}))} objects evaluated",
        "",
        "| method | mIoU | mBIoU | train time (s) | Gaussians | mIoU vs per-view |",
        "|---|---|---|---|---|---|",
    ]
    for name, results, seconds, count in rows:
        gain = results["mIoU"] - baseline["mIoU"]
        lines.append(
            f"| {name} | {results['mIoU']:.1f} | {results['mBIoU']:.1f} | "
            f"{'' if seconds is None else f'{seconds:.0f}'} | "
            f"{'' if count is None else count} | {gain:+.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
