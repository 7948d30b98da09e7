"""Work on item i+1 in one background thread while the caller works on item i.

Reading and feature extraction of the next frame (ONNX Runtime, OpenCV: native code that
releases the GIL) can then overlap the current frame's tracking. That can raise throughput,
not lower per-frame latency; on the 2-core development VM the gain was inside run-to-run noise
(benchmarks/README.md). Items come back in order; an exception in `load` is raised by the
iteration at that item.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tpr_vo.config import FeaturesConfig

T = TypeVar("T")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def features_for_prefetch(cfg: FeaturesConfig) -> FeaturesConfig:
    """The features config for extraction in the prefetch thread: `onnx_threads` 0 (auto)
    becomes one core fewer than the process has (at least 1), so tracking keeps a core. On the
    2-core VM (KITTI 06, mono, 3 alternating runs each) 1 intra-op thread gave 21.9 / 20.6 /
    19.5 FPS against 16.7 / 16.8 / 15.5 with ONNX Runtime's default of 2. An explicit count is
    kept."""
    if cfg.onnx_threads > 0:
        return cfg
    return dataclasses.replace(cfg, onnx_threads=max(1, available_cores() - 1))


def prefetched(load: Callable[[int], T], count: int, enabled: bool = True) -> Iterator[T]:
    """load(0), load(1), ... load(count - 1), each started one step ahead when `enabled`."""
    if not enabled:
        for i in range(count):
            yield load(i)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tpr_vo_prefetch") as pool:
        pending = pool.submit(load, 0) if count > 0 else None
        for i in range(count):
            item = pending.result()
            pending = pool.submit(load, i + 1) if i + 1 < count else None
            yield item
