"""A synthetic tabletop scene with exact ground truth, rendered headless with pybullet.

`make_synthetic_scene` places a few distinct `pybullet_data` models on a table (seeded, without
overlap), renders views on an orbit around the table with pybullet's CPU TinyRenderer and writes
a complete scene folder that both readers load.

The seed also picks a scene family (`FAMILIES`, family = seed // 100), each a failure class a
user meets; all write the same layout:

    0-99     tabletop  six normal objects spread over the table (the original generator; these
                       scenes are unchanged)
    100-199  small     1-2 normal objects and 4-10 cm small ones (scaled-down models, coloured
                       primitives), two pairs 3-10 cm apart, the rest spread over the table
    200-299  wide      cameras 20-60 degrees above the table that see the floor and a room around
                       it (walls 2.5-3 m away, furniture boxes)
    300-399  split     1-2 two-part objects (lid on a tin, two-tone block) whose parts the masks
                       always give as separate segments, as SAM does; ground truth is the whole
    400-499  merges    objects packed 1 cm apart; the masks merge an object with a neighbouring
                       object (never the table) with probability 0.4 instead of 0.1

Robot conditions (`ROBOT_CONDITIONS`), each alone, then together. Only what a sensor or SLAM
gives is corrupted: training RGB, training depth, training poses (`cgc_core.data.sensor_noise`,
one RNG stream per condition and view); instances, masks, test views and ground truth are exact:

    500-599    clutter      8-12 objects (catalogue, small primitives, 0-1 split objects) packed
                            in the middle of the table, 3-4 pairs touching (footprints 0-1 cm
                            apart), the others at least 1 cm apart
    600-699    pose         tabletop objects; training poses with SLAM-like error, 0.5 deg and
                            5 mm RMS per frame (random axis, rotation about the camera centre)
    700-799    photometric  tabletop objects; exposure gain ±12 % and white balance ±3 % per
                            frame, sensor noise σ 3/255
    800-899    depth_noise  tabletop objects; depth noise σ = 0.0025 z² (m), 2 % holes (edges,
                            blobs, single pixels)
    900-999    low          views 20-45 deg above the table, 0.55-0.9 m from its centre, 60
                            training views; walls around the room (a robot indoors sees no sky)
    1000-1099  robot        all of the above

A scene that changes (`cgc_core.data.synth_changes`):

    1100-1199  changes      5-7 tabletop objects, two passes of 30 views around the table; in
                            between one object is taken away, one moved 15-50 cm to a free spot
                            and one added; frames in time order (p1_*, then p2_*), test views
                            from the second pass; the depth noise of depth_noise

Layout:

    images/<frame>.png              RGB (training views as the camera gives them)
    depth/<frame>.png               16-bit z-depth in millimetres (0 = sky or a sensor hole)
    instances/<frame>.png           exact instance ids, the same in every view (objects.json)
    masks_inconsistent/<frame>.png  SAM-like corrupted segments (cgc_core.data.inconsistent)
    transforms.json                 nerfstudio cameras + split + depth + ply_file_path (the
                                    given poses: with error in the pose and robot families)
    sparse/0/                       the same cameras (and points) as a binary COLMAP model
    split.json                      the split, for readers of the COLMAP model
    points3d.ply                    coloured points back-projected from a few training views'
                                    depth maps with their given poses (noisy where those are)
    poses_true.json                 pose and robot families: {frame: exact [4, 4] OpenCV c2w}
    test_mask/<frame>/<object>.png  LERF-Mask style ground truth for the test views
    prompts.json                    one pixel prompt per object, in a train view
    objects.json                    {instance id: name}; synth.json: generator parameters
                                    (robot conditions: "sensor", the draws of every frame)

Instance ids: 0 = background (sky), 1 = floor, 2 = table, 3.. = the objects, then (wide family)
the room's walls and furniture ("scenery" in synth.json). Floor, table and scenery are kept as ids
so every pixel is explained, but only the objects get test masks and prompts.

Projection is exact: the OpenGL projection matrix handed to pybullet is built from fx, fy, cx, cy
so that rendered pixel (col, row) samples the ray through (col + 0.5, row + 0.5), the cgc
convention; TinyRenderer samples half a pixel off the textbook OpenGL mapping, measured here by
back-projecting the depth of an oblique plane (the tests check it the same way).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from cgc_core.cameras import OPENGL_TO_OPENCV, Camera
from cgc_core.data.colmap import write_colmap_model
from cgc_core.data.ground_truth import Prompt, write_gt_mask, write_prompts
from cgc_core.data.inconsistent import make_inconsistent_masks
from cgc_core.data.nerfstudio import write_nerfstudio_scene, write_point_ply
from cgc_core.data.scene import SPLIT_FILE
from cgc_core.data.sensor_noise import depth_noise, exposure_and_noise, perturb_pose, pose_error
from cgc_core.geometry import backproject, look_at
from cgc_core.io import write_depth_png, write_json, write_label_png, write_rgb
from cgc_core.lens import OPENCV, cover_camera, make_lens, to_raw, undistorted_camera

BACKGROUND_ID, FLOOR_ID, TABLE_ID, FIRST_OBJECT_ID = 0, 1, 2, 3
TABLE_TOP_Z = 0.625
"""Height of pybullet_data's table.urdf top surface (its top box spans z 0.575..0.625)."""
TABLE_HALF_EXTENT = (0.75, 0.5)
NEAR, FAR = 0.05, 20.0
"""Clip planes of the renders (metres); the depth buffer is converted back with them."""
# TinyRenderer samples pixel (col, row) at (col + 0, row + 1) of the OpenGL window mapping;
# shifting the principal point by these amounts makes it sample at the pixel centres.
_TINY_CX_SHIFT, _TINY_CY_SHIFT = -0.5, 0.5
POSES_TRUE_FILE = "poses_true.json"
"""{frame: [4, 4] exact OpenCV camera-to-world} of every view, written when the family's
training poses carry SLAM-like error (pose, robot)."""


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


@dataclass(frozen=True)
class Part:
    """A coloured primitive: "box" (size = half extents), "cylinder" (radius, height) or
    "sphere" (radius,); `bottom` is its lowest point above the object's base and `offset` its
    horizontal offset from the object's axis (object frame), metres."""

    name: str
    shape: str
    size: tuple[float, ...]
    rgba: tuple[float, float, float, float]
    bottom: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)

    @property
    def height(self) -> float:
        return {"box": 2 * self.size[-1], "cylinder": self.size[-1],
                "sphere": 2 * self.size[0]}[self.shape]


@dataclass(frozen=True)
class PrimitiveSpec:
    """An object built from primitives (pybullet bodies, one per part, all yawed together).

    Part sizes and offsets are multiplied by `scale`: the split family uses them as they are
    (metres, scale 1), the small family's are for a longest side of 1 and get scaled to it.
    """

    name: str
    parts: tuple[Part, ...]
    scale: float = 1.0


def _primitive(name: str, shape: str, size: tuple[float, ...], rgba) -> PrimitiveSpec:
    return PrimitiveSpec(name, (Part(name, shape, size, (*rgba, 1.0)),))


