"""Every default of cgc in one place.

The YAML file (`config/cgc.yaml`), the command line and the ROS parameters override these field by
field (`load_config`, `apply_overrides`), which also check each value's type and choices. No
function of the engine holds a default of its own for a value that lives here: those functions
take it as a required keyword argument, so a default cannot contradict this file.

Constants marked "paper" come from Silva et al., sections 3.2 and 4.2; "3DGS" from Kerbl et al.
Where a default departs from the paper, its docstring says so and points to the measurement in
`bench/results/` (bench/README.md says which command made each file) or in docs/results.md.
Docstrings say what a field is, its unit and why it has its value; figures are kept in those
files, not here, so they cannot drift.

Conventions: a value chosen per device or per scene is spelled "auto" (a string, also for integer
fields); a disabled interval is 0.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

AUTO = "auto"
"""The one spelling of "chosen for you" in every field that allows it."""

SegmenterKind = Literal["auto", "sam", "felzenszwalb", "precomputed"]
SamModelType = Literal["vit_h", "vit_l", "vit_b", "custom"]
RenderBackend = Literal["auto", "gsplat", "cpu", "reference"]
Auto = Literal["auto"]


@dataclass
class SegmenterConfig:
    """Where 2D segments (the training signal) come from (see cgc_core.segment)."""

    kind: SegmenterKind = "auto"
    """'sam', 'felzenszwalb', 'precomputed', or 'auto' (SAM when `sam_checkpoint` is set, else
    felzenszwalb). 'felzenszwalb' is the fallback without weights: colour segments at
    `working_pixels`, and where a view has depth, support planes and depth clusters first
    (`depth_*`; cgc_core.segment.classical)."""
    sam_checkpoint: str = ""
    """Path to a segment-anything checkpoint (.pth, a plain state dict). Nothing is downloaded."""
    sam_model_type: SamModelType = "vit_h"
    """'vit_h', 'vit_l' or 'vit_b' (the released SAM architectures); must match the checkpoint.
    The paper uses ViT-H. 'custom' builds the encoder from the four `sam_image_size` /
    `sam_encoder_*` fields instead, for a SAM ViT checkpoint of another size (e.g. fine-tuned
    at a lower input resolution)."""
    sam_image_size: int = 0
    """Only with sam_model_type 'custom': side of the encoder's square input in pixels, a
    multiple of 16 (the released models: 1024). Must be 0 for the presets."""
    sam_encoder_embed_dim: int = 0
    """Only with sam_model_type 'custom': ViT width (vit_b 768, vit_l 1024, vit_h 1280)."""
    sam_encoder_depth: int = 0
    """Only with sam_model_type 'custom': ViT blocks (vit_b 12, vit_l 24, vit_h 32); the last
    block of each quarter attends globally, as in every released SAM."""
    sam_encoder_num_heads: int = 0
    """Only with sam_model_type 'custom': attention heads (vit_b 12, vit_l and vit_h 16)."""
    sam_points_per_side: int = 32
    """SAM automatic generator grid: points_per_side**2 point prompts per image
    (SamAutomaticMaskGenerator default)."""
    sam_points_per_batch: int = 64
    """Point prompts decoded at once; lower it to save GPU memory (SAM default)."""
    sam_pred_iou_thresh: float = 0.88
    """Drop masks whose predicted IoU is below this (SAM default)."""
    sam_stability_score_thresh: float = 0.95
    """Drop masks whose stability under a shifted binarisation cutoff is below this (SAM
    default)."""
    sam_box_nms_thresh: float = 0.7
    """Box IoU above which a lower-scored duplicate mask is dropped (SAM default); 1.0 keeps
    all masks."""
    sam_min_mask_region_area: int = 0
    """If > 0, fill holes and remove islands smaller than this many pixels in every SAM mask
    (done by cgc with scipy, so OpenCV is not needed)."""
    felzenszwalb_scale: float = 200.0
    """Felzenszwalb graph-cut scale: larger gives larger segments."""
    felzenszwalb_sigma: float = 0.8
    """Width of the Gaussian blur applied before the graph cut, in pixels."""
    felzenszwalb_min_size: int = 60
    """Smallest segment in pixels of the working-size image (`working_pixels`); smaller
    Felzenszwalb segments are merged into a neighbour, smaller depth clusters left to colour."""
    working_pixels: int = 76_800
    """The fallback (kind 'felzenszwalb') segments a copy of each image scaled down to about
    this many pixels (76 800 = 320x240; aspect kept, never scaled up) and scales the labels back
    up by nearest neighbour, so segment sizes are relative to the image: a 1080x1920 photo gives
    tens of segments, not hundreds, in well under a second. 0: the image's own size (the
    behaviour before, slow and fragmented on large photos)."""
    depth_proposals: bool = True
    """The fallback uses a view's depth where it has one (RGB-D, synthetic scenes): support
    planes (RANSAC) and Euclidean clusters of the rest become the segments, colour fills where
    depth is invalid or says nothing (cgc_core.segment.depth). Off: colour only."""
    depth_plane_threshold: float = 0.01
    """Support planes: largest point-to-plane distance of an inlier, metres."""
    depth_plane_min_fraction: float = 0.1
    """Support planes: fewest inliers, as a fraction of the view's valid depth pixels (a table,
    floor or wall holds more; an object's flat face less)."""
    depth_max_planes: int = 3
    """Support planes looked for per view (0: none, clusters only)."""
    depth_edge_ratio: float = 0.02
    """Depth clusters: neighbouring pixels whose depths differ by more than this fraction of the
    nearer depth are in different clusters (0.02: 2 cm at 1 m)."""
    masks_dir: str = ""
    """For kind='precomputed': a folder with one 8- or 16-bit PNG per image stem."""
    device: str = "auto"
    """Torch device for SAM: 'auto' (cuda when available, else cpu), 'cpu', 'cuda', 'cuda:1'."""


