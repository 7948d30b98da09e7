"""Two-view and multi-view geometry against known answers: essential matrix, homography
degeneracy, triangulation, PnP + LM, ground-plane scale, bundle adjustment, matching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tpr_vo.config import MatchingConfig
from tpr_vo.geometry.bundle_adjustment import BaProblem, bundle_adjust, least_squares_ba
from tpr_vo.geometry.essential import estimate_relative_pose
from tpr_vo.geometry.pnp import solve_pnp
from tpr_vo.geometry.scale import fit_ground_plane, height_scale
from tpr_vo.geometry.se3 import (
    angle_between_deg,
    invert,
    make_T,
    orthonormalize,
    rotation_angle_deg,
    rotation_angle_rad,
    so3_exp,
    so3_log,
)
from tpr_vo.geometry.triangulation import project, triangulate, triangulate_stereo

K = np.array([[700.0, 0.0, 620.0], [0.0, 700.0, 190.0], [0.0, 0.0, 1.0]])


def _scene(rng, n=400, far_m=60.0):
    return rng.uniform([-15, -4, 6], [15, 3, far_m], (n, 3))


def _observe(T_cam_world, points_w, rng, noise_px):
    uv, z = project(K, T_cam_world, points_w)
    return uv + rng.normal(0, noise_px, uv.shape), z


def test_so3_exp_log_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        axis = rng.normal(size=3)
        w = axis / np.linalg.norm(axis) * rng.uniform(0, 3.0)  # angles below pi
        assert np.allclose(so3_log(so3_exp(w)), w, atol=1e-9)
    R = so3_exp([0, np.radians(30), 0])
    assert rotation_angle_deg(R) == pytest.approx(30.0, abs=1e-9)
    T = make_T(R, [1, 2, 3])
    assert np.allclose(invert(T) @ T, np.eye(4))


def test_rotation_angle_is_exact_from_zero_to_pi_and_on_rounded_matrices():
    rng = np.random.default_rng(4)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([10.0 ** rng.uniform(-9, 0, 100), rng.uniform(0, np.pi, 99), [np.pi]])
    R = np.stack([so3_exp(a * w) for a, w in zip(angles, axes)])
    assert np.allclose(rotation_angle_rad(R), angles, rtol=1e-9, atol=1e-12)
    # Entries rounded to 7 significant digits, as in KITTI's pose files: the projection back onto
    # SO(3) keeps the angle to the rounding's own size, far below the old arccos floor (~3e-4).
    rounded = np.array([[float(f"{v:.6e}") for v in m.ravel()] for m in R]).reshape(R.shape)
    assert np.abs(rotation_angle_rad(rounded) - angles).max() < 1e-6
    P = orthonormalize(rounded)
    assert np.allclose(np.swapaxes(P, 1, 2) @ P, np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(P), 1.0)
    assert rotation_angle_deg(np.eye(3)) == 0.0


def test_essential_recovers_rotation_and_direction_with_outliers():
    rng = np.random.default_rng(1)
    cv2.setRNGSeed(0)
    points = _scene(rng, far_m=25.0)  # depth 6-25 m for a 1 m baseline
    R_true = so3_exp([0.01, np.radians(2.0), -0.005])
    t_true = np.array([0.1, -0.02, -1.0])
    T_1_0 = make_T(R_true, t_true)
    p0, _ = _observe(np.eye(4), points, rng, 0.5)
    p1, _ = _observe(T_1_0, points, rng, 0.5)
    p1[:80] = rng.uniform([0, 0], [1240, 380], (80, 2))  # 20 % outliers
    rel = estimate_relative_pose(p0, p1, K, threshold_px=1.0)
    assert rel is not None
    # Plain 5-point RANSAC without refinement, 0.5 px noise: a few tenths of a degree.
    assert rotation_angle_deg(rel.R_1_0.T @ R_true) < 0.4
    assert angle_between_deg(rel.t_1_0, t_true) < 6.0
    assert np.linalg.norm(rel.t_1_0) == pytest.approx(1.0)
    assert rel.inliers[:80].sum() < 5  # outliers rejected
    assert rel.inliers[80:].mean() > 0.8
    assert rel.homography_ratio < 0.9  # a 3D scene with translation is not a homography


def test_homography_flags_pure_rotation_as_degenerate():
    rng = np.random.default_rng(2)
    points = _scene(rng)
    T_1_0 = make_T(so3_exp([0.0, np.radians(3.0), 0.0]), [0.0, 0.0, 0.0])
    p0, _ = _observe(np.eye(4), points, rng, 0.3)
    p1, _ = _observe(T_1_0, points, rng, 0.3)
    rel = estimate_relative_pose(p0, p1, K, threshold_px=1.0)
    # Either no pose survives cheirality, or the homography explains (nearly) everything.
    assert rel is None or rel.num_inliers < 10 or rel.homography_ratio > 0.95


def test_too_few_points_gives_none():
    assert estimate_relative_pose(np.zeros((5, 2)), np.zeros((5, 2)), K) is None


def test_triangulation_metric_accuracy_and_cheirality():
    rng = np.random.default_rng(3)
    points = _scene(rng, 200)
    T0 = np.eye(4)
    T1 = invert(make_T(so3_exp([0, 0.02, 0]), [0.5, 0, 2.0]))  # T_cam1_world
    p0, _ = _observe(T0, points, rng, 0.0)
    p1, _ = _observe(T1, points, rng, 0.0)
    tri = triangulate(K, T0, T1, p0, p1, min_parallax_deg=0.0)
    assert tri.valid.all()
    assert np.abs(tri.points_w - points).max() < 1e-6
    # A point behind both cameras is rejected.
    behind = np.array([[0.0, 0.0, -10.0]])
    q0, _ = project(K, T0, behind)
    q1, _ = project(K, T1, behind)
    assert not triangulate(K, T0, T1, q0, q1, min_parallax_deg=0.0).valid[0]


def test_stereo_triangulation_depth():
    baseline = 0.54
    pts = np.array([[1.0, -0.5, 10.0], [-3.0, 1.0, 25.0]])
    left = pts[:, :2] / pts[:, 2:] * 700.0 + [620.0, 190.0]
    right = left - np.stack([700.0 * baseline / pts[:, 2], np.zeros(2)], 1)
    xyz, valid = triangulate_stereo(K, baseline, left, right)
    assert valid.all()
    assert np.allclose(xyz, pts, atol=1e-9)


def test_pnp_with_lm_refinement_and_covariance():
    rng = np.random.default_rng(4)
    points = _scene(rng, 300)
    T_cw = invert(make_T(so3_exp([0.02, -0.05, 0.01]), [0.8, -0.1, 3.0]))
    errors = {}
    for noise in (0.3, 1.2):
        px, _ = _observe(T_cw, points, rng, noise)
        px[:30] = rng.uniform([0, 0], [1240, 380], (30, 2))
        res = solve_pnp(points, px, K, threshold_px=3.0 * noise + 0.5, min_inliers=20)
        assert res is not None
        rot_err = rotation_angle_deg(res.T_cam_world[:3, :3].T @ T_cw[:3, :3])
        pos_err = np.linalg.norm(invert(res.T_cam_world)[:3, 3] - invert(T_cw)[:3, 3])
        assert rot_err < 0.05 * (1 + noise)
        assert pos_err < 0.02 * (1 + noise)
        assert res.inliers[:30].sum() <= 2
        cov = res.covariance_6x6
        assert np.all(np.linalg.eigvalsh(cov) > 0)
        errors[noise] = np.trace(cov[:3, :3])
    # Four times the pixel noise: roughly sixteen times the variance.
    assert 5.0 < errors[1.2] / errors[0.3] < 50.0


def test_pnp_jacobian_matches_central_differences():
    from tpr_vo.geometry.pnp import _jacobian, reprojection_residuals

    rng = np.random.default_rng(8)
    points = _scene(rng, 40)
    T_cw = invert(make_T(so3_exp([0.03, -0.2, 0.05]), [0.5, 0.2, 1.0]))
    zero_px = np.zeros((len(points), 2))
    numeric = np.zeros((len(points), 2, 6))
    h = 1e-6
    for i in range(6):
        d = np.zeros(6)
        d[i] = h
        plus = reprojection_residuals(make_T(so3_exp(d[3:]), d[:3]) @ T_cw, points, zero_px, K)[0]
        minus = reprojection_residuals(make_T(so3_exp(-d[3:]), -d[:3]) @ T_cw, points, zero_px, K)
        numeric[:, :, i] = (plus - minus[0]) / (2 * h)
    analytic = _jacobian(T_cw, points, K)
    assert np.allclose(analytic, numeric, rtol=1e-5, atol=1e-4)


def test_ground_plane_height_scale():
    rng = np.random.default_rng(5)
    ground = np.stack([rng.uniform(-6, 6, 300), np.full(300, 1.65), rng.uniform(4, 40, 300)], 1)
    ground[:, 1] += rng.normal(0, 0.02, 300)
    clutter = rng.uniform([-10, -5, 5], [10, 1.0, 50], (200, 3))
    unit = 0.37  # the scene as a monocular map would have it, in arbitrary units
    pts = np.concatenate([ground, clutter]) * unit
    plane = fit_ground_plane(pts, np.random.default_rng(0))
    assert plane is not None
    assert plane.distance == pytest.approx(1.65 * unit, rel=0.02)
    s = height_scale(pts, 1.65, np.random.default_rng(0))
    assert s == pytest.approx(1.0 / unit, rel=0.02)
    # Nothing below the camera: no plane, no scale.
    assert height_scale(clutter * [1, -1, 1] - [0, 2, 0], 1.65, np.random.default_rng(0)) is None


def _ba_problem(rng, with_stereo=False):
    pts = rng.uniform([-10, -3, 8], [10, 3, 40], (300, 3))
    poses = np.stack(
        [invert(make_T(so3_exp([0, 0.02 * i, 0]), [0, 0, 1.0 * i])) for i in range(5)]
    )
    obs_c, obs_p, px, rx = [], [], [], []
    for c in range(5):
        uv, z = project(K, poses[c], pts)
        obs_c.append(np.full(len(pts), c))
        obs_p.append(np.arange(len(pts)))
        px.append(uv + rng.normal(0, 0.5, uv.shape))
        rx.append(uv[:, 0] - 700.0 * 0.54 / z if with_stereo else np.full(len(pts), np.nan))
    px = np.concatenate(px)
    px[:20] += 25.0  # gross outliers
    noisy = poses.copy()
    for c in range(1 if with_stereo else 2, 5):
        noisy[c] = make_T(so3_exp(rng.normal(0, 0.01, 3)), rng.normal(0, 0.1, 3)) @ noisy[c]
    fixed = np.zeros(5, bool)
    fixed[: 1 if with_stereo else 2] = True
    prob = BaProblem(
        noisy,
        fixed,
        pts + rng.normal(0, 0.2, pts.shape),
        np.concatenate(obs_c),
        np.concatenate(obs_p),
        px,
        np.concatenate(rx),
        K,
        baseline=0.54 if with_stereo else 0.0,
    )
    return prob, poses


@pytest.mark.parametrize("with_stereo", [False, True])
def test_local_bundle_adjustment_recovers_poses(with_stereo):
    prob, truth = _ba_problem(np.random.default_rng(6), with_stereo)
    before = max(
        np.linalg.norm(invert(prob.poses_cw[c])[:3, 3] - invert(truth[c])[:3, 3]) for c in range(5)
    )
    res = bundle_adjust(prob, huber_px=2.0)
    after = max(
        np.linalg.norm(invert(res.poses_cw[c])[:3, 3] - invert(truth[c])[:3, 3]) for c in range(5)
    )
    assert before > 0.05
    assert after < 0.01  # metres
    assert res.final_rms_px < res.initial_rms_px
    assert not res.inlier_obs[:20].any()  # the shifted observations are flagged
    assert np.allclose(res.poses_cw[prob.fixed], prob.poses_cw[prob.fixed])


@pytest.mark.parametrize("with_stereo", [False, True])
def test_ba_jacobians_match_finite_differences(with_stereo):
    """The closed-form pose (left perturbation) and point Jacobians, against central
    differences of the residuals, for the u, v and (stereo) right-x rows."""
    from tpr_vo.geometry.bundle_adjustment import _linearize

    prob, _ = _ba_problem(np.random.default_rng(8), with_stereo)
    r, Jc, Jp, _ = _linearize(prob.poses_cw, prob.points_w, prob)
    obs = np.arange(0, len(r), 37)  # a spread of observations over all cameras
    eps = 1e-6
    num_c = np.zeros((len(r), r.shape[1], 6))
    num_p = np.zeros((len(r), r.shape[1], 3))
    for k in range(6):
        d = np.zeros(6)
        d[k] = eps
        step = make_T(so3_exp(d[3:]), d[:3])
        back = make_T(so3_exp(-d[3:]), -d[:3])
        plus = _linearize(step @ prob.poses_cw, prob.points_w, prob)[0]
        minus = _linearize(back @ prob.poses_cw, prob.points_w, prob)[0]
        num_c[:, :, k] = (plus - minus) / (2 * eps)
    for k in range(3):
        d = np.zeros(3)
        d[k] = eps
        plus = _linearize(prob.poses_cw, prob.points_w + d, prob)[0]
        minus = _linearize(prob.poses_cw, prob.points_w - d, prob)[0]
        num_p[:, :, k] = (plus - minus) / (2 * eps)
    assert r.shape[1] == (3 if with_stereo else 2)
    np.testing.assert_allclose(Jc[obs], num_c[obs], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(Jp[obs], num_p[obs], rtol=1e-5, atol=1e-4)


def test_batched_3x3_inverse_matches_numpy_and_flags_singular_blocks():
    from tpr_vo.geometry.bundle_adjustment import _inv_3x3

    rng = np.random.default_rng(11)
    A = rng.normal(size=(50, 3, 3))
    A = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(3)  # like the damped point blocks
    np.testing.assert_allclose(_inv_3x3(A), np.linalg.inv(A), rtol=1e-9, atol=1e-12)
    A[7] = np.outer([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])  # rank 1
    with pytest.raises(np.linalg.LinAlgError):
        _inv_3x3(A)


def test_least_squares_reference_reduces_cost():
    prob, _ = _ba_problem(np.random.default_rng(7))
    ref = least_squares_ba(prob, huber_px=2.0, max_nfev=30)
    ours = bundle_adjust(prob, huber_px=2.0)
    assert ref.final_rms_px < ref.initial_rms_px
    # The Schur-complement LM reaches a fit at least as good as scipy's TRF in 30 evaluations.
    assert ours.final_rms_px <= ref.final_rms_px * 1.01


def test_hamming_matching_mutual_and_ratio():
    from tpr_vo.matching import distance_matrix, match_descriptors, match_guided, match_stereo

    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    ref = np.unpackbits(a[:, None, :] ^ a[None, :50, :], axis=2).sum(2)
    assert np.array_equal(distance_matrix(a, a[:50]), ref)
    b = a.copy()
    flip = rng.integers(0, 32, (200, 3))
    for i, cols in enumerate(flip):
        b[i, cols] ^= 1  # a few bit flips: still the nearest neighbour
    perm = rng.permutation(200)
    m = match_descriptors(a, b[perm], MatchingConfig())
    assert len(m) == 200
    assert np.array_equal(perm[m.index_b], m.index_a)
    # Guided: only candidates within the radius are considered.
    pts = rng.uniform(0, 500, (200, 2))
    g = match_guided(a, pts, b, pts + 100.0, 30.0, MatchingConfig())
    assert len(g) == 0
    g = match_guided(a, pts, b, pts + 5.0, 30.0, MatchingConfig())
    assert len(g) > 190 and np.array_equal(g.index_a, g.index_b)
    # Stereo: same row, positive disparity.
    right = pts - [20.0, 0.0]
    s = match_stereo(a, pts, b, right, MatchingConfig())
    assert len(s) > 190 and np.array_equal(s.index_a, s.index_b)
    assert len(match_stereo(a, pts, b, pts + [20.0, 0.0], MatchingConfig())) == 0


@pytest.mark.parametrize("radius_px", [1e6, 60.0])
def test_guided_matching_equals_sparse_pairs(radius_px):
    """The table form of guided matching gives what match_pairs gives on the same candidate
    pairs (every b within the radius; here fewer than GUIDED_MAX_CANDIDATES)."""
    from tpr_vo.matching import match_descriptors, match_guided, match_pairs, pair_distances

    rng = np.random.default_rng(10)
    a = rng.normal(size=(40, 16)).astype(np.float32)
    b = (a[:30] + 1.2 * rng.normal(size=(30, 16))).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    pred, kp_b = rng.uniform(0, 200, (40, 2)), rng.uniform(0, 200, (30, 2))
    cfg = MatchingConfig()
    ia, ib = np.nonzero(np.linalg.norm(pred[:, None] - kp_b[None], axis=2) <= radius_px)
    ref = match_pairs(ia, ib, pair_distances(a, b, ia, ib), 40, 30, cfg, False)
    got = match_guided(a, pred, b, kp_b, radius_px, cfg)
    assert 5 < len(got) < 30  # some fail the ratio or mutual test
    order = np.argsort(got.index_a)
    assert np.array_equal(got.index_a[order], ref.index_a)
    assert np.array_equal(got.index_b[order], ref.index_b)
    # The table computes |a|^2 + |b|^2 - 2 a.b, the pairs (a - b)^2: float32 rounding apart.
    np.testing.assert_allclose(got.distance[order], ref.distance, atol=1e-6)
    if radius_px > 1e5:  # everything is a candidate: brute force
        brute = match_descriptors(a, b, cfg)
        assert np.array_equal(brute.index_a, ref.index_a)
        assert np.array_equal(brute.index_b, ref.index_b)


def test_float_matching_cosine():
    from tpr_vo.matching import match_descriptors

    rng = np.random.default_rng(9)
    d = rng.normal(size=(100, 64)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    noisy = d + 0.05 * rng.normal(size=d.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    m = match_descriptors(d, noisy[::-1], MatchingConfig())
    assert len(m) == 100
    assert np.array_equal(99 - m.index_b, m.index_a)


def _reference_mutual_ratio(dist: np.ndarray, ratio: float, max_d: float):
    """Slow textbook version: full sort per row, argmin per column (first index on ties)."""
    pairs = []
    col_best = dist.argmin(axis=0)
    for i, row in enumerate(dist):
        order = np.argsort(row, kind="stable")
        j, d1, d2 = order[0], row[order[0]], row[order[1]]
        if d1 <= max_d and d1 < ratio * d2 and col_best[j] == i:
            pairs.append((i, j))
    return pairs


@pytest.mark.parametrize("binary", [False, True])
def test_brute_force_matches_reference(binary):
    """The fast mutual check (column minimum by value, ties to the first row) gives exactly the
    textbook result, including Hamming ties and non-unit float descriptors."""
    from tpr_vo.matching import distance_matrix, match_descriptors, max_distance

    rng = np.random.default_rng(10 + binary)
    if binary:
        a = rng.integers(0, 256, (300, 4), dtype=np.uint8)  # 32 bits: many equal distances
        b = a[rng.permutation(300)[:200]] ^ (rng.random((200, 4)) < 0.1).astype(np.uint8)
    else:
        a = rng.normal(size=(300, 8)).astype(np.float32)  # not unit length
        b = a[rng.permutation(300)[:200]] + 0.3 * rng.normal(size=(200, 8)).astype(np.float32)
    a = np.concatenate([a, a[:30]])  # exact duplicates: b's nearest is the first copy only
    cfg = MatchingConfig(ratio=0.95)
    m = match_descriptors(a, b, cfg)
    ref = _reference_mutual_ratio(distance_matrix(a, b), cfg.ratio, max_distance(binary, cfg))
    assert len(ref) > 20
    assert list(zip(m.index_a.tolist(), m.index_b.tolist())) == [(int(i), int(j)) for i, j in ref]


def test_brute_force_mutual_tie_goes_to_first_row():
    """Row 0 is 4 bits from both b's, row 1 is 4 bits from b1 and 12 from b0: b1's nearest is
    row 0 (the first of the tie), so row 1 -> b1 is not mutual, as with a column argmin."""
    from tpr_vo.matching import match_descriptors

    a = np.array([[0x0F, 0x00], [0xFF, 0x0F]], np.uint8)
    b = np.array([[0x00, 0x00], [0xFF, 0x00]], np.uint8)
    assert len(match_descriptors(a, b, MatchingConfig(ratio=0.95))) == 0
    # Without the tie, row 1 -> b1 is mutual.
    assert len(match_descriptors(a[1:], b, MatchingConfig(ratio=0.95))) == 1


def test_candidate_table_distances_any_norm():
    """The batched-product table equals direct distances for descriptors of any length, with
    inf where a row has no candidate (index len(b))."""
    from tpr_vo.matching import _candidate_table_l2

    rng = np.random.default_rng(3)
    a = rng.normal(size=(7, 5)).astype(np.float32) * 3.0
    b = rng.normal(size=(9, 5)).astype(np.float32)
    cand = rng.integers(0, 10, size=(7, 4))  # 9 = no candidate
    got = _candidate_table_l2(a, b, cand)
    for i in range(7):
        for j in range(4):
            want = np.inf if cand[i, j] == 9 else np.linalg.norm(a[i] - b[cand[i, j]])
            assert got[i, j] == pytest.approx(want, rel=1e-5, abs=1e-5)
