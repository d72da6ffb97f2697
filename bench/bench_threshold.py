"""Which mask threshold t (cosine similarity to the prompt's feature) segments best.

The paper uses t = 0.7. This evaluates already trained runs of bench_train.py (default config,
one synthetic scene per seed) at several thresholds side by side, all on the held-out test views
of each run's scene. The threshold is only applied at query time, so no retraining is needed.
Runs of other variants found in the work folder (e.g. no_3d_loss) are listed too, at the same
thresholds, for comparison.
To keep the choice honest, the seeds are split: --choose seeds pick the threshold (best mean
mIoU), --check seeds were not looked at when choosing and show whether the choice holds.

    .venv/bin/python bench/bench_train.py --seed S --variants no_dissimilarity   # per seed, first
    .venv/bin/python bench/bench_threshold.py [--choose 0,1,2] [--check 3,4]

Prints and writes bench/results/threshold.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402

THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def evaluate_seed(work: Path, seed: int, variant: str = "no_dissimilarity") -> dict[float, dict]:
    run = load_run(work / f"run_{variant}_seed{seed}", device="cpu")
    return {t: evaluate_run(run.splats, run.scene, run.config.render, t) for t in THRESHOLDS}


def other_variants(work: Path, seeds: list[int]) -> dict[tuple[int, str], dict[float, dict]]:
    """Runs of the other bench_train variants found in `work` for these seeds (for comparison;
    they play no part in the choice)."""
    found = {}
    for seed in seeds:
        for path in sorted(work.glob(f"run_*_seed{seed}")):
            variant = path.name[len("run_"):-len(f"_seed{seed}")]
            if variant != "no_dissimilarity" and (path / "model.ply").is_file():
                found[(seed, variant)] = evaluate_seed(work, seed, variant)
    return found


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--choose", default="0,1,2", help="seeds that choose the threshold")
    parser.add_argument("--check", default="3,4", help="held-out seeds that check the choice")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "train"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results" / "threshold.md"))
    args = parser.parse_args()
    work = Path(args.work)
    choose = [int(s) for s in args.choose.split(",") if s]
    check = [int(s) for s in args.check.split(",") if s]
    results = {seed: evaluate_seed(work, seed) for seed in choose + check}
    best = max(THRESHOLDS, key=lambda t: mean([results[s][t]["mIoU"] for s in choose]))

    others = other_variants(work, choose + check)
    header = "| scene seed | role | " + " | ".join(f"t = {t}" for t in THRESHOLDS) + " |"
    lines = [
        "# Mask threshold: mIoU / mBIoU on held-out views, default config",
        "",
        f"- command: `.venv/bin/python bench/bench_threshold.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- date: {datetime.date.today().isoformat()}; runs from bench_train.py in {work}",
        f"- chosen on seeds {args.choose} (best mean mIoU): **t = {best}**; "
        f"checked on seeds {args.check}",
        "",
        header,
        "|---|---|" + "---|" * len(THRESHOLDS),
    ]
    for seed in choose + check:
        role = "choose" if seed in choose else "check"
        cells = [
            f"{results[seed][t]['mIoU']:.1f} / {results[seed][t]['mBIoU']:.1f}" for t in THRESHOLDS
        ]
        lines.append(f"| {seed} | {role} | " + " | ".join(cells) + " |")
    for role, seeds in (("choose", choose), ("check", check)):
        if seeds:
            cells = [
                f"{mean([results[s][t]['mIoU'] for s in seeds]):.1f} / "
                f"{mean([results[s][t]['mBIoU'] for s in seeds]):.1f}"
                for t in THRESHOLDS
            ]
            lines.append(f"| mean | {role} | " + " | ".join(cells) + " |")
    if others:
        lines += [
            "",
            "Other variants of bench_train.py found for these seeds (not used to choose t):",
            "",
            "| scene seed | variant | " + " | ".join(f"t = {t}" for t in THRESHOLDS) + " |",
            "|---|---|" + "---|" * len(THRESHOLDS),
        ]
        for (seed, variant), per_t in others.items():
            cells = [f"{per_t[t]['mIoU']:.1f} / {per_t[t]['mBIoU']:.1f}" for t in THRESHOLDS]
            lines.append(f"| {seed} | {variant} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text)


if __name__ == "__main__":
    main()