SMALL_PRIMITIVES = (
    _primitive("green_box", "box", (0.5, 0.35, 0.3), (0.15, 0.65, 0.2)),
    _primitive("yellow_can", "cylinder", (0.3, 1.0), (0.95, 0.8, 0.1)),
    _primitive("purple_ball", "sphere", (0.5,), (0.55, 0.2, 0.75)),
    _primitive("orange_box", "box", (0.5, 0.5, 0.25), (0.95, 0.45, 0.05)),
    _primitive("cyan_puck", "cylinder", (0.5, 0.45), (0.1, 0.75, 0.8)),
    _primitive("pink_ball", "sphere", (0.5,), (0.95, 0.45, 0.65)),
    _primitive("black_box", "box", (0.5, 0.25, 0.25), (0.12, 0.12, 0.12)),
)
"""Small-family primitives, sized by their longest side (scaled to 4-10 cm)."""

SPLIT_CATALOGUE = (
    PrimitiveSpec("tin", (
        Part("tin_body", "cylinder", (0.045, 0.1), (0.8, 0.12, 0.12, 1.0)),
        Part("tin_lid", "cylinder", (0.048, 0.02), (0.95, 0.85, 0.2, 1.0), bottom=0.1))),
    PrimitiveSpec("crate", (
        Part("crate_body", "box", (0.07, 0.05, 0.045), (0.2, 0.45, 0.25, 1.0)),
        Part("crate_lid", "box", (0.075, 0.055, 0.0125), (0.55, 0.8, 0.45, 1.0), bottom=0.09))),
    PrimitiveSpec("two_tone_block", (
        Part("block_blue", "box", (0.03, 0.05, 0.04), (0.15, 0.3, 0.85, 1.0),
             offset=(-0.03, 0.0)),
        Part("block_orange", "box", (0.03, 0.05, 0.04), (0.95, 0.5, 0.1, 1.0),
             offset=(0.03, 0.0)))),
)
"""Split-family objects: two parts that the masks always give as separate segments (the lid
and the side of a tin or a crate, the halves of a block painted in two colours)."""

FURNITURE = (
    ("cabinet", (0.25, 0.2, 0.45), (0.9, 0.9, 0.85)),
    ("bookshelf", (0.45, 0.15, 0.9), (0.45, 0.3, 0.18)),
    ("sofa", (0.8, 0.25, 0.4), (0.2, 0.25, 0.5)),
    ("armchair", (0.35, 0.25, 0.45), (0.8, 0.6, 0.15)),
    ("crates", (0.3, 0.2, 0.3), (0.6, 0.45, 0.3)),
)
"""Wide-family furniture: (name, half extents, colour); stands against a wall."""
WALL_COLOURS = ((0.85, 0.82, 0.75), (0.7, 0.78, 0.85), (0.78, 0.85, 0.72), (0.88, 0.72, 0.66))
WALL_HEIGHT = 2.6


@dataclass(frozen=True)
class Family:
    """How the scenes of one seed range (family = seed // 100) are built; recorded in synth.json.

    Every family keeps the output layout; the fields say what differs from the tabletop.
    """

    name: str
    n_objects: int = 6
    """Objects on the table (the default of make_synthetic_scene's n_objects)."""
    radius: tuple[float, float] = (0.7, 1.0)
    elevation: tuple[float, float] = (0.6, 0.9)
    """Camera distance from the table axis and height above the table top (m); see orbit_cameras."""
    elevation_deg: tuple[float, float] | None = None
    distance: tuple[float, float] | None = None
    """When set (wide): cameras at these elevation angles (degrees, seen from the table centre)
    and distances (m), instead of radius / elevation."""
    min_gt_pixels: int = 100
    gap: float = 0.03
    """Least clearance between object footprints (m)."""
    spread: float = 0.7
    """Objects stay within this fraction of the table's half extents."""
    n_normal: tuple[int, int] | None = None
    """Small: (min, max) catalogue objects at their normal size; the others are small."""
    small_size: tuple[float, float] = (0.05, 0.09)
    """Small: target longest side of the small objects (m)."""
    n_pairs: int = 0
    pair_gap: tuple[float, float] = (0.03, 0.10)
    """Small: pairs of small objects placed with this footprint clearance (m)."""
    single_spread: float = 0.85
    """Small: spread of the unpaired small objects (most of the table)."""
    n_split: tuple[int, int] = (0, 0)
    """Split: (min, max) objects from SPLIT_CATALOGUE."""
    room: bool = False
    """Wide: four walls at `wall_distance` and `n_furniture` boxes against them."""
    wall_distance: tuple[float, float] = (2.5, 3.0)
    n_furniture: tuple[int, int] = (0, 0)
    cloud_radius: float = 3.0
    """points3d.ply keeps points within this horizontal distance of the table centre."""
    masks: dict = field(default_factory=dict)
    """make_inconsistent_masks arguments that differ from its defaults."""
    merge_reach: float | None = None
    """Merges: merge_reach_px as a fraction of the image width."""
    # --- robot conditions (families 500+); the defaults leave the scenes above as they were ---
    n_objects_range: tuple[int, int] | None = None
    """Clutter: (min, max) objects, drawn per scene, instead of n_objects."""
    n_touching: tuple[int, int] = (0, 0)
    """Clutter: (min, max) pairs placed touching (footprints `pair_gap` apart)."""
    n_train: int = 40
    """Training views (the default of make_synthetic_scene's n_train)."""
    pose_rot_deg: float = 0.0
    """SLAM-like error of the training poses written to transforms.json / COLMAP: RMS rotation
    about the camera centre (degrees), independent per frame, random axis. Test views and
    poses_true.json keep the exact poses."""
    pose_trans_m: float = 0.0
    """RMS camera-centre error of the training poses (m), random direction."""
    exposure: float = 0.0
    """Training images: one gain per frame, uniform in [1 - exposure, 1 + exposure]."""
    white_balance: float = 0.0
    """Training images: one factor per channel and frame, uniform in 1 ± white_balance."""
    image_noise: float = 0.0
    """Training images: Gaussian sensor noise, σ in grey levels of 255 (clipped to uint8)."""
    depth_noise_at_1m: float = 0.0
    """Training depth: Gaussian noise of σ(z) = depth_noise_at_1m · z² (m)."""
    depth_hole_fraction: float = 0.0
    """Training depth: share of valid pixels made invalid (0), along edges, in blobs, single."""


ROBOT_CONDITIONS = dict(
    clutter=dict(n_objects_range=(8, 12), n_touching=(3, 4), pair_gap=(0.0, 0.01), gap=0.01,
                 spread=0.5, small_size=(0.06, 0.10), n_split=(0, 1), min_gt_pixels=60),
    pose=dict(pose_rot_deg=0.5, pose_trans_m=0.005),
    photometric=dict(exposure=0.12, white_balance=0.03, image_noise=3.0),
    depth_noise=dict(depth_noise_at_1m=0.0025, depth_hole_fraction=0.02),
    low=dict(elevation_deg=(20.0, 45.0), distance=(0.55, 0.9), n_train=60, room=True,
             cloud_radius=4.5),
)
"""The robot conditions of issue 24, one family each (seeds 500-999) and all together (robot,
1000-1099). Low views see over the table, so they get the wide family's walls instead of sky."""

