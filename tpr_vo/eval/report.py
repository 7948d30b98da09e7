"""Evaluate KITTI-format pose files, one sequence or a folder of them, and format the tables.

The multi-sequence table has the shape of the KITTI tables in the literature: one column per
sequence plus the average, rows ATE / t_rel / r_rel. The average t_rel/r_rel pools all
segments of all sequences (the devkit's total average); the average ATE is the mean of the
per-sequence ATEs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tpr_vo.errors import DataError
from tpr_vo.eval.kitti_devkit import SegmentErrors, pool
from tpr_vo.eval.metrics import TrajectoryMetrics, check_trajectories, compute_metrics
from tpr_vo.kitti_poses import read_kitti_poses


def load_pair(
    gt_path: str | os.PathLike, est_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Both pose files as (N, 4, 4); DataError naming the files when their lengths differ."""
    gt, est = read_kitti_poses(gt_path), read_kitti_poses(est_path)
    return check_trajectories(gt, est, str(gt_path), str(est_path))


def evaluate_files(
    gt_path: str | os.PathLike,
    est_path: str | os.PathLike,
    align: str = "se3",
    scale_source: str = "unknown",
) -> TrajectoryMetrics:
    gt, est = load_pair(gt_path, est_path)
    return compute_metrics(
        gt,
        est,
        align=align,
        scale_source=scale_source,
        gt_name=str(gt_path),
        est_name=str(est_path),
    )


def find_sequence_pairs(
    gt_dir: str | os.PathLike, est_dir: str | os.PathLike
) -> list[tuple[str, Path, Path]]:
    """(name, gt file, est file) for every `NAME.txt` in est_dir with a ground truth of the same
    name in gt_dir (or gt_dir/poses, the official layout), sorted by name."""
    gt_dir, est_dir = Path(gt_dir), Path(est_dir)
    for d, what in ((gt_dir, "--gt-dir"), (est_dir, "--est-dir")):
        if not d.is_dir():
            raise DataError(f"{d}: {what} is not a folder")
    if not list(gt_dir.glob("*.txt")) and (gt_dir / "poses").is_dir():
        gt_dir = gt_dir / "poses"
    est_files = sorted(est_dir.glob("*.txt"))
    if not est_files:
        raise DataError(f"{est_dir}: no estimated pose files (expected NN.txt)")
    pairs = [(f.stem, gt_dir / f.name, f) for f in est_files if (gt_dir / f.name).is_file()]
    if not pairs:
        names = ", ".join(f.name for f in est_files[:5])
        raise DataError(f"{gt_dir}: no ground truth for any of {names} (expected the same names)")
    return pairs


@dataclass(frozen=True)
class MultiSequenceResult:
    sequences: dict[str, TrajectoryMetrics]
    pooled: SegmentErrors
    files: dict[str, tuple[Path, Path]]  # name -> (ground-truth file, estimate file)

    @property
    def mean_ate_m(self) -> float:
        return float(np.mean([m.ate_rmse_m for m in self.sequences.values()]))

    def to_json_dict(self) -> dict[str, Any]:
        align = next(iter(self.sequences.values())).ate_align
        return {
            "sequences": {name: m.to_json_dict() for name, m in self.sequences.items()},
            "average": {
                "ate_rmse_m": self.mean_ate_m,
                "ate_align": align,
                "t_rel_pct": self.pooled.t_rel_pct,
                "r_rel_deg_per_100m": self.pooled.r_rel_deg_per_100m,
                "kitti_segments": self.pooled.count,
                "ate_average": "mean over sequences",
                "kitti_average": "pooled over all segments of all sequences",
            },
        }

    def to_markdown(self) -> str:
        align = next(iter(self.sequences.values())).ate_align
        names = list(self.sequences)
        header = "| metric | " + " | ".join(names) + " | avg |"
        rule = "|---|" + "---:|" * (len(names) + 1)
        rows = [
            (
                f"ATE RMSE [m] ({align})",
                [m.ate_rmse_m for m in self.sequences.values()],
                self.mean_ate_m,
            ),
            ("t_rel [%]", [m.t_rel_pct for m in self.sequences.values()], self.pooled.t_rel_pct),
            (
                "r_rel [deg/100m]",
                [m.r_rel_deg_per_100m for m in self.sequences.values()],
                self.pooled.r_rel_deg_per_100m,
            ),
            (
                "frames",
                [m.frames for m in self.sequences.values()],
                sum(m.frames for m in self.sequences.values()),
            ),
            ("segments", [m.kitti_segments for m in self.sequences.values()], self.pooled.count),
        ]
        lines = [header, rule]
        for label, values, avg in rows:
            lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in [*values, avg]) + " |")
        return "\n".join(lines) + "\n"


def evaluate_sequence_dirs(
    gt_dir: str | os.PathLike,
    est_dir: str | os.PathLike,
    align: str = "se3",
    scale_source: str = "unknown",
) -> MultiSequenceResult:
    files = {name: (gt, est) for name, gt, est in find_sequence_pairs(gt_dir, est_dir)}
    sequences = {
        name: evaluate_files(gt, est, align, scale_source) for name, (gt, est) in files.items()
    }
    return MultiSequenceResult(sequences, pool([m.kitti for m in sequences.values()]), files)


def metrics_markdown(metrics: TrajectoryMetrics) -> str:
    """Two-column Markdown table of one trajectory's metrics, with the per-length devkit rows."""
    ate = metrics.ate
    rows = [
        ("frames (tracked)", f"{metrics.frames} ({metrics.tracked_frames})"),
        (f"ATE RMSE [m] ({metrics.ate_align})", _fmt(metrics.ate_rmse_m)),
        (
            "ATE mean / median / max [m]",
            " / ".join(_fmt(v) for v in (ate.mean_m, ate.median_m, ate.max_m)),
        ),
        ("alignment scale", _fmt(metrics.alignment_scale)),
        ("RPE trans [m/frame]", _fmt(metrics.rpe_trans_m)),
        ("RPE rot [deg/frame]", _fmt(metrics.rpe_rot_deg)),
        ("t_rel [%] (KITTI devkit)", _fmt(metrics.t_rel_pct)),
        ("r_rel [deg/100m] (KITTI devkit)", _fmt(metrics.r_rel_deg_per_100m)),
        ("devkit segments", str(metrics.kitti_segments)),
        ("scale source", metrics.scale_source),
    ]
    for row in metrics.kitti.per_length():
        rows.append(
            (
                f"  {row.length_m:g} m: t_rel [%] / r_rel [deg/100m] (segments)",
                f"{_fmt(row.t_rel_pct)} / {_fmt(row.r_rel_deg_per_100m)} ({row.segments})",
            )
        )
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.4f}"
