"""OpenCV ORB and SIFT baselines behind the FeatureBackend interface."""

from __future__ import annotations

import cv2
import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import DataError
from tpr_vo.types import Features

# Keypoint position covariance of ORB and SIFT (`structure_tensor_covariance_px2`):
# FLOOR * I + GAIN * (A + REGULARIZER * I)^-1, A the image's structure tensor at the keypoint;
# per detector, the gain fitted on a rendered drive (render seed 3, frames 0-99) with
# `benchmarks/keypoint_covariance.py`, the floor chosen by the VO rotation error on that drive
# (model card, "Session 18").
STRUCTURE_WINDOW_PX = 7  # Gaussian window (sigma = window / 4) over the gradient products
STRUCTURE_REGULARIZER = 1e-4  # (intensity / px)^2, intensities in [0, 1]: bounds flat spots
STRUCTURE_COV = {"orb": (0.01, 6.64e-5), "sift": (0.0002, 4.83e-6)}  # (FLOOR px^2, GAIN)


def structure_tensor_covariance_px2(
    image: np.ndarray, keypoints_px: np.ndarray, floor_px2: float, gain: float
) -> np.ndarray:
    """(N, 2, 2) float32 position covariance from the gradient structure tensor around each
    keypoint (Foerstner): strong gradients in two directions pin a keypoint down, an edge only
    across itself, a flat patch not at all."""
    g = image.astype(np.float32) / np.float32(255.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / np.float32(8.0)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / np.float32(8.0)
    w = (STRUCTURE_WINDOW_PX, STRUCTURE_WINDOW_PX)
    sigma = STRUCTURE_WINDOW_PX / 4.0
    h_px, w_px = g.shape
    x = np.clip(np.rint(keypoints_px[:, 0]).astype(np.int64), 0, w_px - 1)
    y = np.clip(np.rint(keypoints_px[:, 1]).astype(np.int64), 0, h_px - 1)
    products = (gx * gx, gx * gy, gy * gy)
    blur = [cv2.GaussianBlur(p, w, sigma)[y, x].astype(np.float64) for p in products]
    a, c = blur[0] + STRUCTURE_REGULARIZER, blur[2] + STRUCTURE_REGULARIZER
    # |b| <= sqrt(ac - reg^2) holds exactly for a Gram matrix plus reg I; clipping keeps it so
    # under float32 rounding, and with it det >= reg^2 and a positive definite covariance.
    bound = np.sqrt(np.maximum(a * c - STRUCTURE_REGULARIZER**2, 0.0))
    b = np.clip(blur[1], -bound, bound)
    det = a * c - b * b
    cov = np.empty((len(x), 2, 2))
    cov[:, 0, 0] = floor_px2 + gain * c / det
    cov[:, 1, 1] = floor_px2 + gain * a / det
    cov[:, 0, 1] = cov[:, 1, 0] = -gain * b / det
    return cov.astype(np.float32)


class ClassicalBackend:
    """ORB (binary, 32-byte descriptors) or SIFT (128-D, RootSIFT-normalised unit vectors).
    Keypoints carry a position covariance from the image's structure tensor unless
    `keypoint_covariance` is False (it costs 1.3 ms or more per KITTI frame, and only the map
    frontend's `frontend.keypoint_covariance` reads it)."""

    def __init__(self, cfg: FeaturesConfig, keypoint_covariance: bool = True):
        if cfg.kind == "orb":
            self._detector = cv2.ORB_create(nfeatures=cfg.max_keypoints, fastThreshold=10)
            self._dim = 32
        elif cfg.kind == "sift":
            self._detector = cv2.SIFT_create(nfeatures=cfg.max_keypoints)
            self._dim = 128
        else:
            raise ValueError(f"ClassicalBackend: unknown kind {cfg.kind!r}")
        self.name = cfg.kind
        self._binary = cfg.kind == "orb"
        self._covariance = keypoint_covariance

    def extract(self, image: np.ndarray) -> Features:
        if image.ndim != 2 or image.dtype != np.uint8:
            raise DataError(
                f"{self.name}: expected a (H, W) uint8 image, got {image.shape} {image.dtype}"
            )
        keypoints, descriptors = self._detector.detectAndCompute(image, None)
        if descriptors is None or len(keypoints) == 0:
            return Features.empty(self._dim, binary=self._binary)
        xy = np.array([kp.pt for kp in keypoints], dtype=np.float32)
        scores = np.array([kp.response for kp in keypoints], dtype=np.float32)
        if not self._binary:
            # RootSIFT: L1-normalise, square root -> unit L2 vectors; cosine == Hellinger kernel.
            d = descriptors.astype(np.float32)
            d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-6)
            descriptors = np.sqrt(d)
        cov = None
        if self._covariance:
            cov = structure_tensor_covariance_px2(image, xy, *STRUCTURE_COV[self.name])
        return Features(xy, scores, descriptors, cov)
