"""A scene that changes while the robot maps it (issue 28): `cgc stream` over both passes of the
`changes` family, side by side with the per-view masks, with a map streamed from the second pass
alone, and with change handling off (`live.forget_changes: false`).

    py bench/bench_changes.py --seeds 1100,1101 [--rate 2] [--iterations-per-frame 20]
    py bench/bench_changes.py --seeds '' --static-seeds 0,1002 --label changes_static

Per scene (`cgc synth --seed S`, cached in --work):

- mIoU / mBIoU on the second pass's held-out views: per-view masks (oracle segment choice, as in
  bench_scenes.py), the stream of both passes with and without change handling, and the stream
  of the second pass alone (the target's reference);
- ghosts: listed objects (RUN/objects.json, background excluded) whose centroid lies within
  6 cm of where the removed or the moved object stood;
- the moved object: found when a listed object lies within 6 cm of its new place with the id
  that the object near its old place had when first announced (RUN/events.jsonl, 'appeared');
- decision speed: keyframes between the first second-pass keyframe that sees the spot and the
  event that decided it ('removed' for the removed object, 'moved' for the moved one).

`--static-seeds`: scenes that do not change (any other family), streamed the same way with change
handling on and off: the held-out mIoU may not drop, and no object may be reported removed.

`--iterations-per-frame` plays the frames at the pace of a machine that trains that many
iterations per frame (a GPU at 2 frames/s does hundreds); 0 sends them at --rate whatever the
training does, which on 2 CPU cores leaves the model untrained until the frames end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name, per_view_baseline  # noqa: E402

from cgc_core.data import load_scene  # noqa: E402
from cgc_core.data.synth import make_synthetic_scene  # noqa: E402

GHOST_REACH = 0.06
"""Metres: a listed object this close to where a removed or moved object stood is a ghost."""
VARIANTS = ("both passes", "changes off", "second pass alone")
"""Both passes with change handling, the same with `live.forget_changes: false`, the second pass
alone; `--variants` takes a comma-separated subset."""


def cgc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "cgc_core.app.cli", *args], check=True, cwd=ROOT)


def second_pass_scene(scene_dir: Path) -> Path:
    """The same scene folder with only the second pass's frames: symlinks and a filtered
    transforms.json."""
    out = scene_dir.with_name(scene_dir.name + "_second")
    out.mkdir(exist_ok=True)
    for entry in scene_dir.iterdir():
        if entry.name not in ("transforms.json", "split.json", "sparse") and \
                not (out / entry.name).exists():
            (out / entry.name).symlink_to(entry.resolve())
    transforms = json.loads((scene_dir / "transforms.json").read_text())
    second = [f for f in transforms["frames"] if Path(f["file_path"]).stem.startswith("p2_")]
    transforms["frames"] = second
    transforms["train_filenames"] = [n for n in transforms["train_filenames"]
                                     if Path(n).stem.startswith("p2_")]
    (out / "transforms.json").write_text(json.dumps(transforms, indent=1))
    split = json.loads((scene_dir / "split.json").read_text())
    split["train"] = [n for n in split["train"] if n.startswith("p2_")]
    (out / "split.json").write_text(json.dumps(split))
    return out


def stream(scene_dir: Path, run: Path, args, *overrides: str) -> dict:
    if not (run / "run.json").is_file() or args.fresh_runs:
        shutil.rmtree(run, ignore_errors=True)
        extra = []
        if overrides:
            config = run.with_suffix(".yaml")
            config.write_text("live:\n" + "".join(f"  {o}\n" for o in overrides))
            extra = ["--config", str(config)]
        cgc("stream", str(scene_dir), "--out", str(run), "--masks",
            str(scene_dir / "masks_inconsistent"), "--rate", str(args.rate),
            "--iterations-per-frame", str(args.iterations_per_frame), "--eval-every", "0",
            "--quiet", *extra)
    if not (run / "eval.json").is_file():
        cgc("eval", str(run), "--json", str(run / "eval.json"))
    return json.loads((run / "eval.json").read_text())


def objects_of(run: Path) -> list[dict]:
    data = json.loads((run / "objects.json").read_text())
    return [o for o in data["objects"] if not o["background"]]


def near(objects: list[dict], point, reach: float = GHOST_REACH) -> list[dict]:
    point = np.asarray(point)
    return [o for o in objects if np.linalg.norm(np.asarray(o["centroid"]) - point) < reach]


def events_of(run: Path) -> list[dict]:
    path = run / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
        if path.is_file() else []


def first_sight(run: Path, scene_dir: Path, point) -> int | None:
    """Keyframes made up to the first second-pass keyframe whose camera sees `point`."""
    scene = load_scene(scene_dir)
    timeline = json.loads((run / "stream.json").read_text())["keyframes"]
    for count, record in enumerate(timeline, 1):
        if not record["name"].startswith("p2_"):
            continue
        cam = scene.camera(record["name"])
        p = cam.world_to_cam[:3, :3] @ np.asarray(point) + cam.world_to_cam[:3, 3]
        u, v = cam.fx * p[0] / p[2] + cam.cx, cam.fy * p[1] / p[2] + cam.cy
        if p[2] > 0 and 0 <= u < cam.width and 0 <= v < cam.height:
            return count
    return None


def change_figures(run: Path, scene_dir: Path, changes: dict) -> dict:
    objects, events = objects_of(run), events_of(run)
    removed_at, before, after = (changes["removed"]["position"], changes["moved"]["before"],
                                 changes["moved"]["after"])
    ghosts = len(near(objects, removed_at)) + len(near(objects, before))
    appeared = [e for e in events if e["kind"] == "appeared" and e["position_after"] is not None
                and np.linalg.norm(np.asarray(e["position_after"]) - before) < GHOST_REACH]
    old_id = appeared[0]["id"] if appeared else None
    found = old_id is not None and any(o["id"] == old_id for o in near(objects, after))
    latency = {}
    for name, kind, spot, matches in (
            ("removed", "removed", removed_at, lambda e: np.linalg.norm(
                np.asarray(e["position_before"]) - removed_at) < GHOST_REACH),
            ("moved", "moved", after, lambda e: old_id is not None and e["id"] == old_id)):
        decided = [e for e in events if e["kind"] == kind and matches(e)]
        seen = first_sight(run, scene_dir, spot)
        latency[name] = None if not decided or seen is None else decided[0]["keyframes"] - seen
    removals = json.loads((run / "stream.json").read_text()).get("removals", [])
    return {"ghosts": ghosts, "moved_found": bool(found), "moved_old_id": old_id,
            "latency_removed": latency["removed"], "latency_moved": latency["moved"],
            "objects": len(objects), "removals": len(removals),
            "events": {k: sum(e["kind"] == k for e in events)
                       for k in ("appeared", "moved", "removed")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1100,1101")
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--iterations-per-frame", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "changes"))
    parser.add_argument("--label", default="changes")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--static-seeds", default="")
    parser.add_argument("--fresh-runs", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",") if s):
        scene_dir = work / f"scene_seed{seed}"
        if not (scene_dir / "synth.json").is_file():
            make_synthetic_scene(scene_dir, seed=seed, progress=print)
        changes = json.loads((scene_dir / "synth.json").read_text())["changes"]
        baseline = per_view_baseline(scene_dir)
        row = {"seed": seed, "per_view": [baseline["mIoU"], baseline["mBIoU"]],
               "changes": changes, "variants": {}}
        for variant in variants:
            started = time.perf_counter()
            tag = f"{args.label}_{variant.replace(' ', '_')}_seed{seed}"
            run = work / f"run_{tag}"
            if variant == "second pass alone":
                result = stream(second_pass_scene(scene_dir), run, args)
            elif variant == "changes off":
                result = stream(scene_dir, run, args, "forget_changes: false")
            else:
                result = stream(scene_dir, run, args)
            figures = change_figures(run, scene_dir, changes)
            row["variants"][variant] = {"mIoU": result["mIoU"], "mBIoU": result["mBIoU"],
                                        "seconds": round(time.perf_counter() - started), **figures}
            print(seed, variant, row["variants"][variant], flush=True)
        rows.append(row)
    static = [static_row(int(seed), work, args) for seed in args.static_seeds.split(",") if seed]
    write_results(rows, static, args, variants)


def static_row(seed: int, work: Path, args) -> dict:
    scene_dir = work / f"scene_seed{seed}"
    if not (scene_dir / "synth.json").is_file():
        make_synthetic_scene(scene_dir, seed=seed, progress=print)
    baseline = per_view_baseline(scene_dir)
    row = {"seed": seed, "family": json.loads((scene_dir / "synth.json").read_text())["family"],
           "per_view": [baseline["mIoU"], baseline["mBIoU"]]}
    for name, overrides in (("on", ()), ("off", ("forget_changes: false",))):
        run = work / f"run_{args.label}_{name}_seed{seed}"
        result = stream(scene_dir, run, args, *overrides)
        events = events_of(run)
        removals = json.loads((run / "stream.json").read_text()).get("removals", [])
        row[name] = {"mIoU": result["mIoU"], "mBIoU": result["mBIoU"], "removals": len(removals),
                     "removed_events": sum(e["kind"] == "removed" for e in events),
                     "moved_events": sum(e["kind"] == "moved" for e in events)}
        print(seed, name, row[name], flush=True)
    return row


def write_results(rows: list[dict], static: list[dict], args, variants: list[str]) -> None:
    command = "py bench/bench_changes.py " + " ".join(sys.argv[1:])
    lines = [
        "# A scene that changes while it is mapped (issue 28)", "",
        f"- command: `{command}`", f"- machine: {cpu_name()}, 2 cores, no GPU",
        f"- date: {datetime.date.today()}",
        f"- stream: {args.rate:g} frames/s, {args.iterations_per_frame} iterations per frame "
        "(the pace of a faster machine; module docstring), then on to the planned iterations",
        "- scenes: `cgc synth --seed S` (changes family: two passes, one object removed, one "
        "moved 15-50 cm, one added between them); test views from the second pass", "",
        "mIoU / mBIoU on the second pass's held-out views. Ghosts: listed objects within 6 cm of "
        "where the removed or moved object stood. Moved found: at its new place with its old id. "
        "Decided: keyframes from the first second-pass keyframe that sees the spot to the event.",
        "", "| seed | changes | per-view masks | variant | model | vs masks | ghosts | "
        "moved found | decided (removed / moved) | removals | events a/m/r | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        c = row["changes"]
        what = (f"-{c['removed']['name']}, {c['moved']['name']} "
                f"{c['moved']['distance']:.2f} m, +{c['added']['name']}")
        for variant in variants:
            v = row["variants"][variant]
            lines.append(
                f"| {row['seed']} | {what} | {row['per_view'][0]:.1f} / {row['per_view'][1]:.1f} "
                f"| {variant} | {v['mIoU']:.1f} / {v['mBIoU']:.1f} | "
                f"{v['mIoU'] - row['per_view'][0]:+.1f} | {v['ghosts']} | "
                f"{'yes' if v['moved_found'] else 'no'} | {v['latency_removed']} / "
                f"{v['latency_moved']} | {v['removals']} | {v['events']['appeared']}/"
                f"{v['events']['moved']}/{v['events']['removed']} | {v['seconds']} |")
    if static:
        lines += ["", "Scenes that do not change, streamed with change handling on and off:", "",
                  "| seed | family | per-view masks | on | off | on - off | removals (on) | "
                  "removed / moved events (on) |", "|---|---|---|---|---|---|---|---|"]
        for row in static:
            on, off = row["on"], row["off"]
            lines.append(f"| {row['seed']} | {row['family']} | {row['per_view'][0]:.1f} | "
                         f"{on['mIoU']:.1f} / {on['mBIoU']:.1f} | {off['mIoU']:.1f} / "
                         f"{off['mBIoU']:.1f} | {on['mIoU'] - off['mIoU']:+.1f} | "
                         f"{on['removals']} | {on['removed_events']} / {on['moved_events']} |")
    results = Path(args.results)
    (results / f"{args.label}.md").write_text("\n".join(lines) + "\n")
    (results / f"{args.label}.json").write_text(json.dumps({"changes": rows, "static": static},
                                                           indent=1))
    print("\n".join(lines))
    print(f"wrote {results / (args.label + '.md')}")


if __name__ == "__main__":
    main()
