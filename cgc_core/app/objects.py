"""`cgc objects / extract / label` on a RUN folder (see cgc_core.objects for the engine)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cgc_core.app.run_folder import Run
from cgc_core.model.gaussians import save_ply
from cgc_core.model.view import render_view
from cgc_core.objects import (
    ExtractedObject,
    ObjectTable,
    extract_object,
    ground_text,
    run_objects,
    save_object_table,
    write_point_cloud,
)
from cgc_core.objects.store import label_object
from cgc_core.query import camera_tensors
from cgc_core.service.map_service import spread
from cgc_core.service.query import pixel_object


def format_object_table(table: ObjectTable) -> str:
    """The table as aligned text, one object a line, background last."""
    lines = [f"{'id':>4}  {'label':<16} {'colour':<8} {'gaussians':>9}  {'centroid (m)':<24} "
             f"{'box sides (m)':<20} kind"]
    for obj in sorted(table.objects, key=lambda o: (o.background, o.id)):
        centroid = " ".join(f"{v:+.3f}" for v in obj.centroid)
        sides = " ".join(f"{v:.3f}" for v in sorted(obj.obb_extent, reverse=True))
        lines.append(f"{obj.id:>4}  {obj.label or '-':<16} {obj.color_name or '-':<8} "
                     f"{obj.count:>9}  {centroid:<24} {sides:<20} "
                     f"{'background' if obj.background else 'object'}")
    return "\n".join(lines)


def table_json(table: ObjectTable) -> list[dict]:
    """The objects as JSON-ready dicts, without the voxel lists."""
    return [obj.to_json(with_voxels=False) for obj in table.objects]


def keyframes_of(run: Run, count: int) -> list:
    """Evenly spread training cameras of the run's scene (as the node spreads its keyframes)."""
    return spread(run.scene.train_cameras or run.scene.cameras, count)


def _frame(run: Run, name: str):
    if name not in {c.name for c in run.scene.cameras}:
        known = ", ".join(c.name for c in run.scene.cameras[:5])
        raise ValueError(f"unknown frame '{name}' (frames look like: {known}, ...)")
    return run.scene.camera(name)


@dataclass
class Extraction:
    """What `extract_from_run` did: the object, and how it was chosen."""

    object: ExtractedObject
    description: str


def extract_from_run(run: Run, *, text: str | None = None, frame: str | None = None,
                     point: tuple[float, float] | None = None, object_id: int | None = None,
                     view: str | None = None, threshold: float | None = None) -> Extraction:
    """Extract one object of a run, chosen by text, by a pixel prompt or by id."""
    config = run.config
    views = keyframes_of(run, config.objects.surface_views)
    depths = [run.scene.load_depth(view) for view in views]  # None where a view has none
    t = config.query.selection_threshold if threshold is None else threshold
    if not -1.0 <= t <= 1.0:
        raise ValueError(f"--threshold must lie in [-1, 1], got {t}")
    splats = run.splats
    if frame is not None:  # the one query pipeline, as the node's pixel prompts
        u, v = point
        table = run_objects(run.root, splats, config.objects) \
            if config.query.whole_objects else None  # a prompt on a lid takes the tin too
        prompted = pixel_object(splats, _frame(run, frame), u, v, render=config.render,
                                query=config.query, table=table, selection_threshold=t)
        obj = extract_object(splats, prompted.feature, t, config.objects, seed=prompted.seed,
                             views=views, render=config.render, depths=depths)
        return Extraction(obj, f"pixel ({u}, {v}) of {frame}")
    table = run_objects(run.root, splats, config.objects)
    if text is not None:
        camera = _frame(run, view) if view else None
        result = ground_text(table, text, config.objects, view=camera,
                             model_scorers=_model_scorers(run, table, splats))
        if not result.found:
            raise ValueError(result.message)
        object_id, description = result.object.id, result.message
    else:
        description = f"object {object_id}"
    info = table.get(object_id)
    obj = extract_object(splats, torch.from_numpy(info.part_features), t, config.objects,
                         members=table.members(object_id), views=views, render=config.render,
                         depths=depths)
    return Extraction(obj, description)


def _model_scorers(run: Run, table: ObjectTable, splats) -> dict:
    """Weights-based grounding backends named in the config, looking at evenly spread training
    views of the run's scene."""
    config = run.config.objects
    if not {b.strip() for b in config.grounding.split(",")} & {"dino", "clip"}:
        return {}
    from cgc_core.objects.models import model_scorers
    keyframes = [(cam, run.scene.load_image(cam)) for cam in keyframes_of(run, config.model_views)]
    return model_scorers(config, splats, table, keyframes, run.config.render)


@torch.no_grad()
def render_alone(run: Run, obj: ExtractedObject, frame: str) -> np.ndarray:
    """[H, W, 3] uint8 colour render of the object's Gaussians alone (black background)."""
    camera = _frame(run, frame)
    viewmat, K = camera_tensors(camera, obj.splats["means"].device)
    from cgc_core.model.gaussians import sh_degree_of
    out = render_view(obj.splats, viewmat, K, camera.width, camera.height,
                      sh_degree=sh_degree_of(obj.splats), render=run.config.render)
    return (out.rgb.clamp(0, 1) * 255).round().byte().cpu().numpy()


def write_extraction(run: Run, obj: ExtractedObject, out: Path, *, splats_out: Path | None = None,
                     render_frame: str | None = None, render_out: Path | None = None) -> list[Path]:
    """Write the point cloud (and optionally the Gaussian subset and a render); the paths."""
    from cgc_core.io import write_rgb
    if (render_frame is None) != (render_out is None):
        raise ValueError("--render-frame and --render-out go together")
    if len(obj.points) == 0:
        raise ValueError("the extracted object has no opaque Gaussians")
    written = []
    write_point_cloud(out, obj.points, obj.colors)
    written.append(out)
    if splats_out is not None:
        save_ply(obj.splats, splats_out)
        written.append(splats_out)
    if render_frame is not None:
        write_rgb(render_out, render_alone(run, obj, render_frame))
        written.append(render_out)
    return written


def label_in_run(run: Run, object_id: int, text: str) -> ObjectTable:
    """`cgc label`: name an object and store the table."""
    table = run_objects(run.root, run.splats, run.config.objects)
    label_object(table, object_id, text)
    save_object_table(run.root, table)
    return table
