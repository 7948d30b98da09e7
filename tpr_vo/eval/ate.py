"""Absolute trajectory error: RMSE of camera positions after alignment (evo's APE, translation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpr_vo.eval.align import Alignment, align_trajectory


@dataclass(frozen=True)
class AteResult:
    """errors_m: (N,) position error of each frame after alignment, in metres."""

    alignment: Alignment
    errors_m: np.ndarray

    @property
    def rmse_m(self) -> float:
        return float(np.sqrt(np.mean(self.errors_m**2)))

    @property
    def mean_m(self) -> float:
        return float(np.mean(self.errors_m))

    @property
    def median_m(self) -> float:
        return float(np.median(self.errors_m))

    @property
    def max_m(self) -> float:
        return float(np.max(self.errors_m))


def compute_ate(gt_T_world_cam: np.ndarray, est_T_world_cam: np.ndarray, align: str) -> AteResult:
    """ATE of (N, 4, 4) poses with `align` in se3 | sim3 | none (positions only)."""
    alignment = align_trajectory(gt_T_world_cam, est_T_world_cam, align)
    est_xyz_m = alignment.apply_positions(est_T_world_cam[:, :3, 3])
    errors_m = np.linalg.norm(gt_T_world_cam[:, :3, 3] - est_xyz_m, axis=1)
    return AteResult(alignment, errors_m)
