"""A synthetic tabletop scene with exact ground truth, rendered headless with pybullet.

`make_synthetic_scene` places a few distinct `pybullet_data` models on a table (seeded, without
overlap), renders views on an orbit around the table with pybullet's CPU TinyRenderer and writes
a complete scene folder that both readers load:

    images/<frame>.png              RGB
    depth/<frame>.png               16-bit z-depth in millimetres (0 = sky)
    instances/<frame>.png           exact instance ids, the same in every view (objects.json)
    masks_inconsistent/<frame>.png  SAM-like corrupted segments (cgc_core.data.inconsistent)
    transforms.json                 nerfstudio cameras + split + depth + ply_file_path
    sparse/0/                       the same cameras (and points) as a binary COLMAP model
    split.json                      the split, for readers of the COLMAP model
    points3d.ply                    coloured points back-projected from a few depth maps
    test_mask/<frame>/<object>.png  LERF-Mask style ground truth for the test views
    prompts.json                    one pixel prompt per object, in a train view
    objects.json                    {instance id: name}; synth.json: generator parameters

Instance ids: 0 = background (sky), 1 = floor, 2 = table, 3.. = the objects. Floor and table are
kept as ids so every pixel is explained, but only the objects get test masks and prompts.

Projection is exact: the OpenGL projection matrix handed to pybullet is built from fx, fy, cx, cy
so that rendered pixel (col, row) samples the ray through (col + 0.5, row + 0.5), the cgc
convention; TinyRenderer samples half a pixel off the textbook OpenGL mapping, measured here by
back-projecting the depth of an oblique plane (the tests check it the same way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cgc_core.cameras import OPENGL_TO_OPENCV, Camera
from cgc_core.data.colmap import write_colmap_model
from cgc_core.data.ground_truth import Prompt, write_gt_mask, write_prompts
from cgc_core.data.inconsistent import make_inconsistent_masks
from cgc_core.data.nerfstudio import write_nerfstudio_scene, write_point_ply
from cgc_core.data.scene import SPLIT_FILE
from cgc_core.geometry import backproject
from cgc_core.io import write_depth_png, write_json, write_label_png, write_rgb

BACKGROUND_ID, FLOOR_ID, TABLE_ID, FIRST_OBJECT_ID = 0, 1, 2, 3
TABLE_TOP_Z = 0.625
"""Height of pybullet_data's table.urdf top surface (its top box spans z 0.575..0.625)."""
TABLE_HALF_EXTENT = (0.75, 0.5)
NEAR, FAR = 0.05, 20.0
"""Clip planes of the renders (metres); the depth buffer is converted back with them."""
# TinyRenderer samples pixel (col, row) at (col + 0, row + 1) of the OpenGL window mapping;
# shifting the principal point by these amounts makes it sample at the pixel centres.
_TINY_CX_SHIFT, _TINY_CY_SHIFT = -0.5, 0.5


@dataclass(frozen=True)
class ModelSpec:
    """A pybullet_data model and the scale that makes it a tabletop-sized object."""

    name: str
    urdf: str
    scale: float


CATALOGUE = (
    ModelSpec("duck", "duck_vhacd.urdf", 1.8),
    ModelSpec("teddy", "teddy_vhacd.urdf", 1.8),
    ModelSpec("mug", "objects/mug.urdf", 1.3),
    ModelSpec("lego", "lego/lego.urdf", 4.0),
    ModelSpec("jenga", "jenga/jenga.urdf", 1.1),
    ModelSpec("soccerball", "soccerball.urdf", 0.13),
    ModelSpec("red_sphere", "sphere2red.urdf", 0.11),
    ModelSpec("cube", "cube_small.urdf", 2.4),
    ModelSpec("tray", "tray/traybox.urdf", 0.35),
    ModelSpec("blue_block", "random_urdfs/000/000.urdf", 1.4),
    ModelSpec("maroon_block", "random_urdfs/001/001.urdf", 1.4),
)
"""Distinct shapes and colours; names double as ground-truth object names and prompt ids."""


@dataclass
class PlacedObject:
    instance_id: int
    spec: ModelSpec
    body: int
    position: np.ndarray
    """[3] world position of the body base after placement."""
    yaw: float


