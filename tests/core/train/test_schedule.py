from cgc_core.config import CGCConfig, apply_overrides
from cgc_core.train.schedule import scaled_schedule


def test_paper_schedule_is_kept_at_30k_and_scaled_for_short_runs():
    config = CGCConfig()
    same = scaled_schedule(config, 30_000)
    assert same.loss.clustering_every == 50 and same.loss.regularization_every == 100
    assert same.train.densify_until == 15_000
    short = scaled_schedule(config, 3000)
    # 600 contrastive and 300 regularizer steps, as in the paper's 30k-iteration run
    assert short.loss.clustering_every == 5 and short.loss.regularization_every == 10
    assert (short.train.densify_from, short.train.densify_until, short.train.densify_every) == (
        50,
        1500,
        100,
    )
    assert short.train.opacity_reset_every == 300
    assert config.loss.clustering_every == 50  # the input is not modified


def test_no_scaling_when_disabled_and_intervals_stay_positive():
    config = apply_overrides(CGCConfig(), {"train": {"scale_schedule": False}})
    assert scaled_schedule(config, 100).loss.clustering_every == 50
    tiny = scaled_schedule(CGCConfig(), 10)
    assert tiny.loss.clustering_every == 1 and tiny.train.densify_from == 1
    off = apply_overrides(CGCConfig(), {"loss": {"regularization_every": 0}})
    assert scaled_schedule(off, 3000).loss.regularization_every == 0


def test_captures_train_at_the_capture_resolution_on_a_cpu_only():
    import torch

    from cgc_core.train.schedule import planned_resolution, with_scene_resolution

    config = apply_overrides(CGCConfig(), {"train": {"cpu_capture_resolution": 320}})
    cpu, t = torch.device("cpu"), config.train
    assert planned_resolution(config, cpu) == t.cpu_max_resolution  # the node: no scene
    assert planned_resolution(config, cpu, 320) == t.cpu_max_resolution  # built-in scenes
    assert planned_resolution(config, cpu, 1920) == t.cpu_capture_resolution  # a phone's photos
    assert planned_resolution(config, torch.device("cuda"), 1920) == 0
    fixed = apply_overrides(CGCConfig(), {"train": {"max_resolution": 200}})
    assert planned_resolution(fixed, cpu, 1920) == 200
    assert with_scene_resolution(config, cpu, 1920).train.max_resolution == \
        t.cpu_capture_resolution and config.train.max_resolution == "auto"