FAMILIES = (
    Family("tabletop"),
    Family("small", n_objects=7, n_normal=(1, 2), n_pairs=2, min_gt_pixels=40),
    Family("wide", elevation_deg=(20.0, 60.0), distance=(1.3, 1.9), room=True,
           n_furniture=(2, 3), cloud_radius=4.5),
    Family("split", n_split=(1, 2)),
    Family("merges", gap=0.01, spread=0.45, masks={"merge_prob": 0.4, "merge_with": "objects"},
           merge_reach=0.02),
    *(Family(name, **params) for name, params in ROBOT_CONDITIONS.items()),
    Family("robot", **{k: v for params in ROBOT_CONDITIONS.values() for k, v in params.items()}),
    # Issue 28: two passes over a table changed in between (`synth_changes`); the robot
    # family's depth noise, so that the change thresholds meet it.
    Family("changes", n_objects_range=(5, 7), n_train=30,
           **ROBOT_CONDITIONS["depth_noise"]),
)
FAMILY_SEEDS = 100
"""Seeds per family: seed // FAMILY_SEEDS indexes FAMILIES."""
_ROBOT_FIELDS = ("n_objects_range", "n_touching", "n_train", "pose_rot_deg", "pose_trans_m",
                 "exposure", "white_balance", "image_noise", "depth_noise_at_1m",
                 "depth_hole_fraction")


SENSOR_FIELDS = ("pose_rot_deg", "pose_trans_m", "exposure", "white_balance", "image_noise",
                 "depth_noise_at_1m", "depth_hole_fraction")
"""The corruptions of what a sensor and SLAM give (the rest of a family is the scene itself)."""


def exact_sensor_family(family: Family) -> Family:
    """The family with its sensor and pose corruptions off: the same draws otherwise."""
    return dataclasses.replace(family, **{name: 0.0 for name in SENSOR_FIELDS})


def family_params(family: Family) -> dict:
    """The family as synth.json records it: every field, except the robot-condition fields a
    family leaves at their defaults (so scenes of families 0-499 keep their synth.json)."""
    params = dataclasses.asdict(family)
    for name in _ROBOT_FIELDS:
        if params[name] == dataclasses.asdict(Family("default"))[name]:
            del params[name]
    return params


def scene_family(seed: int) -> Family:
    """The family of scenes that `seed` belongs to (seed // 100)."""
    index = seed // FAMILY_SEEDS
    if seed < 0 or index >= len(FAMILIES):
        ranges = ", ".join(f"{k * FAMILY_SEEDS}-{(k + 1) * FAMILY_SEEDS - 1} {f.name}"
                           for k, f in enumerate(FAMILIES))
        raise ValueError(f"seed must lie in 0..{len(FAMILIES) * FAMILY_SEEDS - 1} ({ranges}), "
                         f"got {seed}")
    return FAMILIES[index]


@dataclass
class PlacedObject:
    instance_id: int
    spec: ModelSpec | PrimitiveSpec
    body: int
    position: np.ndarray
    """[3] pybullet base position (its centre-of-mass frame) after placement; of the first part
    for primitive objects."""
    yaw: float
    bodies: tuple[int, ...] = ()
    """Every pybullet body of the object (primitive objects: one per part)."""
    aabb: tuple[list[float], list[float]] | None = None
    """World (min, max) corners after placement."""
    size: float | None = None
    """Longest side of the unrotated object (m); recorded for scaled objects."""
    centres: tuple[list[float], ...] = ()
    """World centre of each body (primitive objects: of each part)."""


def make_synthetic_scene(out_dir: str | Path, seed: int = 0, width: int = 320, height: int = 240,
                         n_train: int | None = None, n_test: int = 8, n_objects: int | None = None,
                         fov_deg: float = 60.0, radius: tuple[float, float] | None = None,
                         elevation: tuple[float, float] | None = None,
                         min_gt_pixels: int | None = None, n_cloud_views: int = 6,
                         max_cloud_points: int = 20_000, shadows: bool = True,
                         exact_sensor: bool = False,
                         distortion: tuple[float, ...] | None = None, progress=None) -> Path:
    """Generate a synthetic scene folder of the seed's family (layout in the module docstring).

    Args:
        out_dir: the scene root (created; existing files with the same names are overwritten).
        seed: picks the family (seed // 100, `FAMILIES`) and seeds object choice, placement,
            camera jitter and mask corruption.
        width, height: image size in pixels.
        n_train, n_test: number of views; test views are interleaved between train views on
            the orbit (never at a train pose). n_train defaults to the family's (40; low and
            robot 60).
        n_objects: objects on the table (default: the family's; tabletop 6, clutter and robot
            8-12 drawn per scene), drawn without repetition from CATALOGUE (and the family's
            own objects).
        fov_deg: horizontal field of view; fx = fy (square pixels), principal point at the centre.
        radius: (min, max) horizontal distance of the cameras from the table centre, metres
            (default: the family's, see orbit_cameras).
        elevation: (min, max) camera height above the table top, metres. The tabletop default
            keeps every camera pitched at least ~30 degrees down, so no view sees the sky: a
            background at infinite depth has no place in a Gaussian model and turns into
            floaters that fog novel views. (The wide family's lower cameras see walls instead.)
        min_gt_pixels: an object gets a test mask in a test view only with at least this many
            visible pixels (default: the family's; 100, small family 40).
        n_cloud_views: train views whose depth maps are back-projected into `points3d.ply`:
            as a user would have it, from the depth and the poses the scene gives (in the
            pose and depth-noise families, the noisy ones).
        max_cloud_points: random subsample size of that point cloud.
        shadows: render cast shadows (about twice the render time; view-consistent shading
            that makes the scene look less like flat-coloured cut-outs).
        exact_sensor: switch the family's sensor and pose corruptions off (`exact_sensor`):
            the same scene, objects, views and masks as with them, as an exact sensor and
            exact poses give it, to measure what each condition costs.
        distortion: OpenCV lens coefficients (k1, k2[, p1, p2[, k3]]) the views are taken
            through (`_render_distorted`): every image, depth map, instance map, mask, test mask
            and prompt lies on the distorted grid, and transforms.json / the COLMAP model carry
            the coefficients; the point cloud comes from the undistorted depth. None: pinhole.
        progress: optional callable(str) told about each stage.

    Returns:
        the scene root.
    """
    import pybullet
    import pybullet_data

    family = scene_family(seed)
    if family.name == "changes":
        from cgc_core.data.synth_changes import make_changing_scene

        return make_changing_scene(out_dir, seed, width=width, height=height, n_test=n_test,
                                   fov_deg=fov_deg, exact_sensor=exact_sensor,
                                   n_train=n_train, progress=progress)
    if exact_sensor:
        family = exact_sensor_family(family)
    n_train = family.n_train if n_train is None else n_train
    min_gt_pixels = family.min_gt_pixels if min_gt_pixels is None else min_gt_pixels
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda message: None)
    # Independent streams per stage, so the cameras can be re-derived without pybullet
    # (`orbit_cameras`) and changing one stage's draws leaves the others as they were.
    object_rng, cloud_rng = np.random.default_rng([seed, 0]), np.random.default_rng([seed, 2])
    if n_objects is None and family.n_objects_range is not None:
        n_objects = int(object_rng.integers(family.n_objects_range[0],
                                            family.n_objects_range[1] + 1))
    n_objects = family.n_objects if n_objects is None else n_objects
    if family.name == "tabletop" and not 1 <= n_objects <= len(CATALOGUE):
        raise ValueError(f"n_objects must lie in 1..{len(CATALOGUE)}, got {n_objects}")
    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        world = _build_world(pybullet, client, object_rng, n_objects, family,
                             np.random.default_rng([seed, 4]))
        cameras, test_list = orbit_cameras(out, seed, width, height, n_train, n_test, fov_deg,
                                           radius, elevation)
        say(f"rendering {len(cameras)} views at {width}x{height} ({family.name} scene)")
        renders, truths, cloud_renders = {}, {}, {}
        lenses = _lenses(cameras, distortion)
        for cam in cameras:
            if cam.name in lenses:
                rgb, depth, seg, cloud_renders[cam.name] = _render_distorted(
                    pybullet, client, lenses[cam.name], shadows)
            else:
                rgb, depth, seg = _render(pybullet, client, cam, shadows)
            instances = _instances_from_segmentation(seg, world.body_to_instance)
            depth[instances == BACKGROUND_ID] = 0.0  # sky: no surface, invalid depth
            renders[cam.name] = (rgb, depth, instances)
            # What the masks are made from: the instances, with split objects' parts apart.
            truths[cam.name] = (_instances_from_segmentation(seg, world.body_to_part)
                                if world.part_groups else instances)
    finally:
        pybullet.disconnect(physicsClientId=client)

    return _write_scene(out, family, seed, cameras, test_list, renders, truths, world,
                        width=width, height=height, min_gt_pixels=min_gt_pixels,
                        n_cloud_views=n_cloud_views, max_cloud_points=max_cloud_points,
                        cloud_rng=cloud_rng, say=say, lenses=lenses,
                        cloud_renders=cloud_renders,
                        extra={"distortion": list(distortion)} if lenses else None)


