"""What the mask source without weights costs per view and how many segments it makes, on
1080x1920 phone photos (a real capture, no depth) and on an RGB-D view scaled up to 1080p, side by
side: the default (Felzenszwalb at `segmenter.working_pixels`, depth proposals first) and the
fallback before issue 27 (Felzenszwalb at the image's own size, `working_pixels` 0).

    .venv/bin/python bench/bench_segments.py --images /work/fox/images [--views 8]
        [--scene bench/out/robust/scene_seed1002] [--picture bench/results/segments_fox.png]

The photos are e.g. instant-ngp's data/nerf/fox (not in this repository). The RGB-D view is a
built-in scene's views 0, 10, 20 (`cgc synth`), image scaled by bilinear and depth by nearest to
1080x1920 with its intrinsics. Prints and writes bench/results/segments_speed.md and .json, and
a picture of a few photos beside their segment maps (default and before).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.config import SegmenterConfig  # noqa: E402
from cgc_core.data import load_scene  # noqa: E402
from cgc_core.io import read_rgb  # noqa: E402
from cgc_core.segment import make_mask_source  # noqa: E402
from cgc_core.segment.classical import resample_nearest  # noqa: E402

VARIANTS = {
    "default": SegmenterConfig(kind="felzenszwalb"),
    "before (full size)": SegmenterConfig(kind="felzenszwalb", working_pixels=0,
                                          depth_proposals=False),
}


def time_views(source, views: list[tuple]) -> dict:
    """Seconds and segment counts of `source` over `views` [(image, depth, K)]."""
    seconds, cpu, segments = [], [], []
    for image, depth, intrinsics in views:
        start, start_cpu = time.perf_counter(), time.process_time()
        ids = source(image, "view", depth=depth, intrinsics=intrinsics)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        segments.append(int(ids.max()))
    return {"median_s": float(np.median(seconds)), "max_s": float(np.max(seconds)),
            "median_cpu_s": float(np.median(cpu)),
            "segments_median": float(np.median(segments)), "segments_min": int(min(segments)),
            "segments_max": int(max(segments)), "views": len(views)}


def rgbd_view_1080p(scene, index: int) -> tuple:
    """(image [1080, 1920, 3] (or portrait), depth, K) of the scene's view `index` at 1080p."""
    camera = scene.cameras[index]
    image, depth = scene.load_image(camera), scene.load_depth(camera)
    size = (1080, 1920) if camera.width > camera.height else (1920, 1080)
    factor = size[1] / camera.width
    big = np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BILINEAR))
    return big, resample_nearest(depth, size), camera.scaled(factor).K


def colour_map(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """[H, W] ids -> [H, W, 3] uint8, a random colour per id, black for 0."""
    palette = np.random.default_rng(seed).integers(40, 256, (int(ids.max()) + 1, 3))
    palette[0] = 0
    return palette[ids].astype(np.uint8)


def picture(paths: list[Path], out: Path, tile_height: int = 320) -> None:
    """Rows of photo | default segments | before segments, quantised to 256 colours."""
    rows = []
    for path in paths:
        image = read_rgb(path)
        tiles = [image] + [colour_map(make_mask_source(config)(image, path.stem))
                           for config in VARIANTS.values()]
        width = round(image.shape[1] * tile_height / image.shape[0])
        resample = [Image.Resampling.BILINEAR] + [Image.Resampling.NEAREST] * len(VARIANTS)
        rows.append(np.concatenate([np.asarray(Image.fromarray(t).resize((width, tile_height),
                                                                         r))
                                    for t, r in zip(tiles, resample)], axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0)).quantize(256)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out, optimize=True)


def render_markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Segmenting one view without weights: time and segment count",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']}",
        f"- date: {meta['date']}",
        f"- photos: {meta['images']} (1080x1920 phone photos, no depth)",
        f"- RGB-D: {meta['scene']}, views 0, 10, 20 scaled to 1080p (depth by nearest)",
        "",
        f"- load average (1 min) at start / end: {meta['load_start']:.1f} / "
        f"{meta['load_end']:.1f} (the machine is shared: wall clock includes waiting for a "
        "core; CPU seconds are this process's own)",
        "",
        "Seconds per view (wall clock and CPU, one process, what `cgc train` spends per training "
        "view) and segments per view. Target: <= 1 s per 1080p view on 2 cores, SAM's order of "
        "20 to 150 segments.",
        "",
        "| input | mask source | median s | max s | median CPU s | segments median | min | max "
        "| views | time vs before |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['input']} | {row['variant']} | {row['median_s']:.2f} | "
                     f"{row['max_s']:.2f} | {row['median_cpu_s']:.2f} | "
                     f"{row['segments_median']:.0f} | {row['segments_min']} "
                     f"| {row['segments_max']} | {row['views']} | {row['ratio']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", required=True, help="folder of 1080p photos (e.g. the fox)")
    parser.add_argument("--views", type=int, default=8, help="photos timed")
    parser.add_argument("--before-views", type=int, default=3,
                        help="photos timed with the slow fallback before issue 27")
    parser.add_argument("--scene", default=str(ROOT / "bench" / "out" / "robust" /
                                               "scene_seed1002"),
                        help="a built-in scene with depth (cgc synth)")
    parser.add_argument("--picture", default=str(ROOT / "bench" / "results" /
                                                 "segments_fox.png"))
    parser.add_argument("--picture-views", type=int, default=3)
    parser.add_argument("--label", default="segments_speed")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    paths = sorted(p for p in Path(args.images).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"no images in {args.images}")
    timed = paths[::max(1, len(paths) // args.views)][:args.views]
    inputs = {"photo 1080x1920": [(read_rgb(p), None, None) for p in timed]}
    if args.scene:
        scene = load_scene(Path(args.scene))
        inputs["RGB-D view at 1080p"] = [rgbd_view_1080p(scene, k) for k in (0, 10, 20)]
    meta = {"command": f".venv/bin/python bench/bench_segments.py {' '.join(sys.argv[1:])}",
            "machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU",
            "date": datetime.date.today().isoformat(), "images": args.images,
            "scene": args.scene, "load_start": os.getloadavg()[0]}
    rows = []
    for input_name, views in inputs.items():
        before = None
        for name in reversed(VARIANTS):  # the slow one first: its time is the ratio's base
            some = views if name == "default" else views[:args.before_views]
            stats = time_views(make_mask_source(VARIANTS[name]), some)
            before = before or stats["median_s"]
            rows.append({"input": input_name, "variant": name, **stats,
                         "ratio": f"{stats['median_s'] / before:.2f}x"})
            print(f"{input_name}, {name}: {stats['median_s']:.2f} s median, "
                  f"{stats['segments_median']:.0f} segments", flush=True)
    meta["load_end"] = os.getloadavg()[0]
    out_md = Path(args.results) / f"{args.label}.md"
    out_md.write_text(render_markdown(meta, rows))
    out_md.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    print(render_markdown(meta, rows))
    if args.picture:
        step = max(1, len(paths) // args.picture_views)
        picture(paths[::step][:args.picture_views], Path(args.picture))
        print(f"wrote {args.picture} ({Path(args.picture).stat().st_size // 1024} KB)")
    print(f"wrote {out_md}")


if __name__ == "__main__":
    main()
