"""report.html of a main-job folder, built only from the files the run wrote.

Reads OUT/player.json (what the player streamed and what the node answered), OUT/run.json
(command, timings), the saved map OUT/map/ (checkpoint.pt + objects.json), the scene when it has one
(held-out images and ground truth) and OUT/node.log. Writes one self-contained page: every
picture is embedded as a data URI and the page loads nothing from the network, so it can be
mailed or opened from a USB stick. Pictures that need the model (objects alone, the clusters'
orbit) are rendered here from the saved map on the CPU.

Pure cgc_core: no ROS is imported, so the report of any folder can be rebuilt offline with
`python -m cgc_eval.report OUT`.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cgc_core.app.pictures import overlay
from cgc_core.cameras import Camera
from cgc_core.geometry import look_at
from cgc_core.io import DataError, read_json, read_label_png
from cgc_core.model.gaussians import subset
from cgc_core.model.sh import C0
from cgc_core.model.view import render_view
from cgc_core.objects.cluster import ObjectInfo
from cgc_core.query import camera_tensors, cosine_to
from cgc_core.service import maps
from cgc_core.service.query import PromptedObject, select_object

REPORT_FILE = "report.html"
ORBIT_VIEWS = 12
OBJECT_RENDER_SIZE = 160
GREY = (110, 110, 110)
"""Gaussians of no object, in the clusters' pictures."""
BACKGROUND = (200, 200, 200)
"""Background objects (table, floor), in the clusters' pictures."""


# ---------------------------------------------------------------------------------- pictures

def data_uri(image: np.ndarray | Path, fmt: str = "PNG") -> str:
    """An image (array or file) as a data: URI, so the page needs no file beside it."""
    if isinstance(image, Path):
        mime = "image/jpeg" if image.suffix.lower() in (".jpg", ".jpeg") else "image/png"
        return f"data:{mime};base64," + base64.b64encode(image.read_bytes()).decode()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format=fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def img(uri: str, alt: str, css: str = "") -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}" title="{html.escape(alt)}"' + (
        f' class="{css}"' if css else "") + ">"


def orbit_camera(eye: np.ndarray, target: np.ndarray, width: int, height: int, fov_deg: float,
                 name: str) -> Camera:
    """A camera at `eye` looking at `target` (`cgc_core.geometry.look_at`, world z up) with a
    horizontal field of view of `fov_deg`."""
    focal = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    return Camera(name=name, width=width, height=height, fx=focal, fy=focal, cx=width / 2,
                  cy=height / 2, cam_to_world=look_at(eye, target))


def looked_at_point(cameras: list[Camera]) -> np.ndarray:
    """[3] the point nearest to every camera's optical axis (least squares): what they orbit."""
    a, b = np.zeros((3, 3)), np.zeros(3)
    for camera in cameras:
        eye, axis = camera.cam_to_world[:3, 3], camera.cam_to_world[:3, 2]
        off_axis = np.eye(3) - np.outer(axis, axis)  # distance to the axis, squared, is x'Px
        a += off_axis
        b += off_axis @ eye
    if len(cameras) < 2 or np.linalg.cond(a) > 1e8:  # parallel axes: in front of the first
        first = cameras[0].cam_to_world
        return first[:3, 3] + first[:3, 2]
    return np.linalg.solve(a, b)


def painted(splats: dict, colors: np.ndarray) -> dict:
    """The model with every Gaussian in one flat colour [N, 3] uint8 (SH degree 0)."""
    out = dict(splats)
    rgb = torch.as_tensor(colors, dtype=torch.float32) / 255.0
    out["sh0"] = ((rgb - 0.5) / C0).reshape(-1, 1, 3).to(splats["sh0"])
    out["shN"] = torch.zeros_like(splats["shN"])
    return out


