#!/usr/bin/env bash
# The README's main job: set up (idempotent), then the main job through the real ROS 2 node:
#   the built-in scene -> the cgc node (python -m cgc_ros.node with config/cgc.yaml, as the
#   launch file) <- a player process streaming it as ROS 2 messages -> every object by pixel and
#   by text -> the map saved -> OUT/report.html (default OUT: out/run).
#
#   scripts/run.sh [OUT] [--scene DIR | --bag DIR --image-topic T --camera-info-topic T
#                   --pose-topic T [--depth-topic T] [--segments-topic T]] [--rate FPS]
#                   [--iterations N] [--param NAME:=VALUE ...]     (all flags: --help)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/out/run
case "${1:-}" in
  -h|--help) OUT="" ;;
  -*|"") ;;                     # flags only: the default folder
  *) OUT=$1; shift ;;
esac
"$ROOT/scripts/setup.sh"
# shellcheck source=/dev/null
source "$ROOT/scripts/ros_env.sh"
cd "$ROOT"
if [ -z "$OUT" ]; then exec "$VENV/bin/python" -m cgc_eval.main_job --help; fi
exec "$VENV/bin/python" -m cgc_eval.main_job "$OUT" "$@"
