"""Start the cgc node (and optionally RViz) on a camera's topics.

    ros2 launch cgc_ros cgc.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info depth:=/camera/aligned_depth_to_color/image_raw \
        params_file:=/path/to/my_cgc.yaml rviz:=true

Every input topic of the node is a launch argument (remapped from the node's relative names);
`params_file` defaults to the installed config/cgc.yaml, `rviz_config` to config/cgc.rviz.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

# (node's relative input name, default topic, what it is)
INPUTS = [
    ("image", "/camera/color/image_raw", "sensor_msgs/Image: rgb8, bgr8 or mono8"),
    ("camera_info", "/camera/color/camera_info", "sensor_msgs/CameraInfo of the image"),
    ("depth", "/camera/aligned_depth_to_color/image_raw",
     "optional sensor_msgs/Image aligned with the image: 32FC1 metres or 16UC1 millimetres"),
    ("pose", "/camera/pose",
     "geometry_msgs/PoseStamped of the optical frame in map_frame (pose_source: topic)"),
    ("segments", "/camera/segments",
     "optional segment ids of the image, mono16 or 32SC1 (external_segments: true)"),
]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("cgc_ros")
    arguments = [
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "cgc.yaml"]),
                              description="ROS 2 parameters file of the node"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its topics"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="also start RViz with rviz_config"),
        DeclareLaunchArgument("rviz_config",
                              default_value=PathJoinSubstitution([share, "config", "cgc.rviz"]),
                              description="RViz configuration"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=topic, description=what)
                  for name, topic, what in INPUTS]
    node = Node(
        package="cgc_ros",
        executable="cgc_node",
        name="cgc",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file")],
        remappings=[(name, LaunchConfiguration(name)) for name, _, _ in INPUTS],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, node, rviz])
