"""The two-view epipolar term of the motion-only refinement (tpr_vo.geometry.epipolar_term):
known-answer checks of the residual and Jacobian, and a thin, noisy map (as a monocular map is
under forward motion) where adding the 2D-2D matches to the previous frame recovers the
rotation that PnP alone gets wrong."""

from __future__ import annotations

import numpy as np

from tpr_vo.geometry.epipolar_term import EpipolarTerm
from tpr_vo.geometry.pnp import refine_with_inliers
from tpr_vo.geometry.se3 import invert, make_T, rotation_angle_deg, so3_exp
from tpr_vo.geometry.triangulation import project

K = np.array([[718.0, 0.0, 607.0], [0.0, 718.0, 185.0], [0.0, 0.0, 1.0]])
# Previous camera at the origin; the current one 1 m forward, 1 degree of yaw (KITTI-like).
T_PREV_WORLD = np.eye(4)
T_CUR_WORLD = invert(make_T(so3_exp([0.0, np.radians(1.0), 0.0]), [0.05, 0.0, 1.0]))


def _points(rng, n):
    return rng.uniform([-20.0, -3.0, 8.0], [20.0, 2.0, 60.0], (n, 3))


def _pixels(T, points, rng, noise_px):
    uv, _ = project(K, T, points)
    return uv + rng.normal(0.0, noise_px, uv.shape)


def test_residuals_vanish_at_the_true_pose_and_the_jacobian_predicts_a_step():
    rng = np.random.default_rng(0)
    pts = _points(rng, 200)
    term = EpipolarTerm.from_pixels(
        T_PREV_WORLD, _pixels(T_PREV_WORLD, pts, rng, 0.0), _pixels(T_CUR_WORLD, pts, rng, 0.0), K
    )
    assert np.abs(term.residuals_px(T_CUR_WORLD)).max() < 1e-6
    delta = np.array([0.0, 0.0, 0.0, 1e-4, -2e-4, 1e-4])
    T = make_T(so3_exp(delta[3:]), delta[:3]) @ T_CUR_WORLD
    predicted = term.jacobian(T_CUR_WORLD) @ delta
    assert np.allclose(term.residuals_px(T), predicted, atol=2e-3)
    assert np.abs(predicted).max() > 0.05  # the step is visible in pixels
    # No translation relative to the previous camera: E is undefined, residuals are zero.
    assert not term.residuals_px(T_PREV_WORLD).any()


def test_two_view_matches_fix_the_rotation_of_a_thin_noisy_map():
    rotation_errors = {"pnp": [], "joint": []}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        # A thin map: 30 points whose triangulated depth is 6 % off (little parallax).
        map_true = _points(rng, 30)
        map_noisy = map_true * rng.normal(1.0, 0.06, (30, 1))
        obs = _pixels(T_CUR_WORLD, map_true, rng, 0.5)
        # 500 2D-2D matches between the previous and the current frame.
        pts = _points(rng, 500)
        term = EpipolarTerm.from_pixels(
            T_PREV_WORLD,
            _pixels(T_PREV_WORLD, pts, rng, 0.5),
            _pixels(T_CUR_WORLD, pts, rng, 0.5),
            K,
        )
        for name, epipolar in (("pnp", None), ("joint", term)):
            res = refine_with_inliers(T_CUR_WORLD, map_noisy, obs, K, 4.0, 10, epipolar=epipolar)
            assert res is not None
            err = rotation_angle_deg(res.T_cam_world[:3, :3] @ T_CUR_WORLD[:3, :3].T)
            rotation_errors[name].append(err)
    pnp, joint = np.mean(rotation_errors["pnp"]), np.mean(rotation_errors["joint"])
    print(f"rotation error: PnP {pnp:.4f} deg, PnP + epipolar {joint:.4f} deg")
    assert joint < 0.6 * pnp
    assert joint < 0.02
