"""What every TPR backend shares: where the model file is, and preprocess -> network ->
postprocess with per-stage timings. A backend only supplies `_infer(tensor)`."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import BackendUnavailableError
from tpr_vo.features.postprocess import (
    PostprocessParams,
    extract_features,
    merge_scales,
    scaled_size,
)
from tpr_vo.features.preprocess import prepare_image
from tpr_vo.types import Features

log = logging.getLogger(__name__)

PACKAGE = "tpr_vo"
DEFAULT_MODEL_STEM = "tpr_large"  # since session 15; the 118k-parameter model is tpr_small
# The contract with the exported graph (tpr_vo.export.onnx writes these names).
INPUT_NAME = "image"
OUTPUT_NAMES = ("scores", "descriptors")
INT8_SUFFIX = "_int8"  # the int8 graph of a model, for ONNX Runtime on CPUs (tpr-vo export --int8)
QUANTIZED_KEY = "tpr_vo.quantized"  # ONNX metadata entry that marks an int8 graph


def shipped_model_dirs() -> list[Path]:
    """Where the shipped models may live: the colcon/ament share dir, then the source tree."""
    dirs: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory(PACKAGE)) / "models")
    except Exception:  # not installed with colcon, or ament_index_python absent
        pass
    # `pip install -e .` and a plain checkout: <repo>/models next to <repo>/tpr_vo/.
    dirs.append(Path(__file__).resolve().parents[2] / "models")
    return dirs


def int8_model_path(onnx_path: str | os.PathLike) -> Path:
    """models/tpr_large.onnx -> models/tpr_large_int8.onnx (the name only; it may not exist)."""
    path = Path(onnx_path)
    return path.with_name(path.stem + INT8_SUFFIX + ".onnx")


def resolve_model_path(model_path: str, suffix: str) -> Path:
    """The model file a backend loads: `suffix` is ".onnx" or ".pt".

    `model_path == ""` means models/tpr_large<suffix> as shipped (ONNX Runtime on a CPU then
    runs tpr_large_int8.onnx, `OnnxRuntimeBackend`). A user path with another
    suffix names the model family: "my.pt" gives "my.onnx" for ONNX Runtime (as `tpr-vo export`
    writes them side by side). A bare name without folder or suffix ("tpr_large") is looked up
    as a file first, then among the shipped models (so it works in a colcon install too).
    Raises BackendUnavailableError naming every path tried.
    """
    if model_path:
        given = Path(model_path).expanduser()
        candidates = [given if given.suffix == suffix else given.with_suffix(suffix)]
        if given.name == model_path and not given.suffix:
            candidates += [d / f"{model_path}{suffix}" for d in shipped_model_dirs()]
    else:
        candidates = [d / f"{DEFAULT_MODEL_STEM}{suffix}" for d in shipped_model_dirs()]
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    hint = " (create it with `tpr-vo export`)" if suffix == ".onnx" else ""
    if suffix == ".pt" and candidates[0].stem.endswith(INT8_SUFFIX):
        hint = (
            f" (an {INT8_SUFFIX} model is an ONNX Runtime graph from `tpr-vo export --int8`;"
            f" torch runs its float checkpoint {candidates[0].stem.removesuffix(INT8_SUFFIX)}.pt)"
        )
    raise BackendUnavailableError(f"TPR model file not found: {tried}{hint}")


class LearnedBackend:
    """Base of the TPR backends: `extract(image) -> Features` with shared pre/post-processing.

    After each call `last_timings_ms` holds {"preprocess", "network", "postprocess"} in ms
    (summed over the image scales of `features.scales`); when two calls run at once (a stereo
    pair, `concurrent_extract`), those of the call that finished last.
    """

    name = "tpr"

    def __init__(self, cfg: FeaturesConfig):
        self.params = PostprocessParams.from_config(cfg)
        self.scales = tuple(float(x) for x in cfg.scales)
        self.last_timings_ms: dict[str, float] = {}

    def _infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, 1, Hp, Wp) float32 -> scores (1, 1, Hp, Wp), descriptors (1, D, Hp/s, Wp/s)."""
        raise NotImplementedError

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The raw network outputs as float32 numpy arrays (used by parity checks)."""
        scores, descriptors = self._infer(np.ascontiguousarray(tensor, dtype=np.float32))
        return np.asarray(scores, np.float32), np.asarray(descriptors, np.float32)

    def extract(self, image: np.ndarray) -> Features:
        if self.scales == (1.0,):
            features, self.last_timings_ms = self._extract_at(image)
            return features
        # Several scales (`features.scales`): each resized copy is extracted on its own, the
        # keypoints are merged in the original image's pixels; timings add up.
        h, w = image.shape[:2]
        per_scale, totals = [], {"preprocess": 0.0, "network": 0.0, "postprocess": 0.0}
        for scale in self.scales:
            t0 = time.perf_counter()
            sh, sw = scaled_size(h, w, scale)
            resized = image
            if (sh, sw) != (h, w):
                interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
                resized = cv2.resize(image, (sw, sh), interpolation=interp)
            resize_ms = (time.perf_counter() - t0) * 1e3
            features, timings = self._extract_at(resized)
            per_scale.append((features, w / sw, h / sh))
            for stage, ms in timings.items():
                totals[stage] += ms
            totals["preprocess"] += resize_ms
        t0 = time.perf_counter()
        merged = merge_scales(per_scale, self.params.max_keypoints)
        totals["postprocess"] += (time.perf_counter() - t0) * 1e3
        self.last_timings_ms = totals
        return merged

    def _extract_at(self, image: np.ndarray) -> tuple[Features, dict[str, float]]:
        t0 = time.perf_counter()
        net_in = prepare_image(image, self.name)
        t1 = time.perf_counter()
        scores, descriptors = self.infer(net_in.tensor)
        t2 = time.perf_counter()
        features = extract_features(
            scores, descriptors, net_in.height_px, net_in.width_px, self.params
        )
        t3 = time.perf_counter()
        timings = {
            "preprocess": (t1 - t0) * 1e3,
            "network": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        return features, timings
