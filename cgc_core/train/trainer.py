"""The CGC trainer (supplementary Algorithm 1): render, compare, step, refine.

One `Trainer.step()` is one iteration on one view. It is the only trainer: the live session
(`live.py`) owns one and feeds it keyframes, and offline `cgc train` is that session with every
frame given up front. All model access goes through `self.lock`, so another thread may render or
query between steps.

Two schedules: planned (`iterations` given: the centres' learning rate decays toward that count,
as 3DGS) and open-ended (`iterations=None`: constant rates, for as long as frames come).

Schedule (paper, section 4.2): the rendering loss every iteration; the contrastive clustering loss
(Eq. 3) every `loss.clustering_every` iterations, on a feature map rendered in the same pass as the
colour; the spatial-similarity regularizer (Eq. 4) every `loss.regularization_every` iterations.
Features get gradients only on those iterations, and their optimizer steps only then.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cgc_core.config import CGCConfig
from cgc_core.io import DataError, atomic_path
from cgc_core.losses import (
    contrastive_clustering_loss,
    depth_loss,
    rendering_loss,
    spatial_similarity_loss,
)
from cgc_core.model.gaussians import create_gaussians, sh_degree_of
from cgc_core.model.view import render_view
from cgc_core.train.corrections import ViewCorrection
from cgc_core.train.densify import Densifier
from cgc_core.train.keyframes import KeyframePicker
from cgc_core.train.views import TrainingView

CHECKPOINT_VERSION = 2


@dataclass
class StepStats:
    step: int
    loss: float
    rendering: float
    clustering: float | None
    regularization: float | None
    num_gaussians: int


class Trainer:
    def __init__(self, config: CGCConfig, views: list[TrainingView], *,
                 points: np.ndarray | None = None, colors: np.ndarray | None = None,
                 splats: dict[str, torch.Tensor] | None = None, extent: float,
                 iterations: int | None, device: torch.device | str = "cpu",
                 favour_newest: bool = False):
        """
        Args:
            views: training views (more may be added later with `add_view`).
            points: [P, 3] initial point cloud; colors: [P, 3] uint8 or None. Or instead:
            splats: initial model rows by parameter name (`growth.gaussian_rows`).
            extent: scene size (3DGS camera extent), scales the position learning rate and the
                densification thresholds.
            iterations: planned total, for the position learning-rate decay; None: open-ended.
            favour_newest: pick views as a live session does (`KeyframePicker`), else in rounds.
        """
        if (points is None) == (splats is None):
            raise ValueError("give the initial model as points or as splats, not both")
        self.config = config
        self.device = torch.device(device)
        self.views = list(views)
        self.view_uses = [0] * len(self.views)
        self.extent = float(extent)
        self.iterations = None if iterations is None else int(iterations)
        self.schedule_start = 0
        """The step the planned schedule counts from: 0 offline; for a live session, the step at
        which its end became known (`plan_end`)."""
        self.lock = threading.RLock()
        self.step_count = 0
        self.generator = torch.Generator(device="cpu").manual_seed(config.train.seed)
        self.view_rng = np.random.default_rng(config.train.seed)
        self.picker = KeyframePicker(config.live, self.view_rng, favour_newest=favour_newest)
        if splats is None:
            self.splats = create_gaussians(
                points, colors, feature_dim=config.model.feature_dim,
                sh_degree=config.model.sh_degree, init_opacity=config.model.init_opacity,
                generator=self.generator, feature_init_std=config.model.feature_init_std,
                device=self.device)
        else:
            self.splats = torch.nn.ParameterDict(
                {name: torch.nn.Parameter(value.to(self.device)) for name, value in splats.items()})
        self.optimizers = self._make_optimizers()
        self.densifier = Densifier(config.train, config.model, self.extent, self.generator)
        self.background = torch.zeros(3, device=self.device)
        self.before_opacity_reset = None
        """Called (under the lock, after the optimiser step) just before an opacity reset."""

    # ------------------------------------------------------------------ set-up

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        t = self.config.train
        rates = {"means": t.lr_means * self.extent, "quats": t.lr_quats, "log_scales": t.lr_scales,
                 "opacities": t.lr_opacities, "sh0": t.lr_sh0, "shN": t.lr_shN,
                 "features": t.lr_features}
        # fused: one pass over each parameter instead of six (5x faster on [N, 15, 3] on a CPU).
        return {name: torch.optim.Adam([{"params": [self.splats[name]], "lr": lr, "name": name}],
                                       eps=t.adam_eps, fused=True)
                for name, lr in rates.items()}

    def add_view(self, view: TrainingView) -> None:
        with self.lock:
            view.added_at = self.step_count
            self.views.append(view)
            self.view_uses.append(0)

    def remove_view(self, index: int) -> None:
        with self.lock:
            del self.views[index]
            del self.view_uses[index]
            self.picker.forget(index)

    def set_extent(self, extent: float) -> None:
        """A new scene extent (a live map grows): position learning rate and thresholds follow."""
        with self.lock:
            self.extent = float(extent)
            self.densifier.extent = self.extent

    @property
    def sh_degree(self) -> int:
        every = self.config.train.sh_increase_every
        active = self.step_count // every if every > 0 else sh_degree_of(self.splats)
        return min(active, sh_degree_of(self.splats))

    def _next_view(self) -> TrainingView:
        index = self.picker.pick(len(self.views), self.view_uses[-1])
        self.view_uses[index] += 1
        return self.views[index]

    def plan_end(self, last: int) -> None:
        """An open-ended run learns that it stops at iteration `last`: from here on the rates
        decay toward it as a planned run's do over its whole length, so that the map and the
        pose corrections settle instead of ending at the constant live rates (a `cgc stream`
        run used to keep them to its last iteration). A planned run keeps its own schedule."""
        if self.iterations is None:
            self.schedule_start = self.step_count
            self.iterations = max(int(last), self.step_count + 1)

    def _progress(self) -> float | None:
        """How far along the planned schedule (0 to 1), None when open-ended."""
        if self.iterations is None:
            return None
        span = max(1, self.iterations - self.schedule_start)
        return min(1.0, max(0, self.step_count - self.schedule_start) / span)

    def _update_learning_rate(self) -> None:
        t = self.config.train
        lr = t.lr_means * self.extent
        progress = self._progress()
        if progress is not None:
            lr *= (t.lr_means_final / t.lr_means) ** progress
        self.optimizers["means"].param_groups[0]["lr"] = lr

    def _correction(self, view: TrainingView) -> ViewCorrection | None:
        """The view's learned pose / exposure correction, made on its first use (None when both
        are switched off)."""
        t = self.config.train
        if not (t.pose_refine or t.exposure_compensation):
            return None
        if view.correction is None:
            view.correction = ViewCorrection(t, self.device)
        return view.correction

    def _set_correction_rates(self, correction: ViewCorrection) -> None:
        """Pose rates decay to a tenth over a planned schedule (constant when open-ended), so
        the corrections settle instead of jittering by one step around the answer."""
        t = self.config.train
        progress = self._progress()
        decay = 1.0 if progress is None else 0.1 ** progress
        rates = {"rotation": t.lr_pose_rotation * decay,
                 "translation": t.lr_pose_translation * self.extent * decay}
        for group in correction.optimizer.param_groups:
            name = group.get("name")
            if name in rates:
                group["lr"] = rates[name]

    @torch.no_grad()
    def _center_pose_corrections(self) -> None:
        """Subtract the views' mean pose correction from each (`train.pose_zero_mean`): the
        part all views share is a drift of the whole map against the given poses, which the
        data cannot tell from a moved map, and which held-out views at given poses would pay."""
        corrections = [v.correction for v in self.views if v.correction is not None]
        if not corrections:
            return
        rotations = torch.stack([c.rotation for c in corrections])         # [V, 3]
        translations = torch.stack([c.translation for c in corrections])   # [V, 3]
        rotation_mean, translation_mean = rotations.mean(0), translations.mean(0)
        for c in corrections:
            c.rotation.sub_(rotation_mean)
            c.translation.sub_(translation_mean)

    def view_corrections(self) -> list[dict | None]:
        """Each training view's learned correction in plain numbers (`ViewCorrection.summary`),
        None for a view not yet trained. Read without the model's lock, so that status
        reports never wait for an iteration: at worst a value is one optimiser step old."""
        return [None if v.correction is None else {"name": v.camera.name,
                                                   **v.correction.summary()}
                for v in list(self.views)]

    # ------------------------------------------------------------------ one iteration

    def step(self) -> StepStats:
        """One iteration on the next training view."""
        if not self.views:
            raise RuntimeError("no training views")
        with self.lock:
            self.step_count += 1
            step, loss_cfg = self.step_count, self.config.loss
            view = self._next_view()
            self._update_learning_rate()
            with_features = (loss_cfg.clustering_every > 0 and step % loss_cfg.clustering_every == 0
                             and view.segments is not None and loss_cfg.clustering_weight > 0)
            with_depth = view.depth is not None and loss_cfg.depth_weight > 0
            correction = self._correction(view)
            transform = None
            if correction is not None and correction.pose_enabled \
                    and step - view.added_at >= self.config.train.pose_refine_from:
                transform = correction.world_transform(view.viewmat)
            out = render_view(self.splats, view.viewmat, view.K, view.width, view.height,
                              sh_degree=self.sh_degree, render=self.config.render,
                              with_features=with_features, with_depth=with_depth,
                              background=self.background, world_transform=transform)
            out.raw.means2d.retain_grad()
            rgb = out.rgb
            if correction is not None and correction.exposure_enabled:
                rgb = correction.expose(rgb)
            # a changed region of an old keyframe (`TrainingView.ignore`) weighs nothing
            rendering = rendering_loss(rgb, view.image, loss_cfg.ssim_lambda,
                                       None if view.ignore is None else ~view.ignore)
            loss = rendering
            if with_depth:
                loss = loss + loss_cfg.depth_weight * depth_loss(out.depths, out.alphas,
                                                                 view.depth)
            clustering = regularization = None
            if with_features:
                # The paper's 100-pixel minimum is meant at the images' own resolution: a view
                # trained at a quarter of the pixels keeps segments of more than 25.
                min_pixels = max(1, round(loss_cfg.min_cluster_pixels * view.area_scale))
                clustering = contrastive_clustering_loss(
                    out.features, view.segments, min_pixels=min_pixels,
                    temperature_eps=loss_cfg.temperature_eps, generator=self.generator,
                    temperature_range=(loss_cfg.temperature_min, loss_cfg.temperature_max),
                    temperature_scale=loss_cfg.temperature_scale,
                    cluster_balance=loss_cfg.cluster_balance)
                loss = loss + loss_cfg.clustering_weight * clustering
            regularize = (loss_cfg.regularization_every > 0
                          and step % loss_cfg.regularization_every == 0
                          and (loss_cfg.use_similarity or loss_cfg.use_dissimilarity))
            if regularize:
                regularization = spatial_similarity_loss(
                    self.splats["means"], self.splats["features"],
                    num_samples=loss_cfg.regularization_samples, near_k=loss_cfg.near_k,
                    far_l=loss_cfg.far_l, near_weight=loss_cfg.near_weight,
                    far_weight=loss_cfg.far_weight, use_similarity=loss_cfg.use_similarity,
                    use_dissimilarity=loss_cfg.use_dissimilarity, generator=self.generator)
                loss = loss + regularization
            loss.backward()
            if out.raw.means2d.grad is not None:
                self.densifier.accumulate(out.raw.means2d.grad, out.raw.radii, view.width,
                                          view.height)
            for optimizer in self.optimizers.values():
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if correction is not None:
                self._set_correction_rates(correction)
                correction.step()
                # Once per round of the views: the drift it removes is slow, and the loop over
                # every view costs a few milliseconds.
                if correction.pose_enabled and self.config.train.pose_zero_mean \
                        and step % len(self.views) == 0:
                    self._center_pose_corrections()
            if self.before_opacity_reset is not None and self.densifier.resets_opacity_at(step):
                self.before_opacity_reset()
            self.densifier.step(step, self.splats, self.optimizers)
            return StepStats(
                step=step,
                loss=float(loss.detach()),
                rendering=float(rendering.detach()),
                clustering=None if clustering is None else float(clustering.detach()),
                regularization=None if regularization is None else float(regularization.detach()),
                num_gaussians=int(self.splats["means"].shape[0]),
            )

    def train(
        self,
        until: int,
        *,
        progress: bool = True,
        checkpoint: Path | None = None,
        checkpoint_every: int = 0,
        on_step=None,
    ) -> StepStats | None:
        """Iterate until `step_count == until`, with a progress bar and periodic checkpoints."""
        stats = None
        # Redraw often on a terminal, rarely into a log file (CI, nohup) so it stays readable.
        interactive = sys.stderr.isatty()
        bar = tqdm(
            total=until,
            initial=self.step_count,
            disable=not progress,
            unit="it",
            dynamic_ncols=True,
            desc="train",
            mininterval=0.5 if interactive else 15.0,
        )
        last_cc = None
        while self.step_count < until:
            stats = self.step()
            if stats.clustering is not None:
                last_cc = stats.clustering
            bar.update(1)
            if stats.step % 10 == 0 or stats.step == until:
                postfix = {"loss": f"{stats.rendering:.4f}", "gaussians": stats.num_gaussians}
                if last_cc is not None:
                    postfix["cc"] = f"{last_cc:.3g}"
                bar.set_postfix(postfix, refresh=False)
            if on_step is not None:
                on_step(stats)
            if (
                checkpoint is not None
                and checkpoint_every > 0
                and stats.step % checkpoint_every == 0
            ):
                self.save_checkpoint(checkpoint)
        bar.close()
        return stats

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        with self.lock:
            return {
                "version": CHECKPOINT_VERSION,
                "step": self.step_count,
                "iterations": self.iterations,
                "schedule_start": self.schedule_start,
                "extent": self.extent,
                "config": dataclasses.asdict(self.config),
                "splats": {k: v.detach().cpu() for k, v in self.splats.items()},
                "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
                "densify": {
                    "grad_sum": self.densifier.state.grad_sum.cpu(),
                    "count": self.densifier.state.count.cpu(),
                },
                "generator": self.generator.get_state(),
                "view_rng": self.view_rng.bit_generator.state,
                "picker": self.picker.state(),
                "view_uses": list(self.view_uses),
                "view_corrections": [None if v.correction is None else v.correction.state()
                                     for v in self.views],
            }

    def load_state_dict(self, state: dict) -> None:
        if state.get("version") != CHECKPOINT_VERSION:
            raise DataError(f"checkpoint version {state.get('version')} is not supported")
        with self.lock:
            self.step_count = int(state["step"])
            self.iterations = None if state["iterations"] is None else int(state["iterations"])
            self.schedule_start = int(state.get("schedule_start", 0))
            self.extent = float(state["extent"])
            self.splats = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(v.to(self.device)) for k, v in state["splats"].items()}
            )
            self.optimizers = self._make_optimizers()
            for name, opt_state in state["optimizers"].items():
                self.optimizers[name].load_state_dict(opt_state)
            self.densifier.extent = self.extent
            self.densifier.state.grad_sum = state["densify"]["grad_sum"].to(self.device)
            self.densifier.state.count = state["densify"]["count"].to(self.device)
            self.generator.set_state(state["generator"])
            self.view_rng.bit_generator.state = state["view_rng"]
            self.picker.load_state(state["picker"])
            self.view_uses = [int(u) for u in state["view_uses"]]
            # Checkpoints from before the corrections existed load with none learned.
            for view, saved in zip(self.views, state.get("view_corrections") or [], strict=False):
                view.correction = None
                if saved is not None and self._correction(view) is not None:
                    view.correction.load_state(saved)

    def save_checkpoint(self, path: Path) -> None:
        """Atomic: a crash mid-write leaves the previous checkpoint intact."""
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state, read without executing anything from the file (tensors, numbers,
    strings, lists and dicts only: `torch.load(weights_only=True)`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # a pickle of Python objects, not of tensors
        # torch's text runs over several lines and advises weights_only=False: say what it is.
        lines = [line for line in str(error).splitlines() if "unsupported" in line]
        refused = f" ({lines[0].strip()})" if lines else ""
        raise DataError(f"cannot read checkpoint {path}: it holds Python objects that could "
                        f"run code, refused{refused}") from None
    except Exception as error:  # torch raises many types for a bad file
        detail = " ".join(str(error).split())[:300]
        raise DataError(f"cannot read checkpoint {path}: {detail}") from None
