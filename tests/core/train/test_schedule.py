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
