"""Frame-to-frame relative pose error (evo's RPE with delta = 1 frame, all pairs i -> i+1).

E_i = (gt_i^-1 gt_{i+1})^-1 (est_i^-1 est_{i+1}); translation error ||t(E_i)|| in metres and
rotation error angle(E_i) in degrees, averaged over the N-1 pairs. The angle is the norm of the
rotation vector of E_i projected onto SO(3) (`se3.rotation_angle_rad`), as evo computes it: KITTI's
ground truth is rounded to 7 significant digits, and the arccos-of-trace angle used before
2026-11-27 (session 17) read that rounding as up to 0.015 deg of error per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpr_vo.geometry.se3 import rotation_angle_rad


@dataclass(frozen=True)
class RpeResult:
    """trans_errors_m, rot_errors_deg: (N - 1,) one value per consecutive pair."""

    trans_errors_m: np.ndarray
    rot_errors_deg: np.ndarray

    @property
    def pairs(self) -> int:
        return int(len(self.trans_errors_m))

    @property
    def trans_mean_m(self) -> float | None:
        return float(np.mean(self.trans_errors_m)) if self.pairs else None

    @property
    def rot_mean_deg(self) -> float | None:
        return float(np.mean(self.rot_errors_deg)) if self.pairs else None


def relative_motions(T_world_cam: np.ndarray, delta: int = 1) -> np.ndarray:
    """(N - delta, 4, 4) T_cam_i_cam_{i+delta} = inv(T_i) @ T_{i+delta}."""
    return np.linalg.inv(T_world_cam[:-delta]) @ T_world_cam[delta:]


def compute_rpe(
    gt_T_world_cam: np.ndarray, est_T_world_cam: np.ndarray, est_scale: float = 1.0
) -> RpeResult:
    """RPE of (N, 4, 4) poses. `est_scale` multiplies estimated translations first (the Sim(3)
    scale for a scale-free monocular estimate, as `evo_rpe -as` does); 1.0 otherwise."""
    if len(gt_T_world_cam) < 2:
        return RpeResult(np.zeros(0), np.zeros(0))
    est = np.array(est_T_world_cam, dtype=np.float64, copy=True)
    est[:, :3, 3] *= est_scale
    E = np.linalg.inv(relative_motions(gt_T_world_cam)) @ relative_motions(est)
    trans_m = np.linalg.norm(E[:, :3, 3], axis=1)
    rot_deg = np.degrees(rotation_angle_rad(E[:, :3, :3]))
    return RpeResult(trans_m, rot_deg)
