"""KITTI devkit t_rel / r_rel against hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tpr_vo.eval import compute_metrics, pool, sequence_errors
from tpr_vo.eval.kitti_devkit import last_frame_from_segment_length, trajectory_distances
from tpr_vo.kitti_poses import read_kitti_poses


def straight_line(n: int, step_m: float = 1.0) -> np.ndarray:
    """Camera driving forward along z, one pose every step_m metres."""
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 2, 3] = step_m * np.arange(n)
    return T


def rot_y(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def yawing_path(n: int, yaw_rate_rad_per_m: float, step_m: float = 1.0) -> np.ndarray:
    """Same step lengths as straight_line, but the heading turns at a constant rate (an arc)."""
    T = np.tile(np.eye(4), (n, 1, 1))
    for i in range(1, n):
        T[i, :3, :3] = rot_y(yaw_rate_rad_per_m * step_m * i)
        T[i, :3, 3] = T[i - 1, :3, 3] + T[i - 1, :3, :3] @ [0.0, 0.0, step_m]
    return T


# Straight line of 301 poses, 1 m apart: a segment of L metres starting at frame f ends at
# frame f + L + 1 (the first distance *greater* than L), so it needs f <= 299 - L:
# L = 100 -> f = 0, 10, ..., 190 (20 segments); L = 200 -> f = 0..90 (10); longer: none.
N_301_SEGMENTS = {100: 20, 200: 10}


def test_segment_counts_of_a_known_path():
    errors = sequence_errors(straight_line(301), straight_line(301))
    assert errors.count == 30
    counts = {row.length_m: row.segments for row in errors.per_length()}
    assert counts == {100: 20, 200: 10, 300: 0, 400: 0, 500: 0, 600: 0, 700: 0, 800: 0}
    assert errors.first_frame.max() == 190
    np.testing.assert_array_equal(errors.last_frame - errors.first_frame, errors.length_m + 1)
    # 0.5 m steps over 1000 m: L needs 2L + 1 frames, f <= 2000 - 2L - 1.
    long = sequence_errors(straight_line(2001, 0.5), straight_line(2001, 0.5))
    expected = {L: (2000 - 2 * L - 1) // 10 + 1 for L in range(100, 900, 100)}
    assert expected == {
        100: 180,
        200: 160,
        300: 140,
        400: 120,
        500: 100,
        600: 80,
        700: 60,
        800: 40,
    }
    assert {r.length_m: r.segments for r in long.per_length()} == expected
    assert long.count == 880


def test_last_frame_is_the_first_distance_strictly_beyond_the_length():
    dist = trajectory_distances(straight_line(301))
    assert last_frame_from_segment_length(dist, 0, 100) == 101
    assert last_frame_from_segment_length(dist, 190, 100) == 291
    assert last_frame_from_segment_length(dist, 200, 100) == -1


def test_identity_gives_zero(kitti_gt_full):
    gt = read_kitti_poses(kitti_gt_full / "poses" / "07.txt")
    errors = sequence_errors(gt, gt)
    assert errors.count == 317  # 1101 frames, 694.7 m: lengths up to 600 m exist
    assert errors.t_rel_pct == pytest.approx(0.0, abs=1e-9)
    assert errors.r_rel_deg_per_100m == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("float32", [True, False])
def test_uniform_one_percent_scale_error(float32):
    gt = straight_line(301)
    est = gt.copy()
    est[:, :3, 3] *= 1.01
    errors = sequence_errors(gt, est, devkit_float32=float32)
    # Error of a segment = 1 % of its displacement, L + 1 metres, divided by L.
    expected_pct = (20 * 1.0 * 101 / 100 + 10 * 1.0 * 201 / 200) / 30
    assert expected_pct == pytest.approx(1.008333333, rel=1e-9)
    assert errors.t_rel_pct == pytest.approx(expected_pct, rel=1e-6 if float32 else 1e-12)
    assert errors.r_rel_deg_per_100m == pytest.approx(0.0, abs=1e-9)


def test_uniform_scale_error_on_a_real_path(kitti_gt_full):
    gt = read_kitti_poses(kitti_gt_full / "poses" / "07.txt")
    est = gt.copy()
    est[:, :3, 3] *= 1.01
    m = compute_metrics(gt, est, align="se3")
    # Segment error = 1 % of the segment's chord |p_last - p_first| (07 has loops, so long
    # segments have short chords), divided by the length.
    seg = m.kitti
    chord_m = np.linalg.norm(gt[seg.last_frame, :3, 3] - gt[seg.first_frame, :3, 3], axis=1)
    expected_pct = 100.0 * np.mean(0.01 * chord_m / seg.length_m)
    assert m.t_rel_pct == pytest.approx(expected_pct, rel=1e-5)
    assert 0.5 < m.t_rel_pct < 1.0
    assert m.r_rel_deg_per_100m == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("float32", [True, False])
def test_constant_yaw_rate_gives_the_rotation_error_it_implies(float32):
    rate_deg_per_100m = 1.0
    kappa = math.radians(rate_deg_per_100m) / 100.0  # rad per metre
    gt = straight_line(301)
    est = yawing_path(301, kappa)
    errors = sequence_errors(gt, est, devkit_float32=float32)
    assert errors.count == 30  # segments follow the ground-truth path only
    # Rotation error of a segment = kappa * (L + 1) m, divided by L, in deg per 100 m.
    expected = rate_deg_per_100m * (20 * 101 / 100 + 10 * 201 / 200) / 30
    # float32 acos near 1 resolves ~3e-4 rad: the devkit's own quantisation.
    assert errors.r_rel_deg_per_100m == pytest.approx(expected, rel=1e-3 if float32 else 1e-9)
    assert errors.t_rel_pct > 0.1  # the arc leaves the straight line


def test_too_short_for_any_segment_is_null_not_zero():
    gt = straight_line(60)  # 59 m
    m = compute_metrics(gt, gt)
    assert m.kitti_segments == 0
    assert m.t_rel_pct is None and m.r_rel_deg_per_100m is None
    d = m.to_json_dict()
    assert d["t_rel_pct"] is None and d["r_rel_deg_per_100m"] is None
    assert d["kitti_segments"] == 0


def test_t_rel_does_not_depend_on_ate_alignment():
    gt = straight_line(301)
    est = yawing_path(301, 1e-4)
    values = {a: compute_metrics(gt, est, align=a) for a in ("se3", "sim3", "none")}
    assert len({m.t_rel_pct for m in values.values()}) == 1
    assert len({m.r_rel_deg_per_100m for m in values.values()}) == 1
    assert len({round(m.ate_rmse_m, 9) for m in values.values()}) == 3


def test_pooled_average_is_over_all_segments_of_all_sequences():
    a = straight_line(301)  # 30 segments, 1 % scale error
    est_a = a.copy()
    est_a[:, :3, 3] *= 1.01
    b = straight_line(2001, 0.5)  # 880 segments, exact
    errors_a = sequence_errors(a, est_a)
    errors_b = sequence_errors(b, b)
    pooled = pool([errors_a, errors_b])
    assert pooled.count == 910
    assert pooled.t_rel_pct == pytest.approx(errors_a.t_rel_pct * 30 / 910, rel=1e-6)
    # ... which is not the mean of the two sequence averages.
    assert pooled.t_rel_pct < 0.5 * errors_a.t_rel_pct


def test_float32_distances_follow_the_devkit_loop():
    rng = np.random.default_rng(0)
    T = np.tile(np.eye(4), (400, 1, 1))
    T[:, :3, 3] = np.cumsum(rng.uniform(0.05, 1.5, size=(400, 3)), axis=0)
    dist = trajectory_distances(T)
    assert dist.dtype == np.float32
    # Literal scalar transcription of trajectoryDistances' float accumulation.
    acc = [np.float32(0.0)]
    for i in range(1, 400):
        dx, dy, dz = (np.float32(T[i - 1, k, 3] - T[i, k, 3]) for k in range(3))
        acc.append(np.float32(acc[-1] + np.sqrt(np.float32(dx * dx + dy * dy + dz * dz))))
    np.testing.assert_array_equal(dist, np.array(acc, dtype=np.float32))
    # float32 and float64 evaluations agree closely on a real-looking estimate.
    est = T.copy()
    est[:, :3, 3] *= 1.02
    e32 = sequence_errors(T, est)
    e64 = sequence_errors(T, est, devkit_float32=False)
    assert e32.count == e64.count
    assert e32.t_rel_pct == pytest.approx(e64.t_rel_pct, rel=1e-5)
    chord_m = np.linalg.norm(T[e64.last_frame, :3, 3] - T[e64.first_frame, :3, 3], axis=1)
    assert e64.t_rel_pct == pytest.approx(100 * np.mean(0.02 * chord_m / e64.length_m), rel=1e-9)


def test_segment_ends_follow_the_devkits_float_distances(kitti_gt_full):
    """Sequence 00 has segments whose end frame depends on float32 rounding of the path length.

    Reference: a C++ re-statement of evaluate_odometry.cpp's float arithmetic (its
    trajectoryDistances / lastFrameFromSegmentLength / error functions, same types), built with
    g++ -O3 on 2026-11-25: (first frame, length) -> last frame. It gave 3283 segments, and on a
    perturbed estimate per-segment errors bit-identical to `sequence_errors`.
    """
    gt = read_kitti_poses(kitti_gt_full / "poses" / "00.txt")
    devkit_last = {(2720, 100): 2835, (3260, 700): 4090, (3500, 800): 4302, (3590, 400): 4029}
    errors = sequence_errors(gt, gt)
    assert errors.count == 3283
    ends = dict(zip(zip(errors.first_frame.tolist(), errors.length_m.tolist()),
                    errors.last_frame.tolist()))  # fmt: skip
    assert {key: ends[key] for key in devkit_last} == devkit_last
    # Exact (float64) distances put these four segment ends one frame elsewhere.
    exact = sequence_errors(gt, gt, devkit_float32=False)
    exact_ends = dict(zip(zip(exact.first_frame.tolist(), exact.length_m.tolist()),
                          exact.last_frame.tolist()))  # fmt: skip
    assert all(exact_ends[key] != last for key, last in devkit_last.items())
