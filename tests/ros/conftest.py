"""Fixtures for the ROS 2 tests: the environment of the built cgc_ros package, for subprocesses.

Every test here runs rclpy in separate processes, started with `ros_env`. Two reasons: the
generated extension modules need build/ros/install/lib on LD_LIBRARY_PATH *before* the process
starts (the loader reads it once), which the pytest process may not have; and each ROS process
gets the isolation settings below without touching the pytest process.

The package is built by scripts/build_ros.sh, which scripts/setup.sh runs; these tests do not
build it and fail (not skip) when it is missing.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INSTALL = ROOT / "build" / "ros" / "install"


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory) -> dict[str, str]:
    """os.environ plus scripts/ros_env.sh, a random ROS_DOMAIN_ID and localhost-only discovery.

    ros_env.sh is sourced in bash and its result read back, so that the shell and the tests
    share one definition of the environment.
    """
    if not (INSTALL / "share" / "cgc_ros" / "package.xml").is_file():
        pytest.fail(
            f"cgc_ros is not built ({INSTALL} missing): run scripts/setup.sh", pytrace=False
        )
    done = subprocess.run(
        ["bash", "-c", "source scripts/ros_env.sh >&2 && env -0"],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"sourcing scripts/ros_env.sh failed: {done.stderr.decode(errors='replace')}",
            pytrace=False,
        )
    env = dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    # A random domain per test run keeps concurrent runs on this machine (and other ROS graphs)
    # out of each other's way; 1..101 are the ids Fast DDS maps to valid ports on Linux.
    env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # rcl writes log files under ~/.ros/log by default; keep them with the test's temp files.
    env["ROS_LOG_DIR"] = str(tmp_path_factory.mktemp("ros_log"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def ros_python(ros_env) -> str:
    """The interpreter the package was built for (the venv's), to start ROS processes with."""
    python = Path(ros_env["VENV"]) / "bin" / "python"
    return str(python if python.exists() else sys.executable)


@pytest.fixture
def ros_namespace() -> str:
    """A unique namespace per test: even two runs that draw the same domain id cannot answer
    each other's service calls."""
    return f"/cgc_test_{uuid.uuid4().hex[:12]}"


def run_ros_script(
    python: str, env: dict[str, str], script: str, *args: str, timeout: float = 30.0
) -> dict:
    """Run tests/ros/<script> to completion and return the JSON object it prints last."""
    done = subprocess.run(
        [python, str(HERE / script), *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"{script} exited with {done.returncode}\n--- stdout\n{done.stdout}\n"
        f"--- stderr\n{done.stderr}"
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{script} printed no JSON\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return json.loads(lines[-1])


@pytest.fixture(scope="session")
def run_script(ros_python, ros_env):
    """run_script('x.py', *args, timeout=...) -> the JSON object x.py printed."""

    def run(script: str, *args: str, timeout: float = 30.0) -> dict:
        return run_ros_script(ros_python, ros_env, script, *args, timeout=timeout)

    return run


@pytest.fixture
def ros_process(ros_python, ros_env):
    """start(script_or_argv, *args, ready="READY", timeout=15.0) -> a running subprocess.Popen.

    Starts tests/ros/<script> (or any argv list) with the ROS environment and waits, bounded by
    `timeout`, until it prints the line `ready`. Every process started is stopped at teardown,
    whether the test passed or not: SIGINT first (rclpy shuts down cleanly on it), SIGKILL after
    5 s. Each gets its own process group, so the signals also reach anything it started.
    """
    started: list[subprocess.Popen] = []

    def start(script, *args: str, ready: str = "READY", timeout: float = 15.0) -> subprocess.Popen:
        argv = [ros_python, str(HERE / script)] if isinstance(script, str) else list(script)
        proc = subprocess.Popen(
            [*argv, *args],
            cwd=HERE,
            env=ros_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            readable, _, _ = select.select([proc.stdout], [], [], 0.2)
            if readable and proc.stdout.readline().strip() == ready:
                return proc
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=5)
        pytest.fail(
            f"{' '.join(argv)} did not print {ready!r} within {timeout} s "
            f"(exit code {proc.returncode}):\n{err}",
            pytrace=False,
        )

    yield start
    for proc in started:
        stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGINT the process group, SIGKILL it if still alive after 5 s; close the pipes."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def start_cgc_node(ros_python: str, ros_env: dict[str, str], namespace: str, *params: str,
                   timeout: float = 60.0) -> subprocess.Popen:
    """`python -m cgc_ros.node` in `namespace`, logging plain messages to stdout; returns once
    it logged that it is ready (fails the test if it does not)."""
    env = dict(ros_env, RCUTILS_LOGGING_USE_STDOUT="1", RCUTILS_CONSOLE_OUTPUT_FORMAT="{message}")
    args = [ros_python, "-m", "cgc_ros.node", "--ros-args", "-r", f"__ns:={namespace}"]
    for param in params:
        args += ["-p", param]
    proc = subprocess.Popen(args, cwd=HERE, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    lines = []
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            lines.append(proc.stdout.readline())
            if lines[-1].startswith("cgc ready"):
                return proc
    stop_process(proc)
    pytest.fail(f"the node did not start:\n{''.join(lines)}", pytrace=False)


@pytest.fixture
def cgc_nodes(ros_python, ros_env):
    """start(namespace, *params) -> a running cgc node (start_cgc_node), stopped at teardown
    (SIGINT, then SIGKILL) unless the test already ended it."""
    started: list[subprocess.Popen] = []

    def start(namespace: str, *params: str, timeout: float = 60.0) -> subprocess.Popen:
        started.append(start_cgc_node(ros_python, ros_env, namespace, *params, timeout=timeout))
        return started[-1]

    yield start
    for proc in started:
        stop_process(proc)
