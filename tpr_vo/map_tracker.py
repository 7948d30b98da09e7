"""The local-map tracker (`frontend.kind = "map"`), monocular or stereo.

initialise (mono: two views, essential + cheirality + homography check; stereo: one pair)
-> per frame: project the map with the constant-velocity prediction, guided matching,
   PnP-RANSAC + motion-only LM, a second reprojection search
-> mono: a weak PnP pose is checked against the two-view motion (motion_check)
-> scale (mono gt: per-step length from the ground truth; height: per-step length measured on
   the road (road_scale), or without images a ground plane fitted to map points at keyframes)
-> keyframe? (parallax / tracked-ratio drop): triangulate new points, local BA (local_ba),
   scale correction (map_scale), cull.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
from scipy.spatial.transform import Rotation

from tpr_vo.config import VoConfig
from tpr_vo.geometry.epipolar_term import EpipolarTerm
from tpr_vo.geometry.essential import estimate_relative_pose
from tpr_vo.geometry.pnp import (
    PnpResult,
    pose_covariance,
    refine_with_inliers,
    reprojection_residuals,
    solve_pnp,
)
from tpr_vo.geometry.scale import fit_ground_plane
from tpr_vo.geometry.se3 import invert, make_T, transform_points
from tpr_vo.geometry.stereo_refine import refine_right_x
from tpr_vo.geometry.triangulation import project, triangulate, triangulate_stereo
from tpr_vo.geometry.whitening import relative_covariance, whitening_2x2
from tpr_vo.local_ba import adjust_window
from tpr_vo.local_map import Keyframe, LocalMap
from tpr_vo.map_scale import gt_scale_factor, height_scale_factor
from tpr_vo.matching import (
    match_descriptors,
    match_guided,
    match_stereo,
    shuffled_pixel_pairs,
)
from tpr_vo.motion_check import (
    CHECK_BELOW_INLIERS,
    TwoViewPairs,
    check_against_two_view,
    match_two_views,
)
from tpr_vo.road_scale import RoadScale, RoadStep
from tpr_vo.tracking_types import TrackInput, TrackOutput
from tpr_vo.types import CameraIntrinsics, Features

log = logging.getLogger(__name__)

MAX_INIT_WAIT_FRAMES = 10  # a mono init reference older than this is replaced
HOMOGRAPHY_DEGENERATE_RATIO = 0.95  # H-inliers / E-inliers above this: planar or no parallax
MIN_INIT_PARALLAX_POINTS = 50  # triangulated points with parallax >= min_parallax_deg
REFINE_RADIUS_PX = 8.0  # second, tighter reprojection search after the first PnP
TRIANGULATION_KEYFRAMES = 3  # new points are triangulated against this many recent keyframes
STEREO_TRIANGULATION_KEYFRAMES = 0  # stereo maps only take stereo-triangulated points
STEREO_MAX_DEPTH_BASELINES = 80.0  # ~43 m on KITTI; tuned on KITTI 06 ORB (60 and 100 worse)
TRIANGULATION_PARALLAX_FACTOR = 0.5  # of min_parallax_deg for new points (BA refines them)
TRIANGULATION_RATIO = 0.9  # ratio test for new-point matches
HEIGHT_SCALE_GAIN = 0.5  # fraction (log scale) of a ground-plane scale correction per keyframe
GT_SCALE_GAIN = 1.0  # fraction (log scale) of the ground-truth scale correction per keyframe
UPDATE_DESCRIPTORS = True  # a matched map point takes the descriptor of its latest view
JOINT_MIN_INLIER_RATIO = 0.8  # joint refinement kept if it keeps this share of PnP inliers
MIN_MOVING_STEP_M = 0.01  # scale "gt": a longer ground-truth step is motion
UNVERIFIED_MIN_INLIERS = 50  # mono: fewer PnP inliers and no two-view check = untracked
# PnP starts from the motion-model prediction, without RANSAC, when at least this share of the
# guided matches (and 3 x min_inliers) reproject within 2 x pnp_threshold_px of it. KITTI 06,
# seeds 0-7, session-5 model (README.md): TPR stereo ATE 0.044 -> 0.039 m, mono height
# 0.126 -> 0.114, ORB mono height 0.188 -> 0.100, SIFT unchanged; at 0.7 it never fires.
PREDICTED_POSE_MIN_RATIO = 0.3


class MapTracker:
    def __init__(self, config: VoConfig, intrinsics: CameraIntrinsics):
        self.cfg = config
        self.fe = config.frontend
        self.K = intrinsics.K
        self.size_px = (intrinsics.width_px, intrinsics.height_px)
        self.stereo = config.frontend.mode == "stereo"
        # New points need unambiguous matches: a stricter ratio than for tracking.
        self._triangulation_matching = dataclasses.replace(
            config.matching, ratio=min(config.matching.ratio, TRIANGULATION_RATIO)
        )
        self.baseline_m = float(intrinsics.baseline_m or 0.0)
        self._road = None
        if not self.stereo and self.fe.scale == "height" and self.fe.road_scale:
            R_base_cam = Rotation.from_quat(config.camera.base_to_camera_quat_xyzw).as_matrix()
            road = RoadScale(
                self.K, self.size_px, R_base_cam.T @ [0.0, 0.0, -1.0], self.fe.camera_height_m
            )
            self._road = road if road.usable else None
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        self.map = LocalMap(self.fe.max_map_points, max(self.fe.ba_window, 2) + 2)
        self._rng = np.random.default_rng(self.cfg.seed)
        self._initialized = False
        # Mono init reference: frame index, features, predicted pose, image (road scale).
        self._init_ref: tuple[int, Features, np.ndarray, np.ndarray | None] | None = None
        self._gt_since_ref = 0.0
        # Path length so far: ground truth (scale "gt") or the road odometer (road scale).
        self._odometer_m = 0.0
        self._step_hint = 0.0  # typical per-frame translation (map units) for re-init scale
        self._last_ids = np.zeros(0, np.int64)
        self._last_px = np.zeros((0, 2))
        self._prev_features: Features | None = None  # last tracked frame (two-view check)
        self._prev_gray: np.ndarray | None = None  # its image (road scale)
        # Map-frame pose of the last tracked frame and the per-frame motion in the map frame.
        # With scale "gt" the output chain differs from the map frame: it composes the map-frame
        # steps with ground-truth lengths (the map itself is never rescaled per frame).
        self._T_map_last = np.eye(4)
        self._T_map_velocity = np.eye(4)
        self._T_out_last = np.eye(4)
        self._frames_since_track = 0
        self._gt_since_track = 0.0

    def map_points_world(self) -> np.ndarray:
        """(N, 3) float64: the local map's points in the frame of the output poses. With an
        externally scaled output chain (scale "gt", road scale) the map frame drifts from the
        output frame, so the points are moved by the transform that takes the last tracked
        map-frame pose to its output pose: they line up with the current camera."""
        return transform_points(self._T_out_last @ invert(self._T_map_last), self.map.points_w)

    def reinitialize(self, T_world_cam: np.ndarray) -> None:
        """Drop the map; the next frames initialise a new one anchored at the predicted pose."""
        self.map.clear()
        self._initialized = False
        self._init_ref = None
        self._gt_since_ref = 0.0
        self._last_ids = np.zeros(0, np.int64)
        self._prev_features = None

    def note_skipped_step(self, step_length_m: float) -> None:
        self._odometer_m += float(step_length_m)
        self._gt_since_ref += float(step_length_m)
        self._gt_since_track += float(step_length_m)
        self._frames_since_track += 1

    def track(self, inp: TrackInput) -> TrackOutput:
        if inp.step_length_m is not None:
            self._odometer_m += float(inp.step_length_m)
            self._gt_since_ref += float(inp.step_length_m)
            self._gt_since_track += float(inp.step_length_m)
        self._frames_since_track += 1
        if not self._initialized:
            return self._init_stereo(inp) if self.stereo else self._init_mono(inp)
        return self._track_map(inp)

    # -- initialisation ------------------------------------------------------------------------
    def _init_stereo(self, inp: TrackInput) -> TrackOutput:
        t0 = time.perf_counter()
        kf = self._make_keyframe(inp, inp.T_world_pred, self._whitening(inp.features))
        t1 = time.perf_counter()
        added = self._add_stereo_points(kf, inp)
        out = TrackOutput(inp.T_world_pred, "initializing", matching_ms=(t1 - t0) * 1e3)
        if added < self.fe.min_inliers:
            self.map.clear()
            out.T_world_cam = None
            return out
        kf.num_tracked = added
        self.map.add_keyframe(kf)
        self._initialized = True
        self._anchor(inp.T_world_pred, inp.T_world_pred)
        self._remember_observations(kf.point_ids, kf.keypoints_px)
        out.num_inliers = added
        out.covariance_6x6 = np.eye(6) * 1e-9
        out.geometry_ms = (time.perf_counter() - t1) * 1e3
        return out

    def _init_mono(self, inp: TrackInput) -> TrackOutput:
        fe = self.fe
        if self._init_ref is None or inp.index - self._init_ref[0] > MAX_INIT_WAIT_FRAMES:
            self._init_ref = (inp.index, inp.features, inp.T_world_pred.copy(), inp.gray)
            self._gt_since_ref = 0.0
            return TrackOutput(inp.T_world_pred, "initializing", covariance_6x6=np.eye(6) * 1e-9)
        ref_index, ref, T_world_ref, ref_gray = self._init_ref
        t0 = time.perf_counter()
        m = match_descriptors(ref.descriptors, inp.features.descriptors, self.cfg.matching)
        t1 = time.perf_counter()
        out = TrackOutput(None, "initializing", num_matches=len(m), matching_ms=(t1 - t0) * 1e3)
        if len(m) < fe.min_inliers:
            return out
        ia, ib, p0, p1, flow = shuffled_pixel_pairs(
            ref.keypoints_px, inp.features.keypoints_px, m, self._rng
        )
        if flow < fe.stationary_px:
            # Zero parallax: nothing to triangulate; the camera is where the reference was.
            out.T_world_cam, out.state, out.num_inliers = T_world_ref.copy(), "tracking", len(m)
            out.covariance_6x6 = np.eye(6) * 1e-6
            out.geometry_ms = (time.perf_counter() - t1) * 1e3
            return out
        rel = estimate_relative_pose(
            p0, p1, self.K, fe.ransac_threshold_px, fe.ransac_confidence, rng=self._rng
        )
        if rel is None or rel.num_inliers < max(fe.min_inliers, 30):
            out.geometry_ms = (time.perf_counter() - t1) * 1e3
            return out
        if rel.homography_ratio > HOMOGRAPHY_DEGENERATE_RATIO:
            log.debug("frame %d: init rejected, homography explains the motion", inp.index)
            out.geometry_ms = (time.perf_counter() - t1) * 1e3
            return out
        T_1_0 = rel.T_1_0
        tri = triangulate(
            self.K,
            np.eye(4),
            T_1_0,
            p0[rel.inliers],
            p1[rel.inliers],
            max_reproj_px=2.0 * fe.ransac_threshold_px,
            min_parallax_deg=0.1 * fe.min_parallax_deg,
        )
        good = tri.valid
        # Enough well-conditioned points (parallax above the minimum), not just a median: under
        # forward motion most points have little parallax even with a good baseline.
        num_parallax = int((tri.parallax_deg[good] >= fe.min_parallax_deg).sum())
        if good.sum() < max(fe.min_inliers, 30) or num_parallax < MIN_INIT_PARALLAX_POINTS:
            out.geometry_ms = (time.perf_counter() - t1) * 1e3
            return out
        scale = self._init_scale(inp.index - ref_index)
        road = self._road_step(ref_gray, inp.gray, T_1_0)
        if road is not None:
            scale = road.length_m / float(np.linalg.norm(T_1_0[:3, 3]))
        elif fe.scale == "height":
            plane = fit_ground_plane(tri.points_w[good] * scale, self._rng)
            if plane is not None:
                scale *= fe.camera_height_m / plane.distance
            else:
                log.info(
                    "frame %d: no ground plane at init; scale from the motion prior", inp.index
                )
        T_cur_ref = make_T(T_1_0[:3, :3], T_1_0[:3, 3] * scale)
        T_world_cur = T_world_ref @ invert(T_cur_ref)
        points_w = transform_points(T_world_ref, tri.points_w[good] * scale)
        in_idx = np.flatnonzero(rel.inliers)[good]
        kf0 = Keyframe(
            ref_index,
            T_world_ref.copy(),
            ref.keypoints_px.astype(np.float64),
            ref.descriptors,
            np.full(len(ref), -1, np.int64),
            np.full(len(ref), np.nan),
            odometer_m=self._odometer_m - self._gt_since_ref,
            whiten_2x2=self._whitening(ref),
        )
        if self._road is not None:  # the odometer counts the initial baseline too
            self._odometer_m += scale * float(np.linalg.norm(T_1_0[:3, 3]))
        kf1 = self._make_keyframe(inp, T_world_cur, self._whitening(inp.features))
        ids = self.map.add_points(points_w, inp.features.descriptors[ib[in_idx]], inp.index)
        kf0.point_ids[ia[in_idx]] = ids
        kf1.point_ids[ib[in_idx]] = ids
        kf0.num_tracked = kf1.num_tracked = len(ids)
        self.map.add_keyframe(kf0)
        self.map.add_keyframe(kf1)
        self._initialized = True
        self._step_hint = scale / max(inp.index - ref_index, 1)
        self._remember_observations(kf1.point_ids, kf1.keypoints_px)
        self._prev_features, self._prev_gray = inp.features, inp.gray
        out.T_world_cam, out.state = T_world_cur, "tracking"
        self._anchor(T_world_cur, T_world_cur, invert(T_world_ref) @ T_world_cur)
        out.num_inliers = len(ids)
        out.covariance_6x6 = pose_covariance(
            invert(T_world_cur), points_w, p1[rel.inliers][good], self.K
        )
        out.geometry_ms = (time.perf_counter() - t1) * 1e3
        log.info(
            "frame %d: initialised from frame %d with %d points", inp.index, ref_index, len(ids)
        )
        return out

    def _init_scale(self, frames: int) -> float:
        if self.fe.scale == "gt" and self._gt_since_ref > 0:
            return self._gt_since_ref
        if self._step_hint > 0:  # re-init: continue with the previous scale, no jump
            return self._step_hint * frames
        return 1.0

    # -- tracking ------------------------------------------------------------------------------
    def _track_map(self, inp: TrackInput) -> TrackOutput:
        fe = self.fe
        kp = inp.features.keypoints_px.astype(np.float64)
        desc = inp.features.descriptors
        L = self._whitening(inp.features)
        t0 = time.perf_counter()
        matching_s = geometry_s = 0.0
        T_map_pred = self._map_prediction(inp)
        rows, kidx, _ = self._match_projected(
            invert(T_map_pred), kp, desc, self.cfg.matching.guided_radius_px
        )
        t1 = time.perf_counter()
        matching_s += t1 - t0
        pnp = self._pnp(rows, kidx, kp, T_map_pred, L)
        t2 = time.perf_counter()
        geometry_s += t2 - t1
        if pnp is None:  # prediction unusable: match against the whole map
            m = match_descriptors(self.map.descriptors, desc, self.cfg.matching)
            rows, kidx = m.index_a, m.index_b
            t3 = time.perf_counter()
            matching_s += t3 - t2
            pnp = self._pnp(rows, kidx, kp, None, L)
            geometry_s += time.perf_counter() - t3
        num_matches = len(rows)
        if pnp is None:
            return TrackOutput(
                None,
                "lost",
                num_matches=num_matches,
                matching_ms=matching_s * 1e3,
                geometry_ms=geometry_s * 1e3,
            )
        # Second search with the estimated pose and a tight radius finds more map points.
        t4 = time.perf_counter()
        T_cw = pnp.T_cam_world
        rows2, kidx2, visible = self._match_projected(
            T_cw, kp, desc, max(REFINE_RADIUS_PX, 2 * fe.pnp_threshold_px)
        )
        pairs = self._two_view_pairs(inp.features, pnp.num_inliers, T_cw)
        t5 = time.perf_counter()
        matching_s += t5 - t4
        epipolar = self._epipolar_term(pairs, inp.features)
        if len(rows2) >= len(rows) or epipolar is not None:
            use2 = len(rows2) >= len(rows)
            r_rows, r_kidx = (rows2, kidx2) if use2 else (rows, kidx)
            refined = refine_with_inliers(
                T_cw,
                self.map.points_w[r_rows],
                kp[r_kidx],
                self.K,
                fe.pnp_threshold_px,
                fe.min_inliers,
                epipolar=epipolar,
                whiten_2x2=None if L is None else L[r_kidx],
            )
            # The joint cost trades a few reprojection inliers for the epipolar ones.
            keep_ratio = 1.0 if epipolar is None else JOINT_MIN_INLIER_RATIO
            if refined is not None and refined.num_inliers >= keep_ratio * pnp.num_inliers:
                pnp, rows, kidx = refined, r_rows, r_kidx
                num_matches = len(r_rows)
        T_cw = pnp.T_cam_world
        in_rows, in_kidx = rows[pnp.inliers], kidx[pnp.inliers]
        self.map.visible[visible] += 1
        self.map.found[in_rows] += 1
        self.map.last_seen[in_rows] = inp.index
        if UPDATE_DESCRIPTORS:
            # Appearance changes under forward motion: a point matches by its latest view.
            self.map.descriptors[in_rows] = desc[in_kidx]
        T_world_cur = invert(T_cw)  # map frame
        ids = self.map.ids[in_rows]
        replaced = False
        if self._needs_two_view_check(pnp.num_inliers):
            check = None
            if pairs is not None:
                check = check_against_two_view(
                    self.cfg,
                    self.K,
                    pairs,
                    self._T_map_last,
                    T_world_cur,
                    T_map_pred,
                    self._rng,
                )
            if check is not None and check.replaced:
                log.debug(
                    "frame %d: PnP (%d inliers) disagrees with the two-view motion "
                    "(%.2f deg, direction %.1f deg); using the two-view motion",
                    inp.index,
                    pnp.num_inliers,
                    check.rotation_diff_deg,
                    check.direction_diff_deg,
                )
                T_world_cur, replaced = check.T_map_cur, True
            elif check is None and pnp.num_inliers < UNVERIFIED_MIN_INLIERS:
                # Weak and unverifiable: a wrong pose here would corrupt the velocity and the
                # map, so the frame keeps the prediction (untracked) instead.
                return TrackOutput(
                    None,
                    "lost",
                    num_matches=num_matches,
                    matching_ms=matching_s * 1e3,
                    geometry_ms=(geometry_s + time.perf_counter() - t5) * 1e3,
                )
        if not self._gt_says_moving() and self._is_stationary(ids, kp[in_kidx]):
            T_world_cur = self._T_map_last.copy()
        elif self._road is not None:
            self._measure_road(inp.gray, T_world_cur)
        self._prev_features, self._prev_gray = inp.features, inp.gray
        self._remember_observations(ids, kp[in_kidx])
        out = TrackOutput(
            T_world_cur,
            "tracking",
            num_matches=num_matches,
            num_inliers=pnp.num_inliers,
            covariance_6x6=pnp.covariance_6x6,
        )
        geometry_s += time.perf_counter() - t5
        if not replaced and self._need_keyframe(
            T_world_cur, pnp.num_inliers, self.map.points_w[in_rows]
        ):
            kf_m, kf_g = self._insert_keyframe(inp, T_world_cur, in_kidx, ids, L)
            matching_s += kf_m
            geometry_s += kf_g
            out.T_world_cam = self.map.keyframes[-1].T_world_cam.copy()
        out.T_world_cam = self._commit(out.T_world_cam)
        out.matching_ms, out.geometry_ms = matching_s * 1e3, geometry_s * 1e3
        return out

    def _two_view_pairs(self, features: Features, num_inliers: int, T_cw) -> TwoViewPairs | None:
        """Matches to the previous frame when the check or the joint refinement will use them:
        brute force for the check (which must not depend on the PnP pose it checks), else
        guided by the PnP rotation."""
        if self._prev_features is None or self._frames_since_track != 1:
            return None
        if self._needs_two_view_check(num_inliers):
            return match_two_views(self.cfg, self._prev_features, features, self._rng)
        if not self.fe.epipolar_refine:
            return None
        R_cur_prev = T_cw[:3, :3] @ self._T_map_last[:3, :3]
        return match_two_views(
            self.cfg, self._prev_features, features, self._rng, self.K, R_cur_prev
        )

    def _epipolar_term(
        self, pairs: TwoViewPairs | None, features: Features
    ) -> EpipolarTerm | None:
        if not self.fe.epipolar_refine or pairs is None:
            return None
        if pairs.median_flow_px < self.fe.stationary_px:  # no parallax: E is undefined
            return None
        cov_prev = cov_cur = None
        prev_cov = self._prev_features.keypoint_cov_px2  # pairs exist only with a previous frame
        if (
            self.fe.keypoint_covariance
            and prev_cov is not None
            and features.keypoint_cov_px2 is not None
        ):
            cov_prev = relative_covariance(prev_cov)[pairs.prev_index]
            cov_cur = relative_covariance(features.keypoint_cov_px2)[pairs.cur_index]
        return EpipolarTerm.from_pixels(
            invert(self._T_map_last), pairs.prev_px, pairs.cur_px, self.K, cov_prev, cov_cur
        )

    def _road_step(self, prev_gray, cur_gray, T_cur_prev) -> RoadStep | None:
        if self._road is None or prev_gray is None or cur_gray is None:
            return None
        return self._road.step(prev_gray, cur_gray, T_cur_prev)

    def _measure_road(self, gray: np.ndarray | None, T_map_cur: np.ndarray) -> None:
        """Advance the road odometer by this frame's step: measured on the road when it gives
        an answer, else the map's own step (map units are metres once corrected)."""
        T_cur_prev = invert(T_map_cur) @ self._T_map_last
        length = float(np.linalg.norm(T_cur_prev[:3, 3]))
        if self._frames_since_track == 1:  # else frames in between were not tracked
            road = self._road_step(self._prev_gray, gray, T_cur_prev)
            length = road.length_m if road is not None else length
        self._odometer_m += length
        self._gt_since_track = length  # the output chain takes it like a ground-truth length

    def _needs_two_view_check(self, num_inliers: int) -> bool:
        """Weak monocular PnP right after a tracked frame (the two views are consecutive)."""
        return (
            self.fe.essential_check
            and not self.stereo
            and num_inliers < CHECK_BELOW_INLIERS
            and self._prev_features is not None
            and self._frames_since_track == 1
        )

    def _whitening(self, features: Features) -> np.ndarray | None:
        """(N, 2, 2) whitening of the keypoints' residuals, or None (every keypoint alike)."""
        if not self.fe.keypoint_covariance or features.keypoint_cov_px2 is None:
            return None
        return whitening_2x2(features.keypoint_cov_px2)

    def _pnp(self, rows, kidx, kp, T_world_pred, L=None) -> PnpResult | None:
        if len(rows) < self.fe.min_inliers:
            return None
        perm = self._rng.permutation(len(rows))  # drawn either way: one seed stream
        if T_world_pred is not None:
            points_w, pixels = self.map.points_w[rows], kp[kidx]
            T_cw = invert(T_world_pred)
            r, z = reprojection_residuals(T_cw, points_w, pixels, self.K)
            close = (np.linalg.norm(r, axis=1) < 2.0 * self.fe.pnp_threshold_px) & (z > 0)
            if close.mean() >= PREDICTED_POSE_MIN_RATIO and close.sum() >= 3 * self.fe.min_inliers:
                res = refine_with_inliers(
                    T_cw, points_w, pixels, self.K, self.fe.pnp_threshold_px,
                    self.fe.min_inliers, close, whiten_2x2=None if L is None else L[kidx],
                )  # fmt: skip
                if res is not None:
                    return res
        rows, kidx = rows[perm], kidx[perm]
        res = solve_pnp(
            self.map.points_w[rows],
            kp[kidx],
            self.K,
            self.fe.pnp_threshold_px,
            self.fe.ransac_confidence,
            min_inliers=self.fe.min_inliers,
            whiten_2x2=None if L is None else L[kidx],
        )
        if res is None:
            return None
        # Undo the shuffle so inliers index the caller's arrays.
        inliers = np.zeros(len(rows), bool)
        inliers[perm] = res.inliers
        return PnpResult(res.T_cam_world, inliers, res.num_inliers, res.covariance_6x6, res.rms_px)

    def _match_projected(self, T_cam_map, kp, desc, radius_px: float):
        """Match map points projected with `T_cam_map` to keypoints within `radius_px`.
        Returns (map rows, keypoint indices) of the matches and the rows that project in view."""
        uv, z = project(self.K, T_cam_map, self.map.points_w)
        visible = np.flatnonzero(self._in_image(uv, z))
        m = match_guided(
            self.map.descriptors[visible], uv[visible], desc, kp, radius_px, self.cfg.matching
        )
        return visible[m.index_a], m.index_b, visible

    def _in_image(self, uv: np.ndarray, z: np.ndarray) -> np.ndarray:
        w, h = self.size_px
        return (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)

    def _remember_observations(self, ids: np.ndarray, px: np.ndarray) -> None:
        ok = ids >= 0
        self._last_ids, self._last_px = ids[ok].copy(), np.asarray(px, np.float64)[ok].copy()

    def _gt_says_moving(self) -> bool:
        """Scale "gt": the ground truth moved the camera, so still-looking matches (too few, or
        all far away) must not freeze it; the output step would be zero while the ground truth
        length is not."""
        return self.fe.scale == "gt" and self._gt_since_track > MIN_MOVING_STEP_M

    def _is_stationary(self, ids: np.ndarray, px: np.ndarray) -> bool:
        """Median image motion of the tracked points since the last frame below threshold."""
        _, a, b = np.intersect1d(ids, self._last_ids, return_indices=True)
        if len(a) < self.fe.min_inliers:
            return False
        flow = np.linalg.norm(px[a] - self._last_px[b], axis=1)
        # Under forward motion distant points near the focus of expansion barely move, so the
        # median alone is not enough: nearly all points must be still.
        return (
            float(np.median(flow)) < self.fe.stationary_px
            and float(np.percentile(flow, 90)) < 2.0 * self.fe.stationary_px
        )

    def _anchor(self, T_map: np.ndarray, T_out: np.ndarray, motion=None) -> None:
        self._T_map_last, self._T_out_last = T_map.copy(), T_out.copy()
        if motion is not None:
            self._T_map_velocity = motion.copy()
        self._frames_since_track = 0
        self._gt_since_track = 0.0

    def _map_prediction(self, inp: TrackInput) -> np.ndarray:
        """Constant-velocity prediction in the map frame (equals VisualOdometry's prediction
        unless the output chain is ground-truth scaled)."""
        if not self._gt_chain:
            return inp.T_world_pred
        T = self._T_map_last
        for _ in range(max(self._frames_since_track, 1)):
            T = T @ self._T_map_velocity
        return T

    @property
    def _gt_chain(self) -> bool:
        """Output steps take external lengths, the ground truth's or the road's; the odometer
        counts them (keyframes record it, and the map's scale follows it)."""
        if self.stereo:
            return False
        return self.fe.scale == "gt" or self._road is not None

    def _commit(self, T_map_cur: np.ndarray) -> np.ndarray:
        """Record a tracked map-frame pose and return the output pose. Scale "gt": the rotation
        and direction of the map-frame step are kept, its length is the ground-truth length."""
        step = invert(self._T_map_last) @ T_map_cur
        T_out = T_map_cur
        if self._gt_chain:
            length = float(np.linalg.norm(step[:3, 3]))
            out_step = step.copy()
            if length > 1e-9:
                out_step[:3, 3] *= self._gt_since_track / length
            T_out = self._T_out_last @ out_step
        self._anchor(T_map_cur, T_out, step if self._frames_since_track <= 1 else None)
        return T_out

    # -- keyframes -----------------------------------------------------------------------------
    def _need_keyframe(self, T_world_cur, num_tracked, points_w) -> bool:
        last = self.map.keyframes[-1]
        baseline = float(np.linalg.norm(T_world_cur[:3, 3] - last.T_world_cam[:3, 3]))
        depth = transform_points(invert(T_world_cur), points_w)[:, 2]
        median_depth = float(np.median(depth)) if len(depth) else np.inf
        parallax_deg = np.degrees(baseline / max(median_depth, 1e-9))
        dropped = num_tracked < self.fe.keyframe_tracked_ratio * last.num_tracked
        if self.stereo:
            return parallax_deg > self.fe.stereo_keyframe_parallax_deg or (
                dropped and baseline > 0
            )
        if parallax_deg < self.fe.min_parallax_deg:  # too little motion to triangulate
            return False
        return parallax_deg > self.fe.keyframe_parallax_deg or dropped

    def _make_keyframe(
        self, inp: TrackInput, T_world_cam: np.ndarray, whiten_2x2: np.ndarray | None
    ) -> Keyframe:
        n = len(inp.features)
        return Keyframe(
            inp.index,
            T_world_cam.copy(),
            inp.features.keypoints_px.astype(np.float64),
            inp.features.descriptors,
            np.full(n, -1, np.int64),
            np.full(n, np.nan),
            odometer_m=self._odometer_m if self._gt_chain else np.nan,
            whiten_2x2=whiten_2x2,
        )

    def _insert_keyframe(self, inp, T_world_cur, in_kidx, ids, L) -> tuple[float, float]:
        t0 = time.perf_counter()
        kf = self._make_keyframe(inp, T_world_cur, L)
        kf.point_ids[in_kidx] = ids
        kf.num_tracked = len(ids)
        if self.stereo:
            self._add_stereo_points(kf, inp)
        t1 = time.perf_counter()
        # Stereo keyframes bring their own metric points; monocular ones triangulate against
        # recent keyframes, oldest (widest baseline, best-conditioned depth) first.
        num_tri = STEREO_TRIANGULATION_KEYFRAMES if self.stereo else TRIANGULATION_KEYFRAMES
        for older in self.map.keyframes[-num_tri:] if num_tri else []:
            self._triangulate_with(older, kf, inp.index)
        self.map.add_keyframe(kf)
        if self.fe.local_ba:
            adjust_window(
                self.map,
                self.fe.ba_window,
                self.K,
                self.baseline_m if self.stereo else 0.0,
                self.fe.pnp_threshold_px,
            )
        if self._gt_chain:  # ground truth's or the road's path length
            self._correct_gt_scale(kf)
        elif self.fe.scale == "height" and not self.stereo:
            self._correct_height_scale(kf)
        self.map.cull(inp.index)
        return (t1 - t0), (time.perf_counter() - t1)

    def _add_stereo_points(self, kf: Keyframe, inp: TrackInput) -> int:
        """Stereo-match the keyframe (made from `inp`) with the right image's features (extracted
        by VisualOdometry), record right x, and add points for unmapped keypoints."""
        right = inp.right_features
        if right is None or len(right) == 0:
            return 0
        sm = match_stereo(
            kf.descriptors,
            kf.keypoints_px,
            right.descriptors,
            right.keypoints_px.astype(np.float64),
            self.cfg.matching,
        )
        if len(sm) == 0:
            return 0
        left_px = kf.keypoints_px[sm.index_a]
        right_px = right.keypoints_px[sm.index_b].astype(np.float64)
        refined = np.ones(len(sm), bool)
        if self.fe.stereo_subpixel and inp.gray is not None and inp.right_gray is not None:
            right_x, refined = refine_right_x(inp.gray, inp.right_gray, left_px, right_px[:, 0])
            right_px[:, 0] = right_x
        # Depth from a few pixels of disparity is too uncertain to anchor the map: like
        # ORB-SLAM, only "close" points (within STEREO_MAX_DEPTH_BASELINES baselines) are used.
        max_depth = min(self.fe.max_depth_m, STEREO_MAX_DEPTH_BASELINES * self.baseline_m)
        pts_cam, valid = triangulate_stereo(
            self.K, self.baseline_m, left_px, right_px, max_depth_m=max_depth
        )
        valid &= refined
        kf.right_x_px[sm.index_a[valid]] = right_px[valid, 0]
        new = valid & (kf.point_ids[sm.index_a] < 0)
        if not new.any():
            return 0
        ids = self.map.add_points(
            transform_points(kf.T_world_cam, pts_cam[new]),
            kf.descriptors[sm.index_a[new]],
            inp.index,
        )
        kf.point_ids[sm.index_a[new]] = ids
        return int(new.sum())

    def _triangulate_with(self, prev: Keyframe, kf: Keyframe, index: int) -> int:
        """New points from keypoints that neither keyframe has mapped yet."""
        free_prev = np.flatnonzero(prev.point_ids < 0)
        free_cur = np.flatnonzero(kf.point_ids < 0)
        if len(free_prev) < 8 or len(free_cur) < 8:
            return 0
        m = match_descriptors(
            prev.descriptors[free_prev], kf.descriptors[free_cur], self._triangulation_matching
        )
        if len(m) < 8:
            return 0
        ia, ib = free_prev[m.index_a], free_cur[m.index_b]
        tri = triangulate(
            self.K,
            invert(prev.T_world_cam),
            invert(kf.T_world_cam),
            prev.keypoints_px[ia],
            kf.keypoints_px[ib],
            max_reproj_px=self.fe.pnp_threshold_px,
            min_parallax_deg=TRIANGULATION_PARALLAX_FACTOR * self.fe.min_parallax_deg,
            max_depth=self.fe.max_depth_m if self._metric else np.inf,
        )
        good = tri.valid
        if not good.any():
            return 0
        ids = self.map.add_points(tri.points_w[good], kf.descriptors[ib[good]], index)
        prev.point_ids[ia[good]] = ids
        kf.point_ids[ib[good]] = ids
        return int(good.sum())

    @property
    def _metric(self) -> bool:
        return self.stereo or self.fe.scale in ("gt", "height")

    def _correct_height_scale(self, kf: Keyframe) -> None:
        factor = height_scale_factor(self.map, kf, self.fe.camera_height_m, self._rng)
        if factor is not None:
            self._rescale_map(kf.T_world_cam[:3, 3].copy(), factor**HEIGHT_SCALE_GAIN)

    def _correct_gt_scale(self, kf: Keyframe) -> None:
        factor = gt_scale_factor(self.map, kf)
        if factor is not None:
            self._rescale_map(kf.T_world_cam[:3, 3].copy(), factor**GT_SCALE_GAIN)

    def _rescale_map(self, center_w: np.ndarray, factor: float) -> None:
        """Scale the map about a point, and the last pose and velocity with it."""
        self.map.scale_about(center_w, factor)
        self._T_map_last = self._T_map_last.copy()
        self._T_map_last[:3, 3] = center_w + factor * (self._T_map_last[:3, 3] - center_w)
        self._T_map_velocity = self._T_map_velocity.copy()
        self._T_map_velocity[:3, 3] *= factor
