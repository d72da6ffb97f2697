"""cgc_ros: the ROS 2 side of cgc (interfaces in cgc_ros.msg / cgc_ros.srv, the node later).

This folder is installed by CMakeLists.txt into the Python package that rosidl generates for
the ROS package, beside the generated `msg` and `srv` subpackages. Keep this file free of
imports: it is imported before anything else in the package, including by processes that only
want the message types.
"""

from pkgutil import extend_path

# When this source folder is found first on sys.path (`python -m ...` from the repository root
# puts the root there), it would hide the installed copy that holds the generated `msg`, `srv`
# and typesupport extension modules. Extending __path__ with every `cgc_ros` folder on sys.path
# lets those submodules resolve from the install while our own modules still load from here.
__path__ = extend_path(__path__, __name__)
