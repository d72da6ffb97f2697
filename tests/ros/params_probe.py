"""Declare the node's parameters on a real rclpy node named `cgc` and print what was read.

Usage: params_probe.py [--ros-args ...]  -> one JSON line: the settings and engine overrides
read, every parameter's description and range, or {"error": ...} for a refused value.
"""

import json
import sys

import rclpy

from cgc_ros.params import ParameterError, declare


def main() -> int:
    rclpy.init(args=sys.argv)
    node = rclpy.create_node("cgc")
    try:
        settings, config = declare(node)
    except ParameterError as err:
        print(json.dumps({"error": str(err)}))
        return 0
    names = sorted(node._parameters)  # everything declared (incl. use_sim_time)
    described = {}
    for name, d in zip(names, node.describe_parameters(names)):
        described[name] = {
            "description": d.description, "dynamic": d.dynamic_typing,
            "int_range": [[r.from_value, r.to_value] for r in d.integer_range],
            "float_range": [[r.from_value, r.to_value] for r in d.floating_point_range]}
    print(json.dumps({
        "settings": {k: str(v) if not isinstance(v, (bool, int, float)) else v
                     for k, v in vars(settings).items()},
        "threshold": config.query.threshold, "device": config.train.device,
        "iterations": config.train.iterations, "segmenter": config.segmenter.kind,
        "clustering_weight": config.loss.clustering_weight, "described": described}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
