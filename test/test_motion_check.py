"""The two-view cross-check of weak monocular PnP poses (tpr_vo.motion_check) on a synthetic
scene with exact ground truth: a correct pose is kept, a corrupted one is replaced by the
essential-matrix motion with the predicted step length, and a wrong two-view motion loses the
tie-break against the constant-velocity prediction."""

from __future__ import annotations

import numpy as np

from tpr_vo.config import VoConfig
from tpr_vo.geometry.se3 import invert, make_T, rotation_angle_deg, so3_exp
from tpr_vo.geometry.triangulation import project
from tpr_vo.motion_check import check_against_two_view, match_two_views
from tpr_vo.types import Features

K = np.array([[700.0, 0.0, 620.0], [0.0, 700.0, 190.0], [0.0, 0.0, 1.0]])


def _features(T_cam_world, points_w, rng):
    uv, _ = project(K, T_cam_world, points_w)
    uv = uv + rng.normal(0, 0.3, uv.shape)
    desc = np.eye(len(points_w), 64, dtype=np.float32)  # unique descriptor per point
    desc = desc + 0.01 * rng.normal(size=desc.shape).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    return Features(uv.astype(np.float32), np.ones(len(uv), np.float32), desc)


def _two_views():
    rng = np.random.default_rng(3)
    points_w = rng.uniform([-15, -4, 6], [15, 3, 60], (64, 3))
    T_world_prev = np.eye(4)
    # Forward 1.2 m with a 1 degree yaw, the camera looking along +z.
    T_world_cur = make_T(so3_exp([0.0, np.radians(1.0), 0.0]), [0.05, 0.0, 1.2])
    prev = _features(invert(T_world_prev), points_w, rng)
    cur = _features(invert(T_world_cur), points_w, rng)
    return prev, cur, T_world_prev, T_world_cur


def _rotation_error_deg(T_a, T_b):
    return rotation_angle_deg(T_a[:3, :3].T @ T_b[:3, :3])


def _direction_error_deg(T_prev, T_est, T_true):
    a, b = T_est[:3, 3] - T_prev[:3, 3], T_true[:3, 3] - T_prev[:3, 3]
    return np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))


def _pairs(prev, cur):
    pairs = match_two_views(VoConfig(), prev, cur, np.random.default_rng(1))
    assert pairs is not None
    return pairs


def test_consistent_pnp_pose_is_kept():
    prev, cur, T_prev, T_cur = _two_views()
    rng = np.random.default_rng(0)
    res = check_against_two_view(VoConfig(), K, _pairs(prev, cur), T_prev, T_cur, T_cur, rng)
    assert res is not None and not res.replaced
    assert np.array_equal(res.T_map_cur, T_cur)
    assert res.rotation_diff_deg < 0.2


def test_corrupted_pnp_pose_is_replaced_by_the_two_view_motion():
    prev, cur, T_prev, T_cur = _two_views()
    # A PnP failure like the one seen on KITTI 06: 3 degrees of rotation, direction sideways.
    T_bad = make_T(so3_exp([0.0, np.radians(4.0), 0.0]), [0.8, 0.0, 0.3])
    # The prediction: right direction, 2 % long (a constant-velocity model is never exact).
    T_pred = make_T(T_cur[:3, :3], 1.02 * T_cur[:3, 3])
    rng = np.random.default_rng(0)
    res = check_against_two_view(VoConfig(), K, _pairs(prev, cur), T_prev, T_bad, T_pred, rng)
    assert res is not None and res.replaced
    assert res.rotation_diff_deg > 2.0
    assert _rotation_error_deg(res.T_map_cur, T_cur) < 0.2
    assert _direction_error_deg(T_prev, res.T_map_cur, T_cur) < 2.0
    step = np.linalg.norm(res.T_map_cur[:3, 3] - T_prev[:3, 3])
    assert abs(step - np.linalg.norm(T_pred[:3, 3])) < 1e-9  # the prediction's length


def test_wrong_two_view_motion_loses_to_the_motion_model():
    prev, cur, T_prev, T_cur = _two_views()
    rng = np.random.default_rng(0)
    # Swapped views: the two-view motion is the inverse (backwards, -1 degree); PnP is right.
    res = check_against_two_view(VoConfig(), K, _pairs(cur, prev), T_prev, T_cur, T_cur, rng)
    assert res is not None and not res.replaced
    assert res.direction_diff_deg > 90.0
    assert np.array_equal(res.T_map_cur, T_cur)


def test_no_parallax_gives_no_verdict():
    prev, _, T_prev, T_cur = _two_views()
    rng = np.random.default_rng(0)
    pairs = _pairs(prev, prev)
    assert check_against_two_view(VoConfig(), K, pairs, T_prev, T_cur, T_cur, rng) is None
