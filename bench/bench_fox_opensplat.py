"""Held-out PSNR per wall-clock second on a real capture: cgc against OpenSplat's CPU build,
side by side in one run (issue 27: "Fox on 2 CPU cores: held-out PSNR is at least OpenSplat's at
the same wall-clock time").

The capture is instant-ngp's fox (not in this repository: NVIDIA's non-commercial licence; pass
its folder). Both trainers read one prepared copy of it, written outside the repository (`--work`):

- every photo undistorted once with cgc's lens model (`cgc_core.lens`) onto a pinhole camera whose
  principal point is the image centre, then scaled by area to the training resolution (default
  160 px on the longer side, 90x160: cgc's CPU default). The centred principal point is for
  OpenSplat: its CPU projection (an OpenGL frustum built from the field of view) ignores cx / cy,
  and cgc's own undistorted view of the fox has cx 1.2 px off centre at 90x160. The pinhole view
  keeps cgc's undistorted field of view, zoomed about 3 % so that it stays inside the photo.
- the held-out views (cgc's default split: every 8th photo, 7 of 50) are left out of OpenSplat's
  transforms.json; cgc's lists them as `test_filenames`.
- one initial point cloud for both (`ply_file_path`): the 20000 random points cgc draws for a
  capture without points or depth (`initial_points`, seed `train.seed`), grey.

Runs at each trainer's own iteration counts (`--iterations`, `--opensplat-iterations`: OpenSplat's
CPU build is the slower per iteration, so its counts are smaller to reach into cgc's wall times),
the two trainers strictly alternating so that both see the shared machine's load of the same
minutes, each a whole process timed by the wall clock (start-up and image loading included):

- cgc: `cgc train COPY --out RUN --iterations N --device cpu --quiet` with the default config (the
  mask source segments the 90x160 photos, and the contrastive features train too: cgc's whole job,
  not colour alone).
- OpenSplat (https://github.com/pierotofy/OpenSplat, AGPL-3.0; built outside this repository, see
  bench/README.md): `opensplat COPY --cpu -n N --num-downscales 0 --keep-crs` (its defaults
  otherwise; `--num-downscales 0` trains at the same resolution from the first step, and
  `--keep-crs` writes the PLY in the capture's coordinates).

Both models are then scored by cgc's renderer the same way (`colour_quality`: held-out views at
the training resolution, neutral exposure); OpenSplat's model on its own training background
(nerfstudio's (0.613, 0.010, 0.398)) and on black, cgc's on black as it trains. First, a short
OpenSplat run checks that cgc reads its PLY right (`check_reading`: cgc's render of it against
OpenSplat's own). The results give every run, the two side by side at the same iterations, and
each run against the other trainer's PSNR at the same wall-clock time.

    .venv/bin/python bench/bench_fox_opensplat.py --scene /path/to/fox
        [--opensplat /work/opensplat/build/opensplat] [--iterations 250,500,1000,2000,4000]
        [--opensplat-iterations 50,100,250,500,1000,2000]
        [--resolution 160] [--work /tmp/fox_opensplat]

Prints and writes bench/results/fox_opensplat.md and .json (rewritten after every run).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import cpu_name  # noqa: E402

from cgc_core.app.evaluate import colour_quality, render_colour  # noqa: E402
from cgc_core.cameras import Camera  # noqa: E402
from cgc_core.config import CGCConfig, RenderConfig  # noqa: E402
from cgc_core.data import Scene, load_scene  # noqa: E402
from cgc_core.data.nerfstudio import write_nerfstudio_scene, write_point_ply  # noqa: E402
from cgc_core.lens import undistort  # noqa: E402
from cgc_core.metrics import image_quality  # noqa: E402
from cgc_core.model.gaussians import load_ply, sh_degree_of  # noqa: E402
from cgc_core.model.sh import eval_sh  # noqa: E402
from cgc_core.query import camera_tensors  # noqa: E402
from cgc_core.render.project import project_gaussians  # noqa: E402
from cgc_core.train.from_scene import initial_points  # noqa: E402
from cgc_core.train.views import scene_extent, training_scale  # noqa: E402

OPENSPLAT_BACKGROUND = (0.6130, 0.0101, 0.3984)  # model.hpp: nerfstudio's default
CHECK_TRAIN_VIEWS = 6  # training views scored beside the held-out ones
CHECK_STEPS = 300  # the OpenSplat run whose PLY checks the reading (`check_reading`)
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}


def centred_camera(camera: Camera) -> Camera:
    """`camera` (an undistorted pinhole view with its lens) with its principal point moved to the
    image centre and its focal length raised just enough that the view stays inside the one it
    came from (every pixel of it then comes from the photo)."""
    zoom = max(camera.width / 2 / min(camera.cx, camera.width - camera.cx),
               camera.height / 2 / min(camera.cy, camera.height - camera.cy))
    return dataclasses.replace(camera, fx=camera.fx * zoom, fy=camera.fy * zoom,
                               cx=camera.width / 2, cy=camera.height / 2)


def small_view(scene: Scene, camera: Camera, resolution: int, out: Path) -> Camera:
    """Write the photo of `camera` undistorted onto its centred view and scaled by area to
    `resolution` on the longer side as out/images/<name>.png; its pinhole camera there."""
    centred = centred_camera(camera)
    photo = undistort(centred, scene.load_raw_image(camera))
    view = centred.scaled(training_scale(centred, resolution))
    path = out / "images" / f"{camera.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).resize((view.width, view.height), Image.BOX).save(path)
    return dataclasses.replace(view, image_path=path)


def prepare(scene_dir: Path, work: Path, resolution: int) -> tuple[Path, Path, dict]:
    """(cgc's copy with the held-out views listed, OpenSplat's copy without them, facts)."""
    scene = load_scene(scene_dir)
    cgc_dir, opensplat_dir = work / "cgc", work / "opensplat"
    for folder in (cgc_dir, opensplat_dir):
        if folder.exists():
            shutil.rmtree(folder)
    cameras = [small_view(scene, camera, resolution, cgc_dir) for camera in scene.cameras]
    config = CGCConfig()
    train = [c for c in cameras if c.name in set(scene.train_names)]
    # cgc's own seed for a scene without depth or points (pixel rays at the depth where the
    # cameras' axes meet, coloured by the photos), given to both trainers as their points.
    points, colors = initial_points(Scene(cgc_dir, cameras, scene.train_names,
                                          scene.test_names),
                                    train, scene_extent(train), config.model.init_points,
                                    np.random.default_rng(config.train.seed), config.live)
    if colors is None:
        colors = np.full((len(points), 3), 128, np.uint8)
    for folder in (cgc_dir, opensplat_dir):
        write_point_ply(folder / "points.ply", points, colors)
    write_nerfstudio_scene(cgc_dir, cameras, scene.train_names, scene.test_names,
                           ply_file="points.ply")
    (opensplat_dir / "images").mkdir()
    train_copies = []
    for camera in train:  # the held-out photos stay out of OpenSplat's folder altogether
        path = opensplat_dir / "images" / camera.image_path.name
        shutil.copy(camera.image_path, path)
        train_copies.append(dataclasses.replace(camera, image_path=path))
    write_nerfstudio_scene(opensplat_dir, train_copies, scene.train_names, [],
                           ply_file="points.ply")
    first = cameras[0]
    return cgc_dir, opensplat_dir, {
        "train_views": len(scene.train_names), "held_out_views": len(scene.test_names),
        "held_out": scene.test_names, "size": [first.width, first.height],
        "intrinsics": [round(v, 3) for v in (first.fx, first.fy, first.cx, first.cy)],
        "initial_points": len(points)}


def run_cgc(copy: Path, out: Path, iterations: int, config: Path | None = None) -> dict:
    """Wall seconds of one `cgc train` process; the run's own figures from run.json."""
    command = [sys.executable, "-m", "cgc_core.app.cli", "train", str(copy), "--out", str(out),
               "--iterations", str(iterations), "--device", "cpu", "--quiet"]
    if config is not None:
        command += ["--config", str(config)]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=ENV, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    info = json.loads((out / "run.json").read_text())
    return {"wall_s": wall, "train_s": info.get("train_seconds"),
            "train_resolution": info.get("train_resolution"), "model": out / "model.ply"}


