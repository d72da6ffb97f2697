"""launch/cgc.launch.py and config/cgc.rviz, as far as this machine can check them.

`ros2 launch` cannot run here: the `launch` and `launch_ros` packages are not on PyPI. So the
launch file is read as Python source (it must compile, and use only launch's public API), and
what it names is checked against what the build installs and what the node really subscribes
to and publishes. The installed `cgc_node` executable is run for real.
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from cgc_ros.node import INPUT_TOPICS, OUTPUT_TOPICS
from cgc_ros.params import node_parameters

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "cgc.launch.py"
INSTALL = ROOT / "build" / "ros" / "install"
SHARE = INSTALL / "share" / "cgc_ros"
LAUNCH_MODULES = {"launch", "launch.actions", "launch.conditions", "launch.substitutions",
                  "launch_ros.actions", "launch_ros.substitutions"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    source = LAUNCH.read_text()
    compile(source, str(LAUNCH), "exec")
    return ast.parse(source)


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name) and n.func.id == name]


def keywords(call: ast.Call) -> dict[str, ast.AST]:
    return {k.arg: k.value for k in call.keywords}


def constant(node: ast.AST):
    return node.value if isinstance(node, ast.Constant) else None


def test_uses_only_the_launch_api_and_defines_the_entry_point(tree):
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    plain = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
    assert imported <= LAUNCH_MODULES and not plain, imported
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in functions


def test_starts_the_installed_cgc_node_with_the_params_file(tree):
    nodes = {constant(keywords(c)["package"]): keywords(c) for c in calls(tree, "Node")}
    assert set(nodes) == {"cgc_ros", "rviz2"}
    cgc = nodes["cgc_ros"]
    executable = constant(cgc["executable"])
    assert constant(cgc["name"]) == "cgc"
    installed = INSTALL / "lib" / "cgc_ros" / executable
    assert installed.is_file() and os.access(installed, os.X_OK), installed
    interpreter = installed.read_text().splitlines()[0].removeprefix("#!")
    assert Path(interpreter).is_file(), interpreter
    # The params file argument reaches the node.
    parameters = cgc["parameters"]
    assert isinstance(parameters, ast.List)
    assert ast.unparse(parameters.elts[0]) == "LaunchConfiguration('params_file')"
    assert "rviz" in ast.unparse(keywords(calls(tree, "Node")[1])["condition"])


def test_every_file_it_references_is_installed(tree):
    referenced = []
    for call in calls(tree, "PathJoinSubstitution"):
        parts = [constant(e) for e in call.args[0].elts[1:]]
        referenced.append(Path(*parts))
    assert Path("config/cgc.yaml") in referenced and Path("config/cgc.rviz") in referenced
    for path in referenced:
        assert (SHARE / path).is_file(), f"{path} is not installed in {SHARE}"
        assert (SHARE / path).read_bytes() == (ROOT / path).read_bytes(), f"{path} is stale"
    assert (SHARE / "launch" / LAUNCH.name).read_bytes() == LAUNCH.read_bytes()


def test_remaps_every_input_of_the_node_and_declares_every_argument(tree):
    inputs = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                  and ast.unparse(n.targets[0]) == "INPUTS")
    names = [entry[0] for entry in ast.literal_eval(inputs)]
    assert tuple(names) == INPUT_TOPICS
    declared = {constant(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")
                if constant(c.args[0])} | set(names)  # INPUTS are declared in a comprehension
    used = {constant(c.args[0]) for c in calls(tree, "LaunchConfiguration")
            if constant(c.args[0])}
    assert used <= declared, used - declared
    assert {"params_file", "rviz", "rviz_config", "namespace"} <= declared
    remappings = ast.unparse(keywords(calls(tree, "Node")[0])["remappings"])
    assert "LaunchConfiguration(name)" in remappings and "INPUTS" in remappings


def test_rviz_shows_the_node_outputs_in_the_map_frame():
    config = yaml.safe_load((ROOT / "config" / "cgc.rviz").read_text())
    manager = config["Visualization Manager"]
    default_frame = next(p.default for p in node_parameters() if p.name == "map_frame")
    assert manager["Global Options"]["Fixed Frame"] == default_frame
    displays = {d["Name"]: d for d in manager["Displays"]}
    published = {"/cgc/" + name.removeprefix("~/") for name in OUTPUT_TOPICS}
    shown = {d["Topic"]["Value"] for d in displays.values() if "Topic" in d}
    assert {"/cgc/segmentation/color", "/cgc/clusters", "/cgc/objects/markers",
            "/cgc/object"} <= shown
    assert shown - {"/camera/color/image_raw"} <= published
    for name in ("Clusters", "Objects", "Extracted object"):  # the node latches these
        assert displays[name]["Topic"]["Durability Policy"] == "Transient Local"
        assert displays[name]["Topic"]["Reliability Policy"] == "Reliable"
    assert displays["Clusters"]["Color Transformer"] == "RGB8"  # the packed `rgb` field


def test_the_installed_executable_runs_the_node(ros_env):
    executable = INSTALL / "lib" / "cgc_ros" / "cgc_node"
    done = subprocess.run([str(executable), "--ros-args", "-p", "publish_rate:=0.0"],
                          env=ros_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "parameter 'publish_rate'" in done.stderr
