"""The plain frame-to-frame chain (`frontend.kind = "f2f"`): match against the last tracked frame,
5-point essential matrix + RANSAC, recoverPose, then a scale per step (gt / none / height).
Kept as the research baseline the local-map frontend is compared against."""

from __future__ import annotations

import logging
import time

import numpy as np

from tpr_vo.config import VoConfig
from tpr_vo.geometry.essential import estimate_relative_pose
from tpr_vo.geometry.pnp import pose_covariance
from tpr_vo.geometry.scale import height_scale
from tpr_vo.geometry.se3 import invert, make_T
from tpr_vo.geometry.triangulation import triangulate
from tpr_vo.matching import match_descriptors, shuffled_pixel_pairs
from tpr_vo.tracking_types import TrackInput, TrackOutput
from tpr_vo.types import CameraIntrinsics, Features

log = logging.getLogger(__name__)


class FrameToFrameTracker:
    def __init__(self, config: VoConfig, intrinsics: CameraIntrinsics):
        self.cfg = config
        self.K = intrinsics.K
        self.reset()

    def reset(self) -> None:
        self._ref: Features | None = None
        self._T_world_ref = np.eye(4)
        self._gt_length_since_ref = 0.0
        self._last_scale = 1.0
        self._rng = np.random.default_rng(self.cfg.seed)

    def map_points_world(self) -> np.ndarray:
        """(0, 3): the frame-to-frame chain keeps no map."""
        return np.zeros((0, 3))

    def reinitialize(self, T_world_cam: np.ndarray) -> None:
        """Forget the reference frame; the next frame becomes the reference at `T_world_cam`."""
        self._ref = None
        self._T_world_ref = T_world_cam.copy()
        self._gt_length_since_ref = 0.0

    def note_skipped_step(self, step_length_m: float) -> None:
        """A frame without features still moved the camera by this ground-truth length."""
        self._gt_length_since_ref += float(step_length_m)

    def track(self, inp: TrackInput) -> TrackOutput:
        fe = self.cfg.frontend
        if inp.step_length_m is not None:
            self._gt_length_since_ref += float(inp.step_length_m)
        if self._ref is None:
            self._ref = inp.features
            self._T_world_ref = inp.T_world_pred.copy()
            self._gt_length_since_ref = 0.0
            return TrackOutput(
                self._T_world_ref.copy(), "initializing", covariance_6x6=np.eye(6) * 1e-9
            )
        t0 = time.perf_counter()
        m = match_descriptors(self._ref.descriptors, inp.features.descriptors, self.cfg.matching)
        t1 = time.perf_counter()
        out = TrackOutput(None, "lost", num_matches=len(m), matching_ms=(t1 - t0) * 1e3)
        if len(m) < fe.min_inliers:
            out.geometry_ms = (time.perf_counter() - t1) * 1e3
            return out
        _, _, p0, p1, flow = shuffled_pixel_pairs(
            self._ref.keypoints_px, inp.features.keypoints_px, m, self._rng
        )
        if flow < fe.stationary_px:
            # No parallax: the camera did not move (or only imperceptibly); keep the reference.
            out.T_world_cam = self._T_world_ref.copy()
            out.state, out.num_inliers = "tracking", len(m)
            out.covariance_6x6 = np.eye(6) * 1e-6
            out.geometry_ms = (time.perf_counter() - t1) * 1e3
            return out
        rel = estimate_relative_pose(
            p0,
            p1,
            self.K,
            fe.ransac_threshold_px,
            fe.ransac_confidence,
            check_homography=False,
            rng=self._rng,
        )
        if rel is None or rel.num_inliers < fe.min_inliers:
            out.geometry_ms = (time.perf_counter() - t1) * 1e3
            return out
        scale = self._scale(rel, p0, p1)
        T_cur_ref = make_T(rel.R_1_0, rel.t_1_0 * scale)
        out.T_world_cam = self._T_world_ref @ invert(T_cur_ref)
        out.state, out.num_inliers = "tracking", rel.num_inliers
        out.covariance_6x6 = self._covariance(T_cur_ref, p0[rel.inliers], p1[rel.inliers])
        self._ref = inp.features
        self._T_world_ref = out.T_world_cam.copy()
        self._gt_length_since_ref = 0.0
        out.geometry_ms = (time.perf_counter() - t1) * 1e3
        return out

    def _scale(self, rel, p0: np.ndarray, p1: np.ndarray) -> float:
        mode = self.cfg.frontend.scale
        if mode == "gt" and self._gt_length_since_ref > 0:
            self._last_scale = self._gt_length_since_ref
        elif mode == "height":
            tri = triangulate(
                self.K,
                np.eye(4),
                rel.T_1_0,
                p0[rel.inliers],
                p1[rel.inliers],
                max_reproj_px=2.0 * self.cfg.frontend.ransac_threshold_px,
                min_parallax_deg=0.05,
            )
            points_ref = tri.points_w[tri.valid]  # unit baseline, reference camera frame
            s = height_scale(points_ref, self.cfg.frontend.camera_height_m, self._rng)
            if s is not None and np.isfinite(s) and 0 < s < 10 * self.cfg.frontend.max_depth_m:
                self._last_scale = s
        elif mode == "none":
            self._last_scale = 1.0
        return self._last_scale

    def _covariance(self, T_cur_ref, p0, p1) -> np.ndarray:
        tri = triangulate(
            self.K, np.eye(4), T_cur_ref, p0, p1, max_reproj_px=1e9, min_parallax_deg=0
        )
        ok = tri.valid
        if ok.sum() < 6:
            return np.eye(6) * 1e3
        return pose_covariance(T_cur_ref, tri.points_w[ok], p1[ok], self.K)
