"""Scaling the step-based schedule to the planned iteration count (gsplat's `steps_scaler`)."""

from __future__ import annotations

import copy

from cgc_core.config import CGCConfig

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
