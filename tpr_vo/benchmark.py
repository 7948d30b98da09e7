"""Speed of the whole VO per frame, per stage, for each TPR backend and the ORB baseline, measured
in the same run on the same frames.

Stages (ms per frame, mean over the timed frames): decode (image file -> uint8 array), then
`VisualOdometry.process_frame`'s features / matching / geometry, with the TPR features split
into preprocess / network / postprocess. End-to-end = decode + process_frame. Each backend runs
in its own spawned process so its peak resident memory (ru_maxrss) is its own.

`fps_prefetch` is a second pass over the same frames with reading and feature extraction of the
next frame in a background thread (`tpr_vo.prefetch`, what `tpr-vo run` does): throughput, with
the per-frame latency unchanged.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tpr_vo.config import VoConfig, from_flat_dict, replace, to_flat_dict
from tpr_vo.errors import BackendUnavailableError, DataError
from tpr_vo.prefetch import available_cores, features_for_prefetch

log = logging.getLogger(__name__)

TPR_BACKENDS = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch")
STAGES = ("decode", "preprocess", "network", "postprocess", "features", "matching", "geometry")
SYNTHETIC_SIZE = (1241, 376)  # (width, height), KITTI-like


@dataclass
class BackendResult:
    name: str
    frames: int
    fps: float
    ms_per_stage: dict[str, float]
    peak_rss_mb: float
    keypoints_mean: float
    tracked_frames: int
    fps_prefetch: float | None = None
    ratio_to_orb: float | None = None


@dataclass
class BenchReport:
    image_size: dict[str, int]
    threads: int  # ONNX Runtime intra-op threads of the timed (sequential) pass
    threads_prefetch: int  # ... and of the prefetch pass (`fps_prefetch`), as `tpr-vo run`
    frames: int
    sequence: str
    machine: dict[str, Any]
    orb: BackendResult | None
    backends: dict[str, BackendResult] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return out


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    gpus = gpu_names()
    if gpus:
        info["gpus"] = gpus
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        pass
    return info


def gpu_names() -> list[str]:
    """The NVIDIA GPUs `nvidia-smi` lists (none without it), so a result names its GPU; asks no
    GPU library, which the ONNX Runtime CPU path must not need."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


class _SplitTimer:
    """Delegates to a backend and sums its per-call stage timings (stereo calls extract twice)."""

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        self.sums: dict[str, float] = {}
        self.num_keypoints = 0

    def extract(self, image):
        features = self.backend.extract(image)
        self.num_keypoints = len(features)
        for key, value in getattr(self.backend, "last_timings_ms", {}).items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        return features


def _make_backend(kind: str, config: VoConfig):
    from tpr_vo.features.classical import ClassicalBackend

    if kind == "orb":
        return ClassicalBackend(config.features, config.frontend.uses_keypoint_covariance)
    if kind == "tensorrt":
        from tpr_vo.features.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(config.features)
    if kind.startswith("onnxruntime"):
        from tpr_vo.features.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(config.features, device=kind.split("-")[1])
    if kind == "torch":
        from tpr_vo.features.torch_backend import TorchBackend

        return TorchBackend(config.features)
    raise DataError(f"bench: unknown backend {kind!r}")


def _open(seq_path: str, max_frames: int):
    from tpr_vo.datasets import open_sequence

    sequence = open_sequence(seq_path)
    n = min(len(sequence), max_frames)
    if n < 2:
        raise DataError(f"{seq_path}: need at least 2 frames to benchmark, got {n}")
    return sequence, n


