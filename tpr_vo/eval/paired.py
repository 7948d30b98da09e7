"""Is one feature's per-frame error lower than another's on the same frames? (paired bootstrap)

Two runs over the same sequence see the same motion, the same ground-truth noise and the same
hard frames, so comparing their mean errors as if they were independent overstates the
uncertainty of the difference. The paired comparison takes the per-frame difference of the two
error series (each already averaged over RANSAC seeds), and resamples frames with replacement
to put a confidence interval on its mean. Frames are not independent in a trajectory, so read
the interval as a screen, not a proof: a difference whose interval holds zero is a tie.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """Mean of errors_a - errors_b over frames, its bootstrap interval, and the frames where
    a's error is the lower one."""

    mean: float
    ci_low: float
    ci_high: float
    frames_a_lower: int
    frames: int

    @property
    def verdict(self) -> str:
        if self.ci_high < 0:
            return "a lower"
        if self.ci_low > 0:
            return "b lower"
        return "tie"


def paired_difference(
    errors_a: np.ndarray,
    errors_b: np.ndarray,
    confidence: float = 0.95,
    resamples: int = 10000,
    seed: int = 0,
) -> PairedDifference:
    """errors_a, errors_b: (N,) per-frame errors of two runs over the same N frames."""
    a = np.asarray(errors_a, dtype=np.float64)
    b = np.asarray(errors_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"expected two (N >= 2,) error series, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-frame errors must be finite")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return PairedDifference(
        float(diff.mean()), float(low), float(high), int((diff < 0).sum()), len(diff)
    )