def _write_scene(out: Path, family: Family, seed: int, cameras: list[Camera],
                 test_list: list[str], renders: dict, truths: dict, world: _World, *,
                 width: int, height: int, min_gt_pixels: int, n_cloud_views: int,
                 max_cloud_points: int, cloud_rng: np.random.Generator, say,
                 prompt_views: list[str] | None = None, extra: dict | None = None,
                 lenses: dict | None = None, cloud_renders: dict | None = None) -> Path:
    """Write the rendered views of `cameras` (`renders`: {frame: (rgb, depth, instances)},
    `truths`: {frame: what the masks are made from}) as a scene folder (module docstring).

    prompt_views: the train views prompts are chosen from (default: all); extra: more entries
    for synth.json; lenses: {frame: camera with its lens} of views taken through a lens, with
    cloud_renders {frame: (pinhole camera, its render)} behind them (`_render_distorted`).
    """
    lenses = lenses or {}
    mask_args = dict(family.masks)
    if family.merge_reach is not None:
        mask_args["merge_reach_px"] = max(2, round(family.merge_reach * width))
    if world.part_groups:
        mask_args["keep_apart"] = world.part_groups
    say("writing images, depth, instances and corrupted masks")
    # What the user gets: training views as the sensors and SLAM give them (sensor families).
    sensed, given, sensor = _sensor_views(family, seed, cameras, set(test_list), renders)
    for index, cam in enumerate(cameras):
        rgb, depth, instances = sensed[cam.name]
        write_rgb(cam.image_path, rgb)
        write_depth_png(cam.depth_path, depth)
        write_label_png(out / "instances" / f"{cam.name}.png", instances)
        # One generator per view, derived from (seed, view): any view can be regenerated alone.
        view_rng = np.random.default_rng([seed, 1, index])
        write_label_png(out / "masks_inconsistent" / f"{cam.name}.png",
                        make_inconsistent_masks(truths[cam.name], view_rng, **mask_args))

    objects = world.objects
    names = {BACKGROUND_ID: "background", FLOOR_ID: "floor", TABLE_ID: "table"}
    names.update({o.instance_id: o.spec.name for o in objects})
    names.update({s["id"]: s["name"] for s in world.scenery})
    object_names = {o.instance_id: o.spec.name for o in objects}
    train_names = [c.name for c in cameras if c.name not in test_list]

    say("writing point cloud, transforms.json, COLMAP model and ground truth")
    cloud_views = [given[i] for i in _spread([cameras.index(c) for c in cameras
                                              if c.name in train_names], n_cloud_views)]
    if lenses:  # back-project the pinhole renders behind the distorted views
        cloud_views = [dataclasses.replace(cloud_renders[c.name][0], cam_to_world=c.cam_to_world)
                       for c in cloud_views]
        sensed_cloud = {c.name: cloud_renders[c.name][1] for c in cloud_views}
    else:
        sensed_cloud = sensed
    points, colors = _point_cloud(cloud_views, sensed_cloud, max_cloud_points, cloud_rng,
                                  family.cloud_radius)
    # The cameras as files describe them: raw intrinsics and the lens's coefficients.
    given = [dataclasses.replace(lenses[c.name], cam_to_world=c.cam_to_world)
             if c.name in lenses else c for c in given]
    write_point_ply(out / "points3d.ply", points, colors)
    write_nerfstudio_scene(out, given, train_names, test_list, ply_file="points3d.ply")
    write_colmap_model(out / "sparse" / "0", given, points, colors, binary=True)
    if family.pose_rot_deg > 0 or family.pose_trans_m > 0:
        write_json(out / POSES_TRUE_FILE, {c.name: c.cam_to_world.tolist() for c in cameras})
    write_json(out / SPLIT_FILE, {"train": train_names, "test": test_list})
    write_json(out / "objects.json", {str(k): v for k, v in sorted(names.items())})
    gt_count = _write_test_masks(out, test_list, renders, object_names, min_gt_pixels)
    prompts = _best_prompts(prompt_views or train_names, renders, object_names)
    write_prompts(out / "prompts.json", prompts)
    unprompted = sorted(set(object_names.values()) - {p.id for p in prompts})
    if unprompted:
        say(f"warning: no train view shows {', '.join(unprompted)}: no prompt")
    write_json(out / "synth.json", {
        "seed": seed, "width": width, "height": height, "near": NEAR, "far": FAR,
        "family": family.name,
        "family_params": family_params(family),
        "masks": {k: v for k, v in mask_args.items() if k != "keep_apart"},
        "min_gt_pixels": min_gt_pixels,
        "objects": [_object_record(o) for o in objects],
        **world.extra, **({"sensor": sensor} if sensor else {}),
        "test_masks": gt_count, "prompts": len(prompts), "unprompted": unprompted,
        **(extra or {}),
    })
    return out