def make_synthetic_scene(out_dir: str | Path, seed: int = 0, width: int = 320, height: int = 240,
                         n_train: int = 40, n_test: int = 8, n_objects: int = 6,
                         fov_deg: float = 60.0, radius: tuple[float, float] = (0.7, 1.0),
                         elevation: tuple[float, float] = (0.6, 0.9),
                         min_gt_pixels: int = 100, n_cloud_views: int = 6,
                         max_cloud_points: int = 20_000, shadows: bool = True,
                         progress=None) -> Path:
    """Generate a synthetic tabletop scene folder (layout in the module docstring).

    Args:
        out_dir: the scene root (created; existing files with the same names are overwritten).
        seed: seeds object choice, placement, camera jitter and mask corruption.
        width, height: image size in pixels.
        n_train, n_test: number of views; test views are interleaved between train views on
            the orbit (never at a train pose).
        n_objects: objects on the table, drawn without repetition from CATALOGUE.
        fov_deg: horizontal field of view; fx = fy (square pixels), principal point at the centre.
        radius: (min, max) horizontal distance of the cameras from the table centre, metres.
        elevation: (min, max) camera height above the table top, metres. The default keeps every
            camera pitched at least ~30 degrees down, so no view sees the sky: a background at
            infinite depth has no place in a Gaussian model and turns into floaters that fog
            novel views.
        min_gt_pixels: an object gets a test mask in a test view only with at least this many
            visible pixels.
        n_cloud_views: train views whose depth maps are back-projected into `points3d.ply`.
        max_cloud_points: random subsample size of that point cloud.
        shadows: render cast shadows (about twice the render time; view-consistent shading
            that makes the scene look less like flat-coloured cut-outs).
        progress: optional callable(str) told about each stage.

    Returns:
        the scene root.
    """
    import pybullet
    import pybullet_data

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message: None)
    # Independent streams per stage, so the cameras can be re-derived without pybullet
    # (`orbit_cameras`) and changing one stage's draws leaves the others as they were.
    object_rng, cloud_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 2])
    if not 1 <= n_objects <= len(CATALOGUE):
        raise ValueError(f"n_objects must lie in 1..{len(CATALOGUE)}, got {n_objects}")
    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        body_to_instance, objects = _build_world(pybullet, client, object_rng, n_objects)
        cameras, test_list = orbit_cameras(out, seed, width, height, n_train, n_test, fov_deg,
                                           radius, elevation)
        say(f"rendering {len(cameras)} views at {width}x{height}")
        renders = {}
        for cam in cameras:
            rgb, depth, seg = _render(pybullet, client, cam, shadows)
            instances = _instances_from_segmentation(seg, body_to_instance)
            depth[instances == BACKGROUND_ID] = 0.0  # sky: no surface, invalid depth
            renders[cam.name] = (rgb, depth, instances)
    finally:
        pybullet.disconnect(physicsClientId=client)

    say("writing images, depth, instances and corrupted masks")
    for index, cam in enumerate(cameras):
        rgb, depth, instances = renders[cam.name]
        write_rgb(cam.image_path, rgb)
        write_depth_png(cam.depth_path, depth)
        write_label_png(out / "instances" / f"{cam.name}.png", instances)
        # One generator per view, derived from (seed, view): any view can be regenerated alone.
        view_rng = np.random.default_rng([seed, 1, index])
        write_label_png(out / "masks_inconsistent" / f"{cam.name}.png",
                        make_inconsistent_masks(instances, view_rng))

    names = {BACKGROUND_ID: "background", FLOOR_ID: "floor", TABLE_ID: "table"}
    names.update({o.instance_id: o.spec.name for o in objects})
    train_names = [c.name for c in cameras if c.name not in test_list]

    say("writing point cloud, transforms.json, COLMAP model and ground truth")
    cloud_views = [cameras[i] for i in _spread([cameras.index(c) for c in cameras
                                                if c.name in train_names], n_cloud_views)]
    points, colors = _point_cloud(cloud_views, renders, max_cloud_points, cloud_rng)
    write_point_ply(out / "points3d.ply", points, colors)
    write_nerfstudio_scene(out, cameras, train_names, test_list, ply_file="points3d.ply")
    write_colmap_model(out / "sparse" / "0", cameras, points, colors, binary=True)
    write_json(out / SPLIT_FILE, {"train": train_names, "test": test_list})
    write_json(out / "objects.json", {str(k): v for k, v in sorted(names.items())})
    gt_count = _write_test_masks(out, test_list, renders, names, min_gt_pixels)
    prompts = _best_prompts(train_names, renders, names)
    write_prompts(out / "prompts.json", prompts)
    write_json(out / "synth.json", {
        "seed": seed, "width": width, "height": height, "near": NEAR, "far": FAR,
        "objects": [{"id": o.instance_id, "name": o.spec.name, "urdf": o.spec.urdf,
                     "scale": o.spec.scale, "position": o.position.tolist(), "yaw": o.yaw}
                    for o in objects],
        "test_masks": gt_count, "prompts": len(prompts),
    })
    return out


