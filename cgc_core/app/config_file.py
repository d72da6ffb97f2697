"""Configuration files: `cgc --config FILE`, the benches and the tests read the engine's
settings from a YAML file of CGCConfig's sections, or from a ROS 2 parameters file such as the
node's `config/cgc.yaml` (its engine sections). The format of files is the application's
business; cgc_core.config holds the settings themselves.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from cgc_core.config import CGCConfig, apply_overrides


def load_config(path: str | Path | None = None) -> CGCConfig:
    """Defaults, overridden by a YAML file when given."""
    config = CGCConfig()
    if path is not None:
        apply_overrides(config, read_overrides(Path(path)))
    return config


def read_overrides(path: Path) -> dict[str, Any]:
    """The engine overrides in a YAML file of CGCConfig's sections or in a ROS 2 parameters
    file (its engine sections); FileNotFoundError / ValueError naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    if is_ros_parameters_file(data):
        data = engine_overrides_of_ros_parameters(data, path)
    return data


ROS_PARAMETERS = "ros__parameters"


def is_ros_parameters_file(data: dict) -> bool:
    """True for a ROS 2 parameters file: `<node name or /**>: {ros__parameters: {...}}`."""
    return bool(data) and all(isinstance(v, dict) and ROS_PARAMETERS in v for v in data.values())


def engine_overrides_of_ros_parameters(data: dict, source: str | Path = "") -> dict[str, Any]:
    """The engine's sections of a ROS 2 parameters file (the node's `config/cgc.yaml`).

    The node reads the engine's keys as parameters named after this config (`query.threshold`,
    nested in YAML as `query: {threshold: ...}`) beside its own keys (`map_frame`, ...). Here only
    the mappings named after a section of CGCConfig are taken, from every node entry in file
    order; the node's own keys are the node's business and are left alone. A mapping that names no
    section is refused, so that a misspelt section does not pass silently.
    """
    sections = {f.name for f in dataclasses.fields(CGCConfig)}
    merged: dict[str, Any] = {}
    for node, entry in data.items():
        for key, value in (entry[ROS_PARAMETERS] or {}).items():
            if isinstance(value, dict):
                if key not in sections:
                    raise ValueError(f"{source}: '{node}.{ROS_PARAMETERS}.{key}' is not a config "
                                     f"section (sections: {', '.join(sorted(sections))})")
                merged.setdefault(key, {}).update(value)
    return merged
