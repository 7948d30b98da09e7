"""Message conversions with known answers: image encodings, CameraInfo, REP-103 frames,
covariance propagation, exact-stamp stereo pairing. Pure functions; real ROS message classes."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("CI", "").lower() != "true":  # CI installs it: fail, never skip
    pytest.importorskip("rclpy")

from scipy.spatial.transform import Rotation  # noqa: E402

from tpr_vo.config import VoConfig  # noqa: E402
from tpr_vo.errors import DataError  # noqa: E402
from tpr_vo.ros.body_frame import (  # noqa: E402
    BodyOdometryTracker,
    T_base_cam_from_config,
    T_odom_base_from_cam,
    adjoint,
    invert,
)
from tpr_vo.ros.conversions import (  # noqa: E402
    camera_info_to_intrinsics,
    image_msg_to_gray,
    image_msg_to_numpy,
    intrinsics_to_camera_info,
    numpy_to_image_msg,
    odometry_msg,
    pose_to_matrix,
    seconds_to_stamp,
    stamp_to_seconds,
    transform_msg,
)
from tpr_vo.ros.stereo_sync import ExactStampSync  # noqa: E402
from tpr_vo.types import CameraIntrinsics  # noqa: E402

RNG = np.random.default_rng(3)


def _pose(rotvec, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


# -- images -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("mono8", RNG.integers(0, 256, (5, 7), dtype=np.uint8)),
        ("mono16", RNG.integers(0, 65536, (5, 7), dtype=np.uint16)),
        ("bgr8", RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)),
        ("rgb8", RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)),
    ],
)
def test_image_round_trip_each_encoding(encoding, pixels):
    msg = numpy_to_image_msg(pixels, seconds_to_stamp(1.5), "cam", encoding)
    assert (msg.encoding, msg.height, msg.width) == (encoding, 5, 7)
    assert msg.step == 7 * pixels.itemsize * (3 if pixels.ndim == 3 else 1)
    np.testing.assert_array_equal(image_msg_to_numpy(msg), pixels)
    gray = image_msg_to_gray(msg)
    assert gray.shape == (5, 7) and gray.dtype == np.uint8


def test_gray_conversion_values():
    px = np.zeros((1, 2, 3), np.uint8)
    px[0, 0] = (255, 0, 0)  # first channel only
    as_bgr = image_msg_to_gray(numpy_to_image_msg(px, seconds_to_stamp(0), "c", "bgr8"))
    as_rgb = image_msg_to_gray(numpy_to_image_msg(px, seconds_to_stamp(0), "c", "rgb8"))
    assert as_bgr[0, 0] == 29  # blue weight 0.114
    assert as_rgb[0, 0] == 76  # red weight 0.299
    mono16 = np.array([[0, 65535, 257 * 100]], np.uint16)
    gray16 = image_msg_to_gray(numpy_to_image_msg(mono16, seconds_to_stamp(0), "c"))
    np.testing.assert_array_equal(gray16, [[0, 255, 100]])


def test_row_padding_and_big_endian():
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    msg = numpy_to_image_msg(pixels, seconds_to_stamp(0), "c")
    padded = np.zeros((3, 10), np.uint8)  # step 10 B > 8 B of pixels per row
    padded[:, :8] = pixels.astype(">u2").view(np.uint8).reshape(3, 8)
    msg.step, msg.is_bigendian, msg.data = 10, 1, padded.tobytes()
    np.testing.assert_array_equal(image_msg_to_numpy(msg), pixels)


def test_bad_images_raise_data_error():
    msg = numpy_to_image_msg(np.zeros((4, 6), np.uint8), seconds_to_stamp(0), "c")
    msg.encoding = "yuv422"
    with pytest.raises(DataError, match="'yuv422' is not supported"):
        image_msg_to_gray(msg)
    msg = numpy_to_image_msg(np.zeros((4, 6), np.uint8), seconds_to_stamp(0), "c")
    msg.width = 7  # width*height no longer matches the data
    with pytest.raises(DataError, match="smaller than width"):
        image_msg_to_gray(msg)
    msg.width, msg.height = 6, 5
    with pytest.raises(DataError, match="has 24 B, expected step\\*height = 6\\*5 = 30 B"):
        image_msg_to_gray(msg)
    msg.data = b""
    with pytest.raises(DataError, match="empty"):
        image_msg_to_gray(msg)


def test_stamp_round_trip():
    stamp = seconds_to_stamp(1_700_000_000.1036)
    assert stamp.sec == 1_700_000_000 and abs(stamp.nanosec - 103_600_000) < 300
    assert stamp_to_seconds(seconds_to_stamp(0.3109)) == pytest.approx(0.3109, abs=1e-9)


# -- camera info --------------------------------------------------------------------------------


def test_camera_info_round_trip_with_baseline():
    intr = CameraIntrinsics(718.856, 718.856, 607.1928, 185.2157, 1241, 376, 0.5372)
    left = intrinsics_to_camera_info(intr, seconds_to_stamp(0), "l")
    right = intrinsics_to_camera_info(intr, seconds_to_stamp(0), "r", right=True)
    assert right.p[3] == pytest.approx(-718.856 * 0.5372)
    assert camera_info_to_intrinsics(left, right) == intr
    mono = camera_info_to_intrinsics(left)
    assert mono.baseline_m is None and mono.K[0, 2] == 607.1928


def test_camera_info_prefers_p_and_rejects_unset():
    intr = CameraIntrinsics(500.0, 501.0, 320.0, 240.0, 640, 480)
    info = intrinsics_to_camera_info(intr, seconds_to_stamp(0), "c")
    info.k = [400.0, 0.0, 300.0, 0.0, 400.0, 200.0, 0.0, 0.0, 1.0]  # unrectified K differs
    assert camera_info_to_intrinsics(info).fx == 500.0
    info.p = [0.0] * 12
    assert camera_info_to_intrinsics(info).fx == 400.0  # P unset: fall back to K
    info.k = [0.0] * 9
    with pytest.raises(DataError, match="neither P nor K"):
        camera_info_to_intrinsics(info)


# -- frames (REP-103) ---------------------------------------------------------------------------


def test_default_extrinsic_maps_optical_axes_to_body_axes():
    T_bc = T_base_cam_from_config(VoConfig().camera)
    R = T_bc[:3, :3]
    np.testing.assert_allclose(R @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # optical z = forward = x
    np.testing.assert_allclose(R @ [1, 0, 0], [0, -1, 0], atol=1e-12)  # right = -y (y is left)
    np.testing.assert_allclose(R @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # down = -z
    np.testing.assert_allclose(T_bc[:3, 3], [0, 0, 1.65])


def test_camera_moving_forward_and_turning_left_is_body_x_and_positive_yaw():
    T_bc = T_base_cam_from_config(VoConfig().camera)
    # Camera 2 m along its optical axis, yawing left: about optical -y (y points down).
    T_wc = _pose([0.0, -0.2, 0.0], [0.0, 0.0, 2.0])
    T_ob = T_odom_base_from_cam(T_wc, T_bc)
    np.testing.assert_allclose(T_ob[:3, 3], [2.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(Rotation.from_matrix(T_ob[:3, :3]).as_rotvec(), [0, 0, 0.2])
    np.testing.assert_allclose(T_odom_base_from_cam(np.eye(4), T_bc), np.eye(4), atol=1e-12)


def test_adjoint_identity():
    T = _pose([0.3, -0.1, 0.2], [1.0, 2.0, -0.5])
    xi = np.array([0.01, -0.02, 0.03, 0.002, 0.001, -0.003])
    from scipy.linalg import expm

    def hat(x):
        M = np.zeros((4, 4))
        M[:3, :3] = [[0, -x[5], x[4]], [x[5], 0, -x[3]], [-x[4], x[3], 0]]
        M[:3, 3] = x[:3]
        return M

    np.testing.assert_allclose(T @ expm(hat(xi)) @ invert(T), expm(hat(adjoint(T) @ xi)))


def test_tracker_twist_and_covariance_grow_along_the_path():
    T_bc = T_base_cam_from_config(VoConfig().camera)
    tracker = BodyOdometryTracker(T_bc)
    step_cov = np.diag([1e-4, 1e-4, 4e-4, 1e-6, 1e-6, 1e-6])  # camera frame: z is forward
    first = tracker.update(np.eye(4), step_cov, 10.0)
    assert np.all(first.pose_covariance_6x6 == 0)
    np.testing.assert_allclose(first.linear_mps, 0)
    T_wc = np.eye(4)
    samples = []
    for k in range(1, 4):
        T_wc = T_wc @ _pose([0, 0, 0], [0, 0, 1.0])  # 1 m forward per 0.1 s
        samples.append(tracker.update(T_wc, step_cov, 10.0 + 0.1 * k))
    last = samples[-1]
    np.testing.assert_allclose(last.T_odom_base[:3, 3], [3.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(last.linear_mps, [10.0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(last.angular_radps, 0, atol=1e-12)
    # Forward (camera z) variance lands on body x; straight motion: variances add (3 steps),
    # plus the camera's pitch variance through its 1.65 m lever arm above base_link.
    assert last.pose_covariance_6x6[0, 0] == pytest.approx(3 * (4e-4 + 1.65**2 * 1e-6))
    assert last.twist_covariance_6x6[0, 0] == pytest.approx((4e-4 + 1.65**2 * 1e-6) / 0.01)
    # Rotation uncertainty accumulates into lateral (y) position through the lever arm.
    assert last.pose_covariance_6x6[1, 1] > 3 * 1e-4
    np.testing.assert_allclose(last.pose_covariance_6x6, last.pose_covariance_6x6.T)
    assert np.all(np.linalg.eigvalsh(last.pose_covariance_6x6) > 0)
    tracker.reset()
    assert np.all(tracker.update(T_wc, step_cov, 11.0).pose_covariance_6x6 == 0)


def test_odometry_and_tf_messages_carry_the_sample():
    tracker = BodyOdometryTracker(T_base_cam_from_config(VoConfig().camera))
    tracker.update(np.eye(4), np.eye(6), 1.0)
    T_wc = _pose([0.0, -0.1, 0.0], [0.2, 0.0, 1.5])
    sample = tracker.update(T_wc, np.eye(6) * 1e-4, 1.1)
    odom = odometry_msg(sample, "odom", "base_link")
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    assert stamp_to_seconds(odom.header.stamp) == pytest.approx(1.1)
    np.testing.assert_allclose(pose_to_matrix(odom.pose.pose), sample.T_odom_base, atol=1e-12)
    np.testing.assert_allclose(
        np.reshape(odom.pose.covariance, (6, 6)), sample.pose_covariance_6x6
    )
    assert odom.twist.twist.linear.x == pytest.approx(sample.linear_mps[0])
    tf = transform_msg(sample, "odom", "base_link")
    assert tf.transform.translation.x == pytest.approx(sample.T_odom_base[0, 3])
    assert tf.transform.rotation.w == odom.pose.pose.orientation.w


# -- stereo pairing -------------------------------------------------------------------------------


def test_exact_stamp_sync_pairs_only_equal_stamps():
    sync = ExactStampSync(max_pending=3)
    assert sync.add("left", (1, 0), "L1") is None
    assert sync.add("right", (0, 999_999_999), "R1x") is None  # 1 ns off: no pair
    assert sync.add("right", (1, 0), "R1") == ("L1", "R1")
    assert sync.unmatched == 1  # R1x is older than the pair: can never match
    assert sync.add("right", (2, 0), "R2") is None
    assert sync.add("left", (2, 0), "L2") == ("L2", "R2")
    assert sync.add("left", (2, 0), "L2again") is None  # duplicate of the last pair
    for k in range(3, 8):  # left only: bounded
        sync.add("left", (k, 0), f"L{k}")
    assert sync.unmatched == 2 + 2
    assert sync.add("right", (7, 0), "R7") == ("L7", "R7")
    assert sync.add("left", (0, 5), "L0") is None  # time went back: starts over
    assert sync.add("right", (0, 5), "R0") == ("L0", "R0")


def test_points_msg_layout_and_values():
    from tpr_vo.ros.conversions import points_msg, stamp_to_seconds

    points = np.array([[1.0, -2.0, 3.5], [np.nan, 0.0, 0.0], [0.25, 1e3, -7.0]])
    msg = points_msg(points, "odom", 12.5)
    assert msg.header.frame_id == "odom" and stamp_to_seconds(msg.header.stamp) == 12.5
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1),
        ("y", 4, 7, 1),
        ("z", 8, 7, 1),
    ]  # 7 = PointField.FLOAT32
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 12, 24)
    assert msg.is_dense and not msg.is_bigendian
    decoded = np.frombuffer(bytes(msg.data), "<f4").reshape(-1, 3)
    np.testing.assert_array_equal(decoded, points[[0, 2]].astype(np.float32))  # NaN row left out
    empty = points_msg(np.zeros((0, 3)), "odom", 0.0)
    assert empty.width == 0 and len(empty.data) == 0
    with pytest.raises(ValueError, match=r"expected \(N, 3\) points, got shape \(4,\)"):
        points_msg(np.zeros(4), "odom", 0.0)
