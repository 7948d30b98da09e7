"""Records passed between VisualOdometry and its trackers (frame-to-frame and local-map)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tpr_vo.types import Features


@dataclass(frozen=True)
class TrackInput:
    """One frame as a tracker sees it.

    features / right_features: keypoints of the left (and right, stereo) image.
    T_world_pred: (4, 4) constant-velocity prediction of this frame's camera pose.
    T_world_last: (4, 4) pose of the previous output frame (tracked or predicted).
    step_length_m: ground-truth translation length since the previous frame (scale "gt" only).
    gray / right_gray: (H, W) uint8 images the features came from (stereo sub-pixel disparity,
    the road-measured height scale).
    """

    index: int
    stamp_s: float
    features: Features
    right_features: Features | None
    T_world_pred: np.ndarray
    T_world_last: np.ndarray
    step_length_m: float | None
    gray: np.ndarray | None = None
    right_gray: np.ndarray | None = None


@dataclass
class TrackOutput:
    """T_world_cam None = not tracked (VisualOdometry keeps the prediction)."""

    T_world_cam: np.ndarray | None
    state: str
    num_matches: int = 0
    num_inliers: int = 0
    covariance_6x6: np.ndarray = field(default_factory=lambda: np.eye(6) * 1e3)
    matching_ms: float = 0.0
    geometry_ms: float = 0.0
