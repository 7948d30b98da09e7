"""Linear (DLT) triangulation from two posed views, with cheirality, reprojection and parallax
checks so that only well-conditioned points enter the map."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Triangulated:
    """points_w: (N, 3) float64 world points; valid: (N,) bool (in front of both cameras,
    reprojection error below threshold, parallax above minimum, depth below maximum);
    parallax_deg: (N,) angle between the two viewing rays."""

    points_w: np.ndarray
    valid: np.ndarray
    parallax_deg: np.ndarray
    reproj_error_px: np.ndarray


def project(K: np.ndarray, T_cam_world: np.ndarray, points_w: np.ndarray):
    """(N, 2) pixels and (N,) depths (z in the camera frame) of world points."""
    pc = points_w @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = pc[:, 2]
    safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
    uv = (pc[:, :2] / safe[:, None]) @ K[:2, :2].T + K[:2, 2]
    return uv, z


def warp_points(H: np.ndarray, xy_px: np.ndarray) -> np.ndarray:
    """(N, 2) pixels mapped by the 3x3 homography H (homogeneous division, guarded at 0)."""
    p = np.concatenate([np.asarray(xy_px, np.float64), np.ones((len(xy_px), 1))], axis=1) @ H.T
    w = p[:, 2:3]
    return p[:, :2] / np.where(np.abs(w) < 1e-9, 1e-9, w)


def triangulate(
    K: np.ndarray,
    T_cam0_world: np.ndarray,
    T_cam1_world: np.ndarray,
    points0_px: np.ndarray,
    points1_px: np.ndarray,
    max_reproj_px: float = 4.0,
    min_parallax_deg: float = 0.5,
    max_depth: float = np.inf,
) -> Triangulated:
    """Triangulate (N, 2) correspondences seen from two camera poses (`T_cam_world`)."""
    n = len(points0_px)
    if n == 0:
        z = np.zeros(0)
        return Triangulated(np.zeros((0, 3)), np.zeros(0, bool), z, z)
    P0 = K @ T_cam0_world[:3, :]
    P1 = K @ T_cam1_world[:3, :]
    X = cv2.triangulatePoints(
        P0, P1, np.asarray(points0_px, np.float64).T, np.asarray(points1_px, np.float64).T
    )
    w = X[3]
    ok_w = np.abs(w) > 1e-12
    points_w = np.zeros((n, 3))
    points_w[ok_w] = (X[:3, ok_w] / w[ok_w]).T
    uv0, z0 = project(K, T_cam0_world, points_w)
    uv1, z1 = project(K, T_cam1_world, points_w)
    err = np.maximum(
        np.linalg.norm(uv0 - points0_px, axis=1), np.linalg.norm(uv1 - points1_px, axis=1)
    )
    c0 = -T_cam0_world[:3, :3].T @ T_cam0_world[:3, 3]
    c1 = -T_cam1_world[:3, :3].T @ T_cam1_world[:3, 3]
    r0 = points_w - c0
    r1 = points_w - c1
    cos = (r0 * r1).sum(1) / np.maximum(
        np.linalg.norm(r0, axis=1) * np.linalg.norm(r1, axis=1), 1e-12
    )
    parallax = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    valid = (
        ok_w
        & np.all(np.isfinite(points_w), axis=1)
        & (z0 > 0)
        & (z1 > 0)
        & (z0 < max_depth)
        & (z1 < max_depth)
        & (err < max_reproj_px)
        & (parallax >= min_parallax_deg)
    )
    return Triangulated(points_w, valid, parallax, err)


def triangulate_stereo(
    K: np.ndarray,
    baseline_m: float,
    left_px: np.ndarray,
    right_px: np.ndarray,
    min_disparity_px: float = 0.5,
    max_depth_m: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) in the left camera frame from rectified left/right pixels, and a valid mask
    (disparity above minimum, depth below maximum)."""
    disparity = left_px[:, 0] - right_px[:, 0]
    valid = disparity >= min_disparity_px
    z = np.where(valid, K[0, 0] * baseline_m / np.maximum(disparity, 1e-9), 0.0)
    valid &= z < max_depth_m
    x = (left_px[:, 0] - K[0, 2]) * z / K[0, 0]
    y = (left_px[:, 1] - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1), valid
