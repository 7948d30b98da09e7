"""Monocular map scale corrections (tpr_vo.map_scale) with known answers."""

from __future__ import annotations

import numpy as np

from tpr_vo.geometry.se3 import make_T
from tpr_vo.local_map import Keyframe, LocalMap
from tpr_vo.map_scale import gt_scale_factor, height_scale_factor


def _keyframe(z_m: float, odometer_m: float = float("nan"), ids=None) -> Keyframe:
    ids = np.zeros(0, np.int64) if ids is None else np.asarray(ids, np.int64)
    n = len(ids)
    return Keyframe(
        0,
        make_T(np.eye(3), [0.0, 0.0, z_m]),
        np.zeros((n, 2)),
        np.zeros((n, 32), np.uint8),
        ids,
        np.full(n, np.nan),
        odometer_m=odometer_m,
    )


def test_gt_factor_restores_the_ground_truth_length():
    m = LocalMap(100, 10)
    m.add_keyframe(_keyframe(0.0, odometer_m=10.0))
    m.add_keyframe(_keyframe(0.6, odometer_m=11.2))
    kf = _keyframe(1.0, odometer_m=12.4)  # the map says 1.0, ground truth says 2.4 ...
    m.add_keyframe(kf)
    assert gt_scale_factor(m, kf) == 2.0  # ... but one correction is clamped to 2x
    kf.odometer_m = 11.5
    assert abs(gt_scale_factor(m, kf) - 1.5) < 1e-12


def test_gt_factor_needs_odometry():
    m = LocalMap(100, 10)
    m.add_keyframe(_keyframe(0.0))
    kf = _keyframe(1.0)
    m.add_keyframe(kf)
    assert gt_scale_factor(m, kf) is None


def test_height_factor_from_a_ground_plane():
    rng = np.random.default_rng(0)
    # Road points 0.825 m below a camera looking along +z (y down): half the 1.65 m height.
    xz = rng.uniform([-6, 4], [6, 30], (300, 2))
    road = np.column_stack([xz[:, 0], np.full(300, 0.825), xz[:, 1]])
    m = LocalMap(1000, 10)
    ids = m.add_points(road, np.zeros((300, 32), np.uint8), 0)
    kf = _keyframe(0.0, ids=ids)
    m.add_keyframe(kf)
    factor = height_scale_factor(m, kf, 1.65, rng)
    assert factor is not None and abs(factor - 2.0) < 0.02


def test_ground_truth_motion_overrides_a_still_looking_frame():
    # Seen on KITTI 06 with a weaker TPR checkpoint: 38 matches that barely moved declared the
    # frame stationary although the ground truth had moved the car 1.2 m; with scale "gt" the
    # output step then had zero length and the constant-velocity model froze.
    from tpr_vo.config import VoConfig, replace
    from tpr_vo.map_tracker import MapTracker
    from tpr_vo.types import CameraIntrinsics

    intr = CameraIntrinsics(700.0, 700.0, 320.0, 240.0, 640, 480)
    for scale, step_m, moving in (("gt", 1.2, True), ("gt", 0.0, False), ("none", 0.0, False)):
        tracker = MapTracker(replace(VoConfig(), **{"frontend.scale": scale}), intr)
        tracker._gt_since_track = step_m
        assert tracker._gt_says_moving() is moving
