"""VisualOdometry: one object, one call per frame, ROS-free.

    detect & describe -> track (frame-to-frame essential chain, or local map + PnP)
    -> scale -> update state (constant-velocity model, lost/re-init bookkeeping)

`extract` (detect & describe) needs no tracking state, so a caller may run it for the next frame
in another thread and pass the result to `process_frame(..., extracted=...)` (see
`tpr_vo.prefetch`), so that the network can overlap the previous frame's geometry.

The first frame's camera optical frame is the world frame. Every input frame yields a finite
pose: a frame that cannot be tracked keeps the constant-velocity prediction (tracked=False), and
after `frontend.lost_frames_before_reinit` such frames the tracker re-initialises from the
predicted pose, so the trajectory continues without a jump.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from tpr_vo.config import VoConfig
from tpr_vo.errors import ConfigError
from tpr_vo.features.base import FeatureBackend, create_backend
from tpr_vo.geometry.se3 import invert, is_finite_pose, orthonormalize
from tpr_vo.tracking_types import TrackInput, TrackOutput
from tpr_vo.types import CameraIntrinsics, Features, PoseEstimate

log = logging.getLogger(__name__)

UNTRACKED_COVARIANCE = np.eye(6) * 1e3
MIN_IMAGE_STD = 2.0  # grey levels; below this the image is blank (black, saturated, covered)


def _usable_gray(image: np.ndarray | None) -> np.ndarray | None:
    """(H, W) uint8 grayscale, or None when the image is missing, empty or blank."""
    if image is None or not isinstance(image, np.ndarray) or image.size == 0:
        return None
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(
            image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        )
    if image.ndim != 2:
        return None
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        elif np.issubdtype(image.dtype, np.floating):
            finite = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
            scale = 255.0 if finite.max() <= 1.0 else 1.0
            image = np.clip(finite * scale, 0, 255).astype(np.uint8)
        else:
            return None
    if float(image.std()) < MIN_IMAGE_STD:
        return None
    return np.ascontiguousarray(image)


def limit_blas_threads(threads: int) -> None:
    """Cap the BLAS thread pools numpy and scipy loaded (process-wide; 0 = leave them).
    Measured on 2 cores (benchmarks/README.md): the frontend's 3x3 to 30x30 products gain
    nothing from threads, and idle OpenBLAS threads that spin slowed the ONNX Runtime network
    and, under load, local BA by 5x."""
    if threads > 0:
        import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, so it is capped too)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


@dataclass(frozen=True)
class ExtractedFrame:
    """One frame's grey images and features, from `VisualOdometry.extract` (None where the
    image is missing or blank), and the milliseconds extraction took."""

    gray: np.ndarray | None
    features: Features | None
    right_gray: np.ndarray | None
    right_features: Features | None
    features_ms: float


def extract_frame(
    backend: FeatureBackend, image: np.ndarray | None, right_image: np.ndarray | None = None
) -> ExtractedFrame:
    """Detect and describe one frame (and its right image when given) with `backend`; what
    `VisualOdometry.process_frame(..., extracted=)` takes. Needs no VisualOdometry, so a
    pipeline stage can run it in its own thread."""
    t0 = time.perf_counter()
    gray = _usable_gray(image)
    features = right_features = right_gray = None
    if gray is not None:
        right_gray = _usable_gray(right_image)
        if right_gray is None:
            features = backend.extract(gray)
        elif getattr(backend, "concurrent_extract", False):
            features, right_features = _extract_side_by_side(backend, gray, right_gray)
        else:
            features = backend.extract(gray)
            right_features = backend.extract(right_gray)
    ms = (time.perf_counter() - t0) * 1e3 if gray is not None else 0.0
    return ExtractedFrame(gray, features, right_gray, right_features, ms)


def _extract_side_by_side(
    backend: FeatureBackend, gray: np.ndarray, right_gray: np.ndarray
) -> tuple[Features, Features]:
    """`backend.extract` of the left image here and of the right one in a second thread, at
    once (for backends with `concurrent_extract`). An error in either is raised here, after
    both have finished."""
    right: dict[str, object] = {}

    def extract_right() -> None:
        try:
            right["features"] = backend.extract(right_gray)
        except BaseException as exc:  # re-raised in the caller's thread below
            right["error"] = exc

    thread = threading.Thread(target=extract_right, name="tpr_vo_right", daemon=True)
    thread.start()
    try:
        features = backend.extract(gray)
    finally:
        thread.join()
    if "error" in right:
        raise right["error"]
    return features, right["features"]


class VisualOdometry:
    """Monocular or stereo visual odometry over any `FeatureBackend`."""

    def __init__(
        self,
        config: VoConfig,
        intrinsics: CameraIntrinsics,
        backend: FeatureBackend | None = None,
    ):
        if config.frontend.mode == "stereo" and not intrinsics.baseline_m:
            raise ConfigError(
                "frontend.mode: 'stereo' needs a stereo baseline (calib.txt P1 or "
                "camera.baseline_m), got none"
            )
        self.config = config
        self.intrinsics = intrinsics
        limit_blas_threads(config.frontend.blas_threads)
        if backend is None:
            covariance = config.frontend.uses_keypoint_covariance
            backend = create_backend(config.features, keypoint_covariance=covariance)
        self.backend = backend
        if config.frontend.kind == "f2f":
            from tpr_vo.frame_to_frame import FrameToFrameTracker

            self._tracker = FrameToFrameTracker(config, intrinsics)
        else:
            from tpr_vo.map_tracker import MapTracker

            self._tracker = MapTracker(config, intrinsics)
        self.reset()

    def reset(self) -> None:
        """Start over: the next frame becomes the world origin."""
        self._T_world_last = np.eye(4)
        self._T_last_cur = np.eye(4)  # constant-velocity model: last frame-to-frame motion
        self._frame_index = 0
        self._lost_count = 0
        self._tracker.reset()

    def map_points_world(self) -> np.ndarray:
        """(N, 3) float64 points of the tracker's local map in the world frame of the poses
        (the first camera's optical frame; metres unless the scale is "none"). Empty for the
        f2f frontend. Call it between frames, from the thread that calls `process_frame`."""
        return self._tracker.map_points_world()

    def extract(
        self, image: np.ndarray | None, right_image: np.ndarray | None = None
    ) -> ExtractedFrame:
        """Detect and describe (both images in stereo). Thread-safe against `process_frame`:
        it touches only the feature backend."""
        stereo = self.config.frontend.mode == "stereo"
        return extract_frame(self.backend, image, right_image if stereo else None)

    def process_frame(
        self,
        image: np.ndarray | None,
        stamp_s: float,
        right_image: np.ndarray | None = None,
        step_length_m: float | None = None,
        extracted: ExtractedFrame | None = None,
    ) -> PoseEstimate:
        """Pose of this frame. `image`: (H, W) uint8 grayscale (colour is converted); None or a
        blank image gives the untracked constant-velocity pose. `step_length_m`: ground-truth
        length of this frame's translation, used only with `frontend.scale == "gt"`.
        `extracted`: this frame's `extract` result, computed ahead (then the images are not
        read again)."""
        t_start = time.perf_counter()
        index = self._frame_index
        self._frame_index += 1
        cv2.setRNGSeed(int(self.config.seed) * 100003 + index)
        T_pred = self._T_world_last @ self._T_last_cur if index > 0 else np.eye(4)
        timings = {"features": 0.0, "matching": 0.0, "geometry": 0.0}
        if extracted is None:
            extracted = self.extract(image, right_image)
        gray, features = extracted.gray, extracted.features
        right_gray, right_features = extracted.right_gray, extracted.right_features
        timings["features"] = extracted.features_ms
        step = step_length_m if self.config.frontend.scale == "gt" else None
        if step is not None and not (np.isfinite(step) and step >= 0):
            step = None
        result: TrackOutput | None = None
        if features is not None and len(features) >= 8:
            inp = TrackInput(
                index,
                stamp_s,
                features,
                right_features,
                T_pred,
                self._T_world_last,
                step,
                gray,
                right_gray,
            )
            try:
                result = self._tracker.track(inp)
            except (cv2.error, np.linalg.LinAlgError, ValueError) as exc:
                log.warning("frame %d: tracking failed (%s); keeping the prediction", index, exc)
                result = None
        elif step is not None:
            self._tracker.note_skipped_step(step)
        if result is not None:
            timings["matching"] = result.matching_ms
            timings["geometry"] = result.geometry_ms
        ok = (
            result is not None
            and result.T_world_cam is not None
            and is_finite_pose(_clean(result.T_world_cam))
        )
        if ok:
            T_new = _clean(result.T_world_cam)
            state = result.state
            if self._lost_count >= self.config.frontend.lost_frames_before_reinit:
                state = "reinitialized"
            self._lost_count = 0
            self._T_last_cur = invert(self._T_world_last) @ T_new if index > 0 else np.eye(4)
            self._T_world_last = T_new
            cov = result.covariance_6x6
            # A (re-)initialising reference frame sits at the prediction: only frame 0 is exact.
            tracked = state != "initializing" or index == 0
        else:
            T_new = T_pred
            self._T_world_last = T_pred
            self._lost_count += 1
            state = "lost"
            if result is not None and result.state == "initializing":
                state = "initializing"
            cov = UNTRACKED_COVARIANCE.copy()
            tracked = False
            if self._lost_count == self.config.frontend.lost_frames_before_reinit:
                log.info("frame %d: lost for %d frames, re-initialising", index, self._lost_count)
                self._tracker.reinitialize(T_pred)
        timings["total"] = (time.perf_counter() - t_start) * 1e3
        if not np.all(np.isfinite(cov)):
            cov = UNTRACKED_COVARIANCE.copy()
        return PoseEstimate(
            stamp_s=float(stamp_s),
            T_world_cam=T_new.copy(),
            tracked=tracked,
            state=state,
            num_matches=0 if result is None else int(result.num_matches),
            num_inliers=0 if result is None else int(result.num_inliers),
            covariance_6x6=cov,
            timings_ms=timings,
        )


def _clean(T: np.ndarray) -> np.ndarray:
    """Re-orthonormalise the rotation so round-off never accumulates into an invalid pose."""
    T = np.array(T, dtype=np.float64)
    if np.all(np.isfinite(T)):
        T[:3, :3] = orthonormalize(T[:3, :3])
        T[3] = [0.0, 0.0, 0.0, 1.0]
    return T