@dataclass
class RenderConfig:
    """Rasterizer settings (see cgc_core.render)."""

    backend: RenderBackend = "auto"
    """'auto' (gsplat on CUDA, else the native CPU kernel), 'gsplat', 'cpu', 'reference'."""
    eps2d: float = 0.3
    """Low-pass dilation added to every 2D covariance (3DGS / gsplat default)."""
    near: float = 0.01
    """Gaussians closer to the camera than this (camera z, metres) are culled."""
    far: float = 1e10
    """Gaussians farther than this (camera z, metres) are culled."""


@dataclass
class ModelConfig:
    """The Gaussian model."""

    feature_dim: int = 16
    """Segmentation feature size per Gaussian (paper: 16)."""
    sh_degree: int = 3
    """Maximum SH degree of colour (3DGS: 3). Raised one degree every `sh_increase_every`."""
    init_points: int = 20_000
    """Random initialisation size when the scene has neither points nor depth."""
    init_opacity: float = 0.1
    """Opacity of every Gaussian at initialisation (3DGS: 0.1)."""
    feature_init_std: float = 0.1
    """Standard deviation of the random initial segmentation features (paper: "randomly
    initialized"; a small scale lets the first contrastive steps set their directions)."""
    max_gaussians: int = 200_000
    """Densification stops adding Gaussians past this budget."""


@dataclass
class LossConfig:
    """Loss terms and their constants (paper, Eq. 3-5)."""

    ssim_lambda: float = 0.2
    """Rendering loss (1 - l) * L1 + l * D-SSIM (3DGS)."""
    depth_weight: float = 0.0
    """Weight of the depth term (`losses.depth_loss`: L1 of rendered vs measured depth, relative
    to the median) on views that have depth (RGB-D frames, scenes with depth maps); 0: colour
    only, as the paper."""
    clustering_weight: float = 1e-6
    """lambda_clustering of Eq. 5 (paper: 1e-6, on the per-pixel sum of Eq. 3)."""
    clustering_every: int = 50
    """Apply the contrastive clustering loss every this many iterations (paper: 50)."""
    min_cluster_pixels: int = 100
    """Segments with this many pixels or fewer are ignored (paper: 100), counted at the images'
    native resolution (scaled down with the training resolution)."""
    temperature_eps: float = 100.0
    """epsilon in the per-cluster temperature sum ||f - mean|| / (N log(N + eps)) (paper: 100)."""
    temperature_scale: float = 10.0
    """The temperature divided into the logits is clip(scale * phi, min, max), as in the
    authors' released code (clip(10 phi, 0.1, 1)). The bare formula of the paper (scale 1, no
    clip) saturates the softmax while clusters are still spread out, so t = 0.7 masks fall apart,
    and lets tight clusters' logits explode (docs/departures.md). Scale 1, min 1e-4, max inf
    gives the bare formula."""
    temperature_min: float = 0.1
    """Lower clip of the temperature (authors' code: 0.1; the bare formula: 1e-4)."""
    temperature_max: float = 1.0
    """Upper clip of the temperature (authors' code: 1; the bare formula: inf)."""
    cluster_balance: float = 1.0
    """alpha in [0, 1]: weight each cluster's pixels in Eq. 3 by N^-alpha (rescaled so the loss
    keeps its size). 0 is the paper's plain sum over pixels, where floor and table outweigh small
    objects and small objects end up sharing one feature; 1 (default) gives every segment the
    same total weight (see `contrastive_clustering`; measured in bench/results/
    quality_experiments.md, "Cluster weights", and docs/departures.md)."""
    mask_snap_px: int = 2
    """Before a segment map trains anything, its pixels within this many pixels (at the
    images' native resolution) of another segment move to the neighbouring segment whose local
    colour they clearly have (`cgc_core.segment.edges.snap_to_colour`): a mask dilated onto the
    table in a few views would otherwise lay a halo of the object's feature around it (a small
    object's pixel weighs ~100 table pixels). 0: the masks as given (the paper)."""
    mask_snap_window: int = 7
    """Side in native pixels of the square in which each segment's interior colour is averaged
    for `mask_snap_px`."""
    mask_snap_ratio: float = 0.5
    """A boundary pixel moves only when the neighbouring segment's colour distance is below this
    many times its own segment's (lower: fewer, surer moves)."""
    mask_snap_contrast: float = 0.1
    """... and only when it is lower by at least this much (Euclidean RGB in [0, 1]), so that
    noise and texture on one surface move nothing."""
    regularization_every: int = 100
    """Apply the spatial-similarity regularizer every this many iterations (paper: 100)."""
    regularization_samples: int = 2048
    """M: Gaussians sampled per regularizer step."""
    near_k: int = 2
    """K nearest Gaussians pulled together (paper: 2)."""
    far_l: int = 5
    """L farthest Gaussians pushed apart (paper: 5)."""
    near_weight: float = 0.05
    """lambda_near (paper: 0.05)."""
    far_weight: float = 0.15
    """lambda_far (paper: 0.15)."""
    use_similarity: bool = False
    """The near (similarity) half of Eq. 4 (the paper: on). Off by default: every CPU-budget run
    measured scored higher without it (bench/results/threshold.md, bench/results/
    quality_experiments.md), and it costs a KD-tree search every few iterations."""
    use_dissimilarity: bool = False
    """The far (dissimilarity) half of Eq. 4; True gives the paper's complete model. Off by
    default because on our scenes it hurts (bench/results/train.md): the L farthest Gaussians of
    almost every sample are the same few hull points, so the term pushes all features away from
    one direction and objects' features drift together."""


