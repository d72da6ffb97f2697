"""Objects on built-in scenes: clustering vs the true objects, extraction accuracy, colour words,
timing.

For each seed: the scene (`cgc synth`) and a run trained on its SAM-like inconsistent masks with
the default config, as bench_scenes.py trains them (reused when `WORK/run_seedS/run.json`
exists). Then:

- clustering: every Gaussian gets its true object by projecting its centre into the test views
  and every 4th train view, where it lies on the visible surface (within 2 cm of the depth);
  each true object's Gaussians are looked up in the clusters. An object is split when a second
  cluster holds at least 20 % of its clustered Gaussians, merged when its cluster's truth-labelled
  Gaussians are at least 20 % another object's; missing when no cluster holds 20 %;
- extraction: a pixel prompt in the held-out (test) view that shows the object best (its most
  interior pixel); the point cloud taken from the object rendered alone in 8 training views
  (`objects.surface_views`); the points vs the true surface, back-projected from the instance
  maps and depth: accuracy = share of points within 1 cm of the object's surface in any view,
  completeness = share of the surface seen in the test views within 1 cm of a point;
- colour words: each object whose pixels' most common colour name (same CIELAB table) no other
  object shares is queried by that word; right when the answer is found and is its cluster;
  likewise "the largest object" / "the smallest object" against the true objects' oriented box
  volumes (of their surface back-projected from every view);
- timing: `cluster_objects` on the whole model (median and min of 5, with the machine's 1-minute
  load average: other jobs share these 2 cores); one extraction (median over the
  objects), with its pixel prompt (one render of features and depth at 320x240) and alone.

    .venv/bin/python bench/bench_objects.py [--seeds 0,100,200,302,400] [--work DIR]

Prints and writes bench/results/objects.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scenes import parse_overrides  # noqa: E402
from bench_train import cpu_name  # noqa: E402
from objects_truth import gaussian_instances, instances, object_names, visible_surface  # noqa: E402

from cgc_core.app.config_file import load_config  # noqa: E402
from cgc_core.app.objects import keyframes_of  # noqa: E402
from cgc_core.app.run_folder import load_run, train_scene  # noqa: E402
from cgc_core.config import apply_overrides  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene  # noqa: E402
from cgc_core.objects import cluster_objects, extract_object, ground_text  # noqa: E402
from cgc_core.objects.colors import colour_shares  # noqa: E402
from cgc_core.service.query import pixel_object  # noqa: E402

SHARE = 0.2
"""Split / merge / missing cut-off (share of an object's or a cluster's Gaussians)."""


def ensure_run(work: Path, seed: int, overrides: dict | None = None, prefix: str = "run") -> Path:
    run_dir = work / f"{prefix}_seed{seed}"
    if (run_dir / "run.json").is_file():
        return run_dir
    scene_dir = work / f"scene_seed{seed}"
    if not (scene_dir / "transforms.json").is_file():
        make_synthetic_scene(scene_dir, seed=seed)
    train_scene(scene_dir, run_dir, config=apply_overrides(load_config(), overrides or {}),
                progress=False, masks_dir=scene_dir / "masks_inconsistent")
    return run_dir


def match_clusters(truth: np.ndarray, clusters: np.ndarray, names: dict[int, str]) -> list[dict]:
    """Per true object: its main cluster, the shares, and split / merged / missing flags."""
    rows = []
    labelled = truth > 0
    for instance, name in names.items():
        own = clusters[(truth == instance) & (clusters >= 0)]
        row = {"object": name, "gaussians": int((truth == instance).sum()),
               "clustered": int(len(own)), "cluster": None, "share": 0.0, "purity": 0.0,
               "split": False, "merged_with": [], "missing": True}
        if len(own):
            ids, counts = np.unique(own, return_counts=True)
            order = np.argsort(-counts)
            shares = counts[order] / len(own)
            main = int(ids[order[0]])
            inside = truth[(clusters == main) & labelled]
            others = {names.get(int(i), f"id{int(i)}"): float(np.mean(inside == i))
                      for i in np.unique(inside) if i != instance and i in names}
            row.update(cluster=main, share=float(shares[0]),
                       purity=float(np.mean(inside == instance)),
                       split=bool(len(shares) > 1 and shares[1] >= SHARE),
                       merged_with=sorted(n for n, s in others.items() if s >= SHARE),
                       missing=bool(shares[0] < SHARE))
        rows.append(row)
    return rows


def best_prompt(scene, instance: int) -> tuple[str, float, float] | None:
    """(test frame, u, v): the most interior pixel of the object in the test view showing it
    best."""
    best = None
    for frame in scene.test_names:
        inside = ndimage.distance_transform_edt(instances(scene, frame) == instance)
        if best is None or inside.max() > best[0]:
            row, col = np.unravel_index(np.argmax(inside), inside.shape)
            best = (inside.max(), frame, col + 0.5, row + 0.5)
    return None if best is None or best[0] < 2 else best[1:]


def image_colour(scene, instance: int) -> tuple[str, float]:
    """(most common colour name, its share) of the object's pixels in the test images."""
    pixels = [scene.load_image(f)[instances(scene, f) == instance] for f in scene.test_names]
    pixels = np.concatenate(pixels).astype(np.float64) / 255.0
    if len(pixels) == 0:
        return "", 0.0
    shares = colour_shares(pixels, np.ones(len(pixels)))
    name = next(iter(shares))
    return name, shares[name]


