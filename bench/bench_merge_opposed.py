"""Part merging's facing-surfaces guard (`objects.merge_max_opposed_share`), on trained maps.

For each run given: every pair of clustered parts that passes part merging's contact tests
(`merge_contact`, `merge_min_contact`, `merge_min_contact_share`, `merge_min_mutual_share`),
with the ground-truth object each part is mostly on (bench/objects_truth.py, from the scene's
depth and instance renders), the hull ratio the convexity test reads, and the share of the
contact where the two surfaces face each other (`cgc_core.objects.cluster.opposed_share`). Two
parts of one object should merge, two objects never. Then held-out mIoU / mBIoU of each run with
the guard at each of --limits (default: the config's and 1.0, no guard) and without part
merging at query time (`query.whole_objects: false`), side by side.

    .venv/bin/python bench/bench_merge_opposed.py RUN [RUN ...] [--label merge_opposed]
        [--limits 0.2,0.4,1]

Each RUN is a `cgc train` or `cgc stream` folder of a built-in scene. Prints and writes
bench/results/<label>.md and .json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402
from objects_truth import gaussian_instances, object_names  # noqa: E402

import cgc_core.objects.cluster as cluster  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402


def clustered_parts(splats, config) -> tuple[np.ndarray, np.ndarray]:
    """(points [N, 3], parts [N]) as `merge_convex_parts` receives them from `cluster_objects`."""
    seen = {}
    original = cluster.merge_convex_parts

    def keep(points, parts, objects_config, *features):
        seen["points"], seen["parts"] = points, parts.copy()
        return original(points, parts, objects_config, *features)

    cluster.merge_convex_parts = keep
    try:
        cluster.cluster_objects(splats, config)
    finally:
        cluster.merge_convex_parts = original
    return seen["points"], seen["parts"]


def contact_pairs(points: np.ndarray, parts: np.ndarray, truth: np.ndarray,
                  names: dict[int, str], config) -> list[dict]:
    """The pairs of non-background parts that pass the contact tests, with what they are."""
    members = {int(p): np.flatnonzero(parts == p) for p in np.unique(parts[parts >= 0])}
    objects = [p for p, index in members.items() if len(index) >= 4
               and not cluster.is_background(cluster._boxes(points[index])[3], config)]
    reach, rows = config.merge_contact, []

    def owner(index: np.ndarray) -> tuple[str, float]:
        ids, counts = np.unique(truth[index], return_counts=True)
        best = int(np.argmax(counts))
        return names.get(int(ids[best]), "none"), float(counts[best] / len(index))

    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            pa, pb = points[members[a]], points[members[b]]
            tree_a, tree_b = cKDTree(pa), cKDTree(pb)
            shares = cluster.face_contact(pa, pb, tree_a, tree_b, config)
            if shares is None:
                continue
            (name_a, purity_a), (name_b, purity_b) = owner(members[a]), owner(members[b])
            joint = cluster.hull_volume(np.vstack([pa, pb]))
            rows.append({
                "a": name_a, "a_purity": purity_a, "a_gaussians": len(pa),
                "b": name_b, "b_purity": purity_b, "b_gaussians": len(pb),
                "same_object": name_a == name_b, "contact_shares": list(shares),
                "hull_ratio": joint / max(cluster.hull_volume(pa) + cluster.hull_volume(pb),
                                          1e-12),
                "opposed_share": cluster.opposed_share(pa, pb, reach, tree_a, tree_b)})
    return rows


def bench_run(run_dir: Path, limits: list[float]) -> dict:
    """The run's contact pairs, and its held-out scores with the guard at each of `limits`
    (1.0: no guard) and with `query.whole_objects` off (no part merging at query time)."""
    run = load_run(run_dir)
    config = run.config.objects
    points, parts = clustered_parts(run.splats, config)
    scene = run.scene
    truth = gaussian_instances(points, scene, scene.train_names)
    pairs = contact_pairs(points, parts, truth, object_names(scene.root), config)
    scores = {}
    variants = [(f"guard {limit:g}", run.config.query,
                 dataclasses.replace(config, merge_max_opposed_share=limit)) for limit in limits]
    variants.append(("whole objects off",
                     dataclasses.replace(run.config.query, whole_objects=False), config))
    for variant, query, objects in variants:
        result = evaluate_run(run.splats, scene, run.config.render, run.config.query.threshold,
                              query, objects)
        scores[variant] = [result["mIoU"], result["mBIoU"]]
        print(run_dir.name, variant, scores[variant], flush=True)
    return {"run": str(run_dir), "scene": str(scene.root), "pairs": pairs, "scores": scores}


def write_results(rows: list[dict], label: str, limit: float) -> None:
    """`limit`: the guard the pair table marks (the first of --limits)."""
    out = ROOT / "bench" / "results" / f"{label}.md"
    lines = [
        "# Part merging's facing-surfaces guard (`objects.merge_max_opposed_share`)", "",
        f"- command: `py bench/bench_merge_opposed.py {' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_name()}, 2 cores, no GPU", f"- date: {datetime.date.today()}",
        f"- guard: parts stay apart when more than {limit:g} of their contact faces the other "
        "part (outward normals over 90 degrees apart)", "",
        "Every pair of clustered parts that passes the contact tests. Part: the ground-truth "
        "object most of its Gaussians lie on (share). Same: both parts on one object, so they "
        "should merge; otherwise they must not.", "",
        "| run | part a (share, Gaussians) | part b (share, Gaussians) | same | contact shares "
        "| hull ratio | facing share | guard keeps apart |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for p in row["pairs"]:
            lines.append(
                f"| {Path(row['run']).name} | {p['a']} ({p['a_purity']:.2f}, {p['a_gaussians']}) "
                f"| {p['b']} ({p['b_purity']:.2f}, {p['b_gaussians']}) "
                f"| {'yes' if p['same_object'] else 'no'} | {p['contact_shares'][0]:.2f} / "
                f"{p['contact_shares'][1]:.2f} | {p['hull_ratio']:.2f} | "
                f"{p['opposed_share']:.2f} | {'yes' if p['opposed_share'] > limit else 'no'} |")
    variants = list(rows[0]["scores"])
    lines += ["", "Held-out mIoU / mBIoU of the same map with the guard at each limit "
              "(`merge_max_opposed_share`; 1: no guard) and with no part merging at query time "
              "(`query.whole_objects: false`):", "",
              "| run | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for row in rows:
        lines.append(f"| {Path(row['run']).parent.name}/{Path(row['run']).name} | " + " | ".join(
            f"{row['scores'][v][0]:.2f} / {row['scores'][v][1]:.2f}" for v in variants) + " |")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--label", default="merge_opposed")
    parser.add_argument("--limits", default=None,
                        help="comma-separated guards to score each map at (default: the "
                             "config's, then 1 = no guard); the first marks the pair table")
    args = parser.parse_args()
    limits = ([float(v) for v in args.limits.split(",")] if args.limits else
              [load_run(Path(args.runs[0])).config.objects.merge_max_opposed_share, 1.0])
    rows = [bench_run(Path(run), limits) for run in args.runs]
    write_results(rows, args.label, limits[0])


if __name__ == "__main__":
    main()