@dataclass
class TrainConfig:
    """Optimisation schedule (3DGS defaults unless noted)."""

    iterations: int | Auto = "auto"
    """Iterations to train; "auto" picks per device: `gpu_iterations` on CUDA, `cpu_iterations`
    else."""
    gpu_iterations: int = 30_000
    """Paper: 30k iterations (about 20 minutes on an RTX 4090)."""
    cpu_iterations: int = 2000
    """Iterations on a CPU when `iterations` is "auto" (time per iteration:
    bench/results/iteration.md)."""
    seed: int = 0
    """Seeds everything random in training (initial features, view order, splits, samples):
    the same seed, config and data give the same model."""
    device: str = "auto"
    """Torch device to train on: 'auto' (cuda when available, else cpu), 'cpu', 'cuda',
    'cuda:1'."""
    lr_means: float = 1.6e-4
    """Adam learning rate of the Gaussian centres at the start, times the scene extent (3DGS)."""
    lr_means_final: float = 1.6e-6
    """Centre learning rate at the last planned iteration; it decays exponentially (3DGS)."""
    lr_scales: float = 5e-3
    """Learning rate of the log-scales (3DGS)."""
    lr_quats: float = 1e-3
    """Learning rate of the rotations (3DGS)."""
    lr_opacities: float = 5e-2
    """Learning rate of the opacity logits (3DGS)."""
    lr_sh0: float = 2.5e-3
    """Learning rate of the base colour (3DGS)."""
    lr_shN: float = 2.5e-3 / 20
    """Learning rate of the higher SH bands: 1/20 of the base colour's (3DGS)."""
    lr_features: float = 2.5e-3
    """Learning rate of the segmentation features (the colour's, as the authors' code)."""
    adam_eps: float = 1e-15
    """Adam's epsilon for every parameter (3DGS): tiny gradients of far Gaussians must still
    move them."""
    pose_refine: bool = True
    """Learn a pose correction per training view jointly with the map (`train/corrections.py`):
    given poses from SLAM or SfM carry error, which blurs the map and bleeds features across
    object borders. Results in bench/results/robust_factors.md."""
    pose_refine_from: int = 100
    """Iterations a view trains with its given pose before its correction moves: counted from
    the start for a planned run's views (the map is still the initial cloud), from its arrival
    for a live keyframe (the map has not yet learned what it newly shows; moving at once, a
    robot stream of seed 1003 with exact poses scored 90.9 mIoU against 95.0 with the wait,
    and the four held-out robot streams 92.3 against 93.1: docs/results.md)."""
    pose_zero_mean: bool = True
    """Keep the views' pose corrections at zero mean (in camera axes): a shift or turn that
    every view makes alike moves the map away from the given poses' frame without explaining
    any view better, so the map stays where the given poses put it on average (gauge fixing)."""
    lr_pose_rotation: float = 1e-3
    """Adam rate of the pose corrections' rotation (radians per step), decaying to a tenth by the
    last planned iteration."""
    lr_pose_translation: float = 2.5e-4
    """Adam rate of the pose corrections' translation, times the scene extent (metres per
    step), decaying as the rotation's. Lower than the rotation's: a small sideways shift and a
    small turn move the image alike, and a shift along the optical axis barely changes it, so
    at the rotation's rate the translation wandered (bench/results/robust_factors.md)."""
    exposure_compensation: bool = True
    """Learn a per-channel gain and offset per training view (cameras change exposure between
    frames); the map itself is rendered at the neutral exposure for queries and reports."""
    lr_exposure: float = 1e-3
    """Adam rate of the exposure corrections (log-gain and offset)."""
    densify_from: int = 500
    """First iteration that may clone or split Gaussians (3DGS)."""
    densify_until: int = 15_000
    """Densification and opacity resets stop at this iteration (3DGS)."""
    densify_every: int = 100
    """Views whose gradients are averaged before each densification decision (3DGS)."""
    densify_grad_threshold: float = 2e-4
    """Mean view-space positional gradient (in NDC units) above which a Gaussian is cloned
    (small) or split (large) (3DGS)."""
    percent_dense: float = 0.01
    """A Gaussian larger than this fraction of the scene extent is split, a smaller one cloned
    (3DGS)."""
    split_scale_divisor: float = 1.6
    """The two halves of a split Gaussian get the parent's scales divided by this (3DGS)."""
    prune_max_scale: float = 0.1
    """After the first opacity reset, Gaussians larger than this fraction of the scene extent are
    pruned (3DGS)."""
    opacity_reset_every: int = 3000
    """Clamp all opacities to 2 x `prune_opacity` every this many iterations (3DGS); 0: never."""
    prune_opacity: float = 0.005
    """Gaussians less opaque than this are pruned at each densification (3DGS)."""
    sh_increase_every: int = 1000
    """Raise the active SH degree by one every this many iterations (3DGS); 0: full degree from
    the start."""
    scale_schedule: bool = True
    """Scale the step-based settings (densification window, opacity reset, SH degree increase,
    and the contrastive / regularizer intervals of `LossConfig`) by
    iterations / `schedule_reference_iterations`, as gsplat's `steps_scaler` does. A short CPU run
    then makes as many feature updates as the paper's 30k-iteration run (e.g. 3000 iterations:
    contrastive loss every 5, regularizer every 10). At 30k iterations nothing changes."""
    schedule_reference_iterations: int = 30_000
    """The iteration count the step-based defaults are written for (the paper's)."""
    checkpoint_every: int = 0
    """Write a resumable checkpoint every this many iterations (0: only at the end)."""
    max_resolution: int | Auto = "auto"
    """Downscale training views so the longer side is at most this many pixels; 0 keeps the
    native size and "auto" picks per device (native on CUDA, `cpu_max_resolution` on a CPU)."""
    cpu_max_resolution: int = 160
    """Training resolution cap on a CPU when `max_resolution` is "auto" (0: native): 160x120 for
    the built-in 320x240 scenes; queries and evaluation still render at full resolution."""
    cpu_capture_resolution: int = 160
    """Training resolution cap on a CPU when `max_resolution` is "auto" and the scene's photos
    are at least `capture_min_side` pixels on their longer side (a phone's 1080x1920). Measured
    on instant-ngp's fox (docs/results.md, "A real capture"): 320 px costs 2.2 times the CPU
    time of 160 px per run and scored no better at the same iterations, so it stays 160 on a
    CPU; raise it on a faster machine. `cgc train` and `cgc stream` apply it per scene; the
    node, which sees no scene up front, keeps `cpu_max_resolution`."""
    capture_min_side: int = 1000
    """Longer image side from which a scene counts as a camera capture
    (`cpu_capture_resolution`)."""


