"""Camera-optical poses to REP-103/105 body-frame odometry (numpy only; no ROS import).

The VO core reports `T_world_cam`: the camera optical frame (z forward, x right, y down) in the
optical frame of the first camera. ROS wants `T_odom_base`: base_link (x forward, y left, z up)
in odom, with odom = base_link at the first frame. With the extrinsic `T_base_cam`:

    T_odom_base = T_base_cam · T_world_cam · T_base_cam⁻¹

Covariances use right (body-frame) perturbations ξ = (ρ, φ) of SE(3), ρ in m, φ in rad:
T ≈ T̂ · exp(ξ). The per-frame motion covariance of the core (camera frame) is moved into the
body frame with the adjoint of T_base_cam, accumulated along the path, and reported for the pose
in odom axes (ROS convention: x, y, z, rot x, rot y, rot z about the odom axes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from tpr_vo.config import CameraConfig

UNKNOWN_VARIANCE = 1e3  # reported where nothing is known (first frame's twist)


def T_base_cam_from_config(camera: CameraConfig) -> np.ndarray:
    """(4, 4) float64 pose of the camera optical frame in base_link, from config.camera."""
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(camera.base_to_camera_quat_xyzw).as_matrix()
    T[:3, 3] = camera.base_to_camera_xyz_m
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a (4, 4) rigid transform."""
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def T_odom_base_from_cam(T_world_cam: np.ndarray, T_base_cam: np.ndarray) -> np.ndarray:
    """Body pose in odom for a camera pose in the first camera's optical frame."""
    return T_base_cam @ T_world_cam @ invert(T_base_cam)


def skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def adjoint(T: np.ndarray) -> np.ndarray:
    """(6, 6) adjoint of T for ξ = (ρ, φ): T exp(ξ) T⁻¹ = exp(Ad_T ξ)."""
    R, t = T[:3, :3], T[:3, 3]
    Ad = np.zeros((6, 6))
    Ad[:3, :3] = R
    Ad[:3, 3:] = skew(t) @ R
    Ad[3:, 3:] = R
    return Ad


def rotate_covariance(R: np.ndarray, cov_6x6: np.ndarray) -> np.ndarray:
    """Covariance of (ρ, φ) expressed in axes rotated by R: blockdiag(R, R) Σ blockdiag(R, R)ᵀ."""
    G = np.zeros((6, 6))
    G[:3, :3] = R
    G[3:, 3:] = R
    return G @ cov_6x6 @ G.T


@dataclass(frozen=True)
class BodyOdometry:
    """One odometry sample in REP-105 frames.

    T_odom_base: (4, 4) float64 body pose in odom.
    pose_covariance_6x6: (x, y, z, rx, ry, rz) about the odom axes, m² and rad².
    linear_mps, angular_radps: (3,) twist of base_link in base_link axes.
    twist_covariance_6x6: covariance of (linear, angular) in base_link axes.
    """

    stamp_s: float
    T_odom_base: np.ndarray
    pose_covariance_6x6: np.ndarray
    linear_mps: np.ndarray
    angular_radps: np.ndarray
    twist_covariance_6x6: np.ndarray


class BodyOdometryTracker:
    """Turns the stream of camera poses into body odometry: pose, accumulated covariance, twist."""

    def __init__(self, T_base_cam: np.ndarray):
        self.T_base_cam = np.asarray(T_base_cam, dtype=np.float64)
        self._Ad_base_cam = adjoint(self.T_base_cam)
        self.reset()

    def reset(self) -> None:
        self._previous: BodyOdometry | None = None
        self._cov_body = np.zeros((6, 6))  # right-perturbation covariance of T_odom_base

    def update(self, T_world_cam: np.ndarray, motion_cov_cam_6x6: np.ndarray, stamp_s: float):
        """Add one frame: its camera pose and the covariance of its motion since the previous
        frame (camera frame, right perturbation of the increment). Returns a BodyOdometry."""
        T = T_odom_base_from_cam(np.asarray(T_world_cam, dtype=np.float64), self.T_base_cam)
        previous = self._previous
        if previous is None:
            # The first pose defines odom: its covariance is zero by construction.
            self._cov_body = np.zeros((6, 6))
            linear, angular = np.zeros(3), np.zeros(3)
            twist_cov = np.eye(6) * UNKNOWN_VARIANCE
        else:
            delta = invert(previous.T_odom_base) @ T  # motion in the previous body frame
            motion_cov = self._Ad_base_cam @ np.asarray(motion_cov_cam_6x6) @ self._Ad_base_cam.T
            Ad_inv = adjoint(invert(delta))
            self._cov_body = Ad_inv @ self._cov_body @ Ad_inv.T + motion_cov
            dt = stamp_s - previous.stamp_s
            if dt > 0:
                R_delta = delta[:3, :3]
                linear = R_delta.T @ delta[:3, 3] / dt  # origin velocity in the current body
                angular = Rotation.from_matrix(R_delta).as_rotvec() / dt
                twist_cov = motion_cov / (dt * dt)
            else:
                linear, angular = np.zeros(3), np.zeros(3)
                twist_cov = np.eye(6) * UNKNOWN_VARIANCE
        self._cov_body = 0.5 * (self._cov_body + self._cov_body.T)
        sample = BodyOdometry(
            stamp_s=float(stamp_s),
            T_odom_base=T,
            pose_covariance_6x6=rotate_covariance(T[:3, :3], self._cov_body),
            linear_mps=linear,
            angular_radps=angular,
            twist_covariance_6x6=twist_cov,
        )
        self._previous = sample
        return sample
