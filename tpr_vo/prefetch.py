"""Work on item i+1 in one background thread while the caller works on item i.

Reading and feature extraction of the next frame (ONNX Runtime, OpenCV: native code that
releases the GIL) can then overlap the current frame's tracking. That can raise throughput,
not lower per-frame latency; on the 2-core development VM the gain was inside run-to-run noise
(benchmarks/README.md). Items come back in order; an exception in `load` is raised by the
iteration at that item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


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