def _build_world(pybullet, client: int, rng: np.random.Generator, n_objects: int
                 ) -> tuple[dict[int, int], list[PlacedObject]]:
    """Floor, table and `n_objects` non-overlapping objects; returns body → instance id."""
    floor = pybullet.loadURDF("plane.urdf", physicsClientId=client)
    table = pybullet.loadURDF("table/table.urdf", physicsClientId=client)
    body_to_instance = {floor: FLOOR_ID, table: TABLE_ID}
    chosen = rng.choice(len(CATALOGUE), size=n_objects, replace=False)
    placed: list[tuple[np.ndarray, np.ndarray]] = []  # (xy centre, [2] footprint half-size)
    objects = []
    for k, spec_index in enumerate(chosen):
        spec = CATALOGUE[spec_index]
        yaw = float(rng.uniform(0, 2 * np.pi))
        orientation = pybullet.getQuaternionFromEuler([0, 0, yaw])
        body = pybullet.loadURDF(spec.urdf, basePosition=[0, 0, 0], baseOrientation=orientation,
                                 globalScaling=spec.scale, useFixedBase=True,
                                 physicsClientId=client)
        lo, hi = (np.array(v) for v in pybullet.getAABB(body, physicsClientId=client))
        centre_offset = (lo[:2] + hi[:2]) / 2
        half_size = (hi[:2] - lo[:2]) / 2
        xy = _free_spot(rng, half_size, placed)
        placed.append((xy, half_size))
        # Put the AABB's centre at xy and its bottom on the table top.
        position = np.array([xy[0] - centre_offset[0], xy[1] - centre_offset[1],
                             TABLE_TOP_Z - lo[2]])
        pybullet.resetBasePositionAndOrientation(body, position.tolist(), orientation,
                                                 physicsClientId=client)
        body_to_instance[body] = FIRST_OBJECT_ID + k
        objects.append(PlacedObject(FIRST_OBJECT_ID + k, spec, body, position, yaw))
    return body_to_instance, objects


def _free_spot(rng: np.random.Generator, half_size: np.ndarray,
               placed: list[tuple[np.ndarray, np.ndarray]], gap: float = 0.03,
               tries: int = 5000) -> np.ndarray:
    """A random table position whose footprint box clears the placed ones by `gap` metres.

    Footprints are the yawed objects' axis-aligned boxes (`half_size` [2]), so boxes that clear
    each other guarantee the objects do. Objects stay in the middle 70% of the table so the
    orbit keeps them in view.
    """
    limit = np.array(TABLE_HALF_EXTENT) * 0.7 - half_size
    for _ in range(tries):
        xy = rng.uniform(-limit, limit)
        if all(np.any(np.abs(xy - c) >= half_size + h + gap) for c, h in placed):
            return xy
    raise RuntimeError("could not place the objects without overlap; use fewer objects")


