"""ROS 2 messages <-> tpr_vo types: Image <-> numpy, CameraInfo <-> CameraIntrinsics, body
odometry -> Odometry / TransformStamped / PoseStamped. Decoding is validated here (size, encoding)
so the node can log and skip a bad message; cv_bridge decodes when it imports, else numpy."""

from __future__ import annotations

import logging

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped, TransformStamped
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from tpr_vo.msg_decode import (
    camera_info_matrices,
    decode_image,
    encode_image,
    intrinsics_from_camera_info,
    to_gray_u8,
)
from tpr_vo.ros.body_frame import BodyOdometry
from tpr_vo.types import CameraIntrinsics

log = logging.getLogger(__name__)

try:  # a real ROS install; the PyPI cv-bridge is broken, so no fallback install is attempted
    from cv_bridge import CvBridge

    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:
    _BRIDGE = None


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    total_ns = int(round(seconds * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def stamp_key(stamp: Time) -> tuple[int, int]:
    """Exact, hashable stamp (for stereo pairing and duplicate detection)."""
    return (int(stamp.sec), int(stamp.nanosec))


def image_msg_to_numpy(msg: Image) -> np.ndarray:
    """(H, W) or (H, W, 3) array in the message's encoding; DataError on a bad message."""
    image = decode_image(
        msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian)
    )
    if _BRIDGE is not None:
        return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    return image


def image_msg_to_gray(msg: Image) -> np.ndarray:
    """(H, W) uint8 grayscale, the VO input; DataError on a bad message."""
    return to_gray_u8(image_msg_to_numpy(msg), msg.encoding)


def numpy_to_image_msg(
    image: np.ndarray, stamp: Time, frame_id: str, encoding: str | None = None
) -> Image:
    encoding, height, width, step, data = encode_image(image, encoding)
    msg = Image(encoding=encoding, height=height, width=width, step=step, is_bigendian=0)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = data
    return msg


def camera_info_to_intrinsics(
    msg: CameraInfo, right_msg: CameraInfo | None = None
) -> CameraIntrinsics:
    """Intrinsics of the rectified image (P, else K); the baseline from the right camera's P."""
    return intrinsics_from_camera_info(
        np.asarray(msg.k),
        np.asarray(msg.p),
        msg.width,
        msg.height,
        None if right_msg is None else np.asarray(right_msg.p),
    )


def intrinsics_to_camera_info(
    intrinsics: CameraIntrinsics, stamp: Time, frame_id: str, right: bool = False
) -> CameraInfo:
    """CameraInfo of a rectified, undistorted camera (plumb_bob with zero distortion)."""
    K, P = camera_info_matrices(intrinsics, right=right)
    msg = CameraInfo(width=intrinsics.width_px, height=intrinsics.height_px)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = K.ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    msg.p = P.ravel().tolist()
    return msg


def matrix_to_pose(T: np.ndarray) -> Pose:
    pose = Pose()
    x, y, z = (float(v) for v in T[:3, 3])
    qx, qy, qz, qw = (float(v) for v in Rotation.from_matrix(T[:3, :3]).as_quat())
    pose.position.x, pose.position.y, pose.position.z = x, y, z
    pose.orientation.x, pose.orientation.y = qx, qy
    pose.orientation.z, pose.orientation.w = qz, qw
    return pose


def pose_to_matrix(pose: Pose) -> np.ndarray:
    T = np.eye(4)
    q = pose.orientation
    T[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


def odometry_msg(sample: BodyOdometry, odom_frame: str, base_frame: str) -> Odometry:
    msg = Odometry()
    msg.header.stamp = seconds_to_stamp(sample.stamp_s)
    msg.header.frame_id = odom_frame
    msg.child_frame_id = base_frame
    msg.pose.pose = matrix_to_pose(sample.T_odom_base)
    msg.pose.covariance = np.asarray(sample.pose_covariance_6x6, dtype=np.float64).ravel()
    twist = msg.twist.twist
    twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in sample.linear_mps)
    twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in sample.angular_radps)
    msg.twist.covariance = np.asarray(sample.twist_covariance_6x6, dtype=np.float64).ravel()
    return msg


def transform_msg(sample: BodyOdometry, odom_frame: str, base_frame: str) -> TransformStamped:
    msg = TransformStamped()
    msg.header.stamp = seconds_to_stamp(sample.stamp_s)
    msg.header.frame_id = odom_frame
    msg.child_frame_id = base_frame
    pose = matrix_to_pose(sample.T_odom_base)
    msg.transform.translation.x = pose.position.x
    msg.transform.translation.y = pose.position.y
    msg.transform.translation.z = pose.position.z
    msg.transform.rotation = pose.orientation
    return msg


def pose_stamped_msg(sample: BodyOdometry, odom_frame: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = seconds_to_stamp(sample.stamp_s)
    msg.header.frame_id = odom_frame
    msg.pose = matrix_to_pose(sample.T_odom_base)
    return msg


def points_msg(points_xyz_m: np.ndarray, frame_id: str, stamp_s: float) -> PointCloud2:
    """sensor_msgs/PointCloud2 of (N, 3) points: one row, float32 fields x, y, z (12-byte
    little-endian points), dense. Rows with a non-finite coordinate are left out."""
    points = np.asarray(points_xyz_m, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_msg: expected (N, 3) points, got shape {points.shape}")
    points = points[np.isfinite(points).all(axis=1)]
    msg = PointCloud2()
    msg.header.stamp = seconds_to_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = 1, len(points)
    msg.fields = [
        PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
        for i, name in enumerate("xyz")
    ]
    msg.is_bigendian = False
    msg.point_step = 12
    msg.row_step = 12 * len(points)
    msg.data = points.astype("<f4").tobytes()
    msg.is_dense = True
    return msg
