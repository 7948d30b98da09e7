"""Scale corrections of a monocular map, applied at keyframes (as factors about the keyframe).

height: the camera's known height above a ground plane fitted to the keyframe's points;
gt: the odometer's path length since the oldest window keyframe (the ground truth's with scale
"gt", the road's with scale "height" and road_scale).
"""

from __future__ import annotations

import numpy as np

from tpr_vo.geometry.scale import fit_ground_plane
from tpr_vo.geometry.se3 import invert, transform_points
from tpr_vo.local_map import Keyframe, LocalMap

MAX_FACTOR = 2.0  # a single correction is clamped to [1/MAX_FACTOR, MAX_FACTOR]


def height_scale_factor(
    local_map: LocalMap, kf: Keyframe, camera_height_m: float, rng: np.random.Generator
) -> float | None:
    """Factor that puts the ground plane under `kf` at `camera_height_m`; None without a plane.
    Clamped rather than rejected: a map that starts far off (no plane at initialisation) still
    converges in a few keyframes, while one bad fit moves the scale by at most the clamp."""
    rows = local_map.rows_of(kf.point_ids[kf.point_ids >= 0])
    rows = rows[rows >= 0]
    pts_cam = transform_points(invert(kf.T_world_cam), local_map.points_w[rows])
    plane = fit_ground_plane(pts_cam, rng)
    if plane is None:
        return None
    ratio = camera_height_m / plane.distance
    if not np.isfinite(ratio):
        return None
    return float(np.clip(ratio, 1.0 / MAX_FACTOR, MAX_FACTOR))


def gt_scale_factor(local_map: LocalMap, kf: Keyframe) -> float | None:
    """Factor that makes the map distance from the oldest window keyframe to `kf` equal the
    odometer's (ground-truth or road-measured) path length between them, so monocular scale
    drift cannot shrink the map until tracking breaks. The map distance is a chord; on a car it
    differs from the path length by well under 1 % over a window of a few metres."""
    refs = [k for k in local_map.keyframes[:-1] if np.isfinite(k.odometer_m)]
    if not refs or not np.isfinite(kf.odometer_m):
        return None
    ref = refs[0]
    gt_length = kf.odometer_m - ref.odometer_m
    map_length = float(np.linalg.norm(kf.T_world_cam[:3, 3] - ref.T_world_cam[:3, 3]))
    if gt_length <= 0 or map_length <= 1e-9:
        return None
    return float(np.clip(gt_length / map_length, 1.0 / MAX_FACTOR, MAX_FACTOR))
