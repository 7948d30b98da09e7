"""Two-view relative pose: 5-point essential matrix with RANSAC (OpenCV), cheirality via
recoverPose, and a homography degeneracy check (planar scene or pure rotation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelativePose:
    """Motion from view 0 to view 1: `p_1 = R_1_0 @ p_0 + t_1_0`, with |t_1_0| = 1 (unknown scale).

    inliers: (N,) bool over the input correspondences (essential RANSAC and cheirality).
    homography_ratio: H-inliers / E-inliers; near or above 1 means the essential matrix is not
        well constrained (planar scene or too little parallax).
    median_flow_px: median pixel displacement of all correspondences.
    """

    R_1_0: np.ndarray
    t_1_0: np.ndarray
    inliers: np.ndarray
    num_inliers: int
    homography_ratio: float
    median_flow_px: float

    @property
    def T_1_0(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = self.R_1_0
        T[:3, 3] = self.t_1_0
        return T


def estimate_relative_pose(
    points0_px: np.ndarray,
    points1_px: np.ndarray,
    K: np.ndarray,
    threshold_px: float = 1.0,
    confidence: float = 0.999,
    check_homography: bool = True,
) -> RelativePose | None:
    """Relative pose from (N, 2) pixel correspondences, or None when fewer than 8 points or no
    model is found. Seed OpenCV's RNG (cv2.setRNGSeed) beforehand for reproducible results."""
    n = len(points0_px)
    if n < 8:
        return None
    p0 = np.ascontiguousarray(points0_px, dtype=np.float64).reshape(-1, 2)
    p1 = np.ascontiguousarray(points1_px, dtype=np.float64).reshape(-1, 2)
    flow = float(np.median(np.linalg.norm(p1 - p0, axis=1)))
    E, mask = cv2.findEssentialMat(
        p0, p1, K, method=cv2.RANSAC, prob=confidence, threshold=threshold_px, maxIters=2000
    )
    if E is None or mask is None:
        return None
    if E.shape != (3, 3):  # several solutions stacked; take the first
        E = E[:3, :3]
    mask = mask.ravel().astype(bool)
    if mask.sum() < 5:
        return None
    _, R, t, pose_mask = cv2.recoverPose(E, p0, p1, K, mask=mask.astype(np.uint8).copy())
    inliers = pose_mask.ravel() > 0
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))):
        return None
    h_ratio = 0.0
    if check_homography:
        H, h_mask = cv2.findHomography(p0, p1, cv2.RANSAC, threshold_px, confidence=0.99)
        if H is not None and h_mask is not None:
            h_ratio = float(h_mask.sum()) / max(float(mask.sum()), 1.0)
    t = t.ravel()
    return RelativePose(
        R_1_0=R,
        t_1_0=t / max(np.linalg.norm(t), 1e-12),
        inliers=inliers,
        num_inliers=int(inliers.sum()),
        homography_ratio=h_ratio,
        median_flow_px=flow,
    )
