"""Metric step length of a monocular camera from the road in front of it (`frontend.scale:
height` with `frontend.road_scale`).

A road seen by a camera at height h induces the homography H = K (R + (|t| / h) t_hat n^T) K^-1
between two frames, where R and the translation direction t_hat come from the visual odometry and
n is the road normal in the camera frame (from the configured mounting). Only s = |t| / h is
unknown. It is found by a 1-D search that warps the next image onto a patch of road 5-10 camera
heights ahead (8-16 m on KITTI, beyond the car's own shadow, usually closer than traffic) and
minimises 1 - ZNCC, refined by a parabola. The road is nearly textureless for corner detectors, so
few map points lie on it (on KITTI 06 none within 5 m laterally), but asphalt has enough texture
for dense alignment.

The camera's pitch relative to the road shifts every step alike (KITTI's camera looks about 1
degree further down than a level mounting: +8 % in length). So after each accepted step the pitch
is probed: the cost at the pitch +- PITCH_PROBE_RAD (s re-searched near its value) gives a
parabola whose minimum is this frame's pitch estimate, and the pitch in use is the median of the
last PITCH_WINDOW estimates (self-calibration from images only).

A step is rejected (None) when the minimum sits at the end of the search range, when the best
match is poor (ZNCC below MIN_ZNCC), or when the cost curve has no clear dip (something other than
road fills the patch, or the camera barely moved).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

NEAR_HEIGHTS = 5.0  # road patch from this many camera heights ahead ...
FAR_HEIGHTS = 10.0  # ... to this many
LATERAL_HEIGHTS = 1.2  # and this far to each side
GRID_PX = 3  # patch sampling step
MAX_STEP_HEIGHTS = 2.0  # search s = |t| / h in [0, MAX_STEP_HEIGHTS] (3.3 m per frame on KITTI)
SEARCH_STEP = 0.02
MIN_ZNCC = 0.5
MIN_DIP = 0.05  # median cost minus best cost
MIN_PATCH_PIXELS = 200
MIN_STD_GREY = 1.0  # grey-level std of a patch below this: flat, nothing to align
PITCH_PROBE_RAD = np.radians(0.5)
PITCH_WINDOW = 25
PITCH_S_SPAN = 0.1  # s searched within +-10 % of the step's value while probing the pitch
MAX_PITCH_RAD = np.radians(5.0)


@dataclass(frozen=True)
class RoadStep:
    length_m: float
    zncc: float


class RoadScale:
    """Precomputes the road patch for one camera; `step` measures one frame pair."""

    def __init__(
        self,
        K: np.ndarray,
        size_px: tuple[int, int],
        normal_down_cam: np.ndarray,
        camera_height_m: float,
    ):
        self.K = np.asarray(K, np.float64)
        self.K_inv = np.linalg.inv(self.K)
        self.normal = np.asarray(normal_down_cam, np.float64) / np.linalg.norm(normal_down_cam)
        self.height_m = float(camera_height_m)
        w, h = size_px
        us, vs = np.meshgrid(np.arange(0, w, GRID_PX), np.arange(0, h, GRID_PX))
        pix = np.c_[us.ravel(), vs.ravel(), np.ones(us.size)].astype(np.float64)
        rays = pix @ self.K_inv.T
        cos_down = rays @ self.normal
        depth = np.where(cos_down > 1e-6, 1.0 / np.maximum(cos_down, 1e-6), np.inf)
        ground = rays * depth[:, None]  # on the road plane, in camera heights
        roi = (
            (cos_down > 1e-6)
            & (ground[:, 2] > NEAR_HEIGHTS)
            & (ground[:, 2] < FAR_HEIGHTS)
            & (np.abs(ground[:, 0]) < LATERAL_HEIGHTS)
        )
        self.patch_px = pix[roi]  # (P, 3) homogeneous pixels of the previous image
        self._s_grid = np.arange(0.0, MAX_STEP_HEIGHTS + 1e-9, SEARCH_STEP)
        self._pitch_estimates: deque[float] = deque(maxlen=PITCH_WINDOW)
        self.pitch_rad = 0.0  # estimated pitch of the road normal about the camera x axis

    @property
    def usable(self) -> bool:
        return len(self.patch_px) >= MIN_PATCH_PIXELS

    def step(
        self, prev_gray: np.ndarray, cur_gray: np.ndarray, T_cur_prev: np.ndarray
    ) -> RoadStep | None:
        """Length (m) of the translation of `T_cur_prev` (rotation and direction used, length
        ignored), measured on the road; None when the road does not give a clear answer."""
        t = T_cur_prev[:3, 3]
        norm = float(np.linalg.norm(t))
        if not self.usable or norm < 1e-12 or prev_gray.shape != cur_gray.shape:
            return None
        t_hat, R = t / norm, T_cur_prev[:3, :3]
        rows = self.patch_px[:, 1].astype(np.int64)
        cols = self.patch_px[:, 0].astype(np.int64)
        if rows.max() >= prev_gray.shape[0] or cols.max() >= prev_gray.shape[1]:
            return None
        ref = _standardised(prev_gray[rows, cols].astype(np.float32))
        if ref is None:
            return None
        cur = np.asarray(cur_gray, np.float32)
        normal = self._normal(self.pitch_rad)
        cost = self._costs(ref, cur, R, t_hat, normal, self._s_grid)
        k = int(np.argmin(cost))
        if not np.isfinite(cost[k]) or k == 0 or k == len(cost) - 1:
            return None
        if not (np.isfinite(cost[k - 1]) and np.isfinite(cost[k + 1])):
            return None
        if 1.0 - cost[k] < MIN_ZNCC or np.median(cost[np.isfinite(cost)]) - cost[k] < MIN_DIP:
            return None
        s = self._s_grid[k] + SEARCH_STEP * _parabola_offset(cost[k - 1 : k + 2])
        self._probe_pitch(ref, cur, R, t_hat, s)
        return RoadStep(s * self.height_m, 1.0 - float(cost[k]))

    def _normal(self, pitch_rad: float) -> np.ndarray:
        c, sn = np.cos(pitch_rad), np.sin(pitch_rad)
        Rx = np.array([[1.0, 0.0, 0.0], [0.0, c, -sn], [0.0, sn, c]])
        return Rx @ self.normal

    def _costs(self, ref, cur, R, t_hat, normal, s_values) -> np.ndarray:
        """1 - ZNCC of the road patch for each s in `s_values` (inf where it leaves the image)."""
        A = self.K @ R @ self.K_inv  # the s = 0 (rotation-only) part
        B = self.K @ np.outer(t_hat, normal) @ self.K_inv
        base = self.patch_px @ A.T
        slope = self.patch_px @ B.T
        s_col = np.asarray(s_values, np.float64)[:, None]
        # Homogeneous warped pixels, one (S, P) array per component (contiguous, no (S, P, 3)).
        z = base[:, 2] + s_col * slope[:, 2]
        valid_z = z > 1e-6
        inv_z = 1.0 / np.where(valid_z, z, 1.0)
        map_u = ((base[:, 0] + s_col * slope[:, 0]) * inv_z).astype(np.float32)
        map_v = ((base[:, 1] + s_col * slope[:, 1]) * inv_z).astype(np.float32)
        samples = cv2.remap(
            cur,
            map_u,
            map_v,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=-1.0,
        )  # (S, P)
        # ZNCC of ref with each row's samples over that row's inside pixels, all rows at once.
        inside = (valid_z & (samples >= 0.0)).astype(np.float64)
        n = inside.sum(axis=1)
        n_safe = np.maximum(n, 1.0)
        mean_b = (samples * inside).sum(axis=1) / n_safe
        centred = (samples - mean_b[:, None]) * inside
        std_b = np.sqrt((centred * centred).sum(axis=1) / n_safe)
        zncc = (centred @ ref) / (n_safe * np.maximum(std_b, 1e-12))
        usable = (n >= 0.9 * inside.shape[1]) & (std_b >= MIN_STD_GREY)
        return np.where(usable, 1.0 - zncc, np.inf)

    def _probe_pitch(self, ref, cur, R, t_hat, s: float) -> None:
        """The best cost over s near its value at the pitch in use and +- the probe."""
        s_values = s * np.linspace(1.0 - PITCH_S_SPAN, 1.0 + PITCH_S_SPAN, 21)
        curve = np.array(
            [
                _interpolated_min(self._costs(ref, cur, R, t_hat, self._normal(pitch), s_values))
                for pitch in self.pitch_rad + PITCH_PROBE_RAD * np.array([-1.0, 0.0, 1.0])
            ]
        )
        if not np.all(np.isfinite(curve)):
            return
        estimate = self.pitch_rad + PITCH_PROBE_RAD * _parabola_offset(curve)
        self._pitch_estimates.append(estimate)
        self.pitch_rad = float(
            np.clip(np.median(self._pitch_estimates), -MAX_PITCH_RAD, MAX_PITCH_RAD)
        )


def _interpolated_min(cost: np.ndarray) -> float:
    """Minimum of a sampled cost curve, refined by a parabola through the best sample and its
    neighbours (a coarse grid would otherwise add its own jitter to the comparison)."""
    k = int(np.argmin(cost))
    if 0 < k < len(cost) - 1 and np.all(np.isfinite(cost[k - 1 : k + 2])):
        c = cost[k - 1 : k + 2]  # c[1] is the smallest, so the vertex lies within one sample
        return float(c[1] - 0.25 * (c[0] - c[2]) * _parabola_offset(c))
    return float(cost[k])


def _parabola_offset(c: np.ndarray) -> float:
    """Sub-sample offset in [-1, 1] of the minimum of a parabola through 3 equally spaced
    costs (0 when they are not convex); beyond +-1 the minimum lies outside, so it is clipped."""
    curvature = c[0] - 2.0 * c[1] + c[2]
    if not curvature > 0:
        return 0.0 if c[0] == c[2] else float(np.sign(c[0] - c[2]))
    return float(np.clip(0.5 * (c[0] - c[2]) / curvature, -1.0, 1.0))


def _standardised(values: np.ndarray) -> np.ndarray | None:
    std = float(values.std())
    if std < MIN_STD_GREY:
        return None
    return (values - values.mean()) / std
