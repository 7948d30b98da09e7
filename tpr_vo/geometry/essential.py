"""Two-view relative pose: 5-point essential matrix with robust estimation (OpenCV USAC),
recoverPose, and a homography degeneracy check (planar scene or pure rotation)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

NUM_HYPOTHESES = 3  # essential-matrix hypotheses scored by MSAC (see estimate_relative_pose)


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


def sampson_sq_px(E: np.ndarray, K: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """(N,) squared Sampson distance in pixels^2 of correspondences under essential E."""
    K_inv = np.linalg.inv(K)
    F = K_inv.T @ E @ K_inv
    x0 = np.c_[p0, np.ones(len(p0))]
    x1 = np.c_[p1, np.ones(len(p1))]
    Fx0 = x0 @ F.T
    Ftx1 = x1 @ F
    num = (x1 * Fx0).sum(1) ** 2
    den = Fx0[:, 0] ** 2 + Fx0[:, 1] ** 2 + Ftx1[:, 0] ** 2 + Ftx1[:, 1] ** 2
    return num / np.maximum(den, 1e-12)


def estimate_relative_pose(
    points0_px: np.ndarray,
    points1_px: np.ndarray,
    K: np.ndarray,
    threshold_px: float = 1.0,
    confidence: float = 0.999,
    check_homography: bool = True,
    rng: np.random.Generator | None = None,
    num_hypotheses: int = NUM_HYPOTHESES,
) -> RelativePose | None:
    """Relative pose from (N, 2) pixel correspondences, or None when fewer than 8 points or no
    model is found.

    Under forward motion a sideways translation with a compensating rotation can explain the
    flow with as many inliers as the true motion (the bas-relief ambiguity). So several
    hypotheses are drawn (USAC MAGSAC++ on differently ordered correspondences, the order from
    `rng`, so runs follow the seed) and the one with the lowest truncated Sampson cost over all
    correspondences (MSAC score) is kept."""
    n = len(points0_px)
    if n < 8:
        return None
    rng = rng if rng is not None else np.random.default_rng(0)
    p0 = np.ascontiguousarray(points0_px, dtype=np.float64).reshape(-1, 2)
    p1 = np.ascontiguousarray(points1_px, dtype=np.float64).reshape(-1, 2)
    flow = float(np.median(np.linalg.norm(p1 - p0, axis=1)))
    best = None
    for _ in range(max(num_hypotheses, 1)):
        perm = rng.permutation(n)
        E, mask = cv2.findEssentialMat(
            p0[perm],
            p1[perm],
            K,
            method=cv2.USAC_MAGSAC,
            prob=confidence,
            threshold=threshold_px,
            maxIters=1000,
        )
        if E is None or mask is None or E.shape[1] != 3:
            continue
        E = E[:3, :3]  # several stacked solutions: take the first
        score = float(np.minimum(sampson_sq_px(E, K, p0, p1), threshold_px**2).sum())
        if best is None or score < best[0]:
            inl = np.zeros(n, bool)
            inl[perm] = mask.ravel() > 0
            best = (score, E, inl)
    if best is None or best[2].sum() < 5:
        return None
    _, E, mask = best
    _, R, t, pose_mask = cv2.recoverPose(E, p0, p1, K, mask=mask.astype(np.uint8).copy())
    inliers = pose_mask.ravel() > 0
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))):
        return None
    h_ratio = 0.0
    if check_homography:
        H, h_mask = cv2.findHomography(p0, p1, cv2.RANSAC, 2.0 * threshold_px, confidence=0.99)
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
