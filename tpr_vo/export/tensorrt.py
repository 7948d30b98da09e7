"""ONNX -> TensorRT engine with the tensorrt Python API, and the engine cache.

Precisions:
  fp32          plain fp32.
  fp16-score32  fp16 everywhere except the score head (the layers only `scores` depends on),
                pinned to fp32 with OBEY_PRECISION_CONSTRAINTS.
  fp16          request: try plain fp16; if its keypoints repeat < 95 % of the fp32 engine's
                (1 px, mutual nearest) on the check input, use fp16-score32 (or fp32 if that
                fails too). The measured choice is cached beside the engines as JSON.

Cache: `<cache_dir>/tpr_<model sha>_<gpu>_trt<version>_<H>x<W>_<precision>.engine`, written
atomically; an engine is built on first use with a log line saying so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from tpr_vo.atomic import write_bytes_atomic, write_text_atomic
from tpr_vo.errors import DataError
from tpr_vo.features.learned import INPUT_NAME, OUTPUT_NAMES
from tpr_vo.features.parity import repeatability, textured_test_image
from tpr_vo.features.postprocess import PostprocessParams, extract_features
from tpr_vo.features.preprocess import prepare_image
from tpr_vo.features.tensorrt_backend import (
    TrtEngineRunner,
    cuda_gpu_name,
    import_cudart,
    import_tensorrt,
)

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "fp16-score32")
FP16_MIN_REPEATABILITY = 0.95
REPEATABILITY_TOL_PX = 1.0


@dataclass(frozen=True)
class EngineFile:
    engine_bytes: bytes = field(repr=False)
    path: Path
    precision: str  # the precision actually built (never the "fp16" request if it fell back)
    built: bool  # False when it came from the cache
    fp16_decision: dict | None = None  # the fp16 measurement (Fp16Decision as a dict)


@dataclass(frozen=True)
class Fp16Decision:
    chosen: str
    repeatability: dict[str, float]  # precision -> repeatability vs fp32 on the check input
    num_keypoints_fp32: int
    tol_px: float = REPEATABILITY_TOL_PX


def model_sha(onnx_path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:12]


def engine_cache_path(
    cache_dir: Path, onnx_path: Path, gpu_name: str, trt_version: str, h: int, w: int, prec: str
) -> Path:
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-") or "gpu"
    return Path(cache_dir) / (
        f"tpr_{model_sha(onnx_path)}_{gpu}_trt{trt_version}_{h}x{w}_{prec}.engine"
    )


def score_head_layers(network) -> list[int]:
    """Indices of the layers that only the `scores` output depends on (not `descriptors`)."""
    producer: dict[str, int] = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = i

    def ancestors(tensor_name: str) -> set[int]:
        seen: set[int] = set()
        stack = [tensor_name]
        while stack:
            index = producer.get(stack.pop())
            if index is None or index in seen:
                continue
            seen.add(index)
            layer = network.get_layer(index)
            for k in range(layer.num_inputs):
                tensor = layer.get_input(k)
                if tensor is not None:
                    stack.append(tensor.name)
        return seen

    return sorted(ancestors(OUTPUT_NAMES[0]) - ancestors(OUTPUT_NAMES[1]))


def _pin_score_head_fp32(network, trt) -> int:
    pinned = 0
    for index in score_head_layers(network):
        layer = network.get_layer(index)
        float_outputs = [
            j for j in range(layer.num_outputs) if layer.get_output(j).dtype == trt.float32
        ]
        if not float_outputs:
            continue  # shape arithmetic etc.
        layer.precision = trt.float32
        for j in float_outputs:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def build_engine(
    onnx_path: str | os.PathLike, h: int, w: int, precision: str, workspace_bytes: int = 1 << 30
) -> bytes:
    """Serialised engine for input (1, 1, h, w); h, w multiples of 32."""
    if precision not in PRECISIONS:
        raise DataError(f"TensorRT precision must be one of {PRECISIONS}, got {precision!r}")
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(str(trt.__version__).split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DataError(f"{onnx_path}: TensorRT cannot parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    shape = (1, 1, int(h), int(w))
    if any(d < 0 for d in network.get_input(0).shape):
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, shape, shape, shape)
        config.add_optimization_profile(profile)
    elif tuple(network.get_input(0).shape) != shape:
        raise DataError(
            f"{onnx_path}: fixed input {tuple(network.get_input(0).shape)} != requested {shape}; "
            "export with dynamic size or this size"
        )
    if precision != "fp32":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "fp16-score32":
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("keeping %d score-head layers in fp32", _pin_score_head_fp32(network, trt))
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DataError(f"{onnx_path}: TensorRT engine build failed ({precision}, {h}x{w})")
    log.info("built %s engine %dx%d in %.1f s", precision, h, w, time.perf_counter() - started)
    return bytes(serialized)


def _load_or_build_exact(
    onnx_path: Path, cache_dir: Path, h: int, w: int, precision: str
) -> EngineFile:
    trt = import_tensorrt()
    gpu = cuda_gpu_name(import_cudart())
    path = engine_cache_path(cache_dir, onnx_path, gpu, str(trt.__version__), h, w, precision)
    if path.is_file():
        log.debug("TensorRT engine from cache: %s", path)
        return EngineFile(path.read_bytes(), path, precision, built=False)
    log.info(
        "building the TensorRT %s engine for %dx%d from %s on %s (first use; may take a "
        "minute; cached at %s)", precision, h, w, onnx_path, gpu, path,
    )  # fmt: skip
    engine_bytes = build_engine(onnx_path, h, w, precision)
    write_bytes_atomic(path, engine_bytes)
    return EngineFile(engine_bytes, path, precision, built=True)


def _keypoints(runner: TrtEngineRunner, tensor: np.ndarray, params: PostprocessParams):
    scores, descriptors = runner.run(tensor)
    h, w = tensor.shape[-2:]
    return extract_features(scores, descriptors, h, w, params).keypoints_px


def choose_fp16_precision(
    onnx_path: Path,
    cache_dir: Path,
    h: int,
    w: int,
    tensors: list[np.ndarray],
    params: PostprocessParams,
) -> Fp16Decision:
    """Measure plain fp16 against fp32 on `tensors` ((1, 1, h, w) inputs); pin the score head
    to fp32 when fp16 repeats fewer than 95 % of the fp32 keypoints."""
    shape = (1, 1, h, w)
    reference = TrtEngineRunner(
        _load_or_build_exact(onnx_path, cache_dir, h, w, "fp32").engine_bytes, shape
    )
    ref_kps = [_keypoints(reference, t, params) for t in tensors]
    reference.close()
    measured: dict[str, float] = {}
    chosen = "fp32"
    for precision in ("fp16", "fp16-score32"):
        engine = _load_or_build_exact(onnx_path, cache_dir, h, w, precision)
        runner = TrtEngineRunner(engine.engine_bytes, shape)
        rep = float(
            np.mean(
                [
                    repeatability(ref, _keypoints(runner, t, params), REPEATABILITY_TOL_PX)
                    for ref, t in zip(ref_kps, tensors)
                ]
            )
        )
        runner.close()
        measured[precision] = rep
        log.info("TensorRT %s keypoint repeatability vs fp32: %.4f", precision, rep)
        if measured[precision] >= FP16_MIN_REPEATABILITY:
            chosen = precision
            break
    if chosen == "fp32":
        log.warning("fp16 collapses keypoints even with an fp32 score head; using fp32")
    return Fp16Decision(chosen, measured, int(np.mean([len(k) for k in ref_kps])))


def load_or_build_engine(
    onnx_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    h: int,
    w: int,
    precision: str,
    *,
    check_input: np.ndarray | None = None,
    params: PostprocessParams | None = None,
    redecide: bool = False,
) -> EngineFile:
    """The cached engine for (model, GPU, TensorRT, h x w, precision), built when missing.

    For the "fp16" request the fp16-vs-fp32 measurement runs once (on `check_input`, else a
    textured test image) and its choice is cached; `redecide=True` measures again.
    """
    if precision not in PRECISIONS:
        raise DataError(f"TensorRT precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_path, cache_dir = Path(onnx_path), Path(cache_dir).expanduser()
    if precision != "fp16":
        return _load_or_build_exact(onnx_path, cache_dir, h, w, precision)
    trt = import_tensorrt()
    gpu = cuda_gpu_name(import_cudart())
    decision_path = engine_cache_path(
        cache_dir, onnx_path, gpu, str(trt.__version__), h, w, "fp16"
    ).with_suffix(".choice.json")
    if decision_path.is_file() and not redecide:
        decision_dict = json.loads(decision_path.read_text())
    else:
        if check_input is None:
            check_input = prepare_image(textured_test_image(h, w)).tensor
        decision = choose_fp16_precision(
            onnx_path, cache_dir, h, w, [check_input], params or PostprocessParams()
        )
        decision_dict = asdict(decision)
        write_text_atomic(decision_path, json.dumps(decision_dict, indent=2) + "\n")
    engine = _load_or_build_exact(onnx_path, cache_dir, h, w, decision_dict["chosen"])
    return replace(engine, fp16_decision=decision_dict)