@dataclass
class QueryConfig:
    """Turning features into masks and objects."""

    threshold: float = 0.6
    """Cosine similarity threshold t of Eq. 6 for masks in a view (paper: 0.7): a pixel's
    rendered feature against the prompt's. Rendered features blend across an object's edge, and
    with training masks snapped to colour edges (`LossConfig.mask_snap_px`) masks at 0.75 came
    out too tight, missing an object's rim (docs/departures.md). Chosen as the best mean mIoU
    over 0.5-0.75 on the 8 bench scenes and checked on the 15 held-out ones
    (bench/results/threshold_2d.md). Query time only: no retraining to change it."""
    selection_threshold: float = 0.75
    """Cosine threshold for single Gaussians' features against a prompt's (3D): what `cgc
    extract` and the node's object clouds take, the parts a prompt takes whole (`whole_objects`)
    and the spatial filter's selection. A Gaussian's own feature does not blend with its
    neighbours', and at 0.6 extraction took in the table under objects
    (bench/results/objects_selection_t06.md against objects_sparse_rule.md at 0.75; compared
    in quality_experiments.md, "Not for Gaussians")."""
    spatial_filter: bool = False
    """Split a prompt's selection (Gaussians with cosine >= t) into the spatially connected part
    that holds the prompt's surface point and the rest, and drop from each view's mask the pixels
    the rest explains more. Separates objects apart that share a feature; Eq. 6 alone cannot."""
    connect_radius_scale: float = 1.0
    """Two selected Gaussians are connected when their centres are closer than this times the sum
    of their largest standard deviations (`spatial_filter`)."""
    selection_min_opacity: float = 0.1
    """Gaussians less opaque than this never join a selection (`spatial_filter`): floaters would
    bridge separate objects."""
    edge_radius: int = 1
    """Before thresholding, a view's similarity map goes through a guided filter (He et al.,
    kornia) steered by the model's own rendered colour, so mask edges follow colour edges
    instead of the blur of features trained at a lower resolution; this many pixels of radius
    (0: Eq. 6 on the raw map). Measured per radius in bench/results/quality_experiments.md."""
    edge_eps: float = 1e-3
    """The guided filter's regulariser (in squared colour units, colours in [0, 1]): smaller
    follows weaker colour edges."""
    whole_objects: bool = True
    """A pixel prompt on one part of an object that clustering merged from parts (`ObjectsConfig.
    merge_parts`: a lid on its tin) selects the whole object: its mask is Eq. 6 for the prompt's
    feature or any other part's. Off: Eq. 6 alone, the part under the pixel (the paper)."""
    mask_reach: float = 0.05
    """Metres. A prompt's mask in a view keeps only its pieces (8-connected regions) of which
    at least half the pixels show the prompted object: the Gaussians similar to the prompt
    (cosine >= the mask's threshold) render there, at a point within this distance of the
    object's own Gaussians (a pixel prompt's: the connected part of its selection that holds
    the prompt's surface point; a text query's in the node: the listed object's), or within its
    largest standard deviation beyond that (a surface lies that far from a centre). A region
    elsewhere whose blended feature happens to point the same way (a weakly trained wall, a
    look-alike, a neighbour sharing a small object's feature) is not the object.
    Chosen among 0.05-0.2 on 72 maps; on 19 maps trained again for the rule as it is (the 15
    held-out clean scenes, robot 1003 and 1004 offline and streamed) none scored lower and 5
    higher, by up to 3.9 mIoU (bench/results/mask_reach_s10.md). 0: Eq. 6 alone (the paper)."""