def run_one(kind: str, flat_config: dict[str, Any], seq_path: str, size, frames: int, warmup: int):
    """One backend over the frames, in this process. Returns a dict (picklable)."""
    import cv2

    from tpr_vo.frontend import VisualOdometry
    from tpr_vo.types import CameraIntrinsics

    config = from_flat_dict(flat_config, "bench")
    try:
        backend = _make_backend(kind, config)
    except BackendUnavailableError as exc:
        return {"skipped": str(exc)}
    sequence, n = _open(seq_path, frames)
    K = sequence.intrinsics
    width, height = size if size else (K.width_px, K.height_px)
    sx, sy = width / K.width_px, height / K.height_px
    intrinsics = CameraIntrinsics(
        K.fx * sx, K.fy * sy, K.cx * sx, K.cy * sy, width, height, K.baseline_m
    )
    timed = _SplitTimer(backend)
    vo = VisualOdometry(config, intrinsics, backend=timed)
    stereo = config.frontend.mode == "stereo"

    sequence.read_right = stereo  # mono: the right image is neither decoded nor timed

    def read(i: int):
        t0 = time.perf_counter()
        frame = sequence[i]  # one frame at a time, so frames do not inflate the peak memory
        left, right = frame.image_left, frame.image_right
        if left is not None and (left.shape[1], left.shape[0]) != (width, height):
            left = cv2.resize(left, (width, height), interpolation=cv2.INTER_AREA)
            if right is not None:
                right = cv2.resize(right, (width, height), interpolation=cv2.INTER_AREA)
        return frame.stamp_s, left, right, (time.perf_counter() - t0) * 1e3

    rows: list[dict[str, float]] = []
    keypoints: list[int] = []
    tracked = 0
    for i in range(n):
        stamp_s, left, right, decode_ms = read(i)
        timed.sums, timed.num_keypoints = {}, 0
        estimate = vo.process_frame(left, stamp_s, right_image=right)
        if i < warmup:
            continue
        row = {"decode": decode_ms, **{k: float(v) for k, v in estimate.timings_ms.items()}}
        row.update(timed.sums)
        row["total"] = decode_ms + float(estimate.timings_ms.get("total", 0.0))
        rows.append(row)
        tracked += int(estimate.tracked)
        if left is not None:
            keypoints.append(timed.num_keypoints)
    # The prefetch pass extracts with the threads `tpr-vo run` uses (auto: cores - 1).
    prefetch_features = features_for_prefetch(config.features)
    prefetch_backend = backend
    if prefetch_features != config.features:
        threads = {"features.onnx_threads": prefetch_features.onnx_threads}
        prefetch_backend = _make_backend(kind, replace(config, **threads))
    fps_prefetch = _prefetch_fps(
        VisualOdometry(config, intrinsics, backend=prefetch_backend), read, n, warmup
    )
    ms = {k: float(np.mean([r.get(k, 0.0) for r in rows])) for k in (*STAGES, "total")}
    if kind == "orb":
        for k in ("preprocess", "network", "postprocess"):
            ms.pop(k)
    result = asdict(
        BackendResult(
            name=backend.name,
            frames=len(rows),
            fps=1000.0 / ms["total"],
            ms_per_stage={k: round(v, 3) for k, v in ms.items()},
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            keypoints_mean=float(np.mean(keypoints)) if keypoints else 0.0,
            tracked_frames=tracked,
            fps_prefetch=round(fps_prefetch, 3),
        )
    )
    return {**result, "image_size": {"width": int(width), "height": int(height)}}


def _prefetch_fps(vo, read, n: int, warmup: int) -> float:
    """Frames per second over frames warmup..n-1 with frame i+1 read and extracted while
    frame i is tracked."""
    from tpr_vo.prefetch import prefetched

    def load(i: int):
        stamp_s, left, right, _ = read(i)
        return stamp_s, left, right, vo.extract(left, right)

    t_start = time.perf_counter()
    for i, (stamp_s, left, right, extracted) in enumerate(prefetched(load, n)):
        if i == warmup:
            t_start = time.perf_counter()
        vo.process_frame(left, stamp_s, right_image=right, extracted=extracted)
    return (n - warmup) / (time.perf_counter() - t_start)


def _run_isolated(args: tuple) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(run_one, args)


def run_benchmark(
    config: VoConfig,
    backends: list[str] | None = None,
    seq_path: str | os.PathLike | None = None,
    size: tuple[int, int] | None = None,
    frames: int = 50,
    warmup: int = 3,
    isolate: bool = True,
) -> BenchReport:
    """Benchmark ORB and each TPR backend in `backends` (default: all of TPR_BACKENDS; those
    that cannot run here are listed in `skipped`). `size` = (width, height) resizes frames;
    without `seq_path` the synthetic sequence is rendered at 1241x376."""
    backends = list(backends or TPR_BACKENDS)
    with tempfile.TemporaryDirectory(prefix="tpr_vo_bench_") as tmp:
        if seq_path is None:
            from tpr_vo.datasets.synthetic import render_synthetic_sequence

            w, h = size or SYNTHETIC_SIZE
            seq_path = render_synthetic_sequence(
                Path(tmp) / "synthetic", num_frames=frames + warmup, seed=0, width=w, height=h
            )
            sequence_name = f"synthetic (seed 0, {w}x{h})"
        else:
            sequence_name = str(seq_path)
        results: dict[str, dict] = {}
        for kind in ["orb", *backends]:
            kind_config = replace(config, **{"features.kind": "orb" if kind == "orb" else "tpr"})
            args = (kind, to_flat_dict(kind_config), str(seq_path), size, frames + warmup, warmup)
            log.info("bench: %s ...", kind)
            results[kind] = _run_isolated(args) if isolate else run_one(*args)
    orb_raw = results.pop("orb")
    if "skipped" in orb_raw:
        raise DataError(f"bench: the ORB baseline failed: {orb_raw['skipped']}")
    image_size = orb_raw.pop("image_size")
    orb = BackendResult(**orb_raw)
    report = BenchReport(
        image_size=image_size,
        threads=config.features.onnx_threads or available_cores(),
        threads_prefetch=features_for_prefetch(config.features).onnx_threads,
        frames=orb.frames,
        sequence=sequence_name,
        machine=machine_info(),
        orb=orb,
    )
    for kind, raw in results.items():
        if "skipped" in raw:
            report.skipped[kind] = raw["skipped"]
            continue
        raw.pop("image_size")
        result = BackendResult(**raw)
        result.ratio_to_orb = round(orb.fps / result.fps, 3)
        report.backends[kind] = result
    return report
