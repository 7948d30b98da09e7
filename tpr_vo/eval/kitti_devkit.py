"""The KITTI odometry metric exactly as the official devkit's `evaluate_odometry.cpp` defines it.

For every start frame (every `step_frames` = 10 frames) and every length L in 100..800 m, the
segment ends at the first frame whose distance along the ground-truth path exceeds the start's
by more than L. The segment error is E = inv(inv(est_a) est_b) @ (inv(gt_a) gt_b) (no global
alignment); t_err = ||t(E)|| / L (a fraction, per metre) and r_err = acos(clip(0.5 (trace(R(E))
- 1))) / L (rad per metre). t_rel is the mean of t_err over all segments in %, r_rel the mean of
r_err in deg per 100 m (r_err * 180/pi * 100). Several sequences pool their segments.

The devkit stores distances and errors in C `float`; with `devkit_float32=True` (default) that
arithmetic is reproduced step by step (float32 path distances -- which decide where a segment
ends --, float32 trace/acos/sqrt/division and sequential float32 sums), so segment counts and
values agree with the devkit's output. Matrix products and inverses are float64 as in its
`Matrix` class. `devkit_float32=False` keeps everything in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SEGMENT_LENGTHS_M = (100, 200, 300, 400, 500, 600, 700, 800)
STEP_FRAMES = 10
FRAME_PERIOD_S = 0.1  # the devkit's speed assumes 10 Hz

_F32 = np.float32


def trajectory_distances(T_world_cam: np.ndarray, devkit_float32: bool = True) -> np.ndarray:
    """(N,) cumulative distance along the path, dist[0] = 0 (devkit: float accumulation)."""
    xyz = T_world_cam[:, :3, 3]
    if not devkit_float32:
        steps = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])
    d = (xyz[:-1] - xyz[1:]).astype(_F32)  # double difference, stored as float
    steps = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2])
    # np.cumsum adds sequentially in the array's dtype, like the devkit's loop.
    return np.concatenate([np.zeros(1, _F32), np.cumsum(steps, dtype=_F32)])


def last_frame_from_segment_length(dist: np.ndarray, first_frame: int, length_m: float) -> int:
    """First frame i >= first_frame with dist[i] > dist[first_frame] + length_m, or -1."""
    target = dist[first_frame] + dist.dtype.type(length_m)
    after = np.nonzero(dist[first_frame:] > target)[0]
    return int(first_frame + after[0]) if len(after) else -1


@dataclass(frozen=True)
class SegmentErrors:
    """One row per evaluated segment (the devkit's `errors` records), possibly pooled.

    first_frame, last_frame: (M,) int, the segment's ends; length_m: (M,); t_err: (M,)
    translation error / length (m per m); r_err: (M,) rotation error / length (rad per m);
    speed_mps: (M,) length / duration.
    """

    first_frame: np.ndarray
    last_frame: np.ndarray
    length_m: np.ndarray
    t_err: np.ndarray
    r_err: np.ndarray
    speed_mps: np.ndarray
    devkit_float32: bool = True

    @property
    def count(self) -> int:
        return int(len(self.t_err))

    def _mean(self, values: np.ndarray) -> float | None:
        if len(values) == 0:
            return None
        if self.devkit_float32:
            # getStats: float sum in order, divided by a float count.
            return float(np.cumsum(values, dtype=_F32)[-1] / _F32(len(values)))
        return float(np.mean(values))

    @property
    def t_rel_pct(self) -> float | None:
        """Mean translation error in %, None when no segment exists."""
        mean = self._mean(self.t_err)
        return None if mean is None else mean * 100.0

    @property
    def r_rel_deg_per_100m(self) -> float | None:
        """Mean rotation error in deg per 100 m, None when no segment exists."""
        mean = self._mean(self.r_err)
        return None if mean is None else float(np.degrees(mean) * 100.0)

    def per_length(self) -> list[LengthRow]:
        """Errors grouped by segment length (devkit saveErrorPlots: |len - L| < 1)."""
        rows = []
        for length in SEGMENT_LENGTHS_M:
            keep = np.abs(self.length_m - length) < 1.0
            part = self.subset(keep)
            rows.append(LengthRow(length, part.count, part.t_rel_pct, part.r_rel_deg_per_100m))
        return rows

    def subset(self, keep: np.ndarray) -> SegmentErrors:
        return SegmentErrors(
            self.first_frame[keep],
            self.last_frame[keep],
            self.length_m[keep],
            self.t_err[keep],
            self.r_err[keep],
            self.speed_mps[keep],
            self.devkit_float32,
        )


@dataclass(frozen=True)
class LengthRow:
    """Mean errors of the segments of one length. The devkit plots a length only when it has
    at least 3 segments (`plottable`)."""

    length_m: float
    segments: int
    t_rel_pct: float | None
    r_rel_deg_per_100m: float | None

    @property
    def plottable(self) -> bool:
        return self.segments >= 3


def sequence_errors(
    gt_T_world_cam: np.ndarray,
    est_T_world_cam: np.ndarray,
    *,
    lengths_m: Sequence[float] = SEGMENT_LENGTHS_M,
    step_frames: int = STEP_FRAMES,
    devkit_float32: bool = True,
) -> SegmentErrors:
    """calcSequenceErrors for one sequence: (N, 4, 4) ground truth and estimate, same N."""
    if len(gt_T_world_cam) != len(est_T_world_cam):
        raise ValueError("ground truth and estimate must have one pose per frame")
    dist = trajectory_distances(gt_T_world_cam, devkit_float32)
    firsts, lasts, lens = [], [], []
    for first in range(0, len(gt_T_world_cam), step_frames):
        for length in lengths_m:
            last = last_frame_from_segment_length(dist, first, length)
            if last != -1:
                firsts.append(first)
                lasts.append(last)
                lens.append(float(length))
    if not firsts:
        return _empty(devkit_float32)
    a = np.asarray(firsts)
    b = np.asarray(lasts)
    length_m = np.asarray(lens)
    gt_inv = np.linalg.inv(gt_T_world_cam)
    est_inv = np.linalg.inv(est_T_world_cam)
    delta_gt = gt_inv[a] @ gt_T_world_cam[b]
    delta_est = est_inv[a] @ est_T_world_cam[b]
    E = np.linalg.inv(delta_est) @ delta_gt
    speed_mps = length_m / (FRAME_PERIOD_S * (b - a + 1))
    if devkit_float32:
        diag = E[:, [0, 1, 2], [0, 1, 2]].astype(_F32)
        trace_f = (diag[:, 0] + diag[:, 1]) + diag[:, 2]
        d = (0.5 * (trace_f.astype(np.float64) - 1.0)).astype(_F32)  # 0.5*(a+b+c-1.0) -> float
        r_err = np.arccos(np.clip(d, _F32(-1.0), _F32(1.0)))
        t = E[:, :3, 3].astype(_F32)
        t_err = np.sqrt(t[:, 0] * t[:, 0] + t[:, 1] * t[:, 1] + t[:, 2] * t[:, 2])
        len_f = length_m.astype(_F32)
        return SegmentErrors(a, b, length_m, t_err / len_f, r_err / len_f, speed_mps, True)
    cos = 0.5 * (np.trace(E[:, :3, :3], axis1=1, axis2=2) - 1.0)
    r_err = np.arccos(np.clip(cos, -1.0, 1.0))
    t_err = np.linalg.norm(E[:, :3, 3], axis=1)
    return SegmentErrors(a, b, length_m, t_err / length_m, r_err / length_m, speed_mps, False)


def pool(errors: Sequence[SegmentErrors]) -> SegmentErrors:
    """All segments of several sequences, in order (the devkit's total_err)."""
    if not errors:
        return _empty(True)
    f32 = all(e.devkit_float32 for e in errors)
    return SegmentErrors(
        np.concatenate([e.first_frame for e in errors]),
        np.concatenate([e.last_frame for e in errors]),
        np.concatenate([e.length_m for e in errors]),
        np.concatenate([e.t_err for e in errors]),
        np.concatenate([e.r_err for e in errors]),
        np.concatenate([e.speed_mps for e in errors]),
        f32,
    )


def _empty(devkit_float32: bool) -> SegmentErrors:
    dtype = _F32 if devkit_float32 else np.float64
    return SegmentErrors(
        np.zeros(0, int),
        np.zeros(0, int),
        np.zeros(0),
        np.zeros(0, dtype),
        np.zeros(0, dtype),
        np.zeros(0),
        devkit_float32,
    )
