"""The VO node on a live camera: `ros2 launch tpr_vo vo.launch.py image:=/cam/image_rect
camera_info:=/cam/camera_info` (stereo: mode:=stereo right_image:=... right_camera_info:=...).

Runs in namespace /tpr_vo: odometry on /tpr_vo/odometry, path, diagnostics, reset service, and
TF odom -> base_link. Feed rectified images; camera_info supplies the intrinsics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    default_config = PathJoinSubstitution([FindPackageShare("tpr_vo"), "config", "kitti.yaml"])
    arguments = [
        DeclareLaunchArgument(
            "image", default_value="/camera/image_rect", description="rectified image topic"
        ),
        DeclareLaunchArgument(
            "camera_info",
            default_value="/camera/camera_info",
            description="camera_info topic of the image",
        ),
        DeclareLaunchArgument(
            "right_image",
            default_value="/camera/right/image_rect",
            description="right rectified image topic (stereo only)",
        ),
        DeclareLaunchArgument(
            "right_camera_info",
            default_value="/camera/right/camera_info",
            description="right camera_info topic (stereo only; P[0,3] = -fx*baseline)",
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
            "config",
            default_value=default_config,
            description="tpr_vo parameter file (ROS-params YAML)",
        ),
    ]
    vo_node = Node(
        package="tpr_vo",
        executable="vo_node",
        name="tpr_vo",
        namespace="tpr_vo",
        parameters=[
            LaunchConfiguration("config"),
            {
                "frontend.mode": LaunchConfiguration("mode"),
                "features.kind": LaunchConfiguration("features"),
                "features.backend": LaunchConfiguration("backend"),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
            ("right/image", LaunchConfiguration("right_image")),
            ("right/camera_info", LaunchConfiguration("right_camera_info")),
        ],
        output="screen",
    )
    return LaunchDescription([*arguments, vo_node])
