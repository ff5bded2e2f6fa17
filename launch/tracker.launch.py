"""Launch the CKD tracker node (managed; autostart by default), optionally with RViz showing its debug image.

    ros2 launch ckd_ros tracker.launch.py namespace:=drone1 rgb_topic:=/drone1/camera/color/image_raw \
        thermal_topic:=/drone1/thermal/image_raw device:=cuda:0

Works on Humble, Jazzy and Kilted. Large images between processes on one machine (Fast DDS): export
FASTDDS_DEFAULT_PROFILES_FILE=<ckd_ros python package>/ros/fastdds_large_images.xml (Humble and Jazzy:
FASTRTPS_DEFAULT_PROFILES_FILE instead, the only name their Fast DDS 2 reads; Kilted's warns it is deprecated)
in every process of the image path, camera driver included, before launching; Fast DDS's default 512 KiB
shared-memory segment silently loses most best-effort 1080p frames (see that file and the README).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("namespace", "", "namespace of the node and its relative topics (one tracker per robot / camera pair)"),
    ("node_name", "ckd_tracker", "node name"),
    ("rgb_topic", "rgb/image", "RGB image topic (sensor_msgs/Image)"),
    ("thermal_topic", "thermal/image", "thermal image topic, registered to the RGB image or with a homography"),
    ("camera_info_topic", "rgb/camera_info", "RGB camera_info (target bearing)"),
    ("params_file", "", "YAML parameter file (default: the package's config/tracker.yaml)"),
    ("checkpoint", "", "CKD checkpoint; empty = the embedded default model"),
    ("device", "auto", "auto | cpu | cuda | cuda:N"),
    ("autostart", "true", "configure and activate without a lifecycle manager"),
    ("use_sim_time", "false", "use /clock (bag replay, simulation)"),
    ("rviz", "false", "start RViz with the debug image"),
    ("log_level", "info", "node log level"),
)


def _params_file(context):
    given = LaunchConfiguration("params_file").perform(context)
    if given:
        return given
    import os

    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory("ckd_ros"), "config", "tracker.yaml")


def _launch_setup(context, *args, **kwargs):
    overrides = {
        "checkpoint": LaunchConfiguration("checkpoint").perform(context),
        "device": LaunchConfiguration("device").perform(context),
        "autostart": LaunchConfiguration("autostart").perform(context).lower() in ("1", "true", "yes"),
        "use_sim_time": LaunchConfiguration("use_sim_time").perform(context).lower() in ("1", "true", "yes"),
    }
    tracker = LifecycleNode(
        package="ckd_ros",
        executable="tracker_node",
        name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"),
        parameters=[_params_file(context), overrides],
        remappings=[
            ("rgb/image", LaunchConfiguration("rgb_topic")),
            ("thermal/image", LaunchConfiguration("thermal_topic")),
            ("rgb/camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([FindPackageShare("ckd_ros"), "config", "tracker.rviz"])],
        parameters=[{"use_sim_time": overrides["use_sim_time"]}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="log",
    )
    return [tracker, rviz]


def generate_launch_description():
    from launch.actions import OpaqueFunction
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in ARGUMENTS]
    return LaunchDescription(declared + [OpaqueFunction(function=_launch_setup)])
