"""Umeyama alignment of an estimated trajectory to ground truth: SE(3), Sim(3) or none.

Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
IEEE PAMI 1991 -- the same closed form evo uses, so ATE agrees with `evo_ape -a` / `-as`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tpr_vo.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ALIGN_MODES = ("se3", "sim3", "none")


@dataclass(frozen=True)
class Alignment:
    """x_gt ~= scale * R_gt_est @ x_est + t_gt_est (positions in metres)."""

    kind: str  # se3 | sim3 | none
    R_gt_est: np.ndarray  # (3, 3) float64 rotation
    t_gt_est_m: np.ndarray  # (3,) float64
    scale: float = 1.0

    def apply_positions(self, xyz_m: np.ndarray) -> np.ndarray:
        """(N, 3) estimated positions -> (N, 3) positions in the ground-truth frame."""
        return self.scale * xyz_m @ self.R_gt_est.T + self.t_gt_est_m

    def apply(self, T_world_cam: np.ndarray) -> np.ndarray:
        """(N, 4, 4) estimated poses -> (N, 4, 4) poses in the ground-truth world frame.

        The rotation part is left-multiplied by R_gt_est; the translation is scaled too, so
        relative translations of the result are in ground-truth units."""
        out = np.array(T_world_cam, dtype=np.float64, copy=True)
        out[:, :3, :3] = self.R_gt_est @ out[:, :3, :3]
        out[:, :3, 3] = self.apply_positions(out[:, :3, 3])
        return out


def identity_alignment() -> Alignment:
    return Alignment("none", np.eye(3), np.zeros(3), 1.0)


def umeyama_alignment(est_xyz_m: np.ndarray, gt_xyz_m: np.ndarray, with_scale: bool) -> Alignment:
    """Least-squares (s, R, t) minimising sum ||gt_i - (s R est_i + t)||^2.

    est_xyz_m, gt_xyz_m: (N, 3). Degenerate inputs (all estimated positions equal, collinear
    points) do not raise: the returned transform still attains the minimum of the cost, which
    is all ATE needs (evo raises on rank-deficient covariances instead).
    """
    est = np.asarray(est_xyz_m, dtype=np.float64)
    gt = np.asarray(gt_xyz_m, dtype=np.float64)
    if est.shape != gt.shape or est.ndim != 2 or est.shape[1] != 3:
        raise DataError(f"alignment needs two (N, 3) position arrays, got {est.shape}, {gt.shape}")
    kind = "sim3" if with_scale else "se3"
    n = len(est)
    mean_est = est.mean(axis=0)
    mean_gt = gt.mean(axis=0)
    est_c = est - mean_est
    gt_c = gt - mean_gt
    var_est = float((est_c**2).sum()) / n
    if var_est <= 1e-24:
        # A single point: any rotation/scale maps it onto the ground-truth centroid.
        log.debug("umeyama: estimated positions are all equal; translation-only alignment")
        return Alignment(kind, np.eye(3), mean_gt - mean_est, 1.0)
    cov_gt_est = gt_c.T @ est_c / n
    U, D, Vt = np.linalg.svd(cov_gt_est)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0.0:
        S[2, 2] = -1.0
    R = U @ S @ Vt
    scale = float(np.trace(np.diag(D) @ S) / var_est) if with_scale else 1.0
    if with_scale and scale <= 0.0:
        log.warning("umeyama: non-positive Sim(3) scale %.3g; estimate is degenerate", scale)
    t = mean_gt - scale * R @ mean_est
    return Alignment(kind, R, t, scale)


def align_trajectory(
    gt_T_world_cam: np.ndarray, est_T_world_cam: np.ndarray, align: str
) -> Alignment:
    """Alignment of the estimate's positions to the ground truth's for `align` in ALIGN_MODES."""
    if align not in ALIGN_MODES:
        raise ConfigError(f"align must be one of {', '.join(ALIGN_MODES)}, got {align!r}")
    if align == "none":
        return identity_alignment()
    return umeyama_alignment(
        est_T_world_cam[:, :3, 3], gt_T_world_cam[:, :3, 3], with_scale=(align == "sim3")
    )
