#!/usr/bin/env bash
# Start the cgc node from a clone: set up (idempotent, seconds when nothing changed), then run the
# node's entry point (cgc_ros.node:main, the same as colcon's `cgc_node`) with the venv's ROS 2.
#
#   scripts/node.sh                                   # defaults (config/cgc.yaml)
#   scripts/node.sh --ros-args -r image:=/cam/image_raw -r camera_info:=/cam/camera_info \
#       -p pose_source:=topic -r pose:=/cam/pose --params-file my.yaml
#
# Arguments go to the node as they are. The shipped config/cgc.yaml is loaded first, so a
# --params-file or -p given here overrides it. Set ROS_DOMAIN_ID as for any ROS 2 process.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh" >&2
# shellcheck source=/dev/null
source "$ROOT/scripts/ros_env.sh"
args=("$@")
has_ros_args=0
for a in "${args[@]}"; do [ "$a" = "--ros-args" ] && has_ros_args=1; done
defaults=(--params-file "$ROOT/config/cgc.yaml")
if [ "$has_ros_args" -eq 1 ]; then
  # Insert the defaults right after the first --ros-args, so later arguments win.
  out=()
  inserted=0
  for a in "${args[@]}"; do
    out+=("$a")
    if [ "$a" = "--ros-args" ] && [ "$inserted" -eq 0 ]; then out+=("${defaults[@]}"); inserted=1; fi
  done
  args=("${out[@]}")
else
  args+=(--ros-args "${defaults[@]}")
fi
exec "$VENV/bin/python" -m cgc_ros.node "${args[@]}"
