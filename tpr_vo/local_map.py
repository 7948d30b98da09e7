"""The bounded local map: 3D points with descriptors and usage statistics, and a sliding window
of keyframes that observe them. Arrays, not objects, so projection and culling are vectorised.

Point ids are stable (monotonic int64); keyframes refer to points by id (-1 = no point)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Keyframe:
    """index: input frame index; T_world_cam: (4, 4); keypoints_px: (N, 2); descriptors: (N, D);
    point_ids: (N,) int64 map point observed by each keypoint (-1 none); right_x_px: (N,) float64
    x of the stereo match in the right image (NaN when none / mono); odometer_m: path length
    travelled up to this frame, from the ground truth (scale "gt") or measured on the road
    (scale "height" with road_scale); NaN otherwise; whiten_2x2: (N, 2, 2) whitening of each
    keypoint's residuals (`geometry.whitening`), or None when its features carry no covariance."""

    index: int
    T_world_cam: np.ndarray
    keypoints_px: np.ndarray
    descriptors: np.ndarray
    point_ids: np.ndarray
    right_x_px: np.ndarray
    num_tracked: int = 0
    odometer_m: float = float("nan")  # path length at this frame (scale "gt" / road), or NaN
    whiten_2x2: np.ndarray | None = None


class LocalMap:
    """Points (M, 3) in the world frame with descriptors (M, D) and statistics for culling."""

    def __init__(self, max_points: int, max_keyframes: int):
        self.max_points = int(max_points)
        self.max_keyframes = int(max_keyframes)
        self.clear()

    def clear(self) -> None:
        self.ids = np.zeros(0, np.int64)
        self.points_w = np.zeros((0, 3))
        self.descriptors: np.ndarray | None = None
        self.visible = np.zeros(0, np.int64)  # times predicted inside the image
        self.found = np.zeros(0, np.int64)  # times matched as a PnP inlier
        self.last_seen = np.zeros(0, np.int64)  # frame index
        self.keyframes: list[Keyframe] = []
        self._next_id = 0

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def add_points(self, points_w: np.ndarray, descriptors: np.ndarray, frame: int) -> np.ndarray:
        """Append points; returns their new ids."""
        n = len(points_w)
        new_ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        self.ids = np.concatenate([self.ids, new_ids])
        self.points_w = np.concatenate([self.points_w, np.asarray(points_w, np.float64)])
        if self.descriptors is None:
            self.descriptors = np.asarray(descriptors).copy()
        else:
            self.descriptors = np.concatenate([self.descriptors, descriptors])
        self.visible = np.concatenate([self.visible, np.ones(n, np.int64)])
        self.found = np.concatenate([self.found, np.ones(n, np.int64)])
        self.last_seen = np.concatenate([self.last_seen, np.full(n, frame, np.int64)])
        return new_ids

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row index of each id, -1 where the point no longer exists (ids stay sorted)."""
        ids = np.asarray(ids, np.int64)
        if len(self.ids) == 0:
            return np.full(ids.shape, -1, np.int64)
        rows = np.searchsorted(self.ids, ids)
        rows = np.clip(rows, 0, len(self.ids) - 1)
        return np.where(self.ids[rows] == ids, rows, -1)

    def add_keyframe(self, kf: Keyframe) -> None:
        self.keyframes.append(kf)
        if len(self.keyframes) > self.max_keyframes:
            del self.keyframes[: len(self.keyframes) - self.max_keyframes]

    def cull(self, frame: int, max_unseen_frames: int = 20, min_found_ratio: float = 0.25) -> int:
        """Drop unreliable, stale and excess points; returns how many were removed."""
        if len(self) == 0:
            return 0
        keep = np.ones(len(self), bool)
        keep &= ~((self.visible >= 4) & (self.found < min_found_ratio * self.visible))
        keep &= frame - self.last_seen <= max_unseen_frames
        if keep.sum() > self.max_points:
            # Bounded map: keep the most recently seen points.
            order = np.argsort(-self.last_seen[keep], kind="stable")
            kept_rows = np.flatnonzero(keep)[order[: self.max_points]]
            keep[:] = False
            keep[kept_rows] = True
        removed = int((~keep).sum())
        if removed:
            self._select(keep)
        return removed

    def scale_about(self, center_w: np.ndarray, factor: float) -> None:
        """Scale the map and keyframe positions about a world point (monocular scale fix)."""
        self.points_w = center_w + factor * (self.points_w - center_w)
        for kf in self.keyframes:
            kf.T_world_cam = kf.T_world_cam.copy()
            kf.T_world_cam[:3, 3] = center_w + factor * (kf.T_world_cam[:3, 3] - center_w)

    def _select(self, keep: np.ndarray) -> None:
        self.ids = self.ids[keep]
        self.points_w = self.points_w[keep]
        self.descriptors = self.descriptors[keep]
        self.visible = self.visible[keep]
        self.found = self.found[keep]
        self.last_seen = self.last_seen[keep]
