"""Eq. 6's threshold: the fixed t against rules that choose t per prompt, on trained runs.

For each run (a `cgc train` folder of a built-in scene), every prompt of the scene's
prompts.json gives its feature as in `cgc eval`; each rule then picks that object's t, and the
held-out views are scored with it (mIoU / mBIoU, `cgc eval`'s protocol). Rules:

- fixed: `query.threshold` (0.75), the default;
- stable: in the prompt's own view, the t in 0.725-0.925 whose connected region around the
  prompt pixel changes least between its neighbouring candidates (IoU of the regions at
  t - 0.025 and t + 0.025; SAM's stability score);
- otsu: Otsu's threshold of the prompt view's similarities above 0.5, clipped to [0.7, 0.95];
- valley: the least populated similarity in [0.7, 0.95] of the model's Gaussians to the prompt
  (opacity-weighted histogram, 50 bins over [0.5, 1], smoothed over 3): the gap between the
  object's Gaussians and the rest;
- valley >= t: the valley, but never below the fixed t;
- oracle: each object's best t of the candidates (0.7-0.95 in steps of 0.025), chosen on the
  held-out ground truth itself: an upper bound, not a rule.

    .venv/bin/python bench/bench_threshold_rules.py RUN [RUN ...] [--out bench/results/NAME]

Prints and writes NAME.md (default bench/results/threshold_rules.md).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.app.evaluate import score_prompted  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402
from cgc_core.config import QueryConfig  # noqa: E402
from cgc_core.data.ground_truth import load_gt_masks, load_prompts  # noqa: E402
from cgc_core.query import similarity_map  # noqa: E402
from cgc_core.service.query import FeatureCache, prompted_objects  # noqa: E402

CANDIDATES = np.round(np.arange(0.70, 0.951, 0.025), 3)
RULES = ("fixed", "stable", "otsu", "valley", "valley >= t", "oracle")


def region(similarity: np.ndarray, t: float, row: int, col: int) -> np.ndarray:
    """[H, W] bool: the connected part of similarity >= t that holds (row, col)."""
    labels, _ = ndimage.label(similarity >= t)
    return labels == labels[row, col] if labels[row, col] else np.zeros(similarity.shape, bool)


def stable_t(similarity: np.ndarray, row: int, col: int) -> float:
    regions = [region(similarity, t, row, col) for t in CANDIDATES]

    def iou(a, b):
        union = (a | b).sum()
        return (a & b).sum() / union if union else 0.0

    scores = [iou(regions[i - 1], regions[i + 1]) for i in range(1, len(CANDIDATES) - 1)]
    return float(CANDIDATES[1 + int(np.argmax(scores))])


def otsu_t(similarity: np.ndarray, fixed: float) -> float:
    values = similarity[similarity >= 0.5]
    if values.size < 10:
        return fixed
    hist, edges = np.histogram(values, bins=64, range=(0.5, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(hist)
    above = below[-1] - below
    mean_below = np.cumsum(hist * centres) / np.maximum(below, 1)
    mean_above = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(np.clip(edges[1 + int(np.argmax(between[:-1]))], 0.7, 0.95))


def valley_t(cosines: np.ndarray, opacities: np.ndarray) -> float:
    hist, edges = np.histogram(cosines, bins=50, range=(0.5, 1.0), weights=opacities)
    hist = np.convolve(hist, np.ones(3) / 3, mode="same")
    centres = (edges[:-1] + edges[1:]) / 2
    inside = (centres >= 0.7) & (centres <= 0.95)
    return float(centres[inside][np.argmin(hist[inside])])


@torch.no_grad()
def bench_run(run_dir: Path) -> dict[str, tuple[float, float | None]]:
    run = load_run(run_dir)
    query, fixed = QueryConfig(), run.config.query.threshold
    gt = load_gt_masks(run.scene.root)
    prompts = load_prompts(run.scene.root / "prompts.json")
    features = FeatureCache(run.splats, run.scene, run.config.render)
    objects = {o.id: o for o in prompted_objects(prompts, features, query)}
    unit = torch.nn.functional.normalize(run.splats["features"], dim=-1)
    opacities = torch.sigmoid(run.splats["opacities"]).cpu().numpy()
    chosen = {rule: {} for rule in RULES[:-1]}
    for p in prompts:
        similarity = similarity_map(features(p.frame), objects[p.id].feature).cpu().numpy()
        row, col = int(p.point[1]), int(p.point[0])
        cosines = (unit @ torch.nn.functional.normalize(objects[p.id].feature, dim=0)).cpu()
        chosen["fixed"][p.id] = fixed
        chosen["stable"][p.id] = stable_t(similarity, row, col)
        chosen["otsu"][p.id] = otsu_t(similarity, fixed)
        chosen["valley"][p.id] = valley_t(cosines.numpy(), opacities)
        chosen["valley >= t"][p.id] = max(fixed, chosen["valley"][p.id])
    result = {}
    for rule, thresholds in chosen.items():
        scores = score_prompted(objects, gt, features, query, thresholds)
        result[rule] = (scores["mIoU"], scores["mBIoU"])
    best: dict[str, float] = {}
    for t in CANDIDATES:
        per_object = score_prompted(objects, gt, features, query,
                                    dict.fromkeys(objects, float(t)))
        for name, values in per_object["per_object"].items():
            best[name] = max(best.get(name, 0.0), values["mIoU"])
    result["oracle"] = (float(np.mean(list(best.values()))), None)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "threshold_rules")
    args = parser.parse_args()
    rows = []
    for run_dir in args.runs:
        result = bench_run(run_dir)
        cells = [f"{m:.1f}" + ("" if b is None else f" / {b:.1f}") for m, b in result.values()]
        rows.append(f"| {run_dir} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    lines = [
        "# Eq. 6's threshold: fixed t against per-prompt rules", "",
        f"- command: `.venv/bin/python bench/bench_threshold_rules.py "
        f"{' '.join(str(r) for r in args.runs)}`",
        f"- machine: {cpu_name()}; date: {datetime.date.today().isoformat()}",
        "- mIoU / mBIoU on the held-out views (`cgc eval` protocol); rules in the script's "
        "docstring; oracle: each object's best t on the ground truth (mIoU, an upper bound)", "",
        "| run | " + " | ".join(RULES) + " |", "|---|" + "---|" * len(RULES), *rows, ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