@torch.no_grad()
def render_rgb(splats: dict, camera: Camera, render_config, sh_degree: int,
               background=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """([H, W, 3] uint8 colour, [H, W] alpha) of `splats` seen from `camera`."""
    viewmat, K = camera_tensors(camera, splats["means"].device)
    out = render_view(splats, viewmat, K, camera.width, camera.height, sh_degree=sh_degree,
                      render=render_config, background=torch.tensor(background))
    rgb = (out.rgb.clamp(0, 1) * 255).byte().cpu().numpy()
    return rgb, out.alphas.reshape(camera.height, camera.width).cpu().numpy()


def crop_to_alpha(rgb: np.ndarray, alpha: np.ndarray, margin: int = 6) -> np.ndarray:
    rows, cols = np.nonzero(alpha > 0.3)
    if len(rows) == 0:
        return rgb
    top, bottom = max(rows.min() - margin, 0), min(rows.max() + margin + 1, rgb.shape[0])
    left, right = max(cols.min() - margin, 0), min(cols.max() + margin + 1, rgb.shape[1])
    return rgb[top:bottom, left:right]


def display_colour(rgb) -> str:
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


# ---------------------------------------------------------------------------------- the map

def part_features(obj: dict) -> torch.Tensor:
    """[P, D] the part features of a saved object (as `ObjectInfo.from_json` reads them)."""
    return torch.from_numpy(ObjectInfo.from_json(obj).part_features).float()


def is_map(folder: Path) -> bool:
    try:
        maps.checkpoint_of(folder)
        return True
    except DataError:
        return False


class SavedMap:
    """The map the node saved (cgc_core.service.maps), loaded without executing code."""

    def __init__(self, folder: Path):
        from cgc_core.train.live import LiveSession

        session = LiveSession.load(maps.checkpoint_of(folder), device="cpu")
        snapshot = session.snapshot()
        self.config = session.config
        self.splats = {k: v.detach() for k, v in snapshot.splats.items()}
        self.sh_degree = snapshot.sh_degree
        self.keyframes = snapshot.keyframes
        self.step = snapshot.step
        table = maps.read_objects(folder)
        self.objects = [] if table is None else [o.to_json() for o in table.objects]

    def object(self, object_id: int, label: str = "") -> dict | None:
        """The saved object with this label (labels survive re-clustering), else this id."""
        return next((o for o in self.objects if label and o.get("label") == label),
                    next((o for o in self.objects if int(o["id"]) == object_id), None))

    def owners(self) -> np.ndarray:
        """[N] index into `objects` of each Gaussian's object by feature (-1: none)."""
        if not self.objects:
            return np.full(len(self.splats["means"]), -1)
        features = torch.nn.functional.normalize(self.splats["features"], dim=-1)
        best, index = torch.stack([cosine_to(features, part_features(o))
                                   for o in self.objects], dim=1).max(dim=1)
        index[best < self.config.query.selection_threshold] = -1
        return index.numpy()

    def object_alone(self, obj: dict, camera: Camera) -> np.ndarray | None:
        """The object's Gaussians (feature within the threshold, inside its box grown by 10 %,
        so that look-alike floaters elsewhere stay out) rendered alone, cropped."""
        selection = select_object(self.splats, PromptedObject(str(obj["id"]),
                                                               part_features(obj)),
                                  self.config.query.selection_threshold)  # the one pipeline
        keep = torch.from_numpy(selection.selected)
        low, high = np.array(obj["aabb_min"]), np.array(obj["aabb_max"])
        margin = 0.1 * (high - low) + 1e-3
        low, high = (torch.tensor(v, dtype=torch.float32) for v in (low - margin,
                                                                    high + margin))
        means = self.splats["means"]
        keep &= ((means >= low) & (means <= high)).all(dim=1)
        if int(keep.sum()) == 0:
            return None
        rgb, alpha = render_rgb(subset(self.splats, keep.numpy()), camera, self.config.render,
                                self.sh_degree)
        return crop_to_alpha(rgb, alpha)

    def orbit(self, width: int = 320, height: int = 240) -> list[np.ndarray]:
        """Renders of the Gaussians coloured by object, from a circle around the objects."""
        owners = self.owners()
        # Background (table, floor, walls) in a light grey, so that the objects stand out.
        palette = np.array([BACKGROUND if o.get("background") else o["color"]
                            for o in self.objects] + [GREY], dtype=np.uint8)
        colours = palette[owners]  # -1 -> the last entry, grey
        model = painted(self.splats, colours)
        centre = looked_at_point(self.keyframes)
        eyes = np.array([k.cam_to_world[:3, 3] for k in self.keyframes]) - centre
        radius = float(np.median(np.linalg.norm(eyes, axis=1)))
        elevation = float(np.median(np.arcsin(eyes[:, 2] / np.linalg.norm(eyes, axis=1))))
        views = []
        for i in range(ORBIT_VIEWS):
            angle = 2 * np.pi * i / ORBIT_VIEWS
            eye = centre + radius * np.array([np.cos(elevation) * np.cos(angle),
                                              np.cos(elevation) * np.sin(angle),
                                              np.sin(elevation)])
            camera = orbit_camera(eye, centre, width, height, 60.0, f"orbit_{i}")
            views.append(render_rgb(model, camera, self.config.render, 0)[0])
        return views


# ---------------------------------------------------------------------------------- sections

def quality_plot(samples: list[dict]) -> str | None:
    if not samples:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.0), dpi=100)
    t = [s["time"] for s in samples]
    ax.plot(t, [s["mIoU"] for s in samples], "o-", label="mIoU")
    ax.plot(t, [s["mBIoU"] for s in samples], "s--", label="mBIoU")
    for s in samples:
        ax.annotate(f"it {s['iteration']}", (s["time"], s["mIoU"]), fontsize=7,
                    textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xlabel("seconds since the node came up")
    ax.set_ylabel("held-out score (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def heldout_rows(out: Path, scene, frames: list[str], names: list[str]) -> str:
    """Per held-out view: the image, ground truth and the node's masks, one colour per object."""
    from cgc_core.app.pictures import PALETTE
    from cgc_core.data.ground_truth import load_gt_masks

    gt = load_gt_masks(scene.root)
    rows = []
    for frame in frames[:4]:
        image = scene.load_raw_image(scene.camera(frame))  # masks: raw grid
        truth, ours = image.copy(), image.copy()
        for i, name in enumerate(names):
            colour = PALETTE[i % len(PALETTE)]
            if name in gt.get(frame, {}):
                truth = overlay(truth, gt[frame][name], colour)
            mask_file = out / "heldout" / frame / f"{name}.png"
            if mask_file.is_file():
                ours = overlay(ours, read_label_png(mask_file) > 0, colour)
        rows.append(
            f"<tr><td>{html.escape(frame)}</td><td>{img(data_uri(image, 'JPEG'), frame)}</td>"
            f"<td>{img(data_uri(truth, 'JPEG'), 'ground truth ' + frame)}</td>"
            f"<td>{img(data_uri(ours, 'JPEG'), 'cgc ' + frame)}</td></tr>")
    legend = " ".join(
        f'<span class="swatch" style="background:{display_colour(PALETTE[i % len(PALETTE)])}">'
        f"</span>{html.escape(n)}" for i, n in enumerate(names))
    return (f'<p class="legend">{legend}</p><table class="views"><tr><th>view</th>'
            "<th>image</th><th>ground truth</th><th>cgc, through the node</th></tr>"
            + "".join(rows) + "</table>")


def yes_no(entry: dict | None) -> str:
    if not entry:
        return '<span class="na">-</span>'
    mark = "&#10003;" if entry.get("same_object") else "&#10007;"
    return (f'<span title="{html.escape(entry.get("message", ""))}">{mark} '
            f"{html.escape(entry['text'])}</span>")


def object_cards(out: Path, player: dict, saved: SavedMap | None, scene) -> tuple[str, str]:
    """(cards of every object rendered alone, the per-object metrics table)."""
    per_object = (player.get("final") or {}).get("per_object", {})
    cards, rows = [], []
    for entry in player["objects"]:
        obj = saved.object(entry["id"], entry["name"]) if saved is not None else None
        picture = '<div class="missing">no Gaussians</div>'
        if saved is not None and obj is not None:
            camera = None
            if scene is not None and entry.get("prompt"):
                try:
                    camera = scene.camera(entry["prompt"]["frame"])
                except (KeyError, ValueError):
                    camera = None
            camera = camera or (saved.keyframes[-1] if saved.keyframes else None)
            alone = saved.object_alone(obj, camera) if camera else None
            if alone is not None:
                picture = img(data_uri(alone), f"{entry['name']} alone")
        # The clustered object's oriented box; the extraction's axis-aligned box also holds
        # every look-alike Gaussian elsewhere in the scene.
        size = (obj or {}).get("obb_extent") or entry.get("box_size") or [0, 0, 0]
        size_cm = " x ".join(f"{100 * s:.1f}" for s in size)
        label = (obj or {}).get("label") or entry["name"]
        colour = (obj or {}).get("color", [200, 200, 200])
        colour_name = entry.get("colour_name") or (obj or {}).get("color_name", "")
        quality = per_object.get(entry["name"], {})
        ply = (f'<a href="{html.escape(entry["ply"])}">{html.escape(Path(entry["ply"]).name)}'
               "</a>") if entry.get("ply") else ""
        cards.append(
            f'<div class="card">{picture}<div><b>{html.escape(label)}</b> '
            f'<span class="swatch" style="background:{display_colour(colour)}"></span> '
            f"{html.escape(colour_name)}<br>{size_cm} cm, score {entry['score']:.2f}<br>"
            f"{entry['points']} Gaussians {ply}</div></div>")
        miou = f"{quality['mIoU']:.1f} / {quality['mBIoU']:.1f}" if quality else "-"
        rows.append(
            f'<tr class="object"><td>{html.escape(entry["name"])}</td><td>{entry["id"]}</td>'
            f"<td>{html.escape(label)}</td><td><span class=\"swatch\" style=\"background:"
            f"{display_colour(colour)}\"></span> {html.escape(colour_name)}</td>"
            f"<td>{size_cm}</td><td>{entry['points']}</td><td>{entry['score']:.2f}</td>"
            f"<td>{miou}</td><td>{entry['pixel_seconds']:.2f}</td>"
            f"<td>{yes_no(entry.get('by_label'))}</td><td>{yes_no(entry.get('by_colour'))}</td>"
            "</tr>")
    table = ('<table id="objects"><tr><th>object</th><th>id</th><th>label</th><th>colour</th>'
             "<th>size (cm)</th><th>Gaussians</th><th>score</th><th>held-out mIoU / mBIoU</th>"
             "<th>pixel query (s)</th><th>by label</th><th>by colour word</th></tr>"
             + "".join(rows) + "</table>")
    return '<div class="cards">' + "".join(cards) + "</div>", table


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "gpu": gpu,
            "python": sys.version.split()[0], "torch": torch.__version__,
            "os": platform.platform()}


def key_values(rows: dict) -> str:
    return "<table class=\"kv\">" + "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()) + "</table>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.strip{display:flex;overflow-x:auto;gap:3px} .strip img{height:72px}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 7px;
text-align:left;font-size:14px} .views img{width:240px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;padding:6px;width:190px;
font-size:14px}.card img{max-width:176px;max-height:140px;display:block;margin:auto}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #888;vertical-align:middle}
.orbit img{width:480px} .summary{font-size:16px} .na{color:#999} .missing{color:#999}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px;max-height:300px}
"""

ORBIT_SCRIPT = """
const views = Array.from(document.querySelectorAll('.orbit-frame'));
const slider = document.getElementById('orbit-angle');
function showView(i){views.forEach((v,j)=>{v.style.display = j===i ? 'block' : 'none';});}
slider.addEventListener('input', ()=>showView(Number(slider.value)));
let playing = setInterval(()=>{slider.value=(Number(slider.value)+1)%views.length;
showView(Number(slider.value));}, 400);
slider.addEventListener('pointerdown', ()=>clearInterval(playing));
showView(0);
"""


def write_report(out: str | Path) -> Path:
    """Build OUT/report.html from the run's files; returns its path."""
    out = Path(out)
    player = read_json(out / "player.json")
    run = read_json(out / "run.json") if (out / "run.json").is_file() else {}
    scene = None
    if run.get("scene"):
        from cgc_core.data.load import load_scene

        scene = load_scene(Path(run["scene"]))
    saved = SavedMap(out / "map") if is_map(out / "map") else None
    status = player.get("status", {})
    session = status.get("session", {})
    final = player.get("final") or {}
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>cgc "
             f"report</title><style>{STYLE}</style></head><body>",
             "<h1>cgc: what the node learned</h1>"]
    summary = (f"{len(player['frames'])} frames streamed at {player['rate']:g} frames/s into "
               f"the ROS 2 node, {session.get('keyframes', 0)} keyframes, "
               f"{session.get('num_gaussians', 0)} Gaussians, {session.get('step', 0)} "
               f"iterations, {len(player['objects'])} objects queried.")
    if final:
        summary += (f" Held-out mIoU <b>{final['mIoU']:.1f}</b>, mBIoU "
                    f"<b>{final['mBIoU']:.1f}</b> over {final['pairs']} (view, object) pairs.")
    parts.append(f'<p class="summary">{summary}</p><p>Source: {html.escape(player["source"])}'
                 "</p>")

    parts.append("<h2>Input frames</h2><div class=\"strip\" id=\"frames\">" + "".join(
        img(data_uri(out / f["file"]), f["frame"]) for f in player["frames"]) + "</div>")
    learned = [f for f in player.get("live", []) if f.get("phase") == "learned"]
    if learned:
        inputs = {f["frame"]: f["file"] for f in player["frames"]}
        parts.append("<p>Some of these frames sent again after learning, and the node's "
                     "<code>~/segmentation/color</code> for them (one colour per object):</p>"
                     '<div class="strip" id="live">' + "".join(
                         img(data_uri(out / inputs[f["frame"]]), f["frame"])
                         + img(data_uri(out / f["file"]), "segmentation " + f["frame"])
                         for f in learned if f["frame"] in inputs) + "</div>")

    if scene is not None and not (scene.root / "test_mask").is_dir():
        parts.append("<p><b>This scene has no ground truth</b> (no <code>test_mask/</code>): "
                     "no mIoU / mBIoU. Shown instead: the held-out photos beside the map's "
                     "render with PSNR / SSIM, the node's segmentation, and the objects.</p>")
    quality_html, quality_rows = map_quality(saved, scene)
    parts.append(quality_html)
    if scene is not None and player.get("heldout_frames"):
        names = [o["name"] for o in player["objects"]]
        parts.append("<h2>Held-out views</h2><p>Views the node never saw. Masks come from "
                     "<code>segment_object</code> by text (the label given after a pixel "
                     "prompt in a training view) rendered at each held-out pose.</p>"
                     + heldout_rows(out, scene, player["heldout_frames"], names))

    cards, table = object_cards(out, player, saved, scene)
    parts.append("<h2>Objects</h2><p>Each object as <code>segment_object</code> extracted it "
                 "by pixel prompt, rendered alone from the saved map (label, colour word, "
                 "box size, mean similarity score; PLY of its points).</p>" + cards)

    if saved is not None and saved.objects:
        views = saved.orbit()
        frames = "".join(f'<div class="orbit-frame">{img(data_uri(v, "JPEG"), f"orbit {i}")}'
                         "</div>" for i, v in enumerate(views))
        parts.append("<h2>Clusters in 3D</h2><p>The map's Gaussians coloured by object "
                     "(light grey: background, dark grey: no object), seen from a circle "
                     "around what the cameras looked at; drag the slider to turn.</p>"
                     '<div class="orbit">' + frames + "</div>"
                     f'<input type="range" id="orbit-angle" min="0" max="{len(views) - 1}" '
                     'value="0" aria-label="orbit angle">')

    plot = quality_plot(player.get("quality", []))
    if plot:
        parts.append("<h2>Quality while streaming</h2><p>Held-out mIoU / mBIoU measured "
                     "through the node's services while it learned.</p>"
                     + img(plot, "held-out mIoU over time"))

    parts.append("<h2>Metrics</h2>" + table)
    if quality_rows:
        parts.append(key_values(quality_rows))
    if final:
        rows = {"held-out mIoU / mBIoU (through the node)":
                f"{final['mIoU']:.2f} / {final['mBIoU']:.2f}"}
        offline = offline_scores(saved, scene)
        if offline:
            rows["held-out mIoU / mBIoU of the saved map (cgc eval's protocol)"] = \
                f"{offline['mIoU']:.2f} / {offline['mBIoU']:.2f}"
        parts.append(key_values(rows))

    timings = {f"{k} (s)": v for k, v in run.get("timings", {}).items()}
    timings.update({f"player: {k} (s)": v for k, v in player.get("timings", {}).items()})
    latency = status.get("latency_ms", {})
    for name, values in latency.items():
        timings[f"node {name} latency, median / max (ms)"] = \
            f"{values['median']} / {values['max']}"
    timings["frames taken / dropped by the node"] = \
        f"{status.get('frames_taken', 0)} / {status.get('frames_dropped', 0)}"
    parts.append("<h2>Timings</h2>" + key_values(timings))
    parts.append("<h2>Machine</h2>" + key_values(
        {**machine(), "date": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="minutes")}))
    files = [("map", f"map/{maps.checkpoint_of(out / 'map').name}" if is_map(out / "map")
              else "map/checkpoint.pt"), ("objects", "map/objects.json"),
             ("node log", "node.log"), ("player record", "player.json")]
    parts.append("<h2>Files</h2><ul>" + "".join(
        f'<li><a href="{p}">{html.escape(n)}: {p}</a></li>' for n, p in files
        if (out / p).exists()) + "".join(
        f'<li><a href="{html.escape(o["ply"])}">{html.escape(o["ply"])}</a></li>'
        for o in player["objects"] if o.get("ply")) + "</ul>")
    log = out / "node.log"
    if log.is_file():
        tail = log.read_text(errors="replace").splitlines()[-30:]
        parts.append("<h2>Node log (last lines)</h2><pre>" + html.escape("\n".join(tail))
                     + "</pre>")
    if saved is not None and saved.objects:
        parts.append(f"<script>{ORBIT_SCRIPT}</script>")
    parts.append("</body></html>")
    path = out / REPORT_FILE
    path.write_text("\n".join(parts))
    return path