@dataclass
class LiveConfig:
    """The live session (`cgc stream`, the ROS node): frames arrive one by one, a few become
    keyframes, the model grows where it is empty and trains for as long as frames come. Starting
    numbers from MonoGS, SplaTAM and Gaussian-SLAM (DESIGN.md, "The live engine")."""

    frame_queue: int = 8
    """Frames waiting for the training thread; when full, the oldest is dropped and counted."""
    max_keyframes: int = 200
    """Keyframes kept for training; when full, the one most redundant with the others goes
    (never the newest)."""
    min_keyframe_gap: int = 1
    """A keyframe is at least this many received frames after the previous one (1: consecutive
    frames may both be keyframes; raise it for a 30 Hz camera)."""
    keyframe_translation: float = 0.08
    """A frame whose camera moved more than this times the median depth since the last keyframe
    becomes a keyframe (MonoGS)."""
    keyframe_rotation_deg: float = 20.0
    """... or turned more than this many degrees (Photo-SLAM)."""
    keyframe_overlap: float = 0.9
    """... or shares less than this fraction (intersection over union) of its visible Gaussians
    with the last keyframe (MonoGS)."""
    keyframe_alpha: float = 0.5
    """... or leaves more than `keyframe_empty_fraction` of its pixels with rendered alpha below
    this (the model does not explain them yet)."""
    keyframe_empty_fraction: float = 0.2
    """See `keyframe_alpha`."""
    newest_share: float = 0.4
    """Share of iterations on the newest keyframe while it is fresh (Gaussian-SLAM, MonoGS)."""
    fresh_iterations: int = 100
    """A keyframe counts as fresh for this many of its own iterations; after that, and whenever
    no keyframe is fresh, iterations go round all keyframes evenly so nothing is forgotten."""
    window: int = 8
    """Recent keyframes that share the rest of a fresh keyframe's iterations ..."""
    window_random_older: int = 2
    """... together with this many random older keyframes, drawn anew each iteration."""
    grow: bool = True
    """Add Gaussians at each new keyframe where the model is empty or wrong (off for `cgc
    train`, whose model is seeded from the whole scene before training)."""
    grow_alpha: float = 0.5
    """Pixels with rendered alpha below this get new Gaussians (SplaTAM)."""
    grow_depth_error: float = 50.0
    """... and pixels whose measured depth lies in front of the rendered depth by more than this
    times the median depth error (SplaTAM)."""
    grow_points: int = 2000
    """New Gaussians per keyframe at most (sub-sampled uniformly from the pixels to fill)."""
    grow_opacity: float = 0.5
    """Opacity of new Gaussians (SplaTAM)."""
    grow_feature_std: float = 0.01
    """Standard deviation of new Gaussians' features: near 0, so they take their neighbours'
    feature from the contrastive loss instead of starting far from it."""
    default_depth: float = 1.0
    """Depth (metres) of new Gaussians along the pixel rays when the frame has no depth, no prior
    point cloud covers the pixels and nothing is rendered yet."""
    depth_from_axes: bool = True
    """Without depth or a prior point cloud, put new Gaussians in empty space at the depth where
    the keyframes' optical axes meet (`growth.axes_meeting_point`: a capture taken around an
    object looks at it from every side) instead of `default_depth`; and, the first time the
    axes tell a depth that `default_depth` was far from (outside 1/1.5 to 1.5 times it), make
    the young map again from its keyframes at that depth. A phone capture's units are
    arbitrary (instant-ngp's fox stands 4.8 units from its cameras), so a guess in metres
    would put every first Gaussian at the wrong depth, where no two views agree."""
    rays_depth_spread: float = 2.0
    """In a frame without depth, pixels without a prior point get Gaussians at the fallback
    depth times a log-uniform factor between 1 / this and this (1: all at the fallback depth),
    and the views that follow keep the ones they agree on, as random initial points in
    offline training. (A depth frame's holes stay at the fallback depth.)"""
    axes_min_angle_deg: float = 15.0
    """The keyframes' axes tell a depth once they spread like two axes this many degrees apart
    (see `depth_from_axes`)."""
    axes_max_keyframes: int = 10
    """... and only while the map has at most this many keyframes: later, a trained map's own
    rendered depth is the better guess and is not thrown away."""
    extent: float = 0.0
    """Scene extent (metres) that scales the position learning rate and densification; 0:
    estimated from the keyframes (camera spread, at least the median depth) and only growing."""
    reset_hold_iterations: int = 100
    """For this many iterations after an opacity reset (at most half the reset interval),
    `snapshot()` keeps serving the model as it was just before the reset: a reset clamps every
    opacity to 0.01 and the model needs about a hundred iterations to look like itself again
    (measured on the node test's map: docs/results.md, "The live session after an opacity
    reset"). In iterations; 0: serve it at once."""
    max_translation: float = 1e4
    """Frames whose camera is farther than this (metres) from the origin are rejected."""
    timeline_length: int = 10_000
    """Keyframe records kept in the session's timeline (the oldest go first): a node that runs
    for days makes a keyframe every few frames, and the timeline must not grow without end."""
    forget_changes: bool = True
    """Forget what was taken away (`cgc_core.train.changes`): Gaussians that keyframes' depth
    sees through are pruned, and keyframes that saw them in place retire. Needs depth."""
    change_noise_at_1m: float = 0.0025
    """The depth sensor's noise σ at 1 m (m), growing with z²: a structured-light or stereo
    camera's (RealSense D4xx about 2.5 mm at 1 m; the robot family's depth noise)."""
    change_sigmas: float = 3.0
    """Measured depth must lie this many σ behind the map's surface to see through it."""
    change_min_margin: float = 0.03
    """... and at least this far (m): below it, pose and calibration error would carve the
    edges of every object (bench/results/changes.md)."""
    change_min_views: int = 2
    """Keyframes in a row that must see through a voxel before its Gaussians go; one noisy
    frame proves nothing."""
    change_erode_px: int = 2
    """See-through pixels are eroded by this radius (pixels at training resolution) first, so
    that silhouette bands from pose error are not taken for removal."""
    change_voxel: float = 0.02
    """Voxel size (m) over which the see-through votes of several keyframes are counted."""
    change_region_points: int = 30
    """A removal is decided when the Gaussians forgotten over the last `change_region_window`
    keyframes within `change_region_reach` of one another number at least this many: an
    object's worth, not the floaters and the spill of large young Gaussians that the same test
    clears away."""
    change_region_window: int = 10
    """See `change_region_points` (keyframes)."""
    change_region_reach: float = 0.03
    """See `change_region_points` (m)."""
    change_min_thickness: float = 0.02
    """A removal region thinner than this (m, along its thinnest principal axis) is a sheet of
    floaters over a surface that depth sees through, not an object taken away: its Gaussians
    are pruned, but no removal is recorded and no keyframe retires. Measured: the removals of
    the changes family's taken objects are 2.2 cm thick and more (box sides), while a static
    robot scene's one false removal, 1.7 cm thick at table height, retired 19 keyframes and
    cost 20 mIoU (bench/results/changes_static_tracking_1002.md)."""
    change_stale_share: float = 0.2
    """A keyframe that saw at least this share of a removed region in place retires: it would
    pull it back."""
    change_free_margin: float = 0.01
    """A keyframe that saw a removed region "in place" only within the see-through margin
    (`change_min_margin`) while measuring a surface more than this (m) behind most of it saw
    free space just in front of a surface: the region was floaters hugging it, and that
    keyframe does not retire; when only such keyframes saw it, no removal is recorded. On the
    false removals of a static robot stream every such keyframe measured free space 1 cm
    behind the region, on the changes family's true removals almost none did
    (docs/results.md, issue 28)."""
    change_arrivals: bool = False
    """Something put down while the map is made: where a keyframe measures a surface well in
    front of the map's (at least `change_region_points` pixels, eroded like the see-through
    ones) and a later keyframe, within `change_region_window`, measures it there too, the older
    keyframes that measured free space there (well behind more than half of what they measured
    of it, and at least `change_stale_share` of it) stop training it (`change_keyframes`):
    their depth and colour would train the new object away. A later keyframe that sees through
    it instead refutes it (a hand passing by). Needs `forget_changes`. Off by default: on the
    changes family it found what was put down (seed 1100: the added duck and the moved
    sphere's new place, each masked in the 30 first-pass keyframes), but on static robot
    streams it also took newly seen sides of objects for arrivals (5-13 a scene), and neither
    the changes scene nor the static ones scored higher (docs/results.md, issue 28)."""
    change_keyframes: Literal["mask", "retire"] = "retire"
    """What becomes of an older keyframe that saw a changed region as it was: "retire" drops the
    keyframe; "mask" leaves the pixels where it saw it out of its colour, depth and contrastive
    losses (grown by `change_mask_px`), and it trains the rest of the scene on. Measured with
    arrivals on, once: seed 1100 86.6 mIoU masked against 90.6 retired the day before."""
    change_mask_px: int = 3
    """Pixels (training resolution) a changed region's footprint in an older keyframe is grown
    by: the region's points are a sample of its surface."""


