"""Random homographies for training pairs, and exact point correspondences through them.

Convention: pixel coordinates (x, y) with integer values at pixel centres (OpenCV's), and
`H_b_a` maps homogeneous points of view a to view b: x_b ~ H_b_a @ [x_a, y_a, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class HomographyRange:
    """Limits of the random transformation at full strength (strength = 1)."""

    max_rotation_deg: float = 30.0
    max_log2_scale: float = 0.6  # scale in [2^-s, 2^s]
    max_perspective: float = 0.25  # corner displacement as a fraction of the crop size
    max_translation: float = 0.1  # fraction of the crop size


def random_homography(
    width_px: int, height_px: int, strength: float, rng: np.random.Generator, rng_limits=None
) -> np.ndarray:
    """(3, 3) float64 H_b_a for a crop of the given size, about its centre.

    `strength` in [0, 1] scales every limit (0 = identity): the curriculum raises it.
    """
    lim = rng_limits or HomographyRange()
    s = float(np.clip(strength, 0.0, 1.0))
    w, h = float(width_px), float(height_px)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    # Perspective: move each corner independently, then similarity about the centre.
    jitter = rng.uniform(-1, 1, (4, 2)) * s * lim.max_perspective * np.array([w, h]) / 2
    moved = corners + jitter
    angle = np.deg2rad(rng.uniform(-1, 1) * s * lim.max_rotation_deg)
    scale = 2.0 ** (rng.uniform(-1, 1) * s * lim.max_log2_scale)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (moved - [cx, cy]) @ rot.T + [cx, cy]
    moved += rng.uniform(-1, 1, 2) * s * lim.max_translation * np.array([w, h])
    H = cv2.getPerspectiveTransform(corners.astype(np.float32), moved.astype(np.float32))
    return H.astype(np.float64)


def translation(dx: float, dy: float) -> np.ndarray:
    """(3, 3) H that shifts points by (dx, dy) pixels."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