MAP_QUALITY_VIEWS = 4
"""Held-out views shown photo beside render in the map-quality section (all are scored)."""


def map_quality(saved: SavedMap | None, scene) -> tuple[str, dict]:
    """The map's own quality on the held-out views: (HTML with photo beside render for the first
    `MAP_QUALITY_VIEWS`, metric rows with PSNR / SSIM), at the training resolution and the
    neutral exposure (`cgc_core.app.evaluate.colour_quality`); empty without test views."""
    if saved is None or scene is None or not scene.test_names:
        return "", {}
    from cgc_core.app.evaluate import colour_quality, render_colour
    from cgc_core.train.schedule import planned_resolution
    from cgc_core.train.views import training_scale

    resolution = planned_resolution(saved.config, torch.device("cpu"))
    quality = colour_quality(saved.splats, scene, saved.config.render, resolution)
    cells = []
    for name in scene.test_names[:MAP_QUALITY_VIEWS]:
        camera = scene.camera(name)
        view = camera.scaled(training_scale(camera, resolution))
        photo = Image.fromarray(scene.load_image(camera)).resize((view.width, view.height),
                                                                 Image.BOX)
        rendered = (render_colour(saved.splats, view, saved.config.render) * 255).round()
        scores = quality["per_view"][name]
        cells.append(f"<tr><td>{html.escape(name)}</td><td>"
                     + img(data_uri(np.asarray(photo), "JPEG"), "held-out photo " + name)
                     + "</td><td>" + img(data_uri(rendered.astype(np.uint8), "JPEG"),
                                         "render " + name)
                     + f"</td><td>{scores['psnr']:.2f} dB<br>SSIM {scores['ssim']:.3f}</td></tr>")
    width, height = quality["resolution"]
    text = (f"<h2>The map's own quality</h2><p>Held-out photos beside the saved map's colour "
            f"at the same pose ({width}x{height}, the training resolution; the neutral "
            f"exposure, no view's learned correction). PSNR {quality['psnr']:.2f} dB, SSIM "
            f"{quality['ssim']:.3f} over {quality['views']} held-out views.</p>"
            "<table><tr><th>view</th><th>photo</th><th>render</th><th>PSNR / SSIM</th></tr>"
            + "".join(cells) + "</table>")
    rows = {"held-out colour PSNR (dB) / SSIM": f"{quality['psnr']:.2f} / {quality['ssim']:.3f}"}
    return text, rows


def offline_scores(saved: SavedMap | None, scene) -> dict | None:
    """mIoU / mBIoU of the saved map by `cgc eval`'s protocol (prompt feature, every view)."""
    if saved is None or scene is None or not (scene.root / "test_mask").is_dir():
        return None
    from cgc_core.app.evaluate import evaluate_run

    return evaluate_run(saved.splats, scene, saved.config.render, saved.config.query.threshold,
                        saved.config.query, saved.config.objects)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Rebuild OUT/report.html from a main-job folder")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    print(write_report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
