"""Launch v2v_pose_node (for ROS 2 installs with launch_ros; no absolute paths).

    ros2 launch v2v_ros hand_pose.launch.py depth_topic:=/camera/camera/depth/image_rect_raw \
        camera_info_topic:=/camera/camera/depth/camera_info namespace:=hand
    ros2 launch v2v_ros hand_pose.launch.py extra_params_file:=<share>/v2v_ros/config/two_hands.yaml  # two hands

Without ROS tools the same node runs as
    python -m v2v_ros.ros.node --ros-args --params-file config/hand_pose.yaml [--params-file config/two_hands.yaml]
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("v2v_ros")
    default_params = os.path.join(share, "config", "hand_pose.yaml")
    args = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/camera/depth/image_rect_raw",
                              description="sensor_msgs/Image depth topic (16UC1/mono16 mm or 32FC1 m); "
                                          "the default is realsense-ros >= 4.54's"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera/depth/camera_info",
                              description="sensor_msgs/CameraInfo of the depth image"),
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
        # Applied over params_file (later files win); the default applies params_file again, which changes
        # nothing. E.g. <share>/v2v_ros/config/two_hands.yaml: both hands, the 40³ model, int8.
        DeclareLaunchArgument("extra_params_file", default_value=default_params,
                              description="parameters applied over params_file, e.g. config/two_hands.yaml"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error"),
    ]
    node = LifecycleNode(
        package="v2v_ros",
        executable="v2v_pose_node",
        name="v2v_pose_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[LaunchConfiguration("params_file"), LaunchConfiguration("extra_params_file"),
                    {"use_sim_time": LaunchConfiguration("use_sim_time")}],
        remappings=[
            ("depth/image", LaunchConfiguration("depth_topic")),
            ("depth/camera_info", LaunchConfiguration("camera_info_topic")),
            ("depth/image/compressedDepth", [LaunchConfiguration("depth_topic"), "/compressedDepth"]),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    return LaunchDescription(args + [node])
