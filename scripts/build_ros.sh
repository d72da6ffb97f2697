#!/usr/bin/env bash
# Build the ROS 2 package cgc_ros (custom interfaces + the node's Python modules) with colcon,
# from the ROS 2 wheels installed in the venv, into build/ros/{build,install,log}.
#
#   scripts/build_ros.sh           build if anything that goes into the package changed
#   scripts/build_ros.sh --force   build even if nothing changed
#
# VENV (default: .venv in the repository root) is the environment holding the ROS 2 wheels and
# colcon. Use the result with `source scripts/ros_env.sh`.
#
# A clean build takes 30-90 s on 2 cores, depending on load (C and C++ code for six interfaces);
# when nothing changed this script returns in well under a second without starting colcon.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
case "$VENV" in /*) ;; *) VENV=$ROOT/$VENV ;; esac
OUT=$ROOT/build/ros
STAMP=$OUT/.inputs-sha256
LOG=$OUT/build_ros.log

die() {
  printf '\033[1;31mbuild_ros.sh: error:\033[0m %s\n' "$*" >&2
  exit 1
}

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: scripts/build_ros.sh [--force])" ;;
esac

PY=$VENV/bin/python
[ -x "$PY" ] || die "no Python at $PY: run scripts/setup.sh (or set VENV to the environment)"
[ -x "$VENV/bin/colcon" ] || die "colcon is not installed in $VENV: run scripts/setup.sh"
[ -d "$VENV/share/rosidl_default_generators" ] \
  || die "the ROS 2 wheels (rosidl_default_generators, ...) are not installed in $VENV: run scripts/setup.sh"
command -v cmake >/dev/null || die "cmake not found: apt-get install cmake (scripts/setup.sh does)"
command -v c++ >/dev/null || die "no C++ compiler found: apt-get install g++ (scripts/setup.sh does)"
site_packages=$(echo "$VENV"/lib/python3.*/site-packages)
[ -d "$site_packages" ] || die "cannot find the venv's site-packages under $VENV/lib"

# Everything the installed package depends on. Hashing contents (not comparing mtimes) keeps
# the check right across git checkouts, which reset mtimes. The venv's interpreter and the
# numpy / ROS wheel versions are part of it because the generated extension modules are
# compiled against them: upgrading numpy or a ROS wheel must rebuild.
inputs_hash() {
  (
    cd "$ROOT"
    local inputs=() p
    for p in package.xml CMakeLists.txt msg srv cgc_ros launch config; do
      [ -e "$p" ] && inputs+=("$p")
    done
    find "${inputs[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
      | LC_ALL=C sort -z | xargs -0 -r sha256sum
    sha256sum "$ROOT/scripts/build_ros.sh"
    echo "$VENV"
    cat "$VENV/pyvenv.cfg"
    ls "$site_packages" | grep -E '^(numpy|ros_[A-Za-z0-9_]+)-[^-]+\.dist-info$' || true
  ) | sha256sum | cut -d' ' -f1
}

want=$(inputs_hash)
if [ "$force" -eq 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -f "$OUT/install/share/cgc_ros/package.xml" ]; then
  echo "cgc_ros is up to date in $OUT/install"
  exit 0
fi

# A CMake build folder is tied to the source path it was configured for: after the repository
# has moved, start over instead of failing on the stale cache.
cache=$OUT/build/cgc_ros/CMakeCache.txt
if [ -f "$cache" ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT" "$cache"; then
  echo "build/ros was configured for another checkout; rebuilding from clean"
  rm -rf "$OUT"
fi

mkdir -p "$OUT"
rm -f "$STAMP"  # a build that fails half-way must not look up to date next time

# colcon and CMake find the ROS packages through these two prefixes. They are set to the venv
# alone, on purpose: a sourced /opt/ros (or another workspace) would mix two ROS installs.
# PYTHONPATH is cleared for the same reason (rosidl's generators run with the venv's Python).
# COLCON_HOME keeps a user's ~/.colcon defaults and mixins out of this build.
export AMENT_PREFIX_PATH=$VENV
export CMAKE_PREFIX_PATH=$VENV
export PATH=$VENV/bin:$PATH
export COLCON_HOME=$OUT/colcon_home
unset PYTHONPATH COLCON_PREFIX_PATH
# colcon passes `-j<cores> -l<cores>` to make unless MAKEFLAGS says otherwise; the load limit
# serializes the build whenever anything else is running (1.5x slower on a busy 2-core box).
export MAKEFLAGS=${MAKEFLAGS:--j$(nproc)}

echo "building cgc_ros with colcon (30-90 s from clean, 2 cores; log: $LOG)"
start=$(date +%s)
# The install step copies the package's modules but never deletes one the sources no longer
# have (the player and main job moved to cgc_eval): drop the installed modules first, so the
# install holds exactly the current ones. The generated interfaces are left to colcon.
find "$OUT/install/lib" -maxdepth 5 -path '*/site-packages/cgc_ros/*' -name '*.py' \
  ! -path '*/cgc_ros/msg/*' ! -path '*/cgc_ros/srv/*' -delete 2>/dev/null || true
# --merge-install: one prefix (install/lib, install/share, ...) that ros_env.sh can add to the
# search paths directly. Python3_EXECUTABLE: compile the generated extensions for the venv's
# interpreter, not whatever python3 CMake would find first. BUILD_TESTING=OFF: the package's
# ament lint tests are not used (tests live in tests/ros and run under pytest).
if ! (
  cd "$ROOT"
  colcon --log-base "$OUT/log" build \
    --base-paths "$ROOT" \
    --packages-select cgc_ros \
    --build-base "$OUT/build" \
    --install-base "$OUT/install" \
    --merge-install \
    --event-handlers console_direct+ \
    --cmake-args \
      "-DPython3_EXECUTABLE=$PY" \
      -DBUILD_TESTING=OFF
) >"$LOG" 2>&1; then
  echo "---- last lines of $LOG ----" >&2
  tail -n 40 "$LOG" >&2
  die "colcon build of cgc_ros failed (full output: $LOG; per-step logs: $OUT/log/latest_build/cgc_ros/)"
fi

[ -f "$OUT/install/share/cgc_ros/package.xml" ] || die "colcon finished but $OUT/install lacks cgc_ros (see $LOG)"
echo "$want" > "$STAMP"
echo "built cgc_ros in $(( $(date +%s) - start )) s into $OUT/install (use: source scripts/ros_env.sh)"
