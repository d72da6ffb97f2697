"""The training schedule: iterations and resolution planned per device, and the step-based
settings scaled to the planned iteration count (gsplat's `steps_scaler`)."""

from __future__ import annotations

import copy

import torch

from cgc_core.config import AUTO, CGCConfig

# Step-based settings and the section they live in. `densify_every` is not among them: it sets
# how many views' gradients are averaged before a densification decision, a statistic that must
# not shrink with the run (densifying every 10 views makes the model grow far too fast).
_TRAIN_STEPS = ("densify_from", "densify_until", "opacity_reset_every", "sh_increase_every")
_LOSS_STEPS = ("clustering_every", "regularization_every")


def scaled_schedule(config: CGCConfig, iterations: int) -> CGCConfig:
    """A copy of `config` whose step-based settings are scaled by
    iterations / train.schedule_reference_iterations (unchanged when scale_schedule is off).

    Intervals never drop below 1 and a disabled interval (0) stays disabled.
    """
    scaled = copy.deepcopy(config)
    if not config.train.scale_schedule or iterations == config.train.schedule_reference_iterations:
        return scaled
    factor = iterations / config.train.schedule_reference_iterations
    for section, names in ((scaled.train, _TRAIN_STEPS), (scaled.loss, _LOSS_STEPS)):
        for name in names:
            value = getattr(section, name)
            if value > 0:
                setattr(section, name, max(1, round(value * factor)))
    return scaled


def planned_iterations(config: CGCConfig, device: torch.device) -> int:
    """`train.iterations`, or per device when it is "auto" (the paper's count on CUDA)."""
    t = config.train
    if t.iterations != AUTO:
        return t.iterations
    return t.gpu_iterations if device.type == "cuda" else t.cpu_iterations


def planned_resolution(config: CGCConfig, device: torch.device,
                       longest_side: int | None = None) -> int:
    """Longest training image side (0: native): `train.max_resolution`, or per device, and on
    a CPU per the scene's images when their `longest_side` is known (`cpu_capture_resolution`
    for captures of at least `capture_min_side` pixels)."""
    t = config.train
    if t.max_resolution != AUTO:
        return t.max_resolution
    if device.type == "cuda":
        return 0
    if longest_side is not None and longest_side >= t.capture_min_side:
        return t.cpu_capture_resolution
    return t.cpu_max_resolution


def with_scene_resolution(config: CGCConfig, device: torch.device,
                          longest_side: int) -> CGCConfig:
    """A copy of `config` whose `train.max_resolution` is the planned one for a scene whose
    images are `longest_side` pixels on their longer side (`planned_resolution`)."""
    planned = copy.deepcopy(config)
    planned.train.max_resolution = planned_resolution(config, device, longest_side)
    return planned
