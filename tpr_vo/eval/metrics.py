"""All trajectory metrics of one run in one record: the metrics.json of `tpr-vo run` / `eval`.

`compute_metrics` is the single entry point used by the offline pipeline and the eval CLI, so
every number this project reports comes from the same code and says which protocol made it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tpr_vo.errors import ConfigError, DataError
from tpr_vo.eval.align import ALIGN_MODES, Alignment
from tpr_vo.eval.ate import AteResult, compute_ate
from tpr_vo.eval.kitti_devkit import SEGMENT_LENGTHS_M, STEP_FRAMES, SegmentErrors, sequence_errors
from tpr_vo.eval.rpe import RpeResult, compute_rpe

SCALE_SOURCES = ("none", "gt", "stereo", "height", "unknown")


@dataclass(frozen=True)
class TrajectoryMetrics:
    """Metrics of one estimated trajectory against ground truth (SI units, None = undefined).

    ate_rmse_m: position RMSE after `ate_align` alignment; alignment_scale is the Sim(3) scale
    (1.0 for se3/none). rpe_*: frame-to-frame, translations scaled by alignment_scale.
    t_rel_pct / r_rel_deg_per_100m: KITTI devkit, never aligned, None without any 100 m segment.
    """

    frames: int
    tracked_frames: int
    ate_rmse_m: float
    ate_align: str
    alignment_scale: float
    rpe_trans_m: float | None
    rpe_rot_deg: float | None
    t_rel_pct: float | None
    r_rel_deg_per_100m: float | None
    kitti_segments: int
    fps: float | None
    scale_source: str
    ate: AteResult
    rpe: RpeResult
    kitti: SegmentErrors

    @property
    def alignment(self) -> Alignment:
        return self.ate.alignment

    def to_json_dict(self) -> dict[str, Any]:
        """DESIGN.md section 3 keys first, then the protocol that produced them."""
        return {
            "frames": self.frames,
            "tracked_frames": self.tracked_frames,
            "ate_rmse_m": _num(self.ate_rmse_m),
            "ate_align": self.ate_align,
            "rpe_trans_m": _num(self.rpe_trans_m),
            "rpe_rot_deg": _num(self.rpe_rot_deg),
            "t_rel_pct": _num(self.t_rel_pct),
            "r_rel_deg_per_100m": _num(self.r_rel_deg_per_100m),
            "fps": _num(self.fps),
            "scale_source": self.scale_source,
            "alignment_scale": _num(self.alignment_scale),
            "ate_mean_m": _num(self.ate.mean_m),
            "ate_median_m": _num(self.ate.median_m),
            "ate_max_m": _num(self.ate.max_m),
            "rpe_pairs": self.rpe.pairs,
            "rpe_delta_frames": 1,
            "kitti_segments": self.kitti_segments,
            "kitti_step_frames": STEP_FRAMES,
            "kitti_lengths_m": list(SEGMENT_LENGTHS_M),
            "kitti_alignment": "none",
            "kitti_per_length": [
                {
                    "length_m": row.length_m,
                    "segments": row.segments,
                    "t_rel_pct": _num(row.t_rel_pct),
                    "r_rel_deg_per_100m": _num(row.r_rel_deg_per_100m),
                }
                for row in self.kitti.per_length()
            ],
        }


def _num(value: float | None) -> float | None:
    """JSON-safe float: None for undefined or non-finite values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_trajectories(
    gt_T_world_cam: np.ndarray,
    est_T_world_cam: np.ndarray,
    gt_name: str = "ground truth",
    est_name: str = "estimate",
) -> tuple[np.ndarray, np.ndarray]:
    """Both as (N, 4, 4) float64 with the same N and finite values, or DataError naming them."""
    arrays = []
    for name, T in ((gt_name, gt_T_world_cam), (est_name, est_T_world_cam)):
        T = np.asarray(T, dtype=np.float64)
        if T.ndim != 3 or T.shape[1:] not in ((4, 4), (3, 4)):
            raise DataError(f"{name}: expected (N, 4, 4) or (N, 3, 4) poses, got {T.shape}")
        if T.shape[1] == 3:
            T = np.concatenate([T, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (len(T), 1, 1))], axis=1)
        if len(T) == 0:
            raise DataError(f"{name}: no poses")
        bad = np.nonzero(~np.isfinite(T).all(axis=(1, 2)))[0]
        if len(bad):
            raise DataError(f"{name}: pose {int(bad[0])} has NaN or inf ({len(bad)} such poses)")
        arrays.append(T)
    gt, est = arrays
    if len(gt) != len(est):
        raise DataError(
            f"{est_name} has {len(est)} poses but {gt_name} has {len(gt)}: "
            "expected one estimated pose per ground-truth pose"
        )
    return gt, est


def compute_metrics(
    gt_T_world_cam: np.ndarray,
    est_T_world_cam: np.ndarray,
    *,
    align: str = "se3",
    tracked: np.ndarray | None = None,
    fps: float | None = None,
    scale_source: str = "none",
    gt_name: str = "ground truth",
    est_name: str = "estimate",
) -> TrajectoryMetrics:
    """ATE (with `align`), frame-to-frame RPE and the KITTI devkit metric of one trajectory.

    gt_T_world_cam, est_T_world_cam: (N, 4, 4) camera poses, one per frame, same N.
    tracked: (N,) bool, frames the frontend actually tracked (all when None).
    scale_source: where a metric scale came from (none | gt | stereo | height | unknown).
    """
    if align not in ALIGN_MODES:
        raise ConfigError(f"align: expected one of {', '.join(ALIGN_MODES)}, got {align!r}")
    if scale_source not in SCALE_SOURCES:
        raise ConfigError(
            f"scale_source: expected one of {', '.join(SCALE_SOURCES)}, got {scale_source!r}"
        )
    gt, est = check_trajectories(gt_T_world_cam, est_T_world_cam, gt_name, est_name)
    if tracked is None:
        tracked_frames = len(gt)
    else:
        tracked = np.asarray(tracked, dtype=bool)
        if tracked.shape != (len(gt),):
            raise DataError(f"tracked: expected ({len(gt)},) flags, got {tracked.shape}")
        tracked_frames = int(tracked.sum())
    ate = compute_ate(gt, est, align)
    rpe = compute_rpe(gt, est, est_scale=ate.alignment.scale)
    kitti = sequence_errors(gt, est)
    return TrajectoryMetrics(
        frames=len(gt),
        tracked_frames=tracked_frames,
        ate_rmse_m=ate.rmse_m,
        ate_align=align,
        alignment_scale=ate.alignment.scale,
        rpe_trans_m=rpe.trans_mean_m,
        rpe_rot_deg=rpe.rot_mean_deg,
        t_rel_pct=kitti.t_rel_pct,
        r_rel_deg_per_100m=kitti.r_rel_deg_per_100m,
        kitti_segments=kitti.count,
        fps=None if fps is None else float(fps),
        scale_source=scale_source,
        ate=ate,
        rpe=rpe,
        kitti=kitti,
    )
