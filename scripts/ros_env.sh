# shellcheck shell=bash
# Source this to use the built cgc_ros package (scripts/build_ros.sh) with the venv's ROS 2:
#
#   source scripts/ros_env.sh
#   python -c "import cgc_ros.srv"          # with the venv's python (or activate the venv)
#
# It is the ROS equivalent of `source install/setup.bash` for this layout, written out because
# the venv is not a colcon workspace (no setup files of its own). Safe under `set -euo pipefail`
# and in interactive shells; sourcing it twice adds nothing twice. It does not set
# ROS_DOMAIN_ID: set it yourself to keep runs apart from other ROS graphs on the network
# (tests pick a random one per run, see tests/ros/conftest.py). ROS_AUTOMATIC_DISCOVERY_RANGE
# =LOCALHOST keeps discovery on this machine.

_cgc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$_cgc_root/.venv}
case "$VENV" in /*) ;; *) VENV=$_cgc_root/$VENV ;; esac
export VENV
export CGC_ROS_INSTALL=$_cgc_root/build/ros/install

if [ ! -f "$CGC_ROS_INSTALL/share/cgc_ros/package.xml" ]; then
  echo "ros_env.sh: cgc_ros is not built ($CGC_ROS_INSTALL missing): run scripts/setup.sh" >&2
  unset _cgc_root
  return 1 2>/dev/null || exit 1
fi

# Prepend $2 to the ':'-separated variable named $1 unless it is already there.
_cgc_prepend() {
  local current=${!1:-}
  case ":$current:" in
    *":$2:"*) ;;
    *) export "$1=$2${current:+:$current}" ;;
  esac
}

# ament_index: lets get_package_share_directory('cgc_ros') find share/ (config, launch) and
# the venv's ROS packages; our install first, so it overlays the venv.
_cgc_prepend AMENT_PREFIX_PATH "$VENV"
_cgc_prepend AMENT_PREFIX_PATH "$CGC_ROS_INSTALL"
# For building further packages on top of this one (find_package(cgc_ros)).
_cgc_prepend CMAKE_PREFIX_PATH "$VENV"
_cgc_prepend CMAKE_PREFIX_PATH "$CGC_ROS_INSTALL"

# The generated Python package cgc_ros (msg, srv and the node's modules).
for _cgc_sp in "$CGC_ROS_INSTALL"/lib/python3.*/site-packages; do
  _cgc_prepend PYTHONPATH "$_cgc_sp"
done

# The generated extension modules link libcgc_ros__rosidl_*.so without an RPATH, and rosidl
# finds typesupport libraries by searching LD_LIBRARY_PATH. The venv's Python re-executes
# itself once to add the wheels' own library folders (ros-wheels-bootstrapper); it keeps what
# is here, so only our install needs adding.
_cgc_prepend LD_LIBRARY_PATH "$CGC_ROS_INSTALL/lib"

# The only RMW the wheels ship; naming it skips rmw_implementation's search and makes a
# missing one an explicit error.
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}

# Fast DDS transport settings for camera frames (config/fastdds.xml, docs/node.md "Large images and Fast DDS"):
# with Fast DDS's defaults a sender reuses its 512 KiB shared-memory segment before a busy
# receiver has read it, and best-effort messages larger than that (an image with its depth) are
# lost. Every ROS process started from this shell, a camera driver's included, gets the larger
# buffers; a profile file of your own (set before sourcing) is kept.
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_cgc_root/config/fastdds.xml}

unset _cgc_root _cgc_sp
unset -f _cgc_prepend
