"""The config is the one source of defaults: overrides are checked key by key."""

import dataclasses
import typing

import pytest

from cgc_core.app.config_file import load_config
from cgc_core.config import CGCConfig, apply_overrides, without_retired


def test_every_field_has_a_docstring():
    """Each field is followed by a string literal in the source (nerfstudio style)."""
    import ast
    import inspect

    import cgc_core.config as module

    tree = ast.parse(inspect.getsource(module))
    undocumented = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for i, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign):
                after = body[i + 1] if i + 1 < len(body) else None
                documented = (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                              and isinstance(after.value.value, str))
                if not documented:
                    undocumented.append(f"{node.name}.{stmt.target.id}")
    assert undocumented == []


def test_overrides_set_nested_fields_and_promote_ints_to_floats():
    config = apply_overrides(CGCConfig(), {"loss": {"clustering_weight": 1, "near_k": 4},
                                           "train": {"iterations": 300, "device": "cpu"}})
    assert config.loss.clustering_weight == 1.0 and isinstance(config.loss.clustering_weight, float)
    assert config.loss.near_k == 4
    assert config.train.iterations == 300 and config.train.device == "cpu"


def test_auto_is_the_one_spelling_of_chosen_for_you():
    config = CGCConfig()
    assert config.train.iterations == "auto" and config.train.max_resolution == "auto"
    assert config.render.backend == "auto" and config.segmenter.kind == "auto"
    apply_overrides(config, {"train": {"max_resolution": 0}})
    assert config.train.max_resolution == 0
    apply_overrides(config, {"train": {"max_resolution": "auto"}})
    assert config.train.max_resolution == "auto"
    with pytest.raises(ValueError, match=r"train.iterations' wants int or one of 'auto'"):
        apply_overrides(config, {"train": {"iterations": "many"}})


@pytest.mark.parametrize("overrides, message", [
    ({"loss": {"no_such_key": 1}}, r"unknown config key 'loss.no_such_key'"),
    ({"nonsense": {}}, r"unknown config key 'nonsense'"),
    ({"loss": 3}, r"config key 'loss' is a section, got 3"),
    ({"loss": {"near_k": 2.5}}, r"'loss.near_k' wants int, got 2.5"),
    ({"loss": {"near_k": True}}, r"'loss.near_k' wants int, got True"),
    ({"loss": {"use_similarity": 1}}, r"'loss.use_similarity' wants bool, got 1"),
    ({"loss": {"ssim_lambda": "0.2"}}, r"'loss.ssim_lambda' wants float, got '0.2'"),
    ({"render": {"backend": "cuda"}}, r"'render.backend' wants one of 'auto', 'gsplat', 'cpu', "
                                      r"'reference', got 'cuda'"),
    ({"segmenter": {"kind": "SAM"}}, r"'segmenter.kind' wants one of 'auto', 'sam'"),
    ({"segmenter": {"sam_model_type": "vit_x"}}, r"'segmenter.sam_model_type' wants one of"),
    ({"objects": {"min_density": 2.5}}, r"'objects.min_density' is no longer used: .*"
                                        r"objects.min_density_share"),
])
def test_override_errors_name_the_key(overrides, message):
    config = CGCConfig()
    with pytest.raises(ValueError, match=message):
        apply_overrides(config, overrides)


def test_stored_configs_of_older_versions_drop_retired_keys():
    # run.json / session files written before objects.min_density turned relative hold 2.5,
    # which today's share would read as "2.5 x the dense-surface density": no objects at all.
    stored = {"objects": {"min_density": 2.5, "voxel_size": 0.04}, "loss": {"near_k": 3}}
    config = apply_overrides(CGCConfig(), without_retired(stored))
    assert config.objects.min_density_share == CGCConfig().objects.min_density_share
    assert config.objects.voxel_size == 0.04 and config.loss.near_k == 3
    assert stored["objects"]["min_density"] == 2.5  # the caller's dict is left alone


def test_a_rejected_value_leaves_the_field_unchanged():
    config = CGCConfig()
    with pytest.raises(ValueError):
        apply_overrides(config, {"render": {"backend": "vulkan"}})
    assert config.render.backend == "auto"


def test_yaml_files_are_checked_too(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("loss:\n  clustering_every: 5\nquery:\n  threshold: 0.7\n")
    config = load_config(good)
    assert config.loss.clustering_every == 5 and config.query.threshold == 0.7
    bad = tmp_path / "bad.yaml"
    bad.write_text("render:\n  backend: opengl\n")
    with pytest.raises(ValueError, match="render.backend"):
        load_config(bad)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_every_default_is_a_valid_value_of_its_own_type():
    """The defaults pass the same check as overrides (a Literal default outside its choices, or an
    int default in a float field, would be caught here)."""
    config = CGCConfig()
    for section in dataclasses.fields(config):
        values = dataclasses.asdict(getattr(config, section.name))
        apply_overrides(CGCConfig(), {section.name: values})
    hints = typing.get_type_hints(type(config.loss))
    assert hints["use_dissimilarity"] is bool


def test_the_example_yaml_is_valid():
    from pathlib import Path

    load_config(Path(__file__).resolve().parents[2] / "config" / "cgc.yaml")


def test_a_ros_parameters_file_gives_its_engine_sections(tmp_path):
    """`cgc --config` reads the node's parameters file: the engine's sections, from every node
    entry, while the node's own keys (map_frame, ...) are left to the node."""
    ros = tmp_path / "ros.yaml"
    ros.write_text("/**:\n  ros__parameters:\n    map_frame: world\n    queue_length: 3\n"
                   "    query:\n      threshold: 0.6\n    loss:\n      clustering_every: 7\n"
                   "cgc:\n  ros__parameters:\n    query:\n      spatial_filter: true\n")
    config = load_config(ros)
    assert config.query.threshold == 0.6 and config.query.spatial_filter is True
    assert config.loss.clustering_every == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    quary:\n      threshold: 0.6\n")
    with pytest.raises(ValueError, match="quary"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("/**:\n  ros__parameters:\n    query:\n      threshold: high\n")
    with pytest.raises(ValueError, match="query.threshold"):
        load_config(wrong)


def test_every_setting_has_a_docstring():
    """The docstrings are read from the source (the node's parameter descriptions)."""
    from cgc_core.config import config_fields

    fields = config_fields(CGCConfig())
    keys = [key for key, *_ in fields]
    assert "query.threshold" in keys and "train.device" in keys
    assert len(keys) == len(set(keys))
    missing = [key for key, _, _, doc in fields if not doc]
    assert not missing, f"settings without a docstring: {missing}"
    threshold = next(f for f in fields if f[0] == "query.threshold")
    assert threshold[1] == 0.6 and threshold[2] is float and "Eq. 6" in threshold[3]