def orbit_cameras(out_dir: str | Path, seed: int = 0, width: int = 320, height: int = 240,
                  n_train: int = 40, n_test: int = 8, fov_deg: float = 60.0,
                  radius: tuple[float, float] = (0.7, 1.0),
                  elevation: tuple[float, float] = (0.6, 0.9), max_roll_deg: float = 4.0
                  ) -> tuple[list[Camera], list[str]]:
    """The cameras `make_synthetic_scene` renders with the same arguments, and the test names.

    Cameras lie on an orbit around the table centre, test views interleaved between train views
    (image paths point into `out_dir/images`, depth into `out_dir/depth`).

    Views are spread evenly in azimuth; height and distance sweep their ranges twice per orbit
    (plus jitter), so consecutive views differ in all three and test poses are never train poses.
    A small random roll (up to `max_roll_deg`) makes them less perfectly level, as hand-held ones.
    """
    rng = np.random.default_rng([seed, 3])
    out = Path(out_dir)
    total = n_train + n_test
    if n_train < 1 or n_test < 0:
        raise ValueError("need at least one train view and a non-negative number of test views")
    test_index = {int((i + 0.5) * total / n_test) for i in range(n_test)} if n_test else set()
    fx = width / 2 / np.tan(np.radians(fov_deg) / 2)
    centre = np.array([0.0, 0.0, TABLE_TOP_Z])
    cameras, test_names = [], []
    for k in range(total):
        phase = 2 * np.pi * k / total
        azimuth = phase + rng.uniform(-0.3, 0.3) * np.pi / total
        wave = 0.5 + 0.5 * np.sin(2 * phase + rng.uniform(-0.3, 0.3))
        r = radius[0] + (radius[1] - radius[0]) * (1 - wave)
        z = elevation[0] + (elevation[1] - elevation[0]) * wave
        eye = centre + np.array([r * np.cos(azimuth), r * np.sin(azimuth), z])
        target = centre + np.append(rng.uniform(-0.05, 0.05, size=2), 0.0)
        roll = np.radians(rng.uniform(-max_roll_deg, max_roll_deg))
        c2w = look_at(eye, target) @ _roll_about_optical_axis(roll)
        name = f"frame_{k:04d}"
        cameras.append(Camera(name, width, height, fx, fx, width / 2, height / 2, c2w,
                              image_path=out / "images" / f"{name}.png",
                              depth_path=out / "depth" / f"{name}.png"))
        if k in test_index:
            test_names.append(name)
    return cameras, test_names


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """[4, 4] OpenCV camera-to-world at `eye` looking at `target`, image 'up' towards `up`."""
    forward = np.asarray(target, float) - np.asarray(eye, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, float))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)  # OpenCV y points down in the image
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def _roll_about_optical_axis(angle: float) -> np.ndarray:
    """[4, 4] rotation about the camera's z axis (right-multiplied onto a camera-to-world)."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.eye(4)
    rot[:2, :2] = [[c, -s], [s, c]]
    return rot


def pybullet_matrices(cam: Camera, near: float = NEAR, far: float = FAR
                      ) -> tuple[list[float], list[float]]:
    """(view, projection) matrices for pybullet.getCameraImage, column-major flat lists.

    View: world-to-camera in OpenGL axes. Projection: the OpenGL frustum of fx, fy, cx, cy with
    image row 0 at the top, corrected for TinyRenderer's sampling offset (module docstring).
    """
    view = OPENGL_TO_OPENCV @ np.linalg.inv(cam.cam_to_world)
    w, h = cam.width, cam.height
    cx, cy = cam.cx + _TINY_CX_SHIFT, cam.cy + _TINY_CY_SHIFT
    proj = np.array([
        [2 * cam.fx / w, 0.0, 1 - 2 * cx / w, 0.0],
        [0.0, 2 * cam.fy / h, 2 * cy / h - 1, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])
    return view.T.ravel().tolist(), proj.T.ravel().tolist()


def depth_buffer_to_metres(buffer: np.ndarray, near: float = NEAR, far: float = FAR) -> np.ndarray:
    """pybullet's non-linear [0, 1] depth buffer → [H, W] float32 z-depth in metres."""
    buffer = np.asarray(buffer, dtype=np.float64)
    return (far * near / (far - (far - near) * buffer)).astype(np.float32)


