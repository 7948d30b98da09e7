"""Metric scale for monocular VO from the known camera height above a road plane.

Points triangulated (in any consistent scale) and expressed in the current camera's optical frame
(x right, y down, z forward) are searched for a plane below the camera whose normal is close to
the camera's y axis; the camera-to-plane distance in map units against the known height in metres
gives the scale factor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroundPlane:
    """normal_cam: (3,) unit normal pointing down (+y-ish), distance: camera-to-plane distance in
    map units, num_inliers of the fit, inlier_ratio among candidate points."""

    normal_cam: np.ndarray
    distance: float
    num_inliers: int
    inlier_ratio: float


def fit_ground_plane(
    points_cam: np.ndarray,
    rng: np.random.Generator,
    max_normal_angle_deg: float = 15.0,
    inlier_fraction_of_height: float = 0.05,
    iterations: int = 200,
    min_points: int = 15,
    max_lateral: float = 3.0,
) -> GroundPlane | None:
    """RANSAC plane fit to candidate ground points: below the camera (y > 0), in front (z > 0) and
    within a lateral band (|x| < max_lateral * typical height). Returns None without a plausible
    plane. Inlier threshold scales with the median candidate height, so units do not matter."""
    p = np.asarray(points_cam, dtype=np.float64)
    if len(p) < min_points:
        return None
    below = (p[:, 1] > 0) & (p[:, 2] > 0)
    p = p[below]
    if len(p) < min_points:
        return None
    h_med = float(np.median(p[:, 1]))
    cand = p[(np.abs(p[:, 0]) < max_lateral * h_med) & (p[:, 1] > 0.3 * h_med)]
    if len(cand) < min_points:
        return None
    # Keep the lowest part of the scene: the road is below most other structure.
    threshold = inlier_fraction_of_height * h_med
    cos_max = np.cos(np.radians(max_normal_angle_deg))
    best_count, best_mask = 0, None
    n = len(cand)
    for _ in range(iterations):
        idx = rng.choice(n, 3, replace=False)
        a, b, c = cand[idx]
        normal = np.cross(b - a, c - a)
        norm = np.linalg.norm(normal)
        if norm < 1e-12:
            continue
        normal /= norm
        if normal[1] < 0:
            normal = -normal
        if normal[1] < cos_max:
            continue
        d = float(normal @ a)
        if d <= 0:
            continue
        mask = np.abs(cand @ normal - d) < threshold
        count = int(mask.sum())
        if count > best_count:
            best_count, best_mask = count, mask
    if best_mask is None or best_count < min_points:
        return None
    # Least-squares refit on the inliers (smallest singular vector of centred points).
    inl = cand[best_mask]
    centroid = inl.mean(0)
    _, _, vt = np.linalg.svd(inl - centroid)
    normal = vt[2]
    if normal[1] < 0:
        normal = -normal
    if normal[1] < cos_max:
        return None
    distance = float(normal @ centroid)
    if not np.isfinite(distance) or distance <= 0:
        return None
    return GroundPlane(normal, distance, best_count, best_count / len(cand))


def height_scale(
    points_cam: np.ndarray, camera_height_m: float, rng: np.random.Generator
) -> float | None:
    """Multiplier that turns map units into metres, or None when no ground plane is found."""
    plane = fit_ground_plane(points_cam, rng)
    if plane is None:
        return None
    return camera_height_m / plane.distance
