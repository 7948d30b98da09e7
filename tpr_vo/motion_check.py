"""Two-view cross-check of a monocular PnP pose (`frontend.essential_check`).

A monocular map can be corrupted by one bad pose: a weak PnP (few inliers, repetitive texture)
becomes a keyframe, its triangulated points agree with the wrong pose, and the error compounds
(on KITTI 06 a direction flip and a 4x scale collapse followed). The essential matrix between the
previous tracked frame and the current one does not depend on the map, so it cannot inherit that
damage. When the PnP result is weak, both are compared. If they disagree, the constant-velocity
prediction breaks the tie (the two-view motion can be wrong too, e.g. the bas-relief ambiguity
with weak features): when the two-view motion is closer to it, the two-view rotation and
direction replace the PnP step (its length comes from the constant-velocity model, in map units)
and the frame is not used as a keyframe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpr_vo.config import VoConfig
from tpr_vo.geometry.essential import estimate_relative_pose
from tpr_vo.geometry.se3 import angle_between_deg, invert, make_T, rotation_angle_deg
from tpr_vo.geometry.triangulation import warp_points
from tpr_vo.matching import match_descriptors, match_guided, shuffled_pixel_pairs
from tpr_vo.types import Features

GUIDED_RADIUS_PX = 60.0  # rotation-guided 2D-2D search radius
CHECK_BELOW_INLIERS = 150  # PnP results with fewer inliers are cross-checked
MAX_ROTATION_DIFF_DEG = 0.3  # PnP vs two-view relative rotation
MAX_DIRECTION_DIFF_DEG = 5.0  # PnP vs two-view translation direction


@dataclass(frozen=True)
class TwoViewPairs:
    """Matched pixels of the previous and the current frame, (M, 2) each, in a seeded random
    order, their median displacement, and the matched keypoints' indices (M,) in each frame."""

    prev_px: np.ndarray
    cur_px: np.ndarray
    median_flow_px: float
    prev_index: np.ndarray
    cur_index: np.ndarray


def match_two_views(
    cfg: VoConfig,
    prev: Features,
    cur: Features,
    rng: np.random.Generator,
    K: np.ndarray | None = None,
    R_cur_prev: np.ndarray | None = None,
) -> TwoViewPairs | None:
    """Matches prev -> cur, or None when there are too few to estimate a motion. Brute force;
    or, given the rotation `R_cur_prev` (and K), each previous keypoint is matched among the
    current keypoints near where the rotation alone moves it (the infinite homography
    K R K^-1), within GUIDED_RADIUS_PX: translation moves distant points little."""
    if R_cur_prev is None or K is None:
        m = match_descriptors(prev.descriptors, cur.descriptors, cfg.matching)
    else:
        predicted = warp_points(K @ R_cur_prev @ np.linalg.inv(K), prev.keypoints_px)
        m = match_guided(
            prev.descriptors,
            predicted,
            cur.descriptors,
            cur.keypoints_px,
            GUIDED_RADIUS_PX,
            cfg.matching,
        )
    if len(m) < max(cfg.frontend.min_inliers, 30):
        return None
    ia, ib, p0, p1, flow = shuffled_pixel_pairs(prev.keypoints_px, cur.keypoints_px, m, rng)
    return TwoViewPairs(p0, p1, flow, ia, ib)


@dataclass
class CheckResult:
    T_map_cur: np.ndarray
    replaced: bool
    rotation_diff_deg: float
    direction_diff_deg: float


def check_against_two_view(
    cfg: VoConfig,
    K: np.ndarray,
    pairs: TwoViewPairs,
    T_map_prev: np.ndarray,
    T_map_cur: np.ndarray,
    T_map_pred: np.ndarray,
    rng: np.random.Generator,
) -> CheckResult | None:
    """Compare the PnP pose `T_map_cur` with the essential-matrix motion of `pairs`, and on
    disagreement pick the one closer to the constant-velocity prediction `T_map_pred` (whose
    step length, in map units, the two-view motion takes). None when the two-view motion
    cannot be estimated (then the PnP pose stands)."""
    fe = cfg.frontend
    if pairs.median_flow_px < fe.stationary_px:
        return None  # no parallax: the essential matrix is undefined
    rel = estimate_relative_pose(
        pairs.prev_px,
        pairs.cur_px,
        K,
        fe.ransac_threshold_px,
        fe.ransac_confidence,
        check_homography=False,
        rng=rng,
    )
    if rel is None or rel.num_inliers < max(fe.min_inliers, 30):
        return None
    T_pnp = invert(T_map_cur) @ T_map_prev  # p_cur = T @ p_prev
    T_pred = invert(T_map_pred) @ T_map_prev
    rot_diff, dir_diff = _disagreement(T_pnp, rel.R_1_0, rel.t_1_0)
    if rot_diff <= MAX_ROTATION_DIFF_DEG and dir_diff <= MAX_DIRECTION_DIFF_DEG:
        return CheckResult(T_map_cur, False, rot_diff, dir_diff)
    # Tie-break with the motion model, in units of the agreement thresholds.
    pnp_off = _disagreement(T_pred, T_pnp[:3, :3], T_pnp[:3, 3])
    two_view_off = _disagreement(T_pred, rel.R_1_0, rel.t_1_0)
    if _normalised(two_view_off) >= _normalised(pnp_off):
        return CheckResult(T_map_cur, False, rot_diff, dir_diff)
    step_length = float(np.linalg.norm(T_pred[:3, 3]))
    T_cur_prev = make_T(rel.R_1_0, rel.t_1_0 * step_length)
    return CheckResult(T_map_prev @ invert(T_cur_prev), True, rot_diff, dir_diff)


def _disagreement(T_a: np.ndarray, R_b: np.ndarray, t_b: np.ndarray) -> tuple[float, float]:
    """Rotation angle and translation-direction angle (degrees) between two motions."""
    return rotation_angle_deg(T_a[:3, :3].T @ R_b), angle_between_deg(T_a[:3, 3], t_b)


def _normalised(diffs: tuple[float, float]) -> float:
    return diffs[0] / MAX_ROTATION_DIFF_DEG + diffs[1] / MAX_DIRECTION_DIFF_DEG
