"""TPR features through a TensorRT engine on the GPU (tensorrt + cuda-python; no torch).

The engine is built from the ONNX model for the padded input size of the first image, on first
use, and cached (tpr_vo.export.tensorrt: key = GPU name, TensorRT version, input shape,
precision and model hash, in `features.engine_cache_dir`). fp16 (`features.fp16`) keeps the
score head in fp32 when plain fp16 would collapse the keypoints.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import BackendUnavailableError, DataError
from tpr_vo.features.learned import INPUT_NAME, OUTPUT_NAMES, LearnedBackend, resolve_model_path

log = logging.getLogger(__name__)


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(
            "TensorRT is not installed: pip install tensorrt (NVIDIA GPU and driver needed)"
        ) from exc
    return tensorrt


def import_cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError as exc:
            raise BackendUnavailableError(
                "cuda-python is not installed: pip install cuda-python"
            ) from exc
    return cudart


def cuda_check(result, what: str):
    """cuda-python returns (error, *values): raise on error, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendUnavailableError(f"CUDA error in {what}: {err}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_gpu_name(cudart=None) -> str:
    """Name of CUDA device 0; BackendUnavailableError when there is no usable GPU."""
    cudart = cudart or import_cudart()
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise BackendUnavailableError(f"no CUDA GPU available ({err})")
    props = cuda_check(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    name = props.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    return str(name).strip()


class TrtEngineRunner:
    """One deserialised engine, its execution context and device buffers for one input shape."""

    def __init__(self, engine_bytes: bytes, input_shape: tuple[int, ...]):
        trt = import_tensorrt()
        self._cudart = cudart = import_cudart()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self._engine is None:
            raise DataError("TensorRT could not deserialise the engine (stale or corrupt cache)")
        self._context = self._engine.create_execution_context()
        if not self._context.set_input_shape(INPUT_NAME, tuple(input_shape)):
            raise DataError(f"TensorRT engine does not accept input shape {tuple(input_shape)}")
        self._stream = cuda_check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = tuple(self._context.get_tensor_shape(name))
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            host = np.empty(shape, dtype)
            device_ptr = cuda_check(cudart.cudaMalloc(max(host.nbytes, 1)), "cudaMalloc")
            self._buffers[name] = (host, int(device_ptr))
            self._context.set_tensor_address(name, int(device_ptr))
        missing = {INPUT_NAME, *OUTPUT_NAMES} - set(self._buffers)
        if missing:
            raise DataError(f"TensorRT engine lacks tensors {sorted(missing)}")

    def run(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        host, device_ptr = self._buffers[INPUT_NAME]
        np.copyto(host, tensor.reshape(host.shape), casting="same_kind")
        cuda_check(
            cudart.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes, h2d, self._stream),
            "cudaMemcpyAsync",
        )
        if not self._context.execute_async_v3(int(self._stream)):
            raise DataError("TensorRT execute_async_v3 failed")
        for name in OUTPUT_NAMES:
            out, out_ptr = self._buffers[name]
            cuda_check(
                cudart.cudaMemcpyAsync(out.ctypes.data, out_ptr, out.nbytes, d2h, self._stream),
                "cudaMemcpyAsync",
            )
        cuda_check(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        scores, descriptors = (self._buffers[n][0].astype(np.float32) for n in OUTPUT_NAMES)
        return scores, descriptors

    def close(self) -> None:
        buffers, self._buffers = getattr(self, "_buffers", {}), {}
        for _, device_ptr in buffers.values():
            self._cudart.cudaFree(device_ptr)
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self):  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass


def refuse_quantized(onnx_path: Path) -> None:
    """TensorRT builds its engines from the float graph; an int8 QDQ graph written for ONNX
    Runtime (`tpr-vo export --int8`) is refused with the float model's name."""
    from tpr_vo.export.quantize import is_quantized
    from tpr_vo.features.learned import INT8_SUFFIX

    if onnx_path.is_file() and is_quantized(onnx_path):
        stem = onnx_path.stem.removesuffix(INT8_SUFFIX)
        raise BackendUnavailableError(
            f"{onnx_path}: an int8 graph for ONNX Runtime on CPUs; TensorRT builds its fp16/fp32 "
            f"engines from the float model ({stem}.onnx, features.model_path: {stem})"
        )


class TensorRTBackend(LearnedBackend):
    """precision: "fp32", "fp16" (score head kept fp32 when fp16 collapses keypoints) or
    "fp16-score32"; default from `cfg.fp16`."""

    def __init__(
        self,
        cfg: FeaturesConfig,
        onnx_path: str | os.PathLike | None = None,
        precision: str | None = None,
    ):
        super().__init__(cfg)
        trt = import_tensorrt()
        cudart = import_cudart()
        self.gpu_name = cuda_gpu_name(cudart)
        self.trt_version = str(trt.__version__)
        self.onnx_path = (
            Path(onnx_path) if onnx_path else resolve_model_path(cfg.model_path, ".onnx")
        )
        refuse_quantized(self.onnx_path)
        self.cache_dir = Path(os.path.expanduser(cfg.engine_cache_dir))
        self.requested_precision = precision or ("fp16" if cfg.fp16 else "fp32")
        self.precision: str | None = None  # known once the engine is loaded
        self.engine_path: Path | None = None
        self._runner: TrtEngineRunner | None = None
        self._shape: tuple[int, ...] | None = None
        self.name = f"tpr/tensorrt-{self.requested_precision}"

    def _load(self, tensor: np.ndarray) -> None:
        from tpr_vo.export.tensorrt import load_or_build_engine

        h, w = tensor.shape[-2:]
        engine = load_or_build_engine(
            self.onnx_path,
            self.cache_dir,
            int(h),
            int(w),
            self.requested_precision,
            check_input=tensor,
            params=self.params,
        )
        if self._runner is not None:
            self._runner.close()
        self._runner = TrtEngineRunner(engine.engine_bytes, tuple(tensor.shape))
        self._shape = tuple(tensor.shape)
        self.precision = engine.precision
        self.engine_path = engine.path

    def _infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._shape != tuple(tensor.shape):
            self._load(tensor)
        return self._runner.run(tensor)
