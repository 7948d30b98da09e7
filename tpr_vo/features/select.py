"""Pick the TPR backend: `features.backend` = tensorrt | onnxruntime | torch | auto.

auto tries TensorRT -> ONNX Runtime CUDA -> ONNX Runtime CPU -> torch, takes the first that can
run here, and logs what it chose and why each one before it was skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import BackendUnavailableError
from tpr_vo.features.base import FeatureBackend

log = logging.getLogger(__name__)


def _tensorrt(cfg: FeaturesConfig) -> FeatureBackend:
    from tpr_vo.features.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(cfg)


def _onnxruntime(device: str) -> Callable[[FeaturesConfig], FeatureBackend]:
    def make(cfg: FeaturesConfig) -> FeatureBackend:
        from tpr_vo.features.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(cfg, device=device)

    return make


def _torch(cfg: FeaturesConfig) -> FeatureBackend:
    from tpr_vo.features.torch_backend import TorchBackend

    return TorchBackend(cfg)


# (name, factory) in the order `auto` tries them.
AUTO_ORDER: tuple[tuple[str, Callable[[FeaturesConfig], FeatureBackend]], ...] = (
    ("tensorrt", _tensorrt),
    ("onnxruntime-cuda", _onnxruntime("cuda")),
    ("onnxruntime-cpu", _onnxruntime("cpu")),
    ("torch", _torch),
)
_EXPLICIT = {
    "tensorrt": _tensorrt,
    "onnxruntime": _onnxruntime("auto"),
    "torch": _torch,
}


def create_tpr_backend(cfg: FeaturesConfig) -> FeatureBackend:
    """The backend named by `cfg.backend`; raises BackendUnavailableError when it cannot run."""
    if cfg.backend != "auto":
        if cfg.backend not in _EXPLICIT:
            raise BackendUnavailableError(
                f"features.backend: unknown backend {cfg.backend!r}, expected auto|"
                + "|".join(_EXPLICIT)
            )
        backend = _EXPLICIT[cfg.backend](cfg)
        log.info("features backend: %s", backend.name)
        return backend
    skipped: list[str] = []
    for name, make in AUTO_ORDER:
        try:
            backend = make(cfg)
        except BackendUnavailableError as exc:
            skipped.append(f"{name} ({exc})")
            continue
        log.info(
            "features backend auto: chose %s; skipped: %s",
            backend.name,
            "; ".join(skipped) if skipped else "none",
        )
        return backend
    raise BackendUnavailableError("no TPR backend can run here: " + "; ".join(skipped))


def available_tpr_backends(cfg: FeaturesConfig) -> tuple[list[FeatureBackend], list[str]]:
    """Every backend of the auto order that can run here, plus why the others cannot.

    ONNX Runtime CUDA and CPU are both listed when CUDA works, so a benchmark shows both.
    """
    backends: list[FeatureBackend] = []
    skipped: list[str] = []
    for name, make in AUTO_ORDER:
        try:
            backends.append(make(cfg))
        except BackendUnavailableError as exc:
            skipped.append(f"{name} ({exc})")
    return backends, skipped
