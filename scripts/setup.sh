#!/usr/bin/env bash
# Set up everything cgc needs on a fresh Debian 12 machine, idempotently:
#   Debian libraries -> venv -> pinned Python packages -> native CPU rasterizer -> ROS 2 package.
# Each step is skipped when its inputs have not changed since it last succeeded, so a second run
# takes seconds. scripts/run.sh, scripts/test.sh and scripts/node.sh call this first.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON_BIN=${PYTHON_BIN:-python3}
export VENV
cd "$ROOT"

step() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
# A step's stamp holds the hash of its inputs; the step re-runs only when the hash changes.
inputs_hash() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
is_done() { [ -f "$VENV/.stamp-$1" ] && [ "$(cat "$VENV/.stamp-$1")" = "$2" ]; }
mark_done() { echo "$2" > "$VENV/.stamp-$1"; }

# 1. Debian libraries: open3d needs libusb at import time; cmake/g++ build the ROS interfaces
#    and the C++ rasterizer; chromium is the real browser the report's test opens report.html in
#    (driven by the playwright package; its own browser download is never used).
apt_packages=(libusb-1.0-0 cmake g++ git chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. The virtual environment.
# A fresh environment takes about 9 GB (torch with its CUDA libraries, open3d, the ROS 2 wheels):
# say so up front rather than let pip fail half-way with "No space left on device".
if [ ! -f "$VENV/.stamp-deps" ]; then
  mkdir -p "$(dirname "$VENV")"
  free_gb=$(df -Pk "$(dirname "$VENV")" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
  if [ "${free_gb:-0}" -lt 10 ]; then
    printf '\033[1;33m[setup] warning:\033[0m only %s GB free for %s; a fresh environment needs about 9 GB\n' \
      "$free_gb" "$VENV" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment in $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel "setuptools<80"
fi
PY="$VENV/bin/python"

# 3. Pinned Python packages (requirements.lock pins every transitive version).
h=$(inputs_hash requirements.txt requirements-ros.txt requirements.lock)
if ! is_done deps "$h"; then
  step "installing Python packages (first time: a few minutes; torch is large)"
  "$PY" -m pip install -q -r requirements.txt -c requirements.lock
  mark_done deps "$h"
fi

# 4. cgc_core and the `cgc` command, with the C++ rasterizer compiled against the venv's torch
#    (no build isolation: an isolated build would fetch a second copy of torch). The stamp also
#    records CGC_PORTABLE_BUILD (setup.py's switch off -march=native), so that switching it
#    rebuilds; unset, empty and "0" all mean the native build, as in setup.py.
portable=1; [ "${CGC_PORTABLE_BUILD:-0}" = 0 ] && portable=0
h="$(inputs_hash setup.py cgc_core/render/csrc/*) portable=$portable"
if ! is_done core "$h" || ! ls cgc_core/render/_raster_cpu*.so >/dev/null 2>&1; then
  step "building cgc_core (C++ CPU rasterizer, about a minute)"
  "$PY" -m pip install -q --no-build-isolation --no-deps -e .
  mark_done core "$h"
fi

# 5. The ROS 2 package (interfaces + node modules) with colcon.
step "building the ROS 2 package"
"$ROOT/scripts/build_ros.sh"

# 6. Transport for camera frames (docs/node.md, "Large images and Fast DDS"). Fast DDS's buffers come from
#    config/fastdds.xml, which scripts/ros_env.sh hands every ROS process; the kernel caps socket
#    buffers at net.core.rmem_max / wmem_max, which matter for frames from another machine (UDP).
#    Raised here when this runs as root; otherwise the command to run is printed.
want=33554432
for key in net.core.rmem_max net.core.wmem_max; do
  current=$(sysctl -n "$key" 2>/dev/null || echo 0)
  if [ "$current" -lt "$want" ]; then
    if [ "$(id -u)" -eq 0 ] && sysctl -q -w "$key=$want" >/dev/null 2>&1; then
      step "raised $key from $current to $want bytes (large camera frames over UDP)"
    else
      step "note: $key is $current bytes; for large frames from another machine run:" \
        "sudo sysctl -w $key=$want"
    fi
  fi
done

step "ready: $VENV"
