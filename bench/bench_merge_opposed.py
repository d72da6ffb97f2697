"""Part merging's pressed-together guard (`cluster.pressed_together`), on trained maps.

For each run given: every pair of clustered parts that passes part merging's contact tests
(`merge_contact`, `merge_min_contact`, `merge_min_contact_share`, `merge_min_mutual_share`),
with the ground-truth object each part is mostly on (bench/objects_truth.py, from the scene's
depth and instance renders), the hull ratio the convexity test reads, and the two shares of
the contact where the surfaces are turned against each other (`cluster.facing_shares`:
opposed normals; opposed normals that also point toward the other part). Two parts of one
object should merge, two objects never. Then held-out mIoU / mBIoU of each run with the guard
as configured (both counts), with either count alone, with no guard, and without part merging
at query time (`query.whole_objects: false`), side by side.

    .venv/bin/python bench/bench_merge_opposed.py RUN [RUN ...] [--label merge_facing]

Each RUN is a `cgc train` or `cgc stream` folder of a built-in scene, scored with today's
defaults for these keys (a saved run's own values are replaced). Prints and writes
bench/results/<label>.md and .json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name, publish  # noqa: E402
from objects_truth import gaussian_instances, object_names  # noqa: E402

import cgc_core.objects.cluster as cluster  # noqa: E402
from cgc_core.app.evaluate import evaluate_run  # noqa: E402
from cgc_core.app.run_folder import load_run  # noqa: E402
from cgc_core.config import ObjectsConfig  # noqa: E402


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
            opposed, facing = cluster.facing_shares(pa, pb, reach, tree_a, tree_b,
                                                    config.merge_facing_min_cosine)
            joint = cluster.hull_volume(np.vstack([pa, pb]))
            rows.append({
                "a": name_a, "a_purity": purity_a, "a_gaussians": len(pa),
                "b": name_b, "b_purity": purity_b, "b_gaussians": len(pb),
                "same_object": name_a == name_b, "contact_shares": list(shares),
                "hull_ratio": joint / max(cluster.hull_volume(pa) + cluster.hull_volume(pb),
                                          1e-12),
                "opposed_share": opposed, "facing_share": facing,
                "kept_apart": cluster.pressed_together(opposed, facing, config)})
    return rows


GUARD_KEYS = ("merge_max_opposed_share", "merge_max_facing_share", "merge_facing_min_cosine")


def variants_of(config: ObjectsConfig) -> list[tuple[str, dict]]:
    """(name, objects overrides): the guard as configured, either count alone, none."""
    opposed, facing = config.merge_max_opposed_share, config.merge_max_facing_share
    return [("both counts (default)", {}),
            (f"opposed > {opposed:g} alone", {"merge_max_facing_share": -1.0}),
            (f"facing > {facing:g} alone", {"merge_max_opposed_share": -1.0}),
            ("no guard", {"merge_max_opposed_share": 1.0})]


def bench_run(run_dir: Path) -> dict:
    """The run's contact pairs, and its held-out scores under each guard variant and with
    `query.whole_objects` off (no part merging at query time)."""
    run = load_run(run_dir)
    defaults = ObjectsConfig()
    config = dataclasses.replace(run.config.objects,
                                 **{key: getattr(defaults, key) for key in GUARD_KEYS})
    points, parts = clustered_parts(run.splats, config)
    scene = run.scene
    truth = gaussian_instances(points, scene, scene.train_names)
    pairs = contact_pairs(points, parts, truth, object_names(scene.root), config)
    scores = {}
    variants = [(name, run.config.query, dataclasses.replace(config, **overrides))
                for name, overrides in variants_of(config)]
    variants.append(("whole objects off",
                     dataclasses.replace(run.config.query, whole_objects=False), config))
    for variant, query, objects in variants:
        if not pairs and scores and objects is not config:  # no pair to guard: all alike
            scores[variant] = next(iter(scores.values()))
            continue
        result = evaluate_run(run.splats, scene, run.config.render, run.config.query.threshold,
                              query, objects)
        scores[variant] = [result["mIoU"], result["mBIoU"]]
        print(run_dir.name, variant, scores[variant], flush=True)
    return {"run": str(run_dir), "scene": str(scene.root), "pairs": pairs, "scores": scores}


def write_results(rows: list[dict], label: str) -> None:
    out = ROOT / "bench" / "results" / f"{label}.md"
    c = ObjectsConfig()
    lines = [
        "# Part merging's pressed-together guard (`cluster.pressed_together`)", "",
        f"- command: `py bench/bench_merge_opposed.py {' '.join(sys.argv[1:])}`",
        f"- machine: {cpu_name()}, 2 cores, no GPU", f"- date: {datetime.date.today()}",
        f"- guard: two touching parts stay apart when more than {c.merge_max_opposed_share:g} "
        "of their contact has opposed outward normals (over 90 degrees apart) and more than "
        f"{c.merge_max_facing_share:g} has opposed normals that also point toward the other "
        f"part (cosine above {c.merge_facing_min_cosine:g} with the line between the parts' "
        "centres)", "",
        "Every pair of clustered parts that passes the contact tests. Part: the ground-truth "
        "object most of its Gaussians lie on (share). Same: both parts on one object, so they "
        "should merge; otherwise they must not (unless another test keeps them apart: the "
        "hull ratio of their whole group, or the blur guard).", "",
        "| run | part a (share, Gaussians) | part b (share, Gaussians) | same | contact shares "
        "| hull ratio | opposed | facing | guard keeps apart |",
        "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for p in row["pairs"]:
            lines.append(
                f"| {Path(row['run']).name} | {p['a']} ({p['a_purity']:.2f}, {p['a_gaussians']}) "
                f"| {p['b']} ({p['b_purity']:.2f}, {p['b_gaussians']}) "
                f"| {'yes' if p['same_object'] else 'no'} | {p['contact_shares'][0]:.2f} / "
                f"{p['contact_shares'][1]:.2f} | {p['hull_ratio']:.2f} | "
                f"{p['opposed_share']:.2f} | {p['facing_share']:.2f} | "
                f"{'yes' if p['kept_apart'] else 'no'} |")
    variants = list(rows[0]["scores"])
    lines += ["", "Held-out mIoU / mBIoU of the same map with the guard as configured, with "
              "either count alone, with no guard, and with no part merging at query time "
              "(`query.whole_objects: false`):", "",
              "| run | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for row in rows:
        lines.append(f"| {Path(row['run']).parent.name}/{Path(row['run']).name} | " + " | ".join(
            f"{row['scores'][v][0]:.2f} / {row['scores'][v][1]:.2f}" for v in variants) + " |")
    publish(out, "\n".join(lines) + "\n", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--label", default="merge_facing")
    args = parser.parse_args()
    rows = [bench_run(Path(run)) for run in args.runs]
    write_results(rows, args.label)


if __name__ == "__main__":
    main()
