#!/usr/bin/env bash
# The README's test command: set up (idempotent), then run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k render -x).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
cd "$ROOT"
# shellcheck source=/dev/null
source "$ROOT/scripts/ros_env.sh"
exec "${VENV:-$ROOT/.venv}/bin/python" -m pytest tests "$@"
