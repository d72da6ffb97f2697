"""Which mask threshold t (cosine similarity to the prompt's feature) segments best.

The paper uses t = 0.7. This evaluates already trained runs (one synthetic scene per seed) at
several thresholds side by side, all on the held-out test views of each run's scene. The threshold
of Eq. 6 (`query.threshold`) is only applied at query time, so no retraining is needed; each
run's features are rendered once for all thresholds. Other runs found in the work folder for the
same seeds (e.g. no_3d_loss) are listed too, at the same thresholds, for comparison.
To keep the choice honest, the seeds are split: --choose seeds pick the threshold (best mean
mIoU), --check seeds were not looked at when choosing and show whether the choice holds.

    .venv/bin/python bench/bench_train.py --seed S --variants no_dissimilarity   # per seed, first
    .venv/bin/python bench/bench_threshold.py [--choose 0,1,2] [--check 3,4]
    # runs of bench_scenes.py (WORK/run_LABEL_seedS):
    .venv/bin/python bench/bench_threshold.py --runs snap --work /tmp/cal/objects \
        --choose 0,3,100,101,200,201,302,400 --check 1,102,... --thresholds 0.5,0.55,...

Prints and writes bench/results/threshold.md (or --results).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_train import cpu_name  # noqa: E402

from cgc_core.app.evaluate import evaluate_at_thresholds  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402
from cgc_core.config import QueryConfig  # noqa: E402

THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def evaluate_seed(work: Path, seed: int, variant: str, thresholds) -> dict[float, dict]:
    """{t: mIoU results} of WORK/run_<variant>_seed<seed> with the default query settings."""
    run = load_run(work / f"run_{variant}_seed{seed}", device="cpu")
    return evaluate_at_thresholds(run.splats, run.scene, run.config.render, thresholds,
                                  QueryConfig(), run.config.objects)


def other_variants(work: Path, seeds: list[int], chosen: str,
                   thresholds) -> dict[tuple[int, str], dict[float, dict]]:
    """Runs of other variants found in `work` for these seeds (for comparison; they play no
    part in the choice)."""
    found = {}
    for seed in seeds:
        for path in sorted(work.glob(f"run_*_seed{seed}")):
            variant = path.name[len("run_"):-len(f"_seed{seed}")]
            if variant != chosen and (path / "model.ply").is_file():
                found[(seed, variant)] = evaluate_seed(work, seed, variant, thresholds)
    return found


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--choose", default="0,1,2", help="seeds that choose the threshold")
    parser.add_argument("--check", default="3,4", help="held-out seeds that check the choice")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "train"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results" / "threshold.md"))
    parser.add_argument("--runs", default="no_dissimilarity",
                        help="the runs WORK/run_RUNS_seedS (bench_train.py's variant, or "
                             "bench_scenes.py's label)")
    parser.add_argument("--thresholds", default=",".join(map(str, THRESHOLDS)))
    parser.add_argument("--tie", type=float, default=0.0,
                        help="mIoU within which means count as tied (the higher t wins)")
    parser.add_argument("--no-others", action="store_true",
                        help="skip the other runs found in WORK for these seeds")
    args = parser.parse_args()
    work = Path(args.work)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    choose = [int(s) for s in args.choose.split(",") if s]
    check = [int(s) for s in args.check.split(",") if s]
    results = {}
    for seed in choose + check:
        results[seed] = evaluate_seed(work, seed, args.runs, thresholds)
        print(f"seed {seed}: " + ", ".join(f"t {t}: {r['mIoU']:.1f}"
                                           for t, r in results[seed].items()), flush=True)
    score = {t: mean([results[s][t]["mIoU"] for s in choose]) for t in thresholds}
    # Within --tie of the best mean, the highest t: fewer stray pixels, nearer the paper's 0.7.
    best = max(t for t in thresholds if score[t] >= max(score.values()) - args.tie)

    others = {} if args.no_others else other_variants(work, choose + check, args.runs,
                                                      thresholds)
    header = "| scene seed | role | " + " | ".join(f"t = {t}" for t in thresholds) + " |"
    lines = [
        "# Mask threshold: mIoU / mBIoU on held-out views, default config",
        "",
        f"- command: `.venv/bin/python bench/bench_threshold.py {' '.join(sys.argv[1:])}`".rstrip(),
        f"- machine: {cpu_name()}; date: {datetime.date.today().isoformat()}; runs "
        f"`run_{args.runs}_seedS` in {work}; query settings: the defaults but t",
        f"- chosen on seeds {args.choose} (best mean mIoU; the highest t within {args.tie:g} of "
        f"it): **t = {best}**; "
        f"checked on seeds {args.check}",
        "",
        header,
        "|---|---|" + "---|" * len(thresholds),
    ]
    for seed in choose + check:
        role = "choose" if seed in choose else "check"
        cells = [
            f"{results[seed][t]['mIoU']:.1f} / {results[seed][t]['mBIoU']:.1f}" for t in thresholds
        ]
        lines.append(f"| {seed} | {role} | " + " | ".join(cells) + " |")
    for role, seeds in (("choose", choose), ("check", check)):
        if seeds:
            cells = [
                f"{mean([results[s][t]['mIoU'] for s in seeds]):.1f} / "
                f"{mean([results[s][t]['mBIoU'] for s in seeds]):.1f}"
                for t in thresholds
            ]
            lines.append(f"| mean | {role} | " + " | ".join(cells) + " |")
            cells = [f"{min(results[s][t]['mIoU'] for s in seeds):.1f}" for t in thresholds]
            lines.append(f"| min mIoU | {role} | " + " | ".join(cells) + " |")
    if others:
        lines += [
            "",
            "Other runs found for these seeds (not used to choose t):",
            "",
            "| scene seed | variant | " + " | ".join(f"t = {t}" for t in thresholds) + " |",
            "|---|---|" + "---|" * len(thresholds),
        ]
        for (seed, variant), per_t in others.items():
            cells = [f"{per_t[t]['mIoU']:.1f} / {per_t[t]['mBIoU']:.1f}" for t in thresholds]
            lines.append(f"| {seed} | {variant} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text)


if __name__ == "__main__":
    main()