def oriented_volume(points: np.ndarray) -> float:
    """Volume of the oriented box (open3d, PCA) of [P, 3] points."""
    import open3d as o3d
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    return float(np.prod(cloud.get_oriented_bounding_box().extent))


def bench_scene(run_dir: Path, seed: int, query_overrides: dict | None = None) -> dict:
    run = load_run(run_dir, device="cpu")
    scene, config = run.scene, run.config
    if query_overrides:  # settings read after training (objects, query) on a trained run
        config = apply_overrides(config, query_overrides)
    splats = {k: v.detach() for k, v in run.splats.items()}
    names = object_names(scene.root)
    n = len(splats["means"])
    load = os.getloadavg()[0]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        table = cluster_objects(splats, config.objects)
        times.append(time.perf_counter() - start)
    truth = gaussian_instances(splats["means"].numpy().astype(np.float64), scene,
                               scene.test_names + scene.train_names[::4])
    matching = match_clusters(truth, table.gaussian_object, names)
    by_name = {row["object"]: row for row in matching}

    extraction, extract_times, extract_only_times = [], [], []
    views = keyframes_of(run, config.objects.surface_views)  # training views only
    depths = [scene.load_depth(view) for view in views]      # as `cgc extract` takes them
    true_volume: dict[str, float] = {}
    every_view = scene.train_names + scene.test_names
    for instance, name in names.items():
        prompt = best_prompt(scene, instance)
        if prompt is None:
            continue
        frame, u, v = prompt
        start = time.perf_counter()
        prompt = pixel_object(splats, scene.camera(frame), u, v, render=config.render,
                              query=config.query, table=table)  # as `cgc extract --point`
        prompted = time.perf_counter()
        try:
            obj = extract_object(splats, prompt.feature, config.query.selection_threshold,
                                 config.objects, seed=prompt.seed, views=views,
                                 render=config.render, depths=depths)
            points = obj.points
        except ValueError:
            points = np.zeros((0, 3))
        extract_times.append(time.perf_counter() - start)
        extract_only_times.append(time.perf_counter() - prompted)
        surface_any = np.concatenate([visible_surface(scene, f, instance) for f in every_view])
        true_volume[name] = oriented_volume(surface_any)
        surface_test = np.concatenate([visible_surface(scene, f, instance)
                                       for f in scene.test_names])
        row = {"object": name, "frame": frame, "pixel": [u, v], "points": int(len(points))}
        for cm in (1, 2):
            tol = cm / 100
            row[f"accuracy_{cm}cm"] = (float(np.mean(cKDTree(surface_any).query(points)[0] < tol))
                                       if len(points) else 0.0)
            row[f"completeness_{cm}cm"] = (
                float(np.mean(cKDTree(points).query(surface_test)[0] < tol)) if len(points)
                else 0.0)
        extraction.append(row)

    colours = {instance: image_colour(scene, instance) for instance in names}
    queries = []
    for instance, (word, share) in colours.items():
        if not word or any(w == word for i, (w, _) in colours.items() if i != instance):
            continue
        result = ground_text(table, word, config.objects)
        expected = by_name[names[instance]]["cluster"]
        queries.append({"object": names[instance], "word": word, "pixel_share": round(share, 2),
                        "status": result.status,
                        "answer": None if result.object is None else result.object.id,
                        "expected_cluster": expected,
                        "right": bool(result.found and result.object.id == expected),
                        "candidates": result.candidates[:3]})
    for text, pick in (("the largest object", max), ("the smallest object", min)):
        if not true_volume:
            break
        expected_name = pick(true_volume, key=true_volume.get)
        result = ground_text(table, text, config.objects)
        expected = by_name[expected_name]["cluster"]
        queries.append({"object": expected_name, "word": text, "pixel_share": None,
                        "status": result.status,
                        "answer": None if result.object is None else result.object.id,
                        "expected_cluster": expected,
                        "right": bool(result.found and result.object.id == expected),
                        "candidates": result.candidates[:3]})
    return {"seed": seed, "gaussians": n, "objects": len(names),
            "clusters": len(table.objects),
            "clusters_not_background": sum(not o.background for o in table.objects),
            "cluster_seconds": statistics.median(times), "cluster_seconds_min": min(times),
            "load_average": load,
            "extract_seconds": statistics.median(extract_times) if extract_times else None,
            "extract_only_seconds": (statistics.median(extract_only_times) if extract_only_times
                                     else None),
            "matching": matching, "extraction": extraction, "colour_queries": queries,
            "iterations": run.info.get("iterations"), "train_seconds": run.info.get(
                "train_seconds")}


def overrides_text(meta: dict) -> str:
    return "".join(f" + `{item}`" for item in meta.get("overrides", []))


