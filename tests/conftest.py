"""Shared fixtures: one small synthetic scene per test session (real pybullet renders)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """A 64x48 synthetic scene with 8 train and 3 test views, exact and inconsistent masks."""
    from cgc_core.data.synth import make_synthetic_scene
    out = tmp_path_factory.mktemp("tiny_scene")
    make_synthetic_scene(out, seed=0, width=64, height=48, n_train=8, n_test=3)
    return out
