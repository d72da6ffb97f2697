#!/usr/bin/env bash
# The README's test command: set up (idempotent), lint (ruff.toml), then run the whole test suite.
#   scripts/test.sh            everything (what CI runs: .ci/run)
#   scripts/test.sh --fast     the unit tests only: no ROS 2 process and nothing marked slow
#                              (pytest -m "not slow and not ros"; markers in pytest.ini)
# Other arguments go to pytest (e.g. scripts/test.sh -k render -x, scripts/test.sh --fast -x).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=()
fast=0
for a in "$@"; do
  if [ "$a" = "--fast" ]; then fast=1; else args+=("$a"); fi
done
if [ "$fast" -eq 1 ]; then args=(-m "not slow and not ros" "${args[@]}"); fi
"$ROOT/scripts/setup.sh"
cd "$ROOT"
PY="${VENV:-$ROOT/.venv}/bin/python"
"$PY" -m ruff check .
# shellcheck source=/dev/null
source "$ROOT/scripts/ros_env.sh"
exec "$PY" -m pytest tests "${args[@]}"
