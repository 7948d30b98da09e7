"""Play a KITTI sequence into the VO node: `ros2 launch tpr_vo kitti.launch.py sequence:=DIR`.

Both nodes run in namespace /tpr_vo; `ros2 topic echo /tpr_vo/odometry` shows the result.
The player publishes camera/left/* (+ camera/right/* in stereo), remapped onto the node's inputs.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

REMAPPINGS = [
    ("image", "camera/left/image_rect"),
    ("camera_info", "camera/left/camera_info"),
    ("right/image", "camera/right/image_rect"),
    ("right/camera_info", "camera/right/camera_info"),
]


def generate_launch_description():
    sequence = LaunchConfiguration("sequence")
    mode = LaunchConfiguration("mode")
    default_config = PathJoinSubstitution([FindPackageShare("tpr_vo"), "config", "kitti.yaml"])
    arguments = [
        DeclareLaunchArgument(
            "sequence",
            description="KITTI folder: image_0/ (image_1/ for stereo), calib.txt, times.txt",
        ),
        DeclareLaunchArgument(
            "mode", default_value="mono", choices=["mono", "stereo"], description="VO mode"
        ),
        DeclareLaunchArgument(
            "features",
            default_value="tpr",
            choices=["tpr", "orb", "sift"],
            description="feature backend family (features.kind)",
        ),
        DeclareLaunchArgument(
            "backend",
            default_value="auto",
            choices=["auto", "tensorrt", "onnxruntime", "torch"],
            description="TPR inference backend (features.backend)",
        ),
        DeclareLaunchArgument(
            "rate",
            default_value="1.0",
            description="playback speed (x real time); 0 = as fast as the node keeps up",
        ),
        DeclareLaunchArgument(
            "config",
            default_value=default_config,
            description="tpr_vo parameter file (ROS-params YAML)",
        ),
    ]
    player = Node(
        package="tpr_vo",
        executable="kitti_player",
        name="kitti_player",
        namespace="tpr_vo",
        parameters=[
            {
                "sequence": sequence,
                "mode": mode,
                "rate": ParameterValue(LaunchConfiguration("rate"), value_type=float),
            }
        ],
        remappings=REMAPPINGS,
        output="screen",
    )
    vo_node = Node(
        package="tpr_vo",
        executable="vo_node",
        name="tpr_vo",
        namespace="tpr_vo",
        parameters=[
            LaunchConfiguration("config"),
            {
                "frontend.mode": mode,
                "features.kind": LaunchConfiguration("features"),
                "features.backend": LaunchConfiguration("backend"),
                # The player publishes reliably; a reliable subscription keeps stereo pairs of
                # large images that best-effort shared-memory transport would drop.
                "ros.image_qos": "reliable",
            },
        ],
        remappings=REMAPPINGS,
        output="screen",
    )
    return LaunchDescription([*arguments, vo_node, player])
