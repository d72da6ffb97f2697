"""One small synthetic scene for the data tests (real pybullet renders, written to disk once)."""

from pathlib import Path

import pytest

SYNTH_ARGS = dict(seed=3, width=128, height=96, n_train=12, n_test=4, n_objects=5)
"""Small enough to generate in well under a second, large enough for 100-pixel test masks."""


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    from cgc_core.data.synth import make_synthetic_scene

    return make_synthetic_scene(tmp_path_factory.mktemp("synth"), **SYNTH_ARGS)


@pytest.fixture(scope="session")
def synth_args() -> dict:
    """The arguments `synth_root` was generated with."""
    return dict(SYNTH_ARGS)