def _render(pybullet, client: int, cam: Camera, shadows: bool = True
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One TinyRenderer view → (rgb [H, W, 3] uint8, depth [H, W] float32 m, body ids [H, W])."""
    view, proj = pybullet_matrices(cam)
    _, _, rgba, depth, seg = pybullet.getCameraImage(
        cam.width, cam.height, viewMatrix=view, projectionMatrix=proj,
        renderer=pybullet.ER_TINY_RENDERER, lightDirection=[0.4, -0.6, 1.0],
        shadow=int(shadows),
        physicsClientId=client)
    shape = (cam.height, cam.width)
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)[..., :3].copy()
    return (rgb, depth_buffer_to_metres(np.asarray(depth).reshape(shape)),
            np.asarray(seg, dtype=np.int64).reshape(shape))


def _instances_from_segmentation(seg: np.ndarray, body_to_instance: dict[int, int]) -> np.ndarray:
    """pybullet body ids (-1 = nothing) → [H, W] int32 instance ids (0 = background)."""
    lookup = np.zeros(max(body_to_instance) + 2, dtype=np.int32)
    for body, instance in body_to_instance.items():
        lookup[body + 1] = instance
    return lookup[seg + 1]


def backproject_valid(cam: Camera, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid depth pixels → ([N, 3] world points, [N] flat pixel indices)."""
    rows, cols = np.nonzero(depth > 0)
    return backproject(cam, depth, rows, cols), rows * cam.width + cols


def project(cam: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, 3] world points → ([N, 2] pixel (u, v), [N] z-depth); pixel centres at +0.5."""
    w2c = np.linalg.inv(cam.cam_to_world)
    local = points @ w2c[:3, :3].T + w2c[:3, 3]
    z = local[:, 2]
    uv = np.stack([cam.fx * local[:, 0] / z + cam.cx, cam.fy * local[:, 1] / z + cam.cy], axis=1)
    return uv, z


def _spread(indices: list[int], count: int) -> list[int]:
    """`count` entries of `indices` spread evenly over it."""
    if count >= len(indices):
        return list(indices)
    return [indices[int(i * len(indices) / count)] for i in range(count)]


def _point_cloud(cameras: list[Camera], renders: dict, max_points: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coloured points back-projected from the depth of `cameras`, floor cropped near the table."""
    points, colors = [], []
    for cam in cameras:
        rgb, depth, _ = renders[cam.name]
        world, flat = backproject_valid(cam, depth)
        # The floor plane is infinite; keep what a model of the room around the table needs.
        keep = np.linalg.norm(world[:, :2], axis=1) < 3.0
        points.append(world[keep])
        colors.append(rgb.reshape(-1, 3)[flat[keep]])
    points, colors = np.concatenate(points), np.concatenate(colors)
    if len(points) > max_points:
        pick = rng.choice(len(points), size=max_points, replace=False)
        points, colors = points[pick], colors[pick]
    return points, colors


def _write_test_masks(out: Path, test_names: list[str], renders: dict, names: dict[int, str],
                      min_pixels: int) -> int:
    """test_mask/<frame>/<object>.png for each object with >= min_pixels in a test view."""
    count = 0
    for name in test_names:
        instances = renders[name][2]
        for instance_id, object_name in names.items():
            if instance_id < FIRST_OBJECT_ID:
                continue
            mask = instances == instance_id
            if mask.sum() >= min_pixels:
                write_gt_mask(out, name, object_name, mask)
                count += 1
    return count


def _best_prompts(train_names: list[str], renders: dict, names: dict[int, str]) -> list[Prompt]:
    """Per object, the train-view pixel deepest inside it (distance-transform maximum).

    The deepest pixel over all train views is the most unambiguous click: far from every edge,
    in a view where the object is large and unoccluded there.
    """
    best: dict[int, tuple[float, str, tuple[float, float]]] = {}
    for name in train_names:
        instances = renders[name][2]
        for instance_id in np.unique(instances):
            if instance_id < FIRST_OBJECT_ID:
                continue
            # Pad with background so the image border counts as an edge too.
            inside = np.pad(instances == instance_id, 1)
            distance = ndimage.distance_transform_edt(inside)[1:-1, 1:-1]
            row, col = np.unravel_index(np.argmax(distance), distance.shape)
            if instance_id not in best or distance[row, col] > best[instance_id][0]:
                best[instance_id] = (float(distance[row, col]), name, (col + 0.5, row + 0.5))
    return [Prompt(names[i], frame, (float(u), float(v)))
            for i, (_, frame, (u, v)) in sorted(best.items())]


def synth_command(out: Path, seed: int = 0, **kwargs) -> Path:
    """`cgc synth OUT --seed S`: generate a scene, printing progress and a summary."""
    start = time.perf_counter()
    root = make_synthetic_scene(out, seed=seed, progress=lambda m: print(f"  {m}", flush=True),
                                **kwargs)
    from cgc_core.data.load import load_scene
    from cgc_core.io import read_json

    scene = load_scene(root)
    info = read_json(root / "synth.json")
    objects = ", ".join(o["name"] for o in info["objects"])
    print(f"wrote {root}: {len(scene.train_names)} train + {len(scene.test_names)} test views at "
          f"{info['width']}x{info['height']}, {len(scene.points)} points, objects: {objects}; "
          f"{info['test_masks']} test masks, {info['prompts']} prompts "
          f"({time.perf_counter() - start:.1f} s)")
    return root
