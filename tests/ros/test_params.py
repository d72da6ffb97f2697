"""The node's parameters, declared on a real rclpy node in its own process."""

from pathlib import Path

import pytest

from cgc_core.config import CGCConfig, config_fields

ROOT = Path(__file__).resolve().parents[2]


def test_every_parameter_is_described_and_numbers_have_ranges(run_script):
    report = run_script("params_probe.py")
    described = report["described"]
    engine_keys = [key for key, *_ in config_fields(CGCConfig())]
    for key in engine_keys:  # every engine setting is a parameter, documented from its docstring
        assert key in described, key
        assert described[key]["description"].endswith("; cgc_core/config.py)"), key
    assert "Eq. 6" in described["query.threshold"]["description"]
    for name in ("map_frame", "pose_source", "external_segments", "sync_slop", "queue_length",
                 "publish_rate", "map_directory", "service_timeout", "tf_timeout"):
        assert len(described[name]["description"]) > 30, name
    assert described["queue_length"]["int_range"] == [[1, 64]]
    assert described["sync_slop"]["float_range"] == [[0.0, 5.0]]
    # Engine defaults come from CGCConfig, not from a second copy.
    assert report["threshold"] == CGCConfig().query.threshold
    assert report["settings"]["pose_source"] == "topic"  # tf2_ros is not importable here
    assert report["settings"]["map_directory"] == str(Path("~/.ros/cgc_maps").expanduser())


def test_the_shipped_params_file_and_overrides_are_applied(run_script, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    map_frame: world\n    queue_length: 5\n"
                      "    query:\n      threshold: 0.6\n    train:\n      iterations: 300\n"
                      "    loss:\n      clustering_weight: 1\n")
    report = run_script("params_probe.py", "--ros-args", "--params-file",
                        str(ROOT / "config" / "cgc.yaml"), "--params-file", str(params),
                        "-p", "segmenter.kind:=felzenszwalb")
    assert "error" not in report, report
    assert report["settings"]["map_frame"] == "world"
    assert report["settings"]["queue_length"] == 5
    assert report["threshold"] == 0.6 and report["iterations"] == 300
    assert report["clustering_weight"] == 1.0  # YAML's int for a float field
    assert report["segmenter"] == "felzenszwalb"


@pytest.mark.parametrize("override, named", [
    ("queue_length:=0", "queue_length"),
    ("sync_slop:=-1.0", "sync_slop"),
    ("pose_source:=gps", "pose_source"),
    ("pose_source:=tf", "pose_source"),  # tf2_ros missing: refused with a reason
    ("map_frame:=''", "map_frame"),
    ("query.threshold:=high", "query.threshold"),
    ("render.backend:=vulkan", "render.backend"),
    ("train.iterations:=2.5", "train.iterations"),
    ("queue_length:=two", "queue_length"),
])
def test_invalid_values_are_refused_naming_the_parameter(run_script, override, named):
    report = run_script("params_probe.py", "--ros-args", "-p", override)
    assert "error" in report, report
    assert f"'{named}'" in report["error"]