@dataclass
class ObjectsConfig:
    """From Gaussians to objects: scene clustering, 3D extraction and text grounding
    (cgc_core.objects). Lengths are in the scene's units (metres for ROS and the built-in
    scenes)."""

    min_opacity: float = 0.1
    """Gaussians less opaque than this join no object and give no extracted points: floaters and
    half-transparent filler would bridge objects and bend their boxes."""
    cluster_threshold: float = 0.7
    """Cosine similarity of a Gaussian's feature to its feature group's centre, at least (also
    the radius of the feature modes searched on the sample)."""
    cluster_sample: int = 2048
    """Gaussians sampled (evenly, seeded) to find the feature modes; every Gaussian is then
    assigned to its nearest mode. Bounds the cost of clustering on large maps."""
    min_mode_share: float = 0.002
    """A feature mode needs at least this share of the sample (and 3 Gaussians): rarer ones are
    noise."""
    mode_rounds: int = 2
    """Mode searches: each after the first runs on a sample of the Gaussians no mode took yet,
    where small objects' modes have the support a sample of the whole scene denies them."""
    voxel_size: float = 0.03
    """Side of the voxels that link Gaussians of one feature group into spatially connected
    objects (neighbouring voxels are connected) and that match objects across re-clustering.
    Look-alike objects more than about two voxels apart stay separate."""
    min_gaussians: int = 30
    """Connected parts with fewer Gaussians than this are floaters, not objects."""
    min_density_share: float = 0.5
    """... and so are parts with fewer Gaussians per voxel they occupy than this share of the
    map's dense-surface density (`cluster.surface_density`: 90 % of the Gaussians of parts with
    `min_gaussians` lie in parts below it): thin spreads of large Gaussians at the map's edges
    and over the floor, not objects. Relative, because density grows with training (measured
    densities: docs/results.md, "Measurements behind some defaults")."""
    fragment_share: float = 0.25
    """A part smaller than this share of a part it touches may be absorbed by it ..."""
    fragment_min_cosine: float = 0.5
    """... when their mean features have at least this cosine similarity (an object's edge
    Gaussians, whose features blend it with its neighbours)."""
    merge_parts: bool = True
    """Merge touching objects that meet over a face and whose union is about as convex as they
    are apart: the parts of one object that every mask gives apart (a tin and its lid, a
    two-tone block) learn features of their own, and nothing in the masks says they belong
    together; geometry does (a convexity test in the spirit of LCCP). Objects stacked with a
    concave junction, or touching at a point, stay apart; two boxes flush side by side merge.
    On trained models it lifts the 8-scene mean mIoU (bench/results/quality_experiments.md);
    on young live maps it joins an object's fragments and no neighbours
    (bench/results/merge_young.md). Off: one object per feature cluster."""
    merge_contact: float = 0.02
    """Two objects touch when at least `merge_min_contact` Gaussians of each, and at least
    `merge_min_contact_share` of one's, lie within this distance of the other's."""
    merge_min_contact: int = 5
    """See `merge_contact`."""
    merge_min_contact_share: float = 0.1
    """Share of one part's Gaussians that lie at the joint, at least: parts of one object meet
    over a face (a lid over the tin's whole rim), neighbours at a point or a line (measured
    shares: bench/results/quality_experiments.md, "The face-contact guard")."""
    merge_min_mutual_share: float = 0.03
    """... and at least this share of each part's Gaussians lies within `merge_contact` of the
    other: parts of one object meet over a face or a rim on both sides, while a ball touches
    its neighbour at a point and merged with it without this test (robot scene 1003; measured
    shares and scores: bench/results/robust_factors.md, robust_robot_1003_mutual.md)."""
    merge_max_hull_ratio: float = 1.3
    """... and merge when the convex hull of their union holds at most this times the sum of
    their own hulls' volumes (an object on a table, or a mug on a book, fills far less of the
    joint hull). Measured on the split family's parts: bench/results/quality_experiments.md."""
    merge_max_opposed_share: float = 0.2
    """... and stay apart when their surfaces are turned against each other over the contact
    (`cluster.pressed_together`): more than this share of the contact has outward normals over
    90 degrees apart, and more than `merge_max_facing_share` has such normals that also point
    toward the other part. Two balls pressed together, or a ball leaning on a box, passed the
    tests above in live maps and merged, while the parts of a tin, a crate and its lid or a
    two-tone block meet with their walls running on (bench/results/merge_facing.md)."""
    merge_max_facing_share: float = 0.1
    """See `merge_max_opposed_share`. Measured on 43 trained maps (merge_facing.md): touching
    objects that no other test keeps apart, 0.26-0.81 opposed and 0.11-0.68 facing; true parts,
    0.00-0.09 facing (a crate's lid, whose seam normals are near perpendicular: 0.12-0.51
    opposed, 0.02-0.07 facing) but for a tin's lid at 0.15 facing and 0.16 opposed. One pair
    of tin fragments lying inside each other (0.68 / 0.49) stays apart at no cost to its map."""
    merge_facing_min_cosine: float = 0.3
    """A contact point's outward normal points toward the other part when its cosine with the
    line from its own part's centre to the other's is above this (`merge_max_facing_share`)."""
    merge_mixed_min_inside: float = 0.2
    """... and stay apart when at least this share of each part's Gaussians lies inside the
    other's convex hull while their mean features have a cosine below `merge_mixed_max_cosine`:
    two objects blurred into each other at a contact (pose error), whose clusters interpenetrate
    and whose surfaces face each other over little of it (robot 1005's soccer ball and cube:
    0.25-0.38 inside, cosine -0.15 to -0.04, facing share 0.07-0.40). Measured on development
    maps: fragments of one object interpenetrate with cosines of 0.57-0.81, the parts of a tin
    or a two-tone block lie at most 0.15 inside on one side (bench/results/merge_mixed.md)."""
    merge_mixed_max_cosine: float = 0.5
    """See `merge_mixed_min_inside`."""
    merge_max_background_share: float = 0.4
    """A part with at least this share of its Gaussians within `merge_contact` of a background
    object's is a patch of table (or floor) that the background's cluster left out, and merges
    with nothing: on maps recovering from an opacity reset such patches under an object passed
    the convexity test with it (measured shares: bench/results/quality_experiments.md and
    docs/results.md, "Measurements behind some defaults"; the maps: bench/results/
    merge_young.md). Flat objects lying on the table are as close to it: their parts never
    merge."""
    background_min_size: float = 0.6
    """An object whose oriented box has a side at least this long is background (table, floor,
    walls): listed, flagged, and left out of text answers unless its label is asked for."""
    background_flat_size: float = 0.25
    """... and so is a flat patch: longest side at least this, shortest at most
    `background_flatness` times the longest (the pieces of a table whose features vary)."""
    background_flatness: float = 0.2
    """See `background_flat_size`."""
    match_min_overlap: float = 0.2
    """Re-clustering: a new cluster keeps an existing object's id when their voxels overlap by at
    least this share of the smaller one (ConceptGraphs-style association)..."""
    match_min_cosine: float = 0.7
    """... and their mean features have at least this cosine similarity."""
    hull_min_cosine: float = -1.0
    """Extraction keeps the Gaussians inside the selection's convex hull whose feature has at
    least this cosine with the query; -1: every one, as the paper's supplementary (a hidden
    part whose feature never trained comes along). 0.5 leaves out the table inside a tin's
    hull at its rim: more objects' extracted points lie within 1 cm of their surface,
    completeness unchanged (bench/results/objects_hull05.md against objects.md; counts in
    docs/results.md, "Objects")."""
    outlier_neighbors: int = 20
    """Extraction: statistical outlier removal looks at this many neighbours."""
    outlier_std_ratio: float = 2.0
    """Extraction: points whose mean neighbour distance exceeds the average by more than this many
    standard deviations (and twice the median) are removed."""
    surface_views: int = 8
    """Extraction: keyframes (evenly spread over the training views) the object is rendered
    alone in to take its point cloud from the rendered surface; 0: the Gaussians' centres."""
    surface_scale: float = 0.5
    """... at this fraction of their resolution ..."""
    surface_min_alpha: float = 0.9
    """... keeping the pixels it covers at least this opaquely (edges blend with nothing) ..."""
    surface_voxel: float = 0.003
    """... thinned to one point per voxel of this side."""
    surface_from_depth: bool = True
    """Where a keyframe has measured depth (RGB-D) and the object is the surface the whole model
    shows there, its points come from the sensor's depth instead of the model's (which is off
    by more at CPU training resolutions: bench/results/quality_experiments.md, docs/results.md
    "Objects"); occluded parts keep the model's. Off: the model's depth everywhere."""
    surface_depth_tolerance: float = 0.03
    """... where the measured depth lies within this distance of the model's: farther, the sensor
    sees something else there (a moved object, a misregistered frame) and the model's is kept."""
    grounding: str = "labels,attributes"
    """Comma-separated text grounding backends: 'labels' (names users give objects), 'attributes'
    (colour, size and position words; no weights), 'dino' (Grounding DINO, needs `dino_path`),
    'clip' (needs `clip_path`)."""
    colour_full_share: float = 0.5
    """A colour word scores 1 on an object whose Gaussians have that colour over at least this
    share of its opacity, proportionally less below: shading turns part of any object darker
    (brown reads partly black), and two-tone objects are half of each colour."""
    min_score: float = 0.5
    """A text query's best object needs at least this score in [0, 1]; else "not found"."""
    ambiguity_margin: float = 0.15
    """The best object must lead the second by this much score; else "ambiguous"."""
    model_views: int = 8
    """Keyframes (evenly spread over the training views) that Grounding DINO and CLIP look at."""
    dino_path: str = ""
    """Local folder of a Grounding DINO model in the transformers layout (config, weights,
    processor). Nothing is downloaded."""
    dino_box_threshold: float = 0.25
    """Grounding DINO boxes scoring below this are ignored."""
    clip_path: str = ""
    """Local open_clip checkpoint (.pt / .bin state dict). Nothing is downloaded."""
    clip_model: str = "ViT-B-32"
    """open_clip architecture name of `clip_path` (or a path to its JSON model config)."""


