"""Adaptive density control of 3DGS (clone / split / prune / opacity reset), features included.

Algorithm 1 of the CGC supplementary is 3DGS's refinement with the segmentation feature carried
along: a cloned Gaussian copies its feature, both halves of a split keep the parent's feature, and
pruning removes the feature with the rest. Every parameter has its own Adam optimizer (gsplat
style) so that its moments can be grown or cut together with the parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cgc_core.config import ModelConfig, TrainConfig
from cgc_core.geometry import quat_to_rotmat


def _edit_params(splats: torch.nn.ParameterDict, optimizers: dict[str, torch.optim.Optimizer],
                 param_fn, state_fn) -> None:
    """Replace each parameter by param_fn(name, tensor) and each Adam moment by state_fn(moment)."""
    for name in list(splats.keys()):
        old = splats[name]
        new = torch.nn.Parameter(param_fn(name, old.detach()), requires_grad=old.requires_grad)
        optimizer = optimizers[name]
        state = optimizer.state.pop(old, None)
        if state is not None:
            for key, value in state.items():
                if key != "step" and torch.is_tensor(value) and value.shape == old.shape:
                    state[key] = state_fn(value)
            optimizer.state[new] = state
        optimizer.param_groups[0]["params"] = [new]
        splats[name] = new


def remove_gaussians(splats, optimizers, keep: Tensor) -> None:
    """keep: [N] bool."""
    _edit_params(splats, optimizers, lambda _, p: p[keep], lambda s: s[keep])


def append_gaussians(splats, optimizers, new_values: dict[str, Tensor]) -> None:
    """Append rows; new Adam moments start at zero (as in 3DGS)."""
    def grow_state(moment: Tensor) -> Tensor:
        n_new = next(iter(new_values.values())).shape[0]
        return torch.cat([moment, moment.new_zeros((n_new, *moment.shape[1:]))])
    _edit_params(splats, optimizers, lambda name, p: torch.cat([p, new_values[name].to(p)]),
                 grow_state)


@dataclass
class DensifyState:
    """Running view-space gradient statistics between two refinements."""

    grad_sum: Tensor = field(default_factory=lambda: torch.zeros(0))
    count: Tensor = field(default_factory=lambda: torch.zeros(0))

    def reset(self, n: int, device) -> None:
        self.grad_sum = torch.zeros(n, device=device)
        self.count = torch.zeros(n, device=device)


class Densifier:
    """3DGS refinement schedule on a ParameterDict (see TrainConfig for every constant)."""

    def __init__(self, train: TrainConfig, model: ModelConfig, scene_extent: float,
                 generator: torch.Generator):
        self.cfg = train
        self.generator = generator  # split sampling stays deterministic under the run's seed
        self.max_gaussians = model.max_gaussians
        self.extent = scene_extent
        self.until = train.densify_until
        """Densification and opacity resets stop at this step; a live session moves it on at each
        new keyframe, so they keep their cadence for as long as new views come."""
        self.state = DensifyState()

    def accumulate(self, means2d_grad: Tensor, radii: Tensor, width: int, height: int) -> None:
        """Add one view's gradients. means2d_grad: [N, 2] in pixels; radii: [N]."""
        n = means2d_grad.shape[0]
        if self.state.grad_sum.shape[0] != n:
            self.state.reset(n, means2d_grad.device)
        # 3DGS thresholds the gradient w.r.t. normalised device coordinates: d/dndc = d/dpx * size/2
        scale = means2d_grad.new_tensor([width / 2.0, height / 2.0])
        norms = (means2d_grad * scale).norm(dim=-1)
        visible = radii > 0
        self.state.grad_sum[visible] += norms[visible]
        self.state.count[visible] += 1

    def step(self, step: int, splats, optimizers) -> dict[str, int]:
        """Run whatever refinement falls on this step (1-based). Returns counts of what changed."""
        cfg, report = self.cfg, {}
        if cfg.densify_from <= step < self.until and step % cfg.densify_every == 0:
            report.update(self._densify_and_prune(step, splats, optimizers))
            self.state.reset(splats["means"].shape[0], splats["means"].device)
        if self.resets_opacity_at(step):
            self._reset_opacity(splats, optimizers)
            report["opacity_reset"] = 1
        return report

    def resets_opacity_at(self, step: int) -> bool:
        every = self.cfg.opacity_reset_every
        return every > 0 and step % every == 0 and step < self.until

    @torch.no_grad()
    def _densify_and_prune(self, step: int, splats, optimizers) -> dict[str, int]:
        cfg = self.cfg
        n = splats["means"].shape[0]
        if self.state.grad_sum.shape[0] != n:
            self.state.reset(n, splats["means"].device)
        avg_grad = self.state.grad_sum / self.state.count.clamp_min(1)
        high = avg_grad > cfg.densify_grad_threshold
        # Respect the Gaussian budget: keep only the strongest candidates when over it.
        room = max(0, self.max_gaussians - n)
        if int(high.sum()) > room:
            top = (torch.topk(avg_grad, room).indices if room > 0
                   else avg_grad.new_zeros(0, dtype=torch.long))
            high = torch.zeros_like(high)
            high[top] = True
        max_scale = splats["log_scales"].exp().max(dim=-1).values
        small = max_scale <= cfg.percent_dense * self.extent
        clone, split = high & small, high & ~small

        # Clone: an exact copy (features included) that the optimizer then moves apart.
        cloned = {name: p[clone] for name, p in splats.items()}
        # Split: two samples from the parent Gaussian, scales shrunk (3DGS: by 1.6).
        parents = {name: p[split] for name, p in splats.items()}
        n_split = int(split.sum())
        if n_split:
            scales = parents["log_scales"].exp()
            rot = quat_to_rotmat(parents["quats"])
            samples = torch.randn(2, n_split, 3, generator=self.generator).to(scales) * scales
            offsets = torch.einsum("nij,bnj->bni", rot, samples)
            children = {name: torch.cat([p, p]) for name, p in parents.items()}
            children["means"] = (parents["means"][None] + offsets).reshape(-1, 3)
            children["log_scales"] = torch.cat([parents["log_scales"]] * 2) - math.log(
                cfg.split_scale_divisor
            )
        else:
            children = {name: p[:0] for name, p in parents.items()}
        # Remove split parents, then append clones and children.
        remove_gaussians(splats, optimizers, ~split)
        append_gaussians(
            splats, optimizers, {name: torch.cat([cloned[name], children[name]]) for name in splats}
        )

        # Prune: nearly transparent, or (after the first opacity reset) too large in the world.
        opacity = torch.sigmoid(splats["opacities"])
        prune = opacity < cfg.prune_opacity
        if step > cfg.opacity_reset_every:
            prune |= (
                splats["log_scales"].exp().max(dim=-1).values > cfg.prune_max_scale * self.extent
            )
        if bool(prune.all()):  # never prune the whole model away
            prune[:] = False
        remove_gaussians(splats, optimizers, ~prune)
        return {"cloned": int(clone.sum()), "split": n_split, "pruned": int(prune.sum())}

    @torch.no_grad()
    def make_room(self, splats, optimizers, count: int) -> int:
        """Prune the least opaque Gaussians so that `count` more fit under `max_gaussians`;
        returns how many more fit (fewer than `count` only when the cap itself is smaller)."""
        n = splats["means"].shape[0]
        count = min(count, self.max_gaussians)
        keep_count = min(n, self.max_gaussians - count)
        if keep_count < n:
            keep = torch.zeros(n, dtype=torch.bool, device=splats["means"].device)
            keep[torch.topk(splats["opacities"].detach(), keep_count).indices] = True
            remove_gaussians(splats, optimizers, keep)
        return count

    @torch.no_grad()
    def _reset_opacity(self, splats, optimizers) -> None:
        """Clamp opacities to 2x the prune threshold so floaters must earn their opacity back."""
        ceiling = math.log((2 * self.cfg.prune_opacity) / (1 - 2 * self.cfg.prune_opacity))
        new = splats["opacities"].clamp(max=ceiling)
        _edit_params(
            splats, optimizers, lambda name, p: new if name == "opacities" else p, lambda s: s
        )
        # Adam moments of the opacity restart (3DGS resets them too).
        state = optimizers["opacities"].state.get(splats["opacities"])
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key].zero_()
