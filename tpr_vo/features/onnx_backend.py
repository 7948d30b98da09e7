"""TPR features through ONNX Runtime: the CUDA execution provider when present, else the CPU one.

Needs only numpy, OpenCV and onnxruntime: neither torch nor tensorrt is imported on this path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import BackendUnavailableError
from tpr_vo.features.learned import (
    INPUT_NAME,
    INT8_SUFFIX,
    OUTPUT_NAMES,
    QUANTIZED_KEY,
    LearnedBackend,
    int8_model_path,
    resolve_model_path,
)
from tpr_vo.prefetch import available_cores

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            "ONNX Runtime is not installed: pip install onnxruntime "
            "(or onnxruntime-gpu for the CUDA execution provider)"
        ) from exc
    return onnxruntime


def int8_sibling(float_path: Path) -> Path:
    """`models/tpr_large.onnx` -> `models/tpr_large_int8.onnx` when that file exists (written by
    `tpr-vo export --int8`), else `float_path` itself."""
    if float_path.stem.endswith(INT8_SUFFIX):
        return float_path
    sibling = int8_model_path(float_path)
    return sibling if sibling.is_file() else float_path


class OnnxRuntimeBackend(LearnedBackend):
    """device: "auto" (CUDA when available, else CPU), "cuda" (fail without it) or "cpu".

    On the CPU a model named by `cfg.model_path` runs as its int8 sibling when one exists and
    `cfg.onnx_int8` is on (`int8_sibling`); an explicit `onnx_path` is run as given.

    The CPU provider uses `cfg.onnx_threads` intra-op threads (0 = ONNX Runtime's default; the
    offline pipeline's prefetch thread resolves 0 first, `prefetch.features_for_prefetch`).

    `concurrent_extract` (see `FeatureBackend`): an `InferenceSession` may run from several
    threads at once. On the CPU with an explicit thread count of at most half the cores, a stereo
    frame's two images then run side by side. That is the prefetch thread's setting on 2 cores
    (1 thread): KITTI 06 stereo rose from 10.6-10.7 to 12.7-13.0 FPS with the same poses
    (model card, "Session 22"). With ONNX Runtime's default (every core) two runs at once only
    share the cores (10.5-11.1 FPS either way), so the images run one after the other.
    """

    def __init__(
        self,
        cfg: FeaturesConfig,
        device: str = "auto",
        onnx_path: str | os.PathLike | None = None,
    ):
        super().__init__(cfg)
        if device not in ("auto", "cuda", "cpu"):
            raise ValueError(f"OnnxRuntimeBackend: device must be auto|cuda|cpu, got {device!r}")
        ort = import_onnxruntime()
        path = Path(onnx_path) if onnx_path else resolve_model_path(cfg.model_path, ".onnx")
        if not path.is_file():
            raise BackendUnavailableError(f"TPR model file not found: {path}")
        available = ort.get_available_providers()
        has_cuda = CUDA_PROVIDER in available
        if device == "cuda" and not has_cuda:
            raise BackendUnavailableError(
                "ONNX Runtime has no CUDA execution provider here: pip install onnxruntime-gpu "
                "(and a CUDA GPU with its driver)"
            )
        use_cuda = has_cuda and device != "cpu"
        if onnx_path is None and not use_cuda and cfg.onnx_int8:
            path = int8_sibling(path)
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if use_cuda else [CPU_PROVIDER]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only; provider fallbacks are logged by us
        if cfg.onnx_threads > 0:
            options.intra_op_num_threads = cfg.onnx_threads
        # Idle intra-op threads would otherwise spin after each run and steal the cores that
        # matching and geometry need next; on a busy 2-core machine spinning doubled the
        # network time (measured 50 ms vs 28 ms with 2 threads).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendUnavailableError(f"{path}: ONNX Runtime cannot load it ({exc})") from exc
        if use_cuda and CUDA_PROVIDER not in session.get_providers():
            # The provider is compiled in but its CUDA/cuDNN libraries failed to load.
            if device == "cuda":
                raise BackendUnavailableError(
                    "ONNX Runtime's CUDA execution provider failed to load (CUDA/cuDNN libraries "
                    "missing or no GPU); see onnxruntime-gpu's CUDA requirements"
                )
            log.warning("ONNX Runtime CUDA provider failed to load; running on CPU")
            use_cuda = False
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != [INPUT_NAME] or sorted(outputs) != sorted(OUTPUT_NAMES):
            raise BackendUnavailableError(
                f"{path}: expected input {INPUT_NAME!r} and outputs {list(OUTPUT_NAMES)}, "
                f"got inputs {inputs} and outputs {outputs}"
            )
        self._session = session
        self.model_path = path
        self.device = "cuda" if use_cuda else "cpu"
        threads = cfg.onnx_threads
        self.concurrent_extract = self.device == "cpu" and 0 < 2 * threads <= available_cores()
        # What the graph is, from its metadata (`tpr-vo export --int8` marks it), not its name.
        self.int8 = QUANTIZED_KEY in session.get_modelmeta().custom_metadata_map
        self.name = f"tpr/onnxruntime-{self.device}" + ("-int8" if self.int8 else "")
        log.debug("%s: loaded %s with providers %s", self.name, path, session.get_providers())

    def _infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, descriptors = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: tensor})
        return scores, descriptors
