"""A built-in scene that changes while the robot maps it (family `changes`, seeds 1100-1199).

The camera circles the table twice. Between the circles one object is taken away, one is moved
15-50 cm to a free spot and one new object is put down. Frames are named in time order
(`p1_0000`.. then `p2_0000`..) so that a player that sends the training views in file order
sends them as a camera would; the test views and the prompts come from the second pass, so
they ask for the table as it is now.

synth.json records the changes ("changes": removed, moved with its position before and after,
added; positions are the objects' axis-aligned box centres in world metres) and the frames of
each pass ("passes"), for `bench/bench_changes.py` to score ghosts, moved objects and how fast
each change was decided.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from cgc_core.cameras import Camera
from cgc_core.data import synth
from cgc_core.data.synth import (
    CATALOGUE,
    TABLE_HALF_EXTENT,
    _build_world,
    _instances_from_segmentation,
    _Placer,
    _render,
    _World,
    _write_scene,
    exact_sensor_family,
    orbit_cameras,
    scene_family,
)

MOVE_DISTANCE = (0.15, 0.50)
"""How far the moved object goes (m, between its box centres)."""


def make_changing_scene(out_dir: str | Path, seed: int, *, width: int = 320, height: int = 240,
                        n_test: int = 8, fov_deg: float = 60.0, exact_sensor: bool = False,
                        n_train: int | None = None, progress=None) -> Path:
    """Write a `changes` scene (module docstring); arguments as `make_synthetic_scene`'s
    (n_train: training views per pass, default the family's 30)."""
    import pybullet
    import pybullet_data

    family = scene_family(seed)
    if family.name != "changes":
        raise ValueError(f"seed {seed} is not of the changes family (1100-1199)")
    if exact_sensor:
        family = exact_sensor_family(family)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message: None)
    object_rng, cloud_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 2])
    change_rng = np.random.default_rng([seed, 8])
    n_train = family.n_train if n_train is None else n_train
    n_objects = int(object_rng.integers(family.n_objects_range[0], family.n_objects_range[1] + 1))
    first, _ = orbit_cameras(out, seed, width, height, n_train, 0, fov_deg)
    second, test_list = orbit_cameras(out, seed, width, height, n_train, n_test,
                                      fov_deg)
    first = [_renamed(cam, f"p1_{k:04d}", out) for k, cam in enumerate(first)]
    renames = {cam.name: f"p2_{k:04d}" for k, cam in enumerate(second)}
    second = [_renamed(cam, renames[cam.name], out) for cam in second]
    test_list = [renames[name] for name in test_list]
    renders, truths = {}, {}
    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        world = _build_world(pybullet, client, object_rng, n_objects, family)
        placer = _Placer(pybullet, client, change_rng, family)
        placer.placed = [_footprint(o) for o in world.objects]
        say(f"rendering the first pass: {len(first)} views at {width}x{height}")
        _render_views(pybullet, client, first, world, renders, truths)
        changes = _change_the_table(pybullet, client, placer, world, change_rng)
        say(f"removed {changes['removed']['name']}, moved {changes['moved']['name']} "
            f"{changes['moved']['distance']:.2f} m, added {changes['added']['name']}")
        say(f"rendering the second pass: {len(second)} views")
        _render_views(pybullet, client, second, world, renders, truths)
    finally:
        pybullet.disconnect(physicsClientId=client)
    second_train = [c.name for c in second if c.name not in test_list]
    extra = {"changes": changes,
             "passes": {"first": [c.name for c in first], "second": [c.name for c in second]}}
    return _write_scene(out, family, seed, first + second, test_list, renders, truths, world,
                        width=width, height=height, min_gt_pixels=family.min_gt_pixels,
                        n_cloud_views=6, max_cloud_points=20_000, cloud_rng=cloud_rng, say=say,
                        prompt_views=second_train, extra=extra)


def _renamed(cam: Camera, name: str, out: Path) -> Camera:
    return dataclasses.replace(cam, name=name, image_path=out / "images" / f"{name}.png",
                               depth_path=out / "depth" / f"{name}.png")


def _render_views(pybullet, client: int, cameras: list[Camera], world: _World, renders: dict,
                  truths: dict) -> None:
    for cam in cameras:
        rgb, depth, seg = _render(pybullet, client, cam)
        instances = _instances_from_segmentation(seg, world.body_to_instance)
        depth[instances == synth.BACKGROUND_ID] = 0.0
        renders[cam.name] = (rgb, depth, instances)
        truths[cam.name] = instances


def _footprint(obj) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (np.array(v) for v in obj.aabb)
    return (lo[:2] + hi[:2]) / 2, (hi[:2] - lo[:2]) / 2


def _box_centre(pybullet, client: int, bodies) -> np.ndarray:
    boxes = np.array([pybullet.getAABB(b, physicsClientId=client) for b in bodies])
    return (boxes[:, 0].min(0) + boxes[:, 1].max(0)) / 2


def _change_the_table(pybullet, client: int, placer: _Placer, world: _World,
                      rng: np.random.Generator) -> dict:
    """Take one object away, move another to a free spot 15-50 cm off, put a new one down."""
    removed, moved = (world.objects[i] for i in rng.choice(len(world.objects), 2, replace=False))
    removed_at = _box_centre(pybullet, client, removed.bodies)
    for body in removed.bodies:
        pybullet.removeBody(body, physicsClientId=client)
        del world.body_to_instance[body]
    moved_from = _box_centre(pybullet, client, moved.bodies)
    keep = [i for i, o in enumerate(world.objects) if o is not removed and o is not moved]
    placer.placed = [_footprint(world.objects[i]) for i in keep]
    half = _footprint(moved)[1]
    limit = np.array(TABLE_HALF_EXTENT) * 0.8 - half
    for _ in range(5000):
        xy = rng.uniform(-limit, limit)
        distance = float(np.linalg.norm(xy - moved_from[:2]))
        if MOVE_DISTANCE[0] <= distance <= MOVE_DISTANCE[1] and placer._clear(xy, half):
            break
    else:
        raise RuntimeError("no free spot 15-50 cm from the moved object")
    shift = np.array([xy[0] - moved_from[0], xy[1] - moved_from[1], 0.0])
    for body in moved.bodies:
        position, orientation = pybullet.getBasePositionAndOrientation(body,
                                                                       physicsClientId=client)
        pybullet.resetBasePositionAndOrientation(body, (np.array(position) + shift).tolist(),
                                                 orientation, physicsClientId=client)
    moved_to = _box_centre(pybullet, client, moved.bodies)
    placer.placed.append((xy, half))
    used = {o.spec.name for o in world.objects}
    spec = CATALOGUE[int(rng.choice([i for i, c in enumerate(CATALOGUE) if c.name not in used]))]
    yaw = float(rng.uniform(0, 2 * np.pi))
    body, lo, hi = placer.load_model(spec, yaw)
    placer.place(world, spec, body, lo, hi, yaw)
    added = world.objects[-1]
    return {
        "removed": {"id": removed.instance_id, "name": removed.spec.name,
                    "position": removed_at.tolist()},
        "moved": {"id": moved.instance_id, "name": moved.spec.name,
                  "before": moved_from.tolist(), "after": moved_to.tolist(),
                  "distance": float(np.linalg.norm((moved_to - moved_from)[:2]))},
        "added": {"id": added.instance_id, "name": added.spec.name,
                  "position": _box_centre(pybullet, client, added.bodies).tolist()},
    }