@dataclass
class CGCConfig:
    """The whole configuration, one section per part of the engine."""

    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    """Where the 2D training segments come from."""
    render: RenderConfig = field(default_factory=RenderConfig)
    """Rasterizer backend and projection constants."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The Gaussian model's size and initialisation."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss terms and their constants."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimisation schedule."""
    query: QueryConfig = field(default_factory=QueryConfig)
    """Turning features into masks."""
    live: LiveConfig = field(default_factory=LiveConfig)
    """The live session: keyframes, growth, memory."""
    objects: ObjectsConfig = field(default_factory=ObjectsConfig)
    """Objects: scene clustering, 3D extraction, text grounding."""


def _describe(hint: Any) -> str:
    """A type hint as a user reads it: int, float, 'auto' or int, one of 'a', 'b'."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _coerce(hint: Any, value: Any) -> Any:
    """`value` as a valid value of the field type `hint`; ValueError when it is not one.

    An int is accepted for a float field (YAML writes 1e-3 as a float but 2 as an int); a bool is
    never accepted for a number, nor a number for a bool.
    """
    origin = typing.get_origin(hint)
    if origin is Literal:
        if any(value == choice and type(value) is type(choice) for choice in typing.get_args(hint)):
            return value
        raise ValueError
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(hint):
            try:
                return _coerce(arm, value)
            except ValueError:
                continue
        raise ValueError
    if hint is float and type(value) is int:
        return float(value)
    if type(value) is not hint:
        raise ValueError
    return value


RETIRED_KEYS = {
    "objects.min_density": "it was an absolute density (Gaussians per voxel); the floor is now "
                           "relative to the map: objects.min_density_share",
    "loss.boundary_weight_radius": "boundary lifting of Eq. 3's weights eroded every object "
                                   "(bench/results/quality_experiments.md)",
}
"""Keys that older versions wrote, with why they went: a file that sets one is refused with that
reason, and configs stored by older versions (run.json, session files) drop them."""


def without_retired(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A copy of a stored (nested) config dict without the `RETIRED_KEYS`, whose values would
    mean something else today; the current defaults take their place."""
    kept = {}
    for key, value in overrides.items():
        if f"{prefix}{key}" in RETIRED_KEYS:
            continue
        kept[key] = without_retired(value, f"{prefix}{key}.") if isinstance(value, dict) \
            else value
    return kept


