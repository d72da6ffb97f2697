"""The node's parameters: its own (frames, queues, rates, paths) and the engine's (every setting of
cgc_core.config, under the same dotted names: `query.threshold`, `train.device`, ...).

One source of defaults: the node's own are listed with their descriptions and ranges in
`cgc_core.service.settings` (the map service reads them), the engine's are declared from
`CGCConfig()` with the field docstrings as descriptions; nothing here repeats a default. Every
value is checked once, at start; an invalid one stops the node with a message that names the
parameter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node

from cgc_core.service import (
    CGCConfig,
    NodeParameter,
    NodeSettings,
    apply_overrides,
    config_fields,
    describe_type,
    node_parameters,
    tf_available,
)


class ParameterError(ValueError):
    """An invalid parameter value; the message names the parameter."""


__all__ = ["ParameterError", "declare", "node_parameters", "tf_available"]


def _descriptor(p: NodeParameter) -> ParameterDescriptor:
    description = p.description
    if p.choices:
        description += f" One of: {', '.join(p.choices)}."
    descriptor = ParameterDescriptor(name=p.name, description=description)
    if p.range is not None:
        low, high = p.range
        if isinstance(p.default, int) and not isinstance(p.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low),
                                                                  to_value=float(high))]
    return descriptor


def _engine_descriptor(key: str, hint: Any, doc: str) -> ParameterDescriptor:
    # Dynamic typing: "auto"-or-int fields take both, and YAML's `2` for a float field is fine;
    # apply_overrides checks every value against the field's type and choices instead.
    return ParameterDescriptor(name=key, description=f"{doc} ({describe_type(hint)}; "
                               "cgc_core/config.py)", dynamic_typing=True)


def declare(node: Node) -> tuple[NodeSettings, CGCConfig]:
    """Declare every parameter on `node` and read them back, checked.

    Raises ParameterError naming the parameter for a value out of range or of the wrong type.
    """
    values = {}
    for p in node_parameters():
        try:
            values[p.name] = node.declare_parameter(p.name, p.default, _descriptor(p)).value
        except ParameterException as err:  # wrong type or out of range, from a params file
            raise ParameterError(f"parameter '{p.name}': {err}") from None
        value = values[p.name]
        if type(value) is not type(p.default) and not (isinstance(p.default, float)
                                                       and type(value) is int):
            raise ParameterError(f"parameter '{p.name}' wants {type(p.default).__name__}, got "
                                 f"{value!r}")
        if p.range is not None and not p.range[0] <= value <= p.range[1]:
            raise ParameterError(f"parameter '{p.name}' must lie in [{p.range[0]}, "
                                 f"{p.range[1]}], got {value!r}")
        if p.choices is not None and value not in p.choices:
            raise ParameterError(f"parameter '{p.name}' must be one of {', '.join(p.choices)}, "
                                 f"got {value!r}")
    if values["pose_source"] == "tf" and not tf_available():
        raise ParameterError("parameter 'pose_source' is 'tf' but tf2_ros is not importable "
                             "(it is not on PyPI): install ROS 2's tf2_ros or use 'topic'")
    if not values["map_frame"]:
        raise ParameterError("parameter 'map_frame' must not be empty")
    if not values["map_directory"]:
        raise ParameterError("parameter 'map_directory' must not be empty")
    name = values["autosave_name"]
    if not name or "/" in name or name in (".", "..") or len(name) > 256:
        raise ParameterError("parameter 'autosave_name' must be a plain folder name (no '/', "
                             f"not '.' or '..'), got {name!r}")
    values["map_directory"] = Path(os.path.expanduser(values["map_directory"])).resolve()
    for name in ("sync_slop", "sync_wait", "camera_info_reuse", "tf_timeout", "publish_rate",
                 "cluster_period", "service_timeout", "max_stamp_skew", "autosave_period"):
        values[name] = float(values[name])
    settings = NodeSettings(**values)

    config = CGCConfig()
    for key, default, hint, doc in config_fields(config):
        value = node.declare_parameter(key, default, _engine_descriptor(key, hint, doc)).value
        if value == default and type(value) is type(default):
            continue
        section, _, name = key.rpartition(".")
        overrides: dict[str, Any] = {name: value}
        for part in reversed(section.split(".")):
            overrides = {part: overrides}
        try:
            apply_overrides(config, overrides)
        except ValueError as err:
            raise ParameterError(f"parameter '{key}': {err}") from None
    return settings, config
