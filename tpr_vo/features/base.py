"""The one interface every feature backend implements, and the factory that picks one.

`extract(image)` takes a (H, W) uint8 grayscale image and returns `Features` in that image's
pixel coordinates. Learned backends (TensorRT, ONNX Runtime, torch) share pre- and
post-processing (`tpr_vo.features.postprocess`) so their keypoints agree.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.types import Features

log = logging.getLogger(__name__)


@runtime_checkable
class FeatureBackend(Protocol):
    """Optionally, `concurrent_extract: bool` (False when absent): True when two threads may
    call `extract` at once and that is worth doing, so a stereo frame's right image is extracted
    beside the left (`frontend.extract_frame`)."""

    name: str  # e.g. "orb", "sift", "tpr/onnxruntime-cpu"

    def extract(self, image: np.ndarray) -> Features:
        """image: (H, W) uint8 grayscale -> Features."""
        ...


def create_backend(cfg: FeaturesConfig, keypoint_covariance: bool = True) -> FeatureBackend:
    """Build the backend named by `cfg.kind` (and `cfg.backend` for tpr).

    keypoint_covariance: False lets ORB and SIFT skip their position covariances when nothing
    reads them (`FrontendConfig.uses_keypoint_covariance`); TPR's come free with the soft-argmax
    and are always filled."""
    if cfg.kind in ("orb", "sift"):
        from tpr_vo.features.classical import ClassicalBackend

        return ClassicalBackend(cfg, keypoint_covariance)
    from tpr_vo.features.select import create_tpr_backend

    return create_tpr_backend(cfg)
