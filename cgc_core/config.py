"""Every default of cgc in one place.

The YAML file (`config/cgc.yaml`), the command line and the ROS parameters override these field by
field (`load_config`, `apply_overrides`); nothing else in the code base holds a default of its own.
Constants marked "paper" come from Silva et al., sections 3.2 and 4.2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class SegmenterConfig:
    """Where 2D segments (the training signal) come from (see cgc_core.segment)."""

    kind: str = "auto"
    """'sam', 'felzenszwalb', 'precomputed', or 'auto' (SAM when `sam_checkpoint` is set, else
    felzenszwalb)."""
    sam_checkpoint: str = ""
    """Path to a segment-anything checkpoint (.pth, a plain state dict). Nothing is downloaded."""
    sam_model_type: str = "vit_h"
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
    """Smallest segment in pixels; smaller ones are merged into a neighbour."""
    masks_dir: str = ""
    """For kind='precomputed': a folder with one 8- or 16-bit PNG per image stem."""
    device: str = "auto"
    """Torch device for SAM: 'auto' (cuda when available, else cpu), 'cpu', 'cuda', 'cuda:1'."""


@dataclass
class RenderConfig:
    """Rasterizer settings (see cgc_core.render)."""

    backend: str = "auto"
    """'auto' (gsplat on CUDA, else the native CPU kernel), 'gsplat', 'cpu', 'reference'."""
    eps2d: float = 0.3
    """Low-pass dilation added to every 2D covariance (3DGS / gsplat default)."""
    near: float = 0.01
    far: float = 1e10


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
    temperature_min: float = 0.1
    temperature_max: float = 1.0
    """The temperature divided into the logits is clip(scale * phi, min, max), as in the
    authors' released code (clip(10 phi, 0.1, 1)). The bare formula of the paper (scale 1, no
    clip) saturates the softmax while clusters are still spread out, so t = 0.7 masks fall apart,
    and lets tight clusters' logits explode. Scale 1, min 1e-4, max inf gives the bare formula."""
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
    use_similarity: bool = True
    """The near (similarity) half of Eq. 4, on as in the paper. In 2000-iteration CPU runs on
    four built-in scenes, training without it scored 0.7-10 mIoU higher on every one
    (bench/results/threshold.md); not measured at the paper's GPU scale, so it stays on."""
    use_dissimilarity: bool = False
    """The far (dissimilarity) half of Eq. 4; True gives the paper's complete model. Off by
    default because on our scenes it hurts (bench/results/train.md): the L farthest Gaussians of
    almost every sample are the same few hull points, so the term pushes all features away from
    one direction and objects' features drift together (mIoU 92 without it, 67 with it). The
    paper's own ablation (Table 3) credits it with +0.8 mIoU only."""


@dataclass
class TrainConfig:
    """Optimisation schedule (3DGS defaults unless noted)."""

    iterations: int = 0
    """Iterations to train; 0 picks per device: `gpu_iterations` on CUDA, `cpu_iterations` else."""
    gpu_iterations: int = 30_000
    """Paper: 30k iterations (about 20 minutes on an RTX 4090)."""
    cpu_iterations: int = 2000
    """Default on a CPU: about 5 minutes for the built-in 40-view scene on 2 cores (README)."""
    seed: int = 0
    device: str = "auto"
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    lr_features: float = 2.5e-3
    densify_from: int = 500
    densify_until: int = 15_000
    densify_every: int = 100
    densify_grad_threshold: float = 2e-4
    percent_dense: float = 0.01
    opacity_reset_every: int = 3000
    prune_opacity: float = 0.005
    sh_increase_every: int = 1000
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
    max_resolution: int = -1
    """Downscale training views so the longer side is at most this; 0 keeps the native size and
    -1 picks per device (native on CUDA, `cpu_max_resolution` on a CPU)."""
    cpu_max_resolution: int = 160
    """Training resolution cap on a CPU when `max_resolution` is -1 (0: native): 160x120 for
    the built-in 320x240 scenes; queries and evaluation still render at full resolution."""


@dataclass
class QueryConfig:
    """Turning features into masks and objects."""

    threshold: float = 0.75
    """Cosine similarity threshold t of Eq. 6 (paper: 0.7). 0.75 was chosen on three built-in
    scenes (seeds 0-2) and beat 0.7 by 4.7 mIoU on two scenes it was not chosen on (seeds 3-4);
    see bench/results/threshold.md. Query time only: no retraining to change it."""


@dataclass
class CGCConfig:
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    query: QueryConfig = field(default_factory=QueryConfig)


def apply_overrides(config: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    """Set fields of a (nested) config dataclass from a (nested) dict; unknown keys are errors."""
    names = {f.name: f for f in dataclasses.fields(config)}
    for key, value in overrides.items():
        if key not in names:
            raise ValueError(f"unknown config key '{prefix}{key}'")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"config key '{prefix}{key}' is a section, got {value!r}")
            apply_overrides(current, value, prefix=f"{prefix}{key}.")
        else:
            if current is not None and not isinstance(value, type(current)):
                if isinstance(current, float) and isinstance(value, int):
                    value = float(value)
                else:
                    raise ValueError(f"config key '{prefix}{key}' wants {type(current).__name__}, "
                                     f"got {value!r}")
            setattr(config, key, value)
    return config


def load_config(path: str | Path | None = None) -> CGCConfig:
    """Defaults, overridden by a YAML file when given."""
    config = CGCConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        apply_overrides(config, data)
    return config
