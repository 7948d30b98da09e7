"""Keypoint position covariances and the frontend's weighting by them: the soft-argmax spread
(tpr_vo.features.postprocess), the whitening (tpr_vo.geometry.whitening), and weighted PnP,
bundle adjustment and epipolar term against known answers: when some keypoints are noisier
along one axis and their covariances say so, the weighted estimates are closer to the truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tpr_vo.errors import DataError
from tpr_vo.features.postprocess import (
    PostprocessParams,
    extract_features,
    keypoint_covariance_px2,
    merge_scales,
    refine_subpixel,
    soft_argmax,
)
from tpr_vo.geometry.bundle_adjustment import BaProblem, _linearize, bundle_adjust
from tpr_vo.geometry.epipolar_term import EpipolarTerm
from tpr_vo.geometry.pnp import refine_with_inliers
from tpr_vo.geometry.se3 import invert, make_T, rotation_angle_deg, so3_exp
from tpr_vo.geometry.triangulation import project
from tpr_vo.geometry.whitening import relative_covariance, whitening_2x2
from tpr_vo.types import Features

K = np.array([[718.0, 0.0, 607.0], [0.0, 718.0, 185.0], [0.0, 0.0, 1.0]])


def _blob(shape_hw, center_xy, sigma_xy):
    y, x = np.mgrid[0 : shape_hw[0], 0 : shape_hw[1]].astype(np.float32)
    cx, cy = center_xy
    sx, sy = sigma_xy
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2)).astype(np.float32)


def test_soft_argmax_spread_follows_the_shape_of_the_peak():
    scores = np.maximum(_blob((40, 80), (20, 20), (1.0, 1.0)), _blob((40, 80), (60, 20), (3, 0.8)))
    kps = np.array([[20, 20], [60, 20]])
    refined, spread = soft_argmax(scores, kps, 3, 0.1)
    np.testing.assert_array_equal(refined, refine_subpixel(scores, kps, 3, 0.1))
    np.testing.assert_allclose(refined, kps, atol=1e-5)  # symmetric peaks
    round_, long_ = spread
    assert round_[0, 0] == pytest.approx(round_[1, 1], rel=1e-5)
    assert long_[0, 0] > 3 * long_[1, 1]  # elongated along x
    assert abs(long_[0, 1]) < 1e-6 and abs(round_[0, 1]) < 1e-6
    # A sharper peak spreads its weights less.
    assert round_[1, 1] < long_[0, 0]
    assert soft_argmax(scores, kps, 0, 0.1)[1] is None  # no window, no spread


def test_extracted_covariances_are_positive_definite_and_scale_with_the_image():
    rng = np.random.default_rng(0)
    scores = np.zeros((64, 96), np.float32)
    for x, y in rng.uniform([8, 8], [88, 56], (12, 2)):
        scores = np.maximum(scores, _blob(scores.shape, (x, y), rng.uniform(0.7, 2.0, 2)))
    desc = rng.normal(size=(1, 8, 8, 12)).astype(np.float32)
    f = extract_features(scores, desc, 64, 96, PostprocessParams(score_threshold=0.2))
    assert f.keypoint_cov_px2.shape == (len(f), 2, 2) and len(f) >= 8
    assert np.all(np.linalg.eigvalsh(f.keypoint_cov_px2) > 0)
    spread = soft_argmax(scores, np.rint(f.keypoints_px).astype(np.int64), 3, 0.1)[1]
    assert f.keypoint_cov_px2[:, 0, 0].max() > keypoint_covariance_px2(spread)[:, 0, 0].min()
    assert (
        f.subset(np.array([2, 0])).keypoint_cov_px2.tolist() == f.keypoint_cov_px2[[2, 0]].tolist()
    )
    no_window = PostprocessParams(score_threshold=0.2, refine_radius_px=0)
    off = extract_features(scores, desc, 64, 96, no_window)
    assert off.keypoint_cov_px2 is None
    # Keypoints of a half-size image map back with 2x the position, 4x the variance.
    merged = merge_scales([(f, 2.0, 2.0)], max_keypoints=100)
    np.testing.assert_allclose(merged.keypoint_cov_px2, 4 * f.keypoint_cov_px2, rtol=1e-6)
    plain = Features(f.keypoints_px, f.scores, f.descriptors)
    assert merge_scales([(f, 1.0, 1.0), (plain, 1.0, 1.0)], 100).keypoint_cov_px2 is None


def test_whitening_inverts_the_covariance_relative_to_the_median_keypoint():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(7, 2, 2))
    cov = A @ A.transpose(0, 2, 1) + 0.05 * np.eye(2)
    L = whitening_2x2(cov)
    s2 = np.median(np.trace(cov, axis1=1, axis2=2) / 2)
    np.testing.assert_allclose(L.transpose(0, 2, 1) @ L, s2 * np.linalg.inv(cov), atol=1e-9)
    assert np.allclose(np.tril(L, -1), 0.0)
    np.testing.assert_allclose(relative_covariance(cov), cov / s2)
    # Identical covariances: every keypoint keeps unit weight, whatever their size.
    np.testing.assert_allclose(
        whitening_2x2(np.tile(3.0 * np.eye(2), (4, 1, 1))), np.eye(2)[None].repeat(4, 0)
    )
    assert whitening_2x2(np.zeros((0, 2, 2))).shape == (0, 2, 2)
    with pytest.raises(DataError, match="keypoint covariances"):
        whitening_2x2(np.zeros((3, 2)))
    with pytest.raises(DataError, match="positive definite"):
        whitening_2x2(np.array([[[1.0, 0.0], [0.0, -1.0]]]))


def _heteroscedastic_pixels(rng, uv, noisy):
    """Pixels with 0.2 px noise, and 3 px along x on the `noisy` rows; their covariances."""
    px = uv + rng.normal(0.0, 0.2, uv.shape)
    px[noisy, 0] += rng.normal(0.0, 3.0, noisy.sum())
    cov = np.tile(np.diag([0.04, 0.04]), (len(uv), 1, 1))
    cov[noisy, 0, 0] = 9.0
    return px, cov


def test_weighted_pnp_discounts_the_keypoints_its_covariances_call_noisy():
    T_true = invert(make_T(so3_exp([0.01, 0.03, -0.005]), [0.2, -0.1, 1.0]))
    errors = {"plain": [], "weighted": []}
    for seed in range(6):
        rng = np.random.default_rng(seed)
        pts = rng.uniform([-15, -3, 6], [15, 3, 50], (300, 3))
        uv, _ = project(K, T_true, pts)
        noisy = rng.random(300) < 0.5
        px, cov = _heteroscedastic_pixels(rng, uv, noisy)
        T0 = make_T(so3_exp([0.003, -0.004, 0.002]), [0.05, 0.05, -0.05]) @ T_true
        for name, L in [("plain", None), ("weighted", whitening_2x2(cov))]:
            # A threshold wide enough to keep the noisy half: only the weights differ.
            res = refine_with_inliers(T0, pts, px, K, 12.0, 10, np.ones(300, bool), whiten_2x2=L)
            errors[name].append(rotation_angle_deg(res.T_cam_world[:3, :3] @ T_true[:3, :3].T))
    assert np.mean(errors["weighted"]) < 0.5 * np.mean(errors["plain"])


def _two_camera_ba(rng, noisy_frac):
    pts = rng.uniform([-10, -3, 8], [10, 3, 40], (200, 3))
    poses = np.stack(
        [invert(make_T(so3_exp([0, 0.02 * i, 0]), [0, 0, 1.0 * i])) for i in range(4)]
    )
    cams, obs_pt, px, cov = [], [], [], []
    for c in range(4):
        uv, _ = project(K, poses[c], pts)
        p, cv = _heteroscedastic_pixels(rng, uv, rng.random(len(pts)) < noisy_frac)
        cams.append(np.full(len(pts), c))
        obs_pt.append(np.arange(len(pts)))
        px.append(p)
        cov.append(cv)
    noisy_poses = poses.copy()
    for c in (2, 3):
        noisy_poses[c] = (
            make_T(so3_exp(rng.normal(0, 0.005, 3)), rng.normal(0, 0.05, 3)) @ poses[c]
        )
    fixed = np.array([True, True, False, False])
    points_w = pts + rng.normal(0, 0.1, pts.shape)
    obs = [np.concatenate(a) for a in (cams, obs_pt, px)]
    prob = BaProblem(noisy_poses, fixed, points_w, *obs, np.full(800, np.nan), K)
    return prob, poses, np.concatenate(cov)


def test_weighted_bundle_adjustment_is_closer_to_the_truth():
    errors = {"plain": [], "weighted": []}
    for seed in range(4):
        prob, truth, cov = _two_camera_ba(np.random.default_rng(seed), 0.5)
        for name, L in [("plain", None), ("weighted", whitening_2x2(cov))]:
            res = bundle_adjust(dataclasses.replace(prob, obs_whiten=L), huber_px=10.0)
            errors[name].append(max(
                rotation_angle_deg(res.poses_cw[c, :3, :3] @ truth[c, :3, :3].T) for c in (2, 3)
            ))  # fmt: skip
    assert np.mean(errors["weighted"]) < 0.6 * np.mean(errors["plain"])


def test_identity_whitening_changes_nothing_and_stereo_keeps_an_unweighted_disparity_row():
    prob, _, _ = _two_camera_ba(np.random.default_rng(3), 0.0)
    a = bundle_adjust(prob)
    b = bundle_adjust(dataclasses.replace(prob, obs_whiten=np.tile(np.eye(2), (800, 1, 1))))
    np.testing.assert_allclose(a.poses_cw, b.poses_cw, atol=1e-12)
    # Stereo, half the observations with a right x: with L = diag(1/2, 1) the left x row
    # halves, the y row stays, and the third row is the disparity's residual at unit weight.
    uv_r = prob.obs_px[:, 0] - 5.0
    uv_r[::2] = np.nan
    stereo = dataclasses.replace(prob, obs_right_x=uv_r, baseline=0.54)
    L = np.tile(np.diag([0.5, 1.0]), (800, 1, 1))
    r0, Jc0, Jp0, depth = _linearize(stereo.poses_cw, stereo.points_w, stereo)
    r1, Jc1, Jp1, _ = _linearize(stereo.poses_cw, stereo.points_w,
                                 dataclasses.replace(stereo, obs_whiten=L))  # fmt: skip
    np.testing.assert_allclose(r1[:, :2], r0[:, :2] * [0.5, 1.0])
    np.testing.assert_allclose(Jc1[:, :2], Jc0[:, :2] * np.array([0.5, 1.0])[:, None])
    has = np.isfinite(uv_r)
    disparity_px = K[0, 0] * 0.54 / depth  # predicted, against the observed 5 px
    np.testing.assert_allclose(r1[has, 2], disparity_px[has] - 5.0, rtol=1e-9)
    np.testing.assert_allclose(r1[has, 2], r0[has, 0] - r0[has, 2], rtol=1e-9)
    np.testing.assert_allclose(Jp1[has, 2], Jp0[has, 0] - Jp0[has, 2], rtol=1e-9)
    assert not r1[~has, 2].any() and not Jc1[~has, 2].any() and not Jp1[~has, 2].any()


def test_epipolar_term_divides_by_the_predicted_spread():
    rng = np.random.default_rng(4)
    pts = rng.uniform([-20.0, -3.0, 8.0], [20.0, 2.0, 60.0], (50, 3))
    T_cur = invert(make_T(so3_exp([0.0, 0.017, 0.0]), [0.05, 0.0, 1.0]))
    x0 = project(K, np.eye(4), pts)[0] + rng.normal(0, 0.5, (50, 2))
    x1 = project(K, T_cur, pts)[0] + rng.normal(0, 0.5, (50, 2))
    plain = EpipolarTerm.from_pixels(np.eye(4), x0, x1, K)
    eye = np.tile(np.eye(2), (50, 1, 1))
    same = EpipolarTerm.from_pixels(np.eye(4), x0, x1, K, eye, eye)
    np.testing.assert_allclose(same.residuals_px(T_cur), plain.residuals_px(T_cur), rtol=1e-9)
    quad = EpipolarTerm.from_pixels(np.eye(4), x0, x1, K, 4 * eye, 4 * eye)
    np.testing.assert_allclose(quad.residuals_px(T_cur), plain.residuals_px(T_cur) / 2, rtol=1e-9)
    kept = quad.select(np.arange(50) < 10)
    assert len(kept) == 10 and kept.cov_cur.shape == (10, 2, 2)


@pytest.mark.parametrize("mode", ["mono", "stereo"])
def test_frontend_weighs_keypoints_by_their_covariances(mode):
    """End to end (map frontend, exact ground truth): a third of the points are 2 px noisy
    along x and their keypoints say so; the per-frame rotation error falls with the weights."""
    from frontend_scene import INTRINSICS, SceneBackend, drive_poses, road_scene

    from tpr_vo.config import VoConfig, replace
    from tpr_vo.eval.rpe import compute_rpe
    from tpr_vo.frontend import VisualOdometry

    poses = drive_poses(25)
    rot = {}
    for weigh in (False, True):
        backend = SceneBackend(road_scene(1800), poses, noise_px=0.2, noisy_fraction=0.35,
                               noisy_px=2.0)  # fmt: skip
        cfg = replace(VoConfig(), **{
            "frontend.mode": mode, "frontend.scale": "gt" if mode == "mono" else "none",
            "frontend.stereo_subpixel": False, "frontend.road_scale": False,
            "frontend.keypoint_covariance": weigh,
            # A threshold above the noisy keypoints' 2 px keeps them inliers, so only the
            # weights can discount them (at 1 px the gating alone drops many of them).
            "frontend.pnp_threshold_px": 2.0,
        })  # fmt: skip
        vo = VisualOdometry(cfg, INTRINSICS, backend=backend)
        est = []
        for i in range(len(poses)):
            step = float(np.linalg.norm(poses[i, :3, 3] - poses[i - 1, :3, 3])) if i else 0.0
            right = backend.image(i, right=True) if mode == "stereo" else None
            out = vo.process_frame(backend.image(i), 0.1 * i, right, step_length_m=step)
            assert out.tracked or i == 0
            est.append(out.T_world_cam)
        rot[weigh] = float(compute_rpe(poses, np.stack(est)).rot_errors_deg.mean())
    assert rot[True] < 0.7 * rot[False], rot


def test_the_2x2_helpers_equal_einsum():
    from tpr_vo.geometry.whitening import apply_2x2, quadratic_form_2x2

    rng = np.random.default_rng(5)
    M = rng.normal(size=(6, 2, 2))
    for x in (rng.normal(size=(6, 2)), rng.normal(size=(6, 2, 6))):
        np.testing.assert_allclose(apply_2x2(M, x), np.einsum("nij,nj...->ni...", M, x))
    S = M @ M.transpose(0, 2, 1)
    v = rng.normal(size=(6, 12, 2))
    np.testing.assert_allclose(quadratic_form_2x2(v, S), np.einsum("npi,nij,npj->np", v, S, v))


def test_structure_tensor_covariance_of_a_corner_an_edge_and_a_flat_patch():
    from tpr_vo.config import FeaturesConfig
    from tpr_vo.features.classical import ClassicalBackend, structure_tensor_covariance_px2

    image = np.full((60, 120), 60, np.uint8)
    image[20:, 20:40] = 200  # a corner at (20, 20)
    image[:, 80:] = 200  # a vertical edge at x = 80
    kps = np.array([[20.0, 20.0], [80.0, 40.0], [55.0, 45.0]])  # corner, edge, flat
    corner, edge, flat = structure_tensor_covariance_px2(image, kps, 0.01, 1e-4)
    assert np.all(np.linalg.eigvalsh([corner, edge, flat]) > 0)
    assert corner[0, 0] < 0.1 and corner[1, 1] < 0.1  # pinned in both directions
    assert edge[0, 0] < 0.1 < 10 * edge[0, 0] < edge[1, 1]  # free along the edge (y) only
    assert flat[0, 0] > 10 * corner[0, 0] and flat[1, 1] > 10 * corner[1, 1]
    # Noise can make no covariance indefinite, and the backends attach one per keypoint.
    noisy = np.random.default_rng(0).integers(0, 256, (80, 100), dtype=np.uint8)
    pts = np.random.default_rng(1).uniform([0, 0], [99, 79], (500, 2))
    cov = structure_tensor_covariance_px2(noisy, pts, 0.0, 1e-4)
    assert np.all(np.linalg.eigvalsh(cov.astype(np.float64)) > 0)
    f = ClassicalBackend(FeaturesConfig(kind="sift")).extract(noisy)
    assert len(f) > 10 and f.keypoint_cov_px2.shape == (len(f), 2, 2)


@pytest.mark.parametrize(
    "overrides, computed",
    [
        ({}, True),
        ({"frontend.keypoint_covariance": False}, False),
        ({"frontend.kind": "f2f"}, False),  # the frame-to-frame chain reads no covariance
    ],
)
def test_classical_covariances_are_computed_only_when_the_frontend_reads_them(overrides, computed):
    from tpr_vo.config import VoConfig, replace
    from tpr_vo.frontend import VisualOdometry
    from tpr_vo.types import CameraIntrinsics

    cfg = replace(VoConfig(), **{"features.kind": "orb", **overrides})
    vo = VisualOdometry(cfg, CameraIntrinsics(200.0, 200.0, 80.0, 60.0, 160, 120))
    image = np.random.default_rng(2).integers(0, 256, (120, 160), dtype=np.uint8)
    f = vo.backend.extract(image)
    assert len(f) > 10
    assert (f.keypoint_cov_px2 is not None) == computed
    if computed:
        assert f.keypoint_cov_px2.shape == (len(f), 2, 2)
