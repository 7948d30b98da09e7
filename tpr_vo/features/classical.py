"""OpenCV ORB and SIFT baselines behind the FeatureBackend interface."""

from __future__ import annotations

import cv2
import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import DataError
from tpr_vo.types import Features


class ClassicalBackend:
    """ORB (binary, 32-byte descriptors) or SIFT (128-D, RootSIFT-normalised unit vectors)."""

    def __init__(self, cfg: FeaturesConfig):
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
        return Features(xy, scores, descriptors)