def render_markdown(meta: dict, scenes: list[dict]) -> str:
    lines = ["# Objects on built-in scenes: clustering, extraction, colour words, timing", "",
             f"- command: `{meta['command']}`", f"- machine: {meta['machine']}",
             f"- date: {meta['date']}",
             f"- runs: default config{overrides_text(meta)}, trained on `masks_inconsistent` "
            f"({meta['runs']})", ""]
    lines += ["## Summary", "",
              "| seed | Gaussians | objects | clusters (not background) | objects split | "
              "objects merged | objects missing | extraction acc. 1 cm (median) | "
              "compl. 1 cm (median) | acc. / compl. 2 cm (median) | colour words right | "
              "largest / smallest right | "
              "cluster (s): median / min of 5 | extract: prompt + extraction (s) | "
              "extraction alone (s) | load average |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in scenes:
        m, e, q = s["matching"], s["extraction"], s["colour_queries"]

        def med(key):
            return statistics.median(r[key] for r in e) if e else float("nan")
        lines.append(
            f"| {s['seed']} | {s['gaussians']} | {s['objects']} | {s['clusters']} "
            f"({s['clusters_not_background']}) | {sum(r['split'] for r in m)} | "
            f"{sum(bool(r['merged_with']) for r in m)} | {sum(r['missing'] for r in m)} | "
            f"{med('accuracy_1cm'):.2f} | {med('completeness_1cm'):.2f} | "
            f"{med('accuracy_2cm'):.2f} / {med('completeness_2cm'):.2f} | "
            f"{sum(r['right'] for r in q if r['pixel_share'] is not None)} / "
            f"{sum(r['pixel_share'] is not None for r in q)} | "
            f"{sum(r['right'] for r in q if r['pixel_share'] is None)} / "
            f"{sum(r['pixel_share'] is None for r in q)} | {s['cluster_seconds']:.2f} / "
            f"{s['cluster_seconds_min']:.2f} | {s['extract_seconds']:.2f} | "
            f"{s['extract_only_seconds']:.2f} | {s['load_average']:.1f} |")
    for s in scenes:
        lines += ["", f"## Seed {s['seed']}", "",
                  "| object | Gaussians (on its surface) | main cluster | share in it | "
                  "purity | split | merged with | acc. 1 cm | compl. 1 cm | acc. 2 cm | "
                  "compl. 2 cm | points |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        ext = {r["object"]: r for r in s["extraction"]}
        for r in s["matching"]:
            x = ext.get(r["object"])
            extraction = ("| - | - | - | - | - |" if x is None else
                          f"| {x['accuracy_1cm']:.2f} | {x['completeness_1cm']:.2f} | "
                          f"{x['accuracy_2cm']:.2f} | {x['completeness_2cm']:.2f} | "
                          f"{x['points']} |")
            lines.append(f"| {r['object']} | {r['gaussians']} | {r['cluster']} | "
                         f"{r['share']:.2f} | {r['purity']:.2f} | {'yes' if r['split'] else ''} "
                         f"| {', '.join(r['merged_with'])} {extraction}")
        if s["colour_queries"]:
            lines += ["", "| query | object | answer | right | best candidates |",
                      "|---|---|---|---|---|"]
            for q in s["colour_queries"]:
                answer = q["status"] if q["answer"] is None else f"{q['status']} {q['answer']}"
                cands = ", ".join(f"{i}: {v:.2f}" for i, v in q["candidates"])
                lines.append(f"| {q['word']} | {q['object']} (cluster {q['expected_cluster']}) "
                             f"| {answer} | {'yes' if q['right'] else 'no'} | {cands} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,100,200,302,400")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "objects"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.SUB=VALUE",
                        help="config override for training the runs (repeatable); the runs are "
                             "then WORK/run_LABEL_seedS")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="apply --set to the default runs WORK/run_seedS after training "
                             "(for settings that training does not read: objects, query)")
    parser.add_argument("--label", default="objects",
                        help="names the result files bench/results/<label>.md/.json")
    args = parser.parse_args()
    overrides = parse_overrides(args.overrides)
    prefix = f"run_{args.label}" if overrides and not args.reuse_runs else "run"
    query_overrides = overrides if args.reuse_runs else None
    work = Path(args.work)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    meta = {"command": f".venv/bin/python bench/bench_objects.py {' '.join(sys.argv[1:])}".rstrip(),
            "machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU",
            "date": datetime.date.today().isoformat(), "runs": str(work),
            "overrides": args.overrides}
    scenes = []
    out_md = Path(args.results) / f"{args.label}.md"
    out_md.parent.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        run_dir = ensure_run(work, seed, None if args.reuse_runs else overrides, prefix)
        with torch.no_grad():  # ensure_run trains when there is no run yet
            scenes.append(bench_scene(run_dir, seed, query_overrides))
        text = render_markdown(meta, scenes)
        out_md.write_text(text)
        out_md.with_suffix(".json").write_text(json.dumps({**meta, "scenes": scenes}, indent=2)
                                               + "\n")
        print(text.split("## Seed")[0], flush=True)
    print(f"wrote {out_md} and {out_md.with_suffix('.json')}")


if __name__ == "__main__":
    main()