def run_opensplat(binary: Path, copy: Path, out: Path, iterations: int,
                  extra: tuple[str, ...] = ()) -> dict:
    """Wall seconds of one OpenSplat process."""
    out.mkdir(parents=True, exist_ok=True)
    command = [str(binary), str(copy), "--cpu", "-n", str(iterations), "--num-downscales", "0",
               "--keep-crs", "-o", str(out / "splat.ply"), *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=out, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (out / "log.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"OpenSplat failed ({done.returncode}): {done.stderr[-2000:]}")
    return {"wall_s": wall, "model": out / "splat.ply"}


def scaled_schedule(iterations: int) -> tuple[str, ...]:
    """OpenSplat's step-based settings scaled by iterations / 30000, as cgc scales its own
    (`train.scale_schedule`): densification from step 500 f (`--warmup-length`), SH degree every
    1000 f steps, screen-size splits until 4000 f. Refinement stays every 100 steps and opacity
    resets every 30 refinements: OpenSplat densifies only where step % (reset interval) exceeds
    the camera count + 100, so a shorter reset interval would stop densification altogether."""
    f = iterations / 30_000
    return ("--warmup-length", str(max(1, round(500 * f))),
            "--sh-degree-interval", str(max(1, round(1000 * f))),
            "--stop-screen-size-at", str(max(1, round(4000 * f))))


def check_reading(binary: Path, copy: Path, scene: Scene, out: Path) -> dict:
    """OpenSplat's own render of a trained model against cgc's renders of its PLY.

    A CHECK_STEPS-step OpenSplat run with the SH degree raised every 50 steps (so that degree 3,
    and with it the layout of f_rest, is in play) renders a withheld training view itself
    (`--val-render`, after the last step, over its background); cgc loads the PLY and renders
    that camera over the same background, by depth (its renderer) and in OpenSplat's blend order
    (`render_in_opensplat_order`). Wrong axes, SH layout, activations or quaternion order would
    show in both; the blend order in the first only."""
    name = scene.train_names[0]
    run_opensplat(binary, copy, out, CHECK_STEPS,
                  ("--sh-degree-interval", "50", "--val-image", f"{name}.png", "--val-render",
                   str(out / "val")))
    theirs = np.asarray(Image.open(out / "val" / f"{CHECK_STEPS}.png").convert("RGB"))
    theirs = theirs.astype(np.float64) / 255.0
    splats = load_ply(out / "splat.ply")
    camera = scene.camera(name)
    by_depth = render_colour(splats, camera, RenderConfig(), torch.tensor(OPENSPLAT_BACKGROUND))
    own_order = render_in_opensplat_order(splats, camera, OPENSPLAT_BACKGROUND)
    photo = scene.load_image(name).astype(np.float64) / 255.0
    return {"view": name, "steps": CHECK_STEPS,
            "by_depth_psnr": image_quality(by_depth, theirs)["psnr"],
            "own_order_psnr": image_quality(own_order, theirs)["psnr"],
            "opensplat_vs_photo_psnr": image_quality(theirs, photo)["psnr"],
            "by_depth_vs_photo_psnr": image_quality(by_depth, photo)["psnr"]}


@torch.no_grad()
def render_in_opensplat_order(splats: torch.nn.ParameterDict, camera: Camera,
                              background: tuple) -> np.ndarray:
    """[H, W, 3] in [0, 1]: the model blended as OpenSplat's CPU rasterizer blends it.

    At commit 15b7e80, `rasterize_forward_tensor_cpu` sorts the Gaussians by
    `camDepths.data_ptr()`, but `camDepths` is `pProj.index({"...", 2})`, a view of stride 3
    into the [N, 3] projected points: Gaussian a is sorted by the float at flat position 2 + a
    of pProj (a mix of the NDC x, y, z of Gaussians a / 3), not by its own depth. The blend order
    is therefore not front to back, in training and in its own renders alike, and its models are
    fitted to that order; a renderer that sorts by depth (cgc's, any 3DGS viewer's) shows them
    otherwise. The rest is the standard EWA splatting both share (projection as cgc's, which
    OpenSplat's CPU projection equals for a centred principal point), blended densely here."""
    viewmat, K = camera_tensors(camera, "cpu")
    quats = splats["quats"] / splats["quats"].norm(dim=1, keepdim=True)
    proj = project_gaussians(splats["means"], quats, splats["log_scales"].exp(), viewmat, K,
                             camera.width, camera.height)
    # OpenSplat's NDC: its OpenGL frustum (near 0.001, far 1000) over the field of view.
    near, far = 0.001, 1000.0
    cam = splats["means"] @ viewmat[:3, :3].T + viewmat[:3, 3]
    w = torch.clamp(cam[:, 2], min=1e-6)
    ndc = torch.stack([cam[:, 0] * 2 * K[0, 0] / camera.width / w,
                       cam[:, 1] * 2 * K[1, 1] / camera.height / w,
                       ((far + near) * cam[:, 2] - far * near) / (far - near) / w], 1)
    sort_key = ndc.reshape(-1)[2:2 + len(ndc)]
    keep = torch.nonzero(proj.radii > 0).reshape(-1)
    order = keep[torch.argsort(sort_key[keep], stable=True)]
    centre = torch.linalg.inv(viewmat)[:3, 3]
    colours = eval_sh(sh_degree_of(splats), splats["sh0"], splats["shN"],
                      splats["means"] - centre)
    opacity = torch.sigmoid(splats["opacities"]).reshape(-1)
    cols, rows = torch.meshgrid(torch.arange(camera.width) + 0.5,
                                torch.arange(camera.height) + 0.5, indexing="xy")
    pixels = torch.stack([cols.reshape(-1), rows.reshape(-1)], 1)  # [P, 2]
    transmittance = torch.ones(len(pixels))
    image = torch.zeros(len(pixels), 3)
    for start in range(0, len(order), 512):
        ids = order[start:start + 512]
        d = pixels[None] - proj.means2d[ids][:, None]  # [G, P, 2]
        a, b, c = (proj.conics[ids, k:k + 1] for k in range(3))
        sigma = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]
        alpha = torch.clamp(opacity[ids][:, None] * torch.exp(-sigma), max=0.999)
        alpha = torch.where((sigma >= 0) & (alpha >= 1 / 255), alpha, torch.zeros_like(alpha))
        through = torch.cumprod(torch.cat([transmittance[None], 1 - alpha]), 0)  # [G + 1, P]
        image += ((through[:-1] * alpha)[..., None] * colours[ids][:, None]).sum(0)
        transmittance = through[-1]
    image += transmittance[:, None] * torch.tensor(background)
    return image.reshape(camera.height, camera.width, 3).clamp(0, 1).numpy()


def quality_in_opensplat_order(splats: torch.nn.ParameterDict, scene: Scene,
                               names: list[str]) -> dict:
    """Mean PSNR / SSIM of `render_in_opensplat_order` against the photos of `names` (the copy
    is at the training resolution already)."""
    values = [image_quality(render_in_opensplat_order(splats, scene.camera(n),
                                                      OPENSPLAT_BACKGROUND),
                            scene.load_image(n).astype(np.float64) / 255.0) for n in names]
    return {"psnr": float(np.mean([v["psnr"] for v in values])),
            "ssim": float(np.mean([v["ssim"] for v in values]))}


def score(model: Path, scene: Scene, resolution: int, background: tuple | None) -> dict:
    """Held-out PSNR / SSIM (cgc's `colour_quality`) and the PSNR of a few training views."""
    splats = load_ply(model)
    bg = None if background is None else torch.tensor(background)
    held_out = colour_quality(splats, scene, RenderConfig(), resolution, bg)
    step = max(1, len(scene.train_names) // CHECK_TRAIN_VIEWS)
    on_train = dataclasses.replace(scene, test_names=scene.train_names[::step])
    trained = colour_quality(splats, on_train, RenderConfig(), resolution, bg)
    return {"psnr": held_out["psnr"], "ssim": held_out["ssim"], "train_psnr": trained["psnr"],
            "gaussians": int(splats["means"].shape[0])}


def psnr_at(wall: float, points: list[tuple[float, float]]) -> float | None:
    """PSNR at `wall` seconds interpolated linearly in log time between measured (wall, PSNR)
    points; None outside their range (no extrapolation)."""
    points = sorted(points)
    if not points or wall < points[0][0] or wall > points[-1][0]:
        return None
    return float(np.interp(np.log(wall), [np.log(w) for w, _ in points],
                           [p for _, p in points]))


def alternating(cgc: list[int], opensplat: list[int]) -> list[tuple[str, int]]:
    """The runs in the order they are made: the two trainers strictly alternating, so that both
    see the machine's load of the same minutes; leftovers of the longer list at the end."""
    order = []
    for index in range(max(len(cgc), len(opensplat))):
        order += [("cgc", n) for n in cgc[index:index + 1]]
        order += [("OpenSplat", n) for n in opensplat[index:index + 1]]
    return order


def load_text() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


NAMES = ("cgc", "OpenSplat")


def _at(wall: float, runs: list[dict], trainer: str, key: str) -> str:
    """The trainer's `key` at `wall` seconds: measured (its own run) or interpolated (marked
    ~), or "-" outside its runs."""
    own = [r for r in runs if r["trainer"] == trainer and r["wall_s"] == wall]
    if own:
        return f"{own[0][key]:.2f}"
    value = psnr_at(wall, [(r["wall_s"], r[key]) for r in runs if r["trainer"] == trainer])
    return "-" if value is None else f"~{value:.2f}"


def markdown(meta: dict, runs: list[dict]) -> str:
    """The results: every run, then the two side by side at the same iterations and at the
    same wall-clock time."""
    by = {(r["trainer"], r["iterations"]): r for r in runs}
    check = meta.get("check")
    lines = ["# Held-out PSNR per wall-clock second on the fox: cgc against OpenSplat's CPU build",
             "", f"- command: `{meta['command']}` (cgc {meta['revision']})",
             f"- date: {meta['date']}", f"- machine: {meta['machine']}",
             f"- capture: {meta['capture']}", f"- OpenSplat: {meta['opensplat']}"]
    if meta.get("cgc_config"):
        lines.append(f"- cgc's config overrides: `{' '.join(meta['cgc_config'].split())}`")
    if check and "own_order_psnr" in check:
        lines.append(
            f"- reading OpenSplat's PLY: a {check['steps']}-step OpenSplat model (SH degree 3 "
            f"active), its own render of view {check['view']} against cgc's renders of the PLY: "
            f"in OpenSplat's blend order {check['own_order_psnr']:.1f} dB (the PLY is read "
            f"right), by depth {check['by_depth_psnr']:.1f} dB (the blend order differs); "
            f"OpenSplat's render against the photo {check['opensplat_vs_photo_psnr']:.1f} dB, "
            f"the by-depth render {check['by_depth_vs_photo_psnr']:.1f} dB")
    lines += ["", "Every run, in the order made:", "",
              "| trainer | iterations | wall s | training s | held-out PSNR / SSIM, by depth | "
              "the same in OpenSplat's blend order | by depth on black | train-view PSNR | "
              "Gaussians | load average before (1, 5, 15 min) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        train_s = f"{r['train_s']:.0f}" if r.get("train_s") is not None else "-"
        own = (f"{r['psnr_own_order']:.2f} / {r['ssim_own_order']:.3f}"
               if "psnr_own_order" in r else "-")
        lines.append(f"| {r['trainer']} | {r['iterations']} | {r['wall_s']:.0f} | {train_s} | "
                     f"{r['psnr']:.2f} / {r['ssim']:.3f} | {own} | {r['psnr_black']:.2f} | "
                     f"{r['train_psnr']:.2f} | {r['gaussians']} | {r['load']} |")
    shared = sorted({n for t, n in by if t == "cgc"} & {n for t, n in by if t == "OpenSplat"})
    if shared:
        lines += ["", "Same iterations:", "",
                  "| iterations | cgc wall s | OpenSplat wall s | wall OpenSplat / cgc | cgc PSNR "
                  "| OpenSplat PSNR, own order / by depth | cgc - OpenSplat, own order (dB) |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for n in shared:
            c, o = by[("cgc", n)], by[("OpenSplat", n)]
            own = o.get("psnr_own_order", o["psnr"])
            lines.append(f"| {n} | {c['wall_s']:.0f} | {o['wall_s']:.0f} | "
                         f"{o['wall_s'] / c['wall_s']:.2f} | {c['psnr']:.2f} | {own:.2f} / "
                         f"{o['psnr']:.2f} | {c['psnr'] - own:+.2f} |")
    own_key = "psnr_own_order" if all("psnr_own_order" in r for r in runs
                                      if r["trainer"] == "OpenSplat") else "psnr"
    lines += ["", "Same wall-clock time: at each run's wall time, each trainer's PSNR, measured "
              "(its own run) or interpolated in log time between its runs (~); - outside its "
              "runs (no extrapolation):", "",
              "| run | wall s | cgc PSNR | OpenSplat PSNR, own order | OpenSplat PSNR, by depth |"
              " cgc - OpenSplat, own order (dB) |", "|---|---:|---:|---:|---:|---:|"]
    for r in sorted(runs, key=lambda r: r["wall_s"]):
        wall = r["wall_s"]
        cgc = _at(wall, runs, "cgc", "psnr")
        own = _at(wall, runs, "OpenSplat", own_key)
        diff = ("" if "-" in (cgc, own) else
                f"{float(cgc.lstrip('~')) - float(own.lstrip('~')):+.2f}")
        lines.append(f"| {r['trainer']} {r['iterations']} it | {wall:.0f} | {cgc} | {own} | "
                     f"{_at(wall, runs, 'OpenSplat', 'psnr')} | {diff} |")
    lines += ["", "Wall s: the whole process (start-up, loading and, for cgc, segmenting "
              "included); training s: cgc's training loop alone (its run.json). The trainers "
              "alternate on a machine shared with other jobs. Held-out PSNR / SSIM: mean over the "
              f"{meta['held_out_views']} held-out views ({', '.join(meta['held_out'])}) at "
              f"{meta['size'][0]}x{meta['size'][1]} at neutral exposure, by cgc's renderer "
              "(Gaussians blended front to back by depth, as any 3DGS viewer does), OpenSplat's "
              "models over their training background, cgc's over black (its training "
              "background); in OpenSplat's blend order: OpenSplat's models blended as its CPU "
              "rasterizer blends them in training and in its own renders "
              "(`render_in_opensplat_order`: not by depth, see the check above). By depth on "
              f"black: OpenSplat's too over black. Train-view PSNR: by depth on "
              f"{CHECK_TRAIN_VIEWS} training views. One seed each."]
    return "\n".join(lines) + "\n"


def score_run(trainer: str, model: Path, scene: Scene, resolution: int) -> dict:
    """`score` over the trainer's own background, the held-out PSNR over black, and for
    OpenSplat the held-out PSNR / SSIM in its own blend order (`render_in_opensplat_order`)."""
    if trainer != "OpenSplat":
        scored = score(model, scene, resolution, None)
        return {**scored, "psnr_black": scored["psnr"]}
    scored = score(model, scene, resolution, OPENSPLAT_BACKGROUND)
    own = quality_in_opensplat_order(load_ply(model), scene, scene.test_names)
    return {**scored, "psnr_black": score(model, scene, resolution, None)["psnr"],
            "psnr_own_order": own["psnr"], "ssim_own_order": own["ssim"]}


def opensplat_text(args: argparse.Namespace) -> str:
    """The OpenSplat line of the results: binary and schedule."""
    return f"{args.opensplat} (commit 15b7e80), " + (
        "its step-based schedule scaled to each run's iterations as cgc's is (`scaled_schedule`: "
        "--warmup-length, --sh-degree-interval, --stop-screen-size-at x iterations / 30000)"
        if args.opensplat_schedule == "scaled" else
        "its default schedule (made for 30000 steps: densification from step 500, SH degree up "
        "every 1000 steps)")


def revision() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def rescore(args: argparse.Namespace) -> None:
    """Score the runs of an earlier results .json again from their models on disk (in --work,
    with the copies `prepare` wrote there): the check and every score are redone, the wall
    times and loads are the ones measured then."""
    earlier = json.loads(args.rescore.read_text())
    scene = load_scene(args.work / "cgc")
    meta = {key: value for key, value in earlier.items() if key != "runs"}
    meta["command"] += ("`, runs made at cgc " + meta["revision"] + ", scored again by "
                        "`python bench/bench_fox_opensplat.py " + " ".join(sys.argv[1:]))
    meta["revision"] = revision()
    meta["opensplat"] = opensplat_text(args)
    meta["check"] = check_reading(args.opensplat, args.work / "opensplat", scene,
                                  args.work / "check")
    print(json.dumps(meta["check"]), flush=True)
    runs = []
    for run in earlier["runs"]:
        kept = {k: run[k] for k in ("trainer", "iterations", "wall_s", "train_s",
                                    "train_resolution", "load", "model") if k in run}
        runs.append({**kept, **score_run(run["trainer"], Path(run["model"]), scene,
                                         args.resolution)})
        print(json.dumps(runs[-1]), flush=True)
    text = markdown(meta, runs)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({**meta, "runs": runs}, indent=1))
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", type=Path, help="the fox capture's folder")
    parser.add_argument("--opensplat", type=Path, default=Path("/work/opensplat/build/opensplat"))
    parser.add_argument("--iterations", default="250,500,1000,2000,4000",
                        help="cgc's runs (iteration counts)")
    parser.add_argument("--opensplat-iterations", default="50,100,250,500,1000,2000",
                        help="OpenSplat's runs (iteration counts)")
    parser.add_argument("--opensplat-schedule", choices=("default", "scaled"), default="default",
                        help="OpenSplat's step-based schedule: its defaults, or scaled to each "
                             "run's iterations as cgc scales its own")
    parser.add_argument("--cgc-config", type=Path, default=None,
                        help="a YAML of config overrides for cgc's runs (`cgc train --config`); "
                             "default: the default config")
    parser.add_argument("--resolution", type=int, default=160,
                        help="training resolution of both, longer side")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fox_opensplat"),
                        help="the prepared copies and the runs (outside the repository)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        "fox_opensplat.md")
    parser.add_argument("--rescore", type=Path, default=None,
                        help="an earlier results .json: score its runs again, no training")
    args = parser.parse_args()
    if args.scene is None and args.rescore is None:
        parser.error("--scene is required (unless --rescore)")
    if not args.opensplat.is_file():
        sys.exit(f"OpenSplat binary not found: {args.opensplat} (build it as bench/README.md says)")
    if args.rescore:
        rescore(args)
        return
    cgc_copy, opensplat_copy, facts = prepare(args.scene, args.work, args.resolution)
    scene = load_scene(cgc_copy)
    meta = {"command": "python bench/bench_fox_opensplat.py " + " ".join(sys.argv[1:]),
            "revision": revision(),
            "date": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
            "machine": f"{cpu_name()}, {os.cpu_count()} cores shared with other jobs, no GPU",
            "capture": f"instant-ngp's fox, {facts['train_views']} training and "
                       f"{facts['held_out_views']} held-out photos, undistorted and scaled to "
                       f"{facts['size'][0]}x{facts['size'][1]} (fx fy cx cy "
                       f"{facts['intrinsics']}), the same {facts['initial_points']} initial "
                       "points for both (cgc's seed without depth or points: pixel rays at the "
                       "depth where the cameras' axes meet)",
            "opensplat": opensplat_text(args), **facts}
    if args.cgc_config is not None:
        meta["cgc_config"] = args.cgc_config.read_text().strip()
    meta["check"] = check_reading(args.opensplat, opensplat_copy, scene, args.work / "check")
    print(json.dumps(meta["check"]), flush=True)
    runs = []
    for trainer, iterations in alternating([int(n) for n in args.iterations.split(",")],
                                           [int(n) for n in
                                            args.opensplat_iterations.split(",")]):
        out = args.work / f"{trainer}_{iterations}"
        if out.exists():
            shutil.rmtree(out)
        load = load_text()
        if trainer == "cgc":
            run = run_cgc(cgc_copy, out, iterations, args.cgc_config)
        else:
            extra = scaled_schedule(iterations) if args.opensplat_schedule == "scaled" else ()
            run = run_opensplat(args.opensplat, opensplat_copy, out, iterations, extra)
        runs.append({"trainer": trainer, "iterations": iterations, **run, "load": load,
                     **score_run(trainer, run["model"], scene, args.resolution),
                     "model": str(run["model"])})
        print(json.dumps(runs[-1]), flush=True)
        text = markdown(meta, runs)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({**meta, "runs": runs}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
