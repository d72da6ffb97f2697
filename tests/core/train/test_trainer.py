"""The trainer on a real (tiny) synthetic scene: it learns, it is deterministic, it resumes."""

import dataclasses

import numpy as np
import pytest
import torch

from cgc_core.config import CGCConfig, apply_overrides
from cgc_core.data import load_scene
from cgc_core.io import read_label_png
from cgc_core.losses import contrastive_clustering_loss, rendering_loss
from cgc_core.model.view import render_view
from cgc_core.train.from_scene import trainer_from_scene


def small_config(**loss):
    config = CGCConfig()
    apply_overrides(config, {
        "model": {"sh_degree": 1},
        "loss": {"clustering_every": 5, "regularization_every": 10, "regularization_samples": 64,
                 "min_cluster_pixels": 20, **loss},
        "train": {"iterations": 60, "max_resolution": 0, "scale_schedule": False,
                  "densify_from": 20, "densify_every": 20, "densify_until": 60,
                  "opacity_reset_every": 1000, "sh_increase_every": 50},
    })
    return config


def make_trainer(scene_dir, config):
    """The same set-up as `cgc train` (trainer_from_scene), on 1500 of the scene's points."""
    scene = load_scene(scene_dir)
    segments = {name: read_label_png(scene_dir / "masks_inconsistent" / f"{name}.png")
                for name in scene.train_names}
    pick = np.random.default_rng(0).choice(len(scene.points), size=min(1500, len(scene.points)),
                                           replace=False)
    scene = dataclasses.replace(scene, points=scene.points[pick],
                                point_colors=scene.point_colors[pick])
    return trainer_from_scene(scene, segments, config, torch.device("cpu"))


def losses_on(trainer):
    """Rendering and contrastive losses averaged over all training views (one view is noisy)."""
    rgb = cc = 0.0
    loss_cfg = trainer.config.loss
    with torch.no_grad():
        for view in trainer.views:
            out = render_view(trainer.splats, view.viewmat, view.K, view.width, view.height,
                              sh_degree=trainer.sh_degree, render=trainer.config.render,
                              with_features=True)
            rgb += float(rendering_loss(out.rgb, view.image, 0.2))
            cc += float(contrastive_clustering_loss(
                out.features, view.segments, min_pixels=loss_cfg.min_cluster_pixels,
                temperature_eps=loss_cfg.temperature_eps,
                temperature_range=(loss_cfg.temperature_min, loss_cfg.temperature_max),
                temperature_scale=loss_cfg.temperature_scale,
                cluster_balance=loss_cfg.cluster_balance))
    return rgb / len(trainer.views), cc / len(trainer.views)


@pytest.mark.slow
def test_training_lowers_both_losses(tiny_scene):
    trainer = make_trainer(tiny_scene, small_config(clustering_every=2))
    rgb0, cc0 = losses_on(trainer)
    trainer.train(60, progress=False)
    rgb1, cc1 = losses_on(trainer)
    assert rgb1 < 0.8 * rgb0
    assert cc1 < cc0
    assert trainer.step_count == 60


def test_features_move_only_on_feature_iterations(tiny_scene):
    config = small_config()
    trainer = make_trainer(tiny_scene, config)
    trainer.train(3, progress=False)  # steps 1..3: no clustering (every 5), no regularizer
    before = trainer.splats["features"].detach().clone()
    colours_before = trainer.splats["sh0"].detach().clone()
    trainer.step()  # step 4: rendering loss only
    assert torch.equal(trainer.splats["features"], before)
    assert not torch.equal(trainer.splats["sh0"], colours_before)
    trainer.step()  # step 5: contrastive clustering
    assert not torch.equal(trainer.splats["features"], before)


@pytest.mark.slow
def test_same_seed_same_model_and_resume_is_exact(tiny_scene, tmp_path):
    config = small_config()
    straight = make_trainer(tiny_scene, config)
    straight.train(40, progress=False)  # crosses a densification (20, 40) and regularizer steps
    again = make_trainer(tiny_scene, small_config())
    again.train(40, progress=False)
    for name in straight.splats:
        assert torch.equal(straight.splats[name], again.splats[name]), name

    first = make_trainer(tiny_scene, small_config())
    first.train(25, progress=False)
    first.save_checkpoint(tmp_path / "ckpt.pt")
    from cgc_core.train.trainer import load_checkpoint
    resumed = make_trainer(tiny_scene, small_config())
    resumed.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt"))
    assert resumed.step_count == 25
    resumed.train(40, progress=False)
    for name in straight.splats:
        assert torch.equal(straight.splats[name], resumed.splats[name]), name


