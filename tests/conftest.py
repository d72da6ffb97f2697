"""Shared fixtures: one small synthetic scene per test session (real pybullet renders); and the
`ros` marker, put on every test that starts ROS 2 processes (so `scripts/test.sh --fast` can leave
them out)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """A 64x48 synthetic scene with 8 train and 3 test views, exact and inconsistent masks."""
    from cgc_core.data.synth import make_synthetic_scene
    out = tmp_path_factory.mktemp("tiny_scene")
    make_synthetic_scene(out, seed=0, width=64, height=48, n_train=8, n_test=3)
    return out


ROS_PROCESS_FIXTURES = {"ros_env"}
"""Fixtures every test that starts a ROS 2 process depends on (tests/ros/conftest.py builds the
processes' environment with `ros_env`; `ros_python`, `run_script`, `ros_process` and the node
fixtures all use it)."""


def pytest_collection_modifyitems(config, items):
    """Mark `ros` every test that starts ROS 2 processes, whichever file it lives in."""
    for item in items:
        if ROS_PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ros)