def apply_overrides(config: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    """Set fields of a (nested) config dataclass from a (nested) dict, in place.

    Raises ValueError naming the dotted key for an unknown or retired key, a value of the wrong
    type, or a value outside a field's choices; nothing is changed for that key.
    """
    if not isinstance(overrides, dict):
        raise ValueError(f"config section '{prefix.rstrip('.') or '(top level)'}' must be a "
                         f"mapping, got {overrides!r}")
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    for key, value in overrides.items():
        if f"{prefix}{key}" in RETIRED_KEYS:
            raise ValueError(f"config key '{prefix}{key}' is no longer used: "
                             f"{RETIRED_KEYS[prefix + key]}")
        if key not in names:
            raise ValueError(f"unknown config key '{prefix}{key}'")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"config key '{prefix}{key}' is a section, got {value!r}")
            apply_overrides(current, value, prefix=f"{prefix}{key}.")
            continue
        try:
            value = _coerce(hints[key], value)
        except ValueError:
            raise ValueError(f"config key '{prefix}{key}' wants {_describe(hints[key])}, "
                             f"got {value!r}") from None
        setattr(config, key, value)
    return config


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (these docstrings are the documentation of
    every setting; the ROS node shows them as parameter descriptions), whitespace collapsed."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for field_node, doc_node in zip(body, body[1:]):
        if (isinstance(field_node, ast.AnnAssign) and isinstance(field_node.target, ast.Name)
                and isinstance(doc_node, ast.Expr) and isinstance(doc_node.value, ast.Constant)
                and isinstance(doc_node.value.value, str)):
            docs[field_node.target.id] = " ".join(doc_node.value.value.split())
    return docs


def config_fields(config: Any, prefix: str = "") -> list[tuple[str, Any, Any, str]]:
    """Every leaf setting of a (nested) config: (dotted key, current value, type hint, docstring),
    in declaration order."""
    hints = typing.get_type_hints(type(config))
    docs = field_docs(type(config))
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out += config_fields(value, prefix=f"{prefix}{f.name}.")
        else:
            out.append((f"{prefix}{f.name}", value, hints[f.name], docs.get(f.name, "")))
    return out


def describe_type(hint: Any) -> str:
    """A type hint as a user reads it (for messages and parameter descriptions)."""
    return _describe(hint)
