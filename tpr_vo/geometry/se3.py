"""Rigid transforms: (4, 4) float64 homogeneous matrices and so(3)/se(3) tangent vectors.

Conventions: `T_a_b` maps points from frame b into frame a (`p_a = T_a_b @ p_b`). A rotation
vector `rvec` is axis * angle in radians (the same as cv2.Rodrigues).
"""

from __future__ import annotations

import numpy as np


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(4, 4) float64 from a (3, 3) rotation and a (3,) translation."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform without a general matrix inverse."""
    R = T[:3, :3]
    return make_T(R.T, -R.T @ T[:3, 3])


def skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def so3_exp(rvec: np.ndarray) -> np.ndarray:
    """Rotation matrix from a rotation vector (Rodrigues), exact near zero."""
    rvec = np.asarray(rvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(rvec))
    W = skew(rvec)
    if theta < 1e-8:
        return np.eye(3) + W + 0.5 * W @ W
    return np.eye(3) + (np.sin(theta) / theta) * W + ((1.0 - np.cos(theta)) / theta**2) * W @ W


def so3_log(R: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) of a rotation matrix."""
    cos_theta = np.clip((np.trace(R) - 1.0) * 0.5, -1.0, 1.0)
    theta = float(np.arccos(cos_theta))
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if theta < 1e-8:
        return 0.5 * w
    if np.pi - theta < 1e-6:
        # Near 180 deg the antisymmetric part vanishes; take the axis from R + I.
        M = R + np.eye(3)
        axis = M[:, int(np.argmax(np.linalg.norm(M, axis=0)))]
        return theta * axis / np.linalg.norm(axis)
    return theta / (2.0 * np.sin(theta)) * w


def rotation_angle_rad(R: np.ndarray) -> np.ndarray:
    """Angle (radians) of (..., 3, 3) rotation matrices, the norm of their rotation vector as evo
    and scipy give it. The matrices are first projected onto SO(3), and the angle is
    atan2(sin, cos), which stays exact near zero. The textbook arccos((trace - 1) / 2) does not:
    a 1e-7 error in the trace, the size of a KITTI pose's rounding, moves the angle of a 0.02 deg
    rotation by up to 0.012 deg, or clips it to zero."""
    R = orthonormalize(R)
    cos = 0.5 * (np.trace(R, axis1=-2, axis2=-1) - 1.0)
    w = np.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]],
        axis=-1,
    )
    return np.arctan2(0.5 * np.linalg.norm(w, axis=-1), cos)


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a (3, 3) rotation matrix in degrees (`rotation_angle_rad`)."""
    return float(np.degrees(rotation_angle_rad(R)))


def angle_between_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two 3-vectors in degrees (0 if either is zero)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-12 or nb < 1e-12:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def transform_points(T_a_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """(N, 3) points in frame b -> (N, 3) in frame a."""
    return points_b @ T_a_b[:3, :3].T + T_a_b[:3, 3]


def pose_from_rt(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    return make_T(so3_exp(rvec), tvec)


def is_finite_pose(T: np.ndarray) -> bool:
    """Finite, and the rotation block orthonormal with det +1 (to 1e-6)."""
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    return bool(np.abs(R.T @ R - np.eye(3)).max() < 1e-6 and np.linalg.det(R) > 0)


def orthonormalize(R: np.ndarray) -> np.ndarray:
    """The rotation nearest in the Frobenius norm to each (..., 3, 3) matrix (SVD projection,
    determinant +1): stops round-off from accumulating over long chains, and undoes the rounding
    of pose files (KITTI's ground truth has 7 significant digits, so its rotations are
    orthonormal only to ~1e-7)."""
    U, _, Vt = np.linalg.svd(np.asarray(R, dtype=np.float64))
    D = np.ones(U.shape[:-1])
    D[..., -1] = np.sign(np.linalg.det(U @ Vt))
    return (U * D[..., None, :]) @ Vt
