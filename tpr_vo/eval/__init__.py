"""Evaluation: ATE / RPE, the KITTI devkit t_rel / r_rel, HPatches MMA, tables and plots.

numpy only; matplotlib is imported inside the plot functions.
"""

from tpr_vo.eval.align import Alignment, align_trajectory, umeyama_alignment
from tpr_vo.eval.ate import AteResult, compute_ate
from tpr_vo.eval.kitti_devkit import SegmentErrors, pool, sequence_errors
from tpr_vo.eval.metrics import TrajectoryMetrics, check_trajectories, compute_metrics
from tpr_vo.eval.mma import MmaResult, evaluate_mma, match_pair, mutual_nearest_neighbors
from tpr_vo.eval.plots import plot_mma, plot_position_error, plot_segment_errors, plot_trajectory
from tpr_vo.eval.report import (
    MultiSequenceResult,
    evaluate_files,
    evaluate_sequence_dirs,
    metrics_markdown,
)
from tpr_vo.eval.rpe import RpeResult, compute_rpe

__all__ = [
    "Alignment",
    "AteResult",
    "MmaResult",
    "MultiSequenceResult",
    "RpeResult",
    "SegmentErrors",
    "TrajectoryMetrics",
    "align_trajectory",
    "check_trajectories",
    "compute_ate",
    "compute_metrics",
    "compute_rpe",
    "evaluate_files",
    "evaluate_mma",
    "evaluate_sequence_dirs",
    "match_pair",
    "metrics_markdown",
    "mutual_nearest_neighbors",
    "plot_mma",
    "plot_position_error",
    "plot_segment_errors",
    "plot_trajectory",
    "pool",
    "sequence_errors",
    "umeyama_alignment",
]
