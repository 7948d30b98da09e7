"""PNG plots of the evaluation (matplotlib's Figure API: no display, no global pyplot state).

Every writer renders into a temporary file beside the target and renames it (tpr_vo.atomic).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tpr_vo.atomic import atomic_path


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def plot_trajectory(
    gt_T_world_cam: np.ndarray | None,
    est_T_world_cam: np.ndarray,
    path: str | os.PathLike,
    title: str = "",
    est_label: str = "estimate",
) -> Path:
    """Top view (x right, z forward of the first camera) of estimate and ground truth, with the
    sequence start marked, equal axis scales (the devkit's path plot)."""
    fig = _figure((7, 7))
    ax = fig.add_subplot()
    if gt_T_world_cam is not None:
        gt = np.asarray(gt_T_world_cam)
        ax.plot(gt[:, 0, 3], gt[:, 2, 3], color="#d62728", lw=1.5, label="ground truth")
    est = np.asarray(est_T_world_cam)
    ax.plot(est[:, 0, 3], est[:, 2, 3], color="#1f4fd6", lw=1.2, label=est_label)
    start = gt_T_world_cam[0] if gt_T_world_cam is not None else est[0]
    ax.plot(start[0, 3], start[2, 3], "ks", ms=8, mfc="none", mew=2, label="start")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("z [m]")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title or "trajectory (top view)")
    return _save(fig, path)


def plot_segment_errors(errors, path: str | os.PathLike, title: str = "") -> Path:
    """Translation error [%] and rotation error [deg/100m] vs segment length, drawn like the
    devkit (a point per length with at least 3 segments). `errors`: kitti_devkit.SegmentErrors."""
    rows = [r for r in errors.per_length() if r.plottable]
    fig = _figure((9, 3.6))
    ax_t, ax_r = fig.subplots(1, 2)
    if rows:
        lengths = [r.length_m for r in rows]
        ax_t.plot(lengths, [r.t_rel_pct for r in rows], "s-", color="#1f4fd6", mfc="none")
        ax_r.plot(lengths, [r.r_rel_deg_per_100m for r in rows], "s-", color="#1f4fd6", mfc="none")
    else:
        for ax in (ax_t, ax_r):
            ax.text(0.5, 0.5, "no length with >= 3 segments", ha="center", transform=ax.transAxes)
    for ax, label in ((ax_t, "translation error [%]"), (ax_r, "rotation error [deg/100m]")):
        ax.set_xlabel("path length [m]")
        ax.set_ylabel(label)
        ax.set_xlim(0, 900)
        top = max((line.get_ydata().max() for line in ax.get_lines()), default=0.0)
        ax.set_ylim(0, 1.15 * top if top > 0 else 1.0)
        ax.grid(True, alpha=0.3)
    fig.suptitle(title or f"KITTI devkit errors ({errors.count} segments)")
    return _save(fig, path)


def plot_position_error(
    errors_m: np.ndarray,
    path: str | os.PathLike,
    times_s: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Per-frame position error after alignment, against time (or frame index)."""
    fig = _figure((9, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(errors_m)) if times_s is None else np.asarray(times_s)
    ax.plot(x, errors_m, color="#1f4fd6", lw=1.0)
    rmse = float(np.sqrt(np.mean(np.square(errors_m)))) if len(errors_m) else float("nan")
    ax.axhline(rmse, color="#d62728", ls="--", lw=1.0, label=f"RMSE {rmse:.3f} m")
    ax.set_xlabel("frame" if times_s is None else "time [s]")
    ax.set_ylabel("position error [m]")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(title or "position error (ATE)")
    return _save(fig, path)


def plot_mma(results: Sequence, path: str | os.PathLike, title: str = "") -> Path:
    """MMA vs threshold, one curve per feature type. `results`: mma.MmaResult records."""
    fig = _figure((6, 4.2))
    ax = fig.add_subplot()
    for result in results:
        ax.plot(
            result.thresholds_px,
            result.mma,
            "o-",
            ms=4,
            label=f"{result.features} ({result.matches:.0f} matches)",
        )
    ax.set_xlabel("threshold [px]")
    ax.set_ylabel("MMA")
    ax.set_ylim(0, 1)
    ax.set_xlim(1, max(max(r.thresholds_px) for r in results) if results else 10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "mean matching accuracy")
    return _save(fig, path)