def _sensor_views(family: Family, seed: int, cameras: list[Camera], test_names: set[str],
                  renders: dict) -> tuple[dict, list[Camera], dict]:
    """The views as a robot's sensors and SLAM give them: ({frame: (rgb, depth, instances)},
    the cameras with the given poses, the sensor record for synth.json; empty without any
    corruption).

    Only training views are corrupted (test views and every instance map stay exact). Each
    condition draws from its own stream per view, [seed, 5 | 6 | 7, view]: pose, image, depth.
    """
    if not any(getattr(family, name) > 0 for name in (
            "pose_rot_deg", "pose_trans_m", "exposure", "white_balance", "image_noise",
            "depth_noise_at_1m", "depth_hole_fraction")):
        return renders, list(cameras), {}
    sensed, given, frames = dict(renders), [], {}
    for index, cam in enumerate(cameras):
        if cam.name in test_names:
            given.append(cam)
            continue
        rgb, depth, instances = renders[cam.name]
        record = {}
        c2w = cam.cam_to_world
        if family.pose_rot_deg > 0 or family.pose_trans_m > 0:
            c2w = perturb_pose(c2w, family.pose_rot_deg, family.pose_trans_m,
                               np.random.default_rng([seed, 5, index]))
            rot, trans = pose_error(c2w, cam.cam_to_world)
            record.update(rot_error_deg=rot, trans_error_m=trans)
        if family.exposure > 0 or family.white_balance > 0 or family.image_noise > 0:
            rgb, drawn = exposure_and_noise(rgb, np.random.default_rng([seed, 6, index]),
                                            family.exposure, family.white_balance,
                                            family.image_noise)
            record.update(drawn)
        if family.depth_noise_at_1m > 0 or family.depth_hole_fraction > 0:
            depth = depth_noise(depth, np.random.default_rng([seed, 7, index]),
                                family.depth_noise_at_1m, family.depth_hole_fraction)
        sensed[cam.name] = (rgb, depth, instances)
        given.append(dataclasses.replace(cam, cam_to_world=c2w))
        frames[cam.name] = record
    params = {name: getattr(family, name) for name in (
        "pose_rot_deg", "pose_trans_m", "exposure", "white_balance", "image_noise",
        "depth_noise_at_1m", "depth_hole_fraction")}
    return sensed, given, {**params, "streams": "pose [seed, 5, view], image [seed, 6, view], "
                           "depth [seed, 7, view]", "frames": frames}


def _object_record(o: PlacedObject) -> dict:
    record = {"id": o.instance_id, "name": o.spec.name}
    if isinstance(o.spec, ModelSpec):
        record["urdf"] = o.spec.urdf
    else:
        record["parts"] = [{"name": p.name, "shape": p.shape,
                            "size": [v * o.spec.scale for v in p.size], "rgba": list(p.rgba),
                            "centre": list(centre)}
                           for p, centre in zip(o.spec.parts, o.centres)]
    record.update({"scale": o.spec.scale, "position": o.position.tolist(), "yaw": o.yaw})
    if o.aabb is not None:
        record["aabb"] = [list(o.aabb[0]), list(o.aabb[1])]
    if o.size is not None:
        record["size"] = o.size
    return record


@dataclass
class _World:
    """What _build_world made: pybullet body → instance id (and → mask part id), the objects."""

    body_to_instance: dict[int, int]
    objects: list[PlacedObject]
    body_to_part: dict[int, int] = field(default_factory=dict)
    part_groups: list[list[int]] = field(default_factory=list)
    """Split family: per split object, the part ids the masks keep apart (first = its id)."""
    scenery: list[dict] = field(default_factory=list)
    """Wide family: walls and furniture ({"id", "name", "half_extents", "position", "rgba"})."""
    extra: dict = field(default_factory=dict)
    """Family-specific records for synth.json."""


def _build_world(pybullet, client: int, rng: np.random.Generator, n_objects: int,
                 family: Family | None = None, scenery_rng: np.random.Generator | None = None
                 ) -> _World:
    """Floor, table and `n_objects` non-overlapping objects of the family (default tabletop)."""
    family = family or FAMILIES[0]
    floor = pybullet.loadURDF("plane.urdf", physicsClientId=client)
    table = pybullet.loadURDF("table/table.urdf", physicsClientId=client)
    world = _World({floor: FLOOR_ID, table: TABLE_ID}, [])
    placer = _Placer(pybullet, client, rng, family)
    if family.name == "small":
        _small_objects(placer, world, n_objects)
    elif family.n_touching[1] > 0:
        _clutter_objects(placer, world, n_objects)
    elif family.name == "split":
        n_split = int(rng.integers(family.n_split[0], family.n_split[1] + 1))
        if not 1 <= n_objects - n_split <= len(CATALOGUE):
            raise ValueError(f"n_objects must lie in {n_split + 1}..{len(CATALOGUE) + n_split} "
                             f"for the split family, got {n_objects}")
        _catalogue_objects(placer, world, n_objects - n_split)
        for index in rng.choice(len(SPLIT_CATALOGUE), size=n_split, replace=False):
            placer.place_primitive(world, SPLIT_CATALOGUE[index], float(rng.uniform(0, 2 * np.pi)))
    else:
        if not 1 <= n_objects <= len(CATALOGUE):
            raise ValueError(f"n_objects must lie in 1..{len(CATALOGUE)}, got {n_objects}")
        _catalogue_objects(placer, world, n_objects)
    if family.room:
        _build_room(pybullet, client, scenery_rng or rng, family, world)
    world.body_to_part = dict(world.body_to_instance)
    next_id = max(world.body_to_instance.values()) + 1
    for obj in world.objects:
        if len(obj.bodies) > 1:  # split: the parts after the first get ids of their own
            group = [obj.instance_id]
            for body in obj.bodies[1:]:
                world.body_to_part[body] = next_id
                group.append(next_id)
                next_id += 1
            world.part_groups.append(group)
    return world


def _catalogue_objects(placer: _Placer, world: _World, count: int) -> None:
    """`count` CATALOGUE models at their normal size (the tabletop generator, draw for draw)."""
    rng = placer.rng
    chosen = rng.choice(len(CATALOGUE), size=count, replace=False)
    for spec_index in chosen:
        spec = CATALOGUE[spec_index]
        yaw = float(rng.uniform(0, 2 * np.pi))
        body, lo, hi = placer.load_model(spec, yaw)
        placer.place(world, spec, body, lo, hi, yaw)


