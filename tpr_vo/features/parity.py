"""How closely two backends agree on the same image: keypoints, scores and descriptors.

A reference keypoint is *shared* when the test backend has a keypoint within `tol_px` that is
its mutual nearest neighbour; `shared_fraction` divides by the larger of the two counts, so
missing and extra keypoints both count against it. Descriptor cosines are over shared pairs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from tpr_vo.types import Features

# Acceptance thresholds of the parity tests (issue 6).
MAX_KEYPOINT_DIST_PX = 0.5
MIN_SHARED_FRACTION = 0.98
MIN_DESCRIPTOR_COSINE = 0.999


@dataclass(frozen=True)
class ParityReport:
    reference: str
    test: str
    num_reference: int
    num_test: int
    num_shared: int
    shared_fraction: float
    max_keypoint_dist_px: float  # over shared pairs
    min_descriptor_cosine: float  # over shared pairs
    mean_descriptor_cosine: float
    max_abs_score_diff: float | None = None  # dense outputs, when compared
    max_abs_descriptor_diff: float | None = None

    @property
    def passed(self) -> bool:
        return (
            self.shared_fraction >= MIN_SHARED_FRACTION
            and self.max_keypoint_dist_px <= MAX_KEYPOINT_DIST_PX
            and self.min_descriptor_cosine >= MIN_DESCRIPTOR_COSINE
        )

    def to_json_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        return (
            f"{self.test} vs {self.reference}: {self.num_shared}/{max(self.num_reference, 1)} "
            f"keypoints shared ({100 * self.shared_fraction:.2f} %), max offset "
            f"{self.max_keypoint_dist_px:.4f} px, descriptor cosine min "
            f"{self.min_descriptor_cosine:.6f} -> {'PASS' if self.passed else 'FAIL'}"
        )


def shared_keypoints(
    reference_px: np.ndarray, test_px: np.ndarray, tol_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours within tol_px -> (ref index, test index, distance px)."""
    empty = np.zeros(0, np.int64)
    if len(reference_px) == 0 or len(test_px) == 0:
        return empty, empty, np.zeros(0)
    dist_rt, idx_rt = cKDTree(test_px).query(reference_px, k=1)
    _, idx_tr = cKDTree(reference_px).query(test_px, k=1)
    ref_idx = np.arange(len(reference_px))
    ok = (idx_tr[idx_rt] == ref_idx) & (dist_rt <= tol_px)
    return ref_idx[ok], idx_rt[ok], dist_rt[ok]


def compare_features(
    reference: Features,
    test: Features,
    *,
    reference_name: str = "reference",
    test_name: str = "test",
    tol_px: float = MAX_KEYPOINT_DIST_PX,
    dense: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> ParityReport:
    """dense: optional (ref scores, test scores, ref descriptors, test descriptors) maps."""
    ri, ti, dist = shared_keypoints(reference.keypoints_px, test.keypoints_px, tol_px)
    if len(ri):
        cos = np.sum(reference.descriptors[ri].astype(np.float64) * test.descriptors[ti], axis=1)
        min_cos, mean_cos, max_dist = float(cos.min()), float(cos.mean()), float(dist.max())
    else:
        min_cos = mean_cos = float("nan")
        max_dist = float("inf")
    score_diff = desc_diff = None
    if dense is not None:
        s_ref, s_test, d_ref, d_test = dense
        score_diff = float(np.max(np.abs(s_ref - s_test)))
        desc_diff = float(np.max(np.abs(d_ref - d_test)))
    denominator = max(len(reference), len(test), 1)
    return ParityReport(
        reference=reference_name,
        test=test_name,
        num_reference=len(reference),
        num_test=len(test),
        num_shared=len(ri),
        shared_fraction=len(ri) / denominator,
        max_keypoint_dist_px=max_dist,
        min_descriptor_cosine=min_cos,
        mean_descriptor_cosine=mean_cos,
        max_abs_score_diff=score_diff,
        max_abs_descriptor_diff=desc_diff,
    )


def repeatability(reference_px: np.ndarray, test_px: np.ndarray, tol_px: float = 1.0) -> float:
    """Fraction of reference keypoints with a mutual-nearest test keypoint within tol_px."""
    ri, _, _ = shared_keypoints(reference_px, test_px, tol_px)
    return len(ri) / max(len(reference_px), 1)


def textured_test_image(height_px: int = 376, width_px: int = 1241, seed: int = 0) -> np.ndarray:
    """A deterministic (H, W) uint8 image with blobs, edges and corners at several scales, for
    parity checks when no real frame is given."""
    import cv2

    rng = np.random.default_rng(seed)
    image = np.zeros((height_px, width_px), np.float32)
    for sigma in (1.0, 3.0, 8.0):
        noise = rng.standard_normal((height_px, width_px)).astype(np.float32)
        image += cv2.GaussianBlur(noise, (0, 0), sigma) * sigma
    for _ in range(40):
        x, y = rng.integers(0, width_px), rng.integers(0, height_px)
        w, h = rng.integers(10, 120), rng.integers(10, 80)
        image[y : y + h, x : x + w] += rng.uniform(-2, 2)
    image -= image.min()
    image *= 255.0 / max(float(image.max()), 1e-6)
    return image.astype(np.uint8)
