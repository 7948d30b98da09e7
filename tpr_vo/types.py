"""Small typed records shared by every module. Shapes, units and frames are in the names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of a rectified camera; `baseline_m` is set for a stereo pair."""

    fx: float
    fy: float
    cx: float
    cy: float
    width_px: int
    height_px: int
    baseline_m: float | None = None

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )


@dataclass(frozen=True)
class Features:
    """Keypoints and descriptors of one image.

    keypoints_px: (N, 2) float32, (x, y) in pixels of the input image.
    scores: (N,) float32 detector response (higher is better).
    descriptors: (N, D) float32 unit vectors, or (N, B) uint8 packed binary (ORB).
    keypoint_cov_px2: (N, 2, 2) float32 covariance of each keypoint's position (px^2), or None
        when the detector gives none (every keypoint then counts alike).
    """

    keypoints_px: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    keypoint_cov_px2: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.keypoints_px.shape[0])

    @property
    def is_binary(self) -> bool:
        return self.descriptors.dtype == np.uint8

    def subset(self, index: np.ndarray) -> Features:
        cov = self.keypoint_cov_px2
        return Features(
            self.keypoints_px[index],
            self.scores[index],
            self.descriptors[index],
            None if cov is None else cov[index],
        )

    @staticmethod
    def empty(descriptor_dim: int, binary: bool = False) -> Features:
        dtype = np.uint8 if binary else np.float32
        return Features(
            np.zeros((0, 2), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0, descriptor_dim), dtype),
        )


@dataclass(frozen=True)
class Frame:
    """One input frame of a sequence. `image_left` is None when the file could not be read."""

    index: int
    stamp_s: float
    image_left: np.ndarray | None
    image_right: np.ndarray | None = None
    path_left: str = ""


@dataclass(frozen=True)
class PoseEstimate:
    """Result of `VisualOdometry.process_frame` for one frame.

    T_world_cam: (4, 4) float64, camera (optical frame) pose in the world frame, which is the
        optical frame of the first camera. Always finite.
    tracked: False when the pose is a constant-velocity prediction (frame not tracked).
    state: "initializing" | "tracking" | "lost" | "reinitialized".
    covariance_6x6: covariance of the frame-to-frame motion (x, y, z in m; rx, ry, rz in rad),
        in the camera frame, from the inlier geometry; large on untracked frames.
    timings_ms: milliseconds per stage ("features", "matching", "geometry", "total").
    """

    stamp_s: float
    T_world_cam: np.ndarray
    tracked: bool
    state: str
    num_matches: int = 0
    num_inliers: int = 0
    covariance_6x6: np.ndarray = field(default_factory=lambda: np.eye(6) * 1e3)
    timings_ms: dict[str, float] = field(default_factory=dict)
