"""Sliding-window local bundle adjustment of the map's most recent keyframes.

gather the window's observations -> keep points seen by two or more keyframes -> fix the gauge
(the oldest keyframe for stereo, the two oldest for monocular so scale is fixed too) -> BA
(geometry.bundle_adjustment) -> write poses and points back, forget outlier observations.
"""

from __future__ import annotations

import logging

import numpy as np

from tpr_vo.geometry.bundle_adjustment import BaProblem, bundle_adjust
from tpr_vo.geometry.se3 import invert
from tpr_vo.local_map import LocalMap

log = logging.getLogger(__name__)


def adjust_window(
    local_map: LocalMap, window: int, K: np.ndarray, baseline: float, huber_px: float
) -> None:
    """Refine the last `window` keyframes and their points in place. `baseline` > 0 adds the
    stereo right-image residual (map units)."""
    kfs = local_map.keyframes[-window:]
    if len(kfs) < 2:
        return
    cams, rows, px, rx, kp_of, wh = [], [], [], [], [], []
    for c, kf in enumerate(kfs):
        r = local_map.rows_of(kf.point_ids)
        ok = np.flatnonzero((kf.point_ids >= 0) & (r >= 0))
        cams.append(np.full(len(ok), c))
        rows.append(r[ok])
        px.append(kf.keypoints_px[ok])
        rx.append(kf.right_x_px[ok])
        kp_of.append(ok)
        wh.append(np.broadcast_to(np.eye(2), (len(ok), 2, 2)) if kf.whiten_2x2 is None
                  else kf.whiten_2x2[ok])  # fmt: skip
    rows_all = np.concatenate(rows)
    # Only points seen by two or more window keyframes constrain the poses; a point seen
    # once is free along its ray, which makes its 3x3 block singular.
    uniq_all, counts = np.unique(rows_all, return_counts=True)
    multi = np.isin(rows_all, uniq_all[counts >= 2])
    if multi.sum() < 20:
        return
    start = 0
    for c in range(len(kfs)):
        n = len(rows[c])
        sel = multi[start : start + n]
        cams[c], rows[c], px[c], rx[c] = cams[c][sel], rows[c][sel], px[c][sel], rx[c][sel]
        kp_of[c], wh[c] = kp_of[c][sel], wh[c][sel]
        start += n
    rows_all = np.concatenate(rows)
    uniq, obs_pt = np.unique(rows_all, return_inverse=True)
    num_fixed = 1 if (baseline > 0 or len(kfs) == 2) else 2
    fixed = np.zeros(len(kfs), bool)
    fixed[:num_fixed] = True
    if fixed.all():
        return
    prob = BaProblem(
        poses_cw=np.stack([invert(kf.T_world_cam) for kf in kfs]),
        fixed=fixed,
        points_w=local_map.points_w[uniq],
        obs_cam=np.concatenate(cams),
        obs_pt=obs_pt,
        obs_px=np.concatenate(px),
        obs_right_x=np.concatenate(rx),
        K=K,
        baseline=baseline,
        obs_whiten=None if all(kf.whiten_2x2 is None for kf in kfs) else np.concatenate(wh),
    )
    res = bundle_adjust(prob, huber_px=huber_px)
    log.debug(
        "local BA: %d keyframes, %d points, %d observations, rms %.2f -> %.2f px",
        len(kfs),
        len(uniq),
        len(obs_pt),
        res.initial_rms_px,
        res.final_rms_px,
    )
    if not (np.all(np.isfinite(res.poses_cw)) and np.all(np.isfinite(res.points_w))):
        return
    local_map.points_w[uniq] = res.points_w
    for c, kf in enumerate(kfs):
        kf.T_world_cam = invert(res.poses_cw[c])
    start = 0
    for c, kf in enumerate(kfs):  # forget observations BA found to be outliers
        n = len(kp_of[c])
        bad = ~res.inlier_obs[start : start + n]
        kf.point_ids[kp_of[c][bad]] = -1
        start += n
