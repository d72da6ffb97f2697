#!/usr/bin/env bash
# The README's test command: set up (idempotent), lint (ruff.toml), then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k render -x).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"
PY="${VENV:-$ROOT/.venv}/bin/python"
"$PY" -m ruff check .
# shellcheck source=/dev/null
source "$ROOT/scripts/ros_env.sh"
exec "$PY" -m pytest tests "$@"