def _small_objects(placer: _Placer, world: _World, n_objects: int) -> None:
    """1-2 normal objects, then small ones: `n_pairs` close pairs and the rest spread out."""
    family, rng = placer.family, placer.rng
    n_normal = int(rng.integers(family.n_normal[0], family.n_normal[1] + 1))
    n_small = n_objects - n_normal
    if n_small < 1:
        raise ValueError(f"n_objects must exceed {n_normal} for the small family, got {n_objects}")
    normal = rng.choice(len(CATALOGUE), size=n_normal, replace=False)
    pool: list[ModelSpec | PrimitiveSpec] = [
        ModelSpec(f"mini_{spec.name}", spec.urdf, spec.scale) for k, spec in enumerate(CATALOGUE)
        if k not in normal and spec.name != "tray"] + list(SMALL_PRIMITIVES)
    if n_small > len(pool):
        raise ValueError(f"at most {n_normal + len(pool)} objects for the small family")
    small = [pool[k] for k in rng.choice(len(pool), size=n_small, replace=False)]
    for k in normal:
        spec = CATALOGUE[k]
        yaw = float(rng.uniform(0, 2 * np.pi))
        body, lo, hi = placer.load_model(spec, yaw)
        placer.place(world, spec, body, lo, hi, yaw)
    loaded = [placer.load_small(spec, float(rng.uniform(*family.small_size)),
                                float(rng.uniform(0, 2 * np.pi))) for spec in small]
    pairs = []
    n_pairs = min(family.n_pairs, n_small // 2)
    for k in range(n_pairs):
        a, b = loaded[2 * k], loaded[2 * k + 1]
        gap = placer.place_pair(world, a, b)
        pairs.append({"objects": [a[0].name, b[0].name], "gap": gap})
    for item in loaded[2 * n_pairs:]:
        placer.place_loaded(world, item, spread=family.single_spread)
    world.extra["pairs"] = pairs


def _clutter_objects(placer: _Placer, world: _World, n_objects: int) -> None:
    """Clutter: up to 7 catalogue models (no tray), 0-1 split objects and small primitives to
    make `n_objects`; `n_touching` pairs placed touching (footprints 0-1 cm apart), the others
    `gap` (1 cm) apart, all packed in the middle of the table."""
    family, rng = placer.family, placer.rng
    n_split = int(rng.integers(family.n_split[0], family.n_split[1] + 1))
    models = [k for k, spec in enumerate(CATALOGUE) if spec.name != "tray"]
    n_models = min(len(models), n_objects - n_split, int(rng.integers(5, 8)))
    n_small = n_objects - n_split - n_models
    if n_small > len(SMALL_PRIMITIVES) or n_objects < 2:
        raise ValueError(f"n_objects must lie in 2..{len(models) + len(SMALL_PRIMITIVES) + 1} "
                         f"for the {family.name} family, got {n_objects}")
    items = []
    for k in rng.choice(models, size=n_models, replace=False):
        yaw = float(rng.uniform(0, 2 * np.pi))
        body, lo, hi = placer.load_model(CATALOGUE[k], yaw)
        items.append((CATALOGUE[k], [body], lo, hi, yaw, None))
    for k in rng.choice(len(SPLIT_CATALOGUE), size=n_split, replace=False):
        yaw = float(rng.uniform(0, 2 * np.pi))
        bodies, lo, hi = placer.make_primitive(SPLIT_CATALOGUE[k], yaw)
        items.append((SPLIT_CATALOGUE[k], bodies, lo, hi, yaw, None))
    for k in rng.choice(len(SMALL_PRIMITIVES), size=n_small, replace=False):
        items.append(placer.load_small(SMALL_PRIMITIVES[k], float(rng.uniform(*family.small_size)),
                                       float(rng.uniform(0, 2 * np.pi))))
    items = [items[k] for k in rng.permutation(len(items))]
    n_pairs = min(int(rng.integers(family.n_touching[0], family.n_touching[1] + 1)),
                  len(items) // 2)
    pairs = []
    for k in range(n_pairs):
        a, b = items[2 * k], items[2 * k + 1]
        try:
            gap = placer.place_pair(world, a, b)
        except RuntimeError:  # no room left for a close pair (seed 1006): two free spots instead
            placer.place_loaded(world, a)
            placer.place_loaded(world, b)
            continue
        pairs.append({"objects": [a[0].name, b[0].name], "gap": gap})
    for item in items[2 * n_pairs:]:
        placer.place_loaded(world, item)
    world.extra["pairs"] = pairs


class _Placer:
    """Loads objects and puts them on the table without overlap (footprint boxes with a gap)."""

    def __init__(self, pybullet, client: int, rng: np.random.Generator, family: Family) -> None:
        self.pb, self.client, self.rng, self.family = pybullet, client, rng, family
        self.placed: list[tuple[np.ndarray, np.ndarray]] = []  # (xy centre, [2] half-size)

    def load_model(self, spec: ModelSpec, yaw: float, scale: float | None = None
                   ) -> tuple[int, np.ndarray, np.ndarray]:
        orientation = self.pb.getQuaternionFromEuler([0, 0, yaw])
        body = self.pb.loadURDF(spec.urdf, basePosition=[0, 0, 0], baseOrientation=orientation,
                                globalScaling=spec.scale if scale is None else scale,
                                useFixedBase=True, physicsClientId=self.client)
        lo, hi = (np.array(v) for v in self.pb.getAABB(body, physicsClientId=self.client))
        return body, lo, hi

    def make_primitive(self, spec: PrimitiveSpec, yaw: float) -> tuple[list[int], np.ndarray,
                                                                       np.ndarray]:
        """Bodies of the parts around the origin (base at z = 0), yawed about the z axis; their
        union AABB."""
        pb, orientation = self.pb, self.pb.getQuaternionFromEuler([0, 0, yaw])
        bodies, los, his = [], [], []
        for part in spec.parts:
            size = [v * spec.scale for v in part.size]
            if part.shape == "box":
                shape = dict(shapeType=pb.GEOM_BOX, halfExtents=size)
                visual, collision = shape, shape
            elif part.shape == "cylinder":
                visual = dict(shapeType=pb.GEOM_CYLINDER, radius=size[0], length=size[1])
                collision = dict(shapeType=pb.GEOM_CYLINDER, radius=size[0], height=size[1])
            else:
                visual = collision = dict(shapeType=pb.GEOM_SPHERE, radius=size[0])
            vis = pb.createVisualShape(rgbaColor=list(part.rgba), physicsClientId=self.client,
                                       **visual)
            col = pb.createCollisionShape(physicsClientId=self.client, **collision)
            c, s = np.cos(yaw), np.sin(yaw)
            x, y = part.offset
            centre = [(c * x - s * y) * spec.scale, (s * x + c * y) * spec.scale,
                      (part.bottom + part.height / 2) * spec.scale]
            body = pb.createMultiBody(0, col, vis, basePosition=centre,
                                      baseOrientation=orientation, physicsClientId=self.client)
            lo, hi = (np.array(v) for v in pb.getAABB(body, physicsClientId=self.client))
            bodies.append(body)
            los.append(lo)
            his.append(hi)
        return bodies, np.min(los, axis=0), np.max(his, axis=0)

    def load_small(self, spec: ModelSpec | PrimitiveSpec, size: float, yaw: float):
        """A spec scaled so its longest unrotated side is about `size` metres; the loaded
        (spec, bodies, lo, hi, yaw, measured size)."""
        if isinstance(spec, ModelSpec):
            body, lo, hi = self.load_model(spec, 0.0)
            scale = spec.scale * size / float(np.max(hi - lo))
            self.pb.removeBody(body, physicsClientId=self.client)
            spec = ModelSpec(spec.name, spec.urdf, scale)
            body, lo, hi = self.load_model(spec, 0.0)
            bodies = [body]
        else:
            spec = dataclasses.replace(spec, scale=size)
            bodies, lo, hi = self.make_primitive(spec, 0.0)
        measured = float(np.max(hi - lo))
        self._turn(bodies, yaw)
        lo, hi = self._aabb(bodies)
        return spec, bodies, lo, hi, yaw, measured

    def place(self, world: _World, spec, body: int, lo: np.ndarray, hi: np.ndarray, yaw: float,
              spread: float | None = None, size: float | None = None) -> None:
        """A free spot for a loaded model (footprint from its AABB), then move it there."""
        xy = self.free_spot((hi[:2] - lo[:2]) / 2, spread)
        self.put(world, spec, [body], lo, hi, yaw, xy, size)

    def place_loaded(self, world: _World, item, spread: float | None = None) -> None:
        spec, bodies, lo, hi, yaw, size = item
        xy = self.free_spot((hi[:2] - lo[:2]) / 2, spread)
        self.put(world, spec, bodies, lo, hi, yaw, xy, size)

    def place_primitive(self, world: _World, spec: PrimitiveSpec, yaw: float) -> None:
        bodies, lo, hi = self.make_primitive(spec, yaw)
        xy = self.free_spot((hi[:2] - lo[:2]) / 2)
        self.put(world, spec, bodies, lo, hi, yaw, xy)

    def place_pair(self, world: _World, a, b, tries: int = 500) -> float:
        """Place two loaded objects side by side with a footprint clearance drawn from
        family.pair_gap, clear of the others by family.gap; returns that clearance."""
        family, rng = self.family, self.rng
        half_a = (a[3][:2] - a[2][:2]) / 2
        half_b = (b[3][:2] - b[2][:2]) / 2
        limit = np.array(TABLE_HALF_EXTENT) * family.spread - half_b
        for _ in range(tries):
            xy_a = self.free_spot(half_a)
            gap = float(rng.uniform(*family.pair_gap))
            axis = int(rng.integers(2))
            xy_b = xy_a.copy()
            xy_b[axis] += rng.choice([-1.0, 1.0]) * (half_a[axis] + half_b[axis] + gap)
            # Overlapping on the other axis, so the footprints' distance is exactly `gap`.
            slack = min(half_a[1 - axis], half_b[1 - axis])
            xy_b[1 - axis] += rng.uniform(-slack, slack)
            if np.all(np.abs(xy_b) <= limit) and self._clear(xy_b, half_b):
                self.put(world, *_without_size(a), xy_a, a[5])
                self.put(world, *_without_size(b), xy_b, b[5])
                return gap
        raise RuntimeError("could not place a close pair of small objects; use fewer objects")

    def free_spot(self, half_size: np.ndarray, spread: float | None = None) -> np.ndarray:
        """_free_spot at the family's gap and spread; crowded families (merges) widen the
        spread step by step before giving up."""
        family = self.family
        spread = family.spread if spread is None else spread
        if family.name == "tabletop":
            return _free_spot(self.rng, half_size, self.placed)
        while True:
            try:
                return _free_spot(self.rng, half_size, self.placed, family.gap, spread=spread)
            except RuntimeError:
                if spread >= 0.9:
                    raise
                spread = min(spread + 0.1, 0.9)

    def put(self, world: _World, spec, bodies: list[int], lo: np.ndarray, hi: np.ndarray,
            yaw: float, xy: np.ndarray, size: float | None = None) -> None:
        """Move the bodies so the AABB's centre is at xy and its bottom on the table top."""
        self.placed.append((xy, (hi[:2] - lo[:2]) / 2))
        shift = np.array([xy[0] - (lo[0] + hi[0]) / 2, xy[1] - (lo[1] + hi[1]) / 2,
                          TABLE_TOP_Z - lo[2]])
        orientation = self.pb.getQuaternionFromEuler([0, 0, yaw])
        instance_id = FIRST_OBJECT_ID + len(world.objects)
        position = None
        for body in bodies:
            if self.family.name == "tabletop":
                # The original placement, kept so tabletop scenes stay byte for byte the same.
                # It sets the base (centre of mass) frame as if it were the URDF origin, so the
                # duck and the teddy, whose inertial origin is offset, land off their spot (the
                # teddy about 15 cm aside and 5 cm into the table top).
                target = shift
            else:
                # pybullet reports and resets the centre-of-mass frame: move it by the shift.
                start = np.array(self.pb.getBasePositionAndOrientation(
                    body, physicsClientId=self.client)[0])
                target = start + shift
            if position is None:
                position = target
            self.pb.resetBasePositionAndOrientation(body, target.tolist(), orientation,
                                                    physicsClientId=self.client)
            world.body_to_instance[body] = instance_id
        aabb = self._aabb(bodies)
        centres = tuple(list(self.pb.getBasePositionAndOrientation(
            body, physicsClientId=self.client)[0]) for body in bodies)
        world.objects.append(PlacedObject(instance_id, spec, bodies[0], position, yaw,
                                          tuple(bodies), (aabb[0].tolist(), aabb[1].tolist()),
                                          size, centres))

    def _clear(self, xy: np.ndarray, half_size: np.ndarray) -> bool:
        return all(np.any(np.abs(xy - c) >= half_size + h + self.family.gap)
                   for c, h in self.placed)

    def _turn(self, bodies: list[int], yaw: float) -> None:
        """Rotate bodies built unrotated around the origin by `yaw` about the z axis."""
        orientation = self.pb.getQuaternionFromEuler([0, 0, yaw])
        c, s = np.cos(yaw), np.sin(yaw)
        for body in bodies:
            x, y, z = self.pb.getBasePositionAndOrientation(body, physicsClientId=self.client)[0]
            self.pb.resetBasePositionAndOrientation(body, [c * x - s * y, s * x + c * y, z],
                                                    orientation, physicsClientId=self.client)

    def _aabb(self, bodies: list[int]) -> tuple[np.ndarray, np.ndarray]:
        boxes = [np.array(self.pb.getAABB(b, physicsClientId=self.client)) for b in bodies]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


def _without_size(item):
    spec, bodies, lo, hi, yaw, _ = item
    return spec, bodies, lo, hi, yaw


def _build_room(pybullet, client: int, rng: np.random.Generator, family: Family,
                world: _World) -> None:
    """Four walls around the table and furniture boxes against them (wide family).

    Furniture keeps clear of the camera orbit (its nearest point is farther from the table axis
    than any camera) so no camera ends up inside it.
    """
    next_id = max(world.body_to_instance.values()) + 1
    # Distances of the walls at +x, -x, +y, -y from the table centre.
    dist = rng.uniform(*family.wall_distance, size=4)
    colours = rng.permutation(len(WALL_COLOURS))
    thickness = 0.05
    walls = [
        ("wall_east", (thickness, (dist[2] + dist[3]) / 2 + thickness, WALL_HEIGHT / 2),
         (dist[0] + thickness, (dist[2] - dist[3]) / 2)),
        ("wall_west", (thickness, (dist[2] + dist[3]) / 2 + thickness, WALL_HEIGHT / 2),
         (-dist[1] - thickness, (dist[2] - dist[3]) / 2)),
        ("wall_north", ((dist[0] + dist[1]) / 2 + thickness, thickness, WALL_HEIGHT / 2),
         ((dist[0] - dist[1]) / 2, dist[2] + thickness)),
        ("wall_south", ((dist[0] + dist[1]) / 2 + thickness, thickness, WALL_HEIGHT / 2),
         ((dist[0] - dist[1]) / 2, -dist[3] - thickness)),
    ]
    boxes = [(name, half, (x, y, WALL_HEIGHT / 2), WALL_COLOURS[colours[k]])
             for k, (name, half, (x, y)) in enumerate(walls)]
    far = max(family.distance) * np.cos(np.radians(min(family.elevation_deg))) + 0.25
    n_furniture = int(rng.integers(family.n_furniture[0], family.n_furniture[1] + 1))
    footprints: list[tuple[np.ndarray, np.ndarray]] = []
    for index in rng.choice(len(FURNITURE), size=n_furniture, replace=False):
        name, half, colour = FURNITURE[index]
        for _ in range(100):
            side = int(rng.integers(4))
            along = 1 if side < 2 else 0  # the axis the wall runs along
            half_xy = np.array(half[:2]) if along == 1 else np.array([half[1], half[0]])
            centre = np.zeros(2)
            sign = 1.0 if side % 2 == 0 else -1.0
            centre[1 - along] = sign * (dist[side] - half_xy[1 - along])
            lo_wall = -dist[3] if along == 1 else -dist[1]
            hi_wall = dist[2] if along == 1 else dist[0]
            centre[along] = rng.uniform(lo_wall + half_xy[along], hi_wall - half_xy[along])
            nearest = np.linalg.norm(np.maximum(np.abs(centre) - half_xy, 0.0))
            if nearest > far and all(np.any(np.abs(centre - c) >= half_xy + h + 0.05)
                                     for c, h in footprints):
                footprints.append((centre, half_xy))
                boxes.append((name, (*half_xy, half[2]), (*centre, half[2]), colour))
                break
    for name, half, centre, colour in boxes:
        visual = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=list(half),
                                            rgbaColor=[*colour, 1.0], physicsClientId=client)
        collision = pybullet.createCollisionShape(pybullet.GEOM_BOX, halfExtents=list(half),
                                                  physicsClientId=client)
        body = pybullet.createMultiBody(0, collision, visual, basePosition=list(centre),
                                        physicsClientId=client)
        world.body_to_instance[body] = next_id
        world.scenery.append({"id": next_id, "name": name, "half_extents": list(half),
                              "position": list(centre), "rgba": [*colour, 1.0]})
        next_id += 1
    world.extra["scenery"] = world.scenery
    world.extra["wall_distance"] = dist.tolist()


def _free_spot(rng: np.random.Generator, half_size: np.ndarray,
               placed: list[tuple[np.ndarray, np.ndarray]], gap: float = 0.03,
               tries: int = 5000, spread: float = 0.7) -> np.ndarray:
    """A random table position whose footprint box clears the placed ones by `gap` metres.

    Footprints are the yawed objects' axis-aligned boxes (`half_size` [2]), so boxes that clear
    each other guarantee the objects do. Objects stay in the middle `spread` (70%) of the table
    so the orbit keeps them in view.
    """
    limit = np.array(TABLE_HALF_EXTENT) * spread - half_size
    for _ in range(tries):
        xy = rng.uniform(-limit, limit)
        if all(np.any(np.abs(xy - c) >= half_size + h + gap) for c, h in placed):
            return xy
    raise RuntimeError("could not place the objects without overlap; use fewer objects")


def orbit_cameras(out_dir: str | Path, seed: int = 0, width: int = 320, height: int = 240,
                  n_train: int | None = None, n_test: int = 8, fov_deg: float = 60.0,
                  radius: tuple[float, float] | None = None,
                  elevation: tuple[float, float] | None = None, max_roll_deg: float = 4.0
                  ) -> tuple[list[Camera], list[str]]:
    """The cameras `make_synthetic_scene` renders with the same arguments, and the test names.

    Cameras lie on an orbit around the table centre, test views interleaved between train views
    (image paths point into `out_dir/images`, depth into `out_dir/depth`).

    Views are spread evenly in azimuth; height and distance sweep their ranges twice per orbit
    (plus jitter), so consecutive views differ in all three and test poses are never train poses.
    A small random roll (up to `max_roll_deg`) makes them less perfectly level, as hand-held ones.

    `radius` (horizontal distance from the table centre) and `elevation` (height above the table
    top), in metres, default to the seed's family's (tabletop (0.7, 1.0) and (0.6, 0.9)). The
    wide and low families instead sweep the elevation angle seen from the table centre over
    `Family.elevation_deg` and the distance over `Family.distance` (far when low), unless
    radius or elevation is given. These are the exact poses; the pose family's training poses
    get their error later (`make_synthetic_scene`).
    """
    family = scene_family(seed)
    n_train = family.n_train if n_train is None else n_train
    angles = family.elevation_deg is not None and radius is None and elevation is None
    radius = family.radius if radius is None else radius
    elevation = family.elevation if elevation is None else elevation
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
        if angles:
            angle = np.radians(family.elevation_deg[0]
                               + (family.elevation_deg[1] - family.elevation_deg[0]) * wave)
            d = family.distance[0] + (family.distance[1] - family.distance[0]) * (1 - wave)
            r, z = d * np.cos(angle), d * np.sin(angle)
        else:
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


DISTORTED_SUPERSAMPLING = 2
"""A distorted view is resampled from a pinhole render this many times finer (linear), so that
its colours are not blurred by the resampling more than a camera's optics would."""


def _lenses(cameras: list[Camera], distortion: tuple[float, ...] | None) -> dict[str, Camera]:
    """{frame: its pinhole camera with the lens (`cgc_core.lens.undistorted_camera`)} for a
    distorted scene; empty without distortion."""
    if distortion is None:
        return {}
    out = {}
    for cam in cameras:
        lens = make_lens(OPENCV, distortion, cam.width, cam.height, cam.fx, cam.fy, cam.cx,
                         cam.cy)
        if lens is not None:
            out[cam.name] = undistorted_camera(cam, lens)
    return out


def _render_distorted(pybullet, client: int, pinhole: Camera, shadows: bool):
    """A view through a lens: the pinhole render of the canvas that covers the raw image
    (`cover_camera`, supersampled), resampled onto the raw grid (colour linear, depth and ids
    nearest). Returns (rgb, depth, body ids) on the raw grid and (the cover camera at render
    size, its depth) for the point cloud."""
    cover = cover_camera(pinhole).scaled(DISTORTED_SUPERSAMPLING)
    rgb, depth, seg = _render(pybullet, client, cover, shadows)
    raw_rgb = to_raw(pinhole, torch.from_numpy(rgb).float()).round().clamp(0, 255)
    raw_depth = to_raw(pinhole, torch.from_numpy(depth), nearest=True)
    raw_seg = to_raw(pinhole, torch.from_numpy(seg), nearest=True)
    return (raw_rgb.to(torch.uint8).numpy(), raw_depth.numpy(), raw_seg.numpy(),
            (cover, (rgb, depth, None)))


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
                 rng: np.random.Generator, crop_radius: float = 3.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Coloured points back-projected from the depth of `cameras`, cropped to `crop_radius`
    metres (horizontally) around the table."""
    points, colors = [], []
    for cam in cameras:
        rgb, depth, _ = renders[cam.name]
        world, flat = backproject_valid(cam, depth)
        # The floor plane is infinite; keep what a model of the room around the table needs.
        keep = np.linalg.norm(world[:, :2], axis=1) < crop_radius
        points.append(world[keep])
        colors.append(rgb.reshape(-1, 3)[flat[keep]])
    points, colors = np.concatenate(points), np.concatenate(colors)
    if len(points) > max_points:
        pick = rng.choice(len(points), size=max_points, replace=False)
        points, colors = points[pick], colors[pick]
    return points, colors


def _write_test_masks(out: Path, test_names: list[str], renders: dict, names: dict[int, str],
                      min_pixels: int) -> int:
    """test_mask/<frame>/<object>.png for each object with >= min_pixels in a test view.

    `names`: {instance id: name} of the objects (ids below FIRST_OBJECT_ID are skipped).
    """
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
    """Per object of `names` ({instance id: name}), the train-view pixel deepest inside it
    (distance-transform maximum).

    The deepest pixel over all train views is the most unambiguous click: far from every edge,
    in a view where the object is large and unoccluded there.
    """
    best: dict[int, tuple[float, str, tuple[float, float]]] = {}
    for name in train_names:
        instances = renders[name][2]
        for instance_id in np.unique(instances):
            if instance_id < FIRST_OBJECT_ID or instance_id not in names:
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
    lens = f", lens {info['distortion']}" if "distortion" in info else ""
    print(f"wrote {root}: {len(scene.train_names)} train + {len(scene.test_names)} test views at "
          f"{info['width']}x{info['height']}{lens}, {len(scene.points)} points, {info['family']} "
          f"scene, objects: {objects}; {info['test_masks']} test masks, {info['prompts']} prompts "
          f"({time.perf_counter() - start:.1f} s)")
    return root
