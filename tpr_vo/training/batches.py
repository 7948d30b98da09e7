"""Parallel batch drawing for fast accelerators (`tpr-vo train --data-workers N`).

On a GPU one training step takes a few milliseconds of device time, while drawing its pairs
(crop, homography warp, photometric change) and the keypoint teacher's maps takes ~200 ms of
one CPU core for a batch of 32. Worker processes draw each step's batch from a generator seeded
by (seed, step), so a run's batches depend neither on the number of workers nor on where a chunk
was resumed. At most `depth` steps are drawn ahead (bounded memory).
"""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tpr_vo.training.data import PairBatch, PairSampler
from tpr_vo.training.homography import HomographyRange


@dataclass(frozen=True)
class StepBatch:
    """One step's pairs, whether the views swap roles (view b online), and the keypoint
    teacher's 0/1 maps of the online view ((B, 1, H, W) float32; None without a teacher)."""

    pairs: PairBatch
    swap: bool
    heat_online: np.ndarray | None


@dataclass(frozen=True)
class DrawSpec:
    """What every worker needs to draw any step's batch."""

    images: list[np.ndarray]
    crop_hw: tuple[int, int]
    limits: HomographyRange
    seed: int
    teacher: str  # "" = no teacher maps
    teacher_repeat_px: float = 0.0  # warmstart.teacher_maps' repeatable-keypoint filter
    teacher_subpixel_warps: int = 0  # warmstart.teacher_maps' sub-pixel teacher


def draw_step(spec: DrawSpec, step: int, batch_size: int, strength: float) -> StepBatch:
    """The batch of `step`: a function of (spec.seed, step, batch_size, strength) alone."""
    rng = np.random.default_rng([spec.seed, step])
    pairs = PairSampler(spec.images, spec.crop_hw, rng, spec.limits).batch(batch_size, strength)
    swap = bool(rng.random() < 0.5)
    if not spec.teacher:
        return StepBatch(pairs, swap, None)
    from tpr_vo.training.warmstart import teacher_maps

    online, other = (pairs.image_b, pairs.image_a) if swap else (pairs.image_a, pairs.image_b)
    H_other = np.linalg.inv(pairs.H_b_a) if swap else pairs.H_b_a
    heat = teacher_maps(
        online, spec.teacher, 0, other, H_other, spec.teacher_repeat_px,
        spec.teacher_subpixel_warps,
    )  # fmt: skip
    return StepBatch(pairs, swap, heat)


_SPEC: DrawSpec | None = None  # the worker process's copy


def _init_worker(spec: DrawSpec) -> None:
    import cv2

    global _SPEC
    cv2.setNumThreads(1)
    _SPEC = spec


def _draw_in_worker(step: int, batch_size: int, strength: float) -> StepBatch:
    assert _SPEC is not None, "worker not initialised"
    return draw_step(_SPEC, step, batch_size, strength)


class BatchPrefetcher:
    """Draws steps first..end-1 in order in `workers` spawned processes, `depth` ahead.
    `plan(step) -> (batch_size, strength)`."""

    def __init__(
        self,
        spec: DrawSpec,
        first: int,
        end: int,
        plan: Callable[[int], tuple[int, float]],
        workers: int,
        depth: int = 0,
    ) -> None:
        if workers < 1:
            raise ValueError("BatchPrefetcher needs at least one worker")
        # spawn: the trainer may already hold CUDA and OpenMP threads, which fork would copy.
        context = multiprocessing.get_context("spawn")
        self._pool = context.Pool(workers, initializer=_init_worker, initargs=(spec,))
        self._plan = plan
        self._next, self._end = first, end
        self._depth = depth or 2 * workers
        self._pending: collections.deque = collections.deque()
        self._fill()

    def _fill(self) -> None:
        while len(self._pending) < self._depth and self._next < self._end:
            batch_size, strength = self._plan(self._next)
            args = (self._next, batch_size, strength)
            self._pending.append((self._next, self._pool.apply_async(_draw_in_worker, args)))
            self._next += 1

    def get(self, step: int) -> StepBatch:
        """The batch of `step`, which must be the next one in order."""
        if not self._pending:
            raise IndexError(f"no batch drawn for step {step}")
        drawn_step, result = self._pending.popleft()
        if drawn_step != step:
            raise IndexError(f"batches are drawn in order: asked for {step}, next is {drawn_step}")
        self._fill()
        return result.get()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> BatchPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
