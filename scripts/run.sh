#!/usr/bin/env bash
# The README's "run it" command: set up (idempotent), then the main job on the built-in default:
# a synthetic scene with SAM-like inconsistent masks -> training -> evaluation on held-out views
# -> pictures, all in out/demo (or the folder given as first argument).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
OUT=${1:-$ROOT/out/demo}
exec "${VENV:-$ROOT/.venv}/bin/cgc" demo "$OUT" "${@:2}"