def depth_error(trainer):
    """Mean |rendered surface depth - measured| / measured over the views' measured pixels."""
    errors = []
    with torch.no_grad():
        for view in trainer.views:
            out = render_view(trainer.splats, view.viewmat, view.K, view.width, view.height,
                              sh_degree=0, render=trainer.config.render, with_depth=True)
            valid = (view.depth > 0) & (out.alphas > 0.5)
            surface = out.depths[valid] / out.alphas[valid]
            errors.append(((surface - view.depth[valid]).abs() / view.depth[valid]).mean())
    return float(torch.stack(errors).mean())


@pytest.mark.slow
def test_the_depth_term_brings_the_rendered_surface_to_the_measured_depth(tiny_scene):
    with_depth = make_trainer(tiny_scene, small_config(depth_weight=1.0))
    colour_only = make_trainer(tiny_scene, small_config(depth_weight=1.0))
    for view in colour_only.views:  # the same start, the same depth maps to measure against
        assert view.depth is not None
    colour_only.config.loss.depth_weight = 0.0
    start = depth_error(with_depth)
    with_depth.train(60, progress=False)
    colour_only.train(60, progress=False)
    assert depth_error(with_depth) < 0.8 * depth_error(colour_only)
    assert depth_error(with_depth) < start


@pytest.mark.slow
def test_an_open_ended_run_that_learns_its_end_decays_its_rates_toward_it(tiny_scene):
    """`cgc stream` trains open-ended while frames come, then to a known end: from the moment
    the end is known, the centres' and the pose corrections' rates decay as a planned run's."""
    from cgc_core.train.trainer import Trainer

    config = small_config()
    planned = make_trainer(tiny_scene, config)
    points = planned.splats["means"].detach().cpu().numpy()
    trainer = Trainer(config, planned.views, points=points, extent=planned.extent,
                      iterations=None)
    t = config.train

    def means_rate():
        return trainer.optimizers["means"].param_groups[0]["lr"]

    for _ in range(10):
        trainer.step()
    assert means_rate() == pytest.approx(t.lr_means * trainer.extent)  # constant live rate
    trainer.plan_end(30)
    for _ in range(10):
        trainer.step()
    halfway = (t.lr_means_final / t.lr_means) ** 0.5
    assert means_rate() == pytest.approx(t.lr_means * trainer.extent * halfway)
    for _ in range(10):
        trainer.step()
    assert means_rate() == pytest.approx(t.lr_means_final * trainer.extent)
    rotation_rates = [g["lr"] for view in trainer.views if view.correction is not None
                      for g in view.correction.optimizer.param_groups if g["name"] == "rotation"]
    # The view of the last iteration had its pose rate set at the end: a tenth.
    assert min(rotation_rates) == pytest.approx(t.lr_pose_rotation * 0.1)
    restored = Trainer(config, planned.views, points=points, extent=planned.extent,
                       iterations=None)
    restored.load_state_dict(trainer.state_dict())
    assert (restored.schedule_start, restored.iterations) == (10, 30)
    trainer.plan_end(100)  # a planned run keeps its schedule
    assert (trainer.schedule_start, trainer.iterations) == (10, 30)


def test_pixels_a_view_ignores_teach_the_model_nothing(tiny_scene):
    """A changed region left out of an old keyframe's loss (`TrainingView.ignore`): with every
    pixel ignored, and no depth or segments there, a step moves no Gaussian; with none
    ignored, it does."""
    config = small_config(clustering_every=0, regularization_every=0)
    apply_overrides(config, {"train": {"densify_from": 1000, "pose_refine": False,
                                       "exposure_compensation": False}})
    for ignore_all in (True, False):
        trainer = make_trainer(tiny_scene, config)
        for view in trainer.views:
            view.depth = view.segments = None
            if ignore_all:
                view.ignore = torch.ones(view.height, view.width, dtype=torch.bool)
        before = trainer.splats["means"].detach().clone()
        trainer.step()
        moved = (trainer.splats["means"].detach() - before).abs().max().item()
        assert (moved == 0.0) == ignore_all, moved
