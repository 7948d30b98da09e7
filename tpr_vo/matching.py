"""Descriptor matching: mutual nearest neighbour + Lowe ratio, brute force or guided by predicted
positions. Binary descriptors (uint8, packed) use Hamming distance; float descriptors use the L2
distance between unit vectors (monotonic in cosine similarity)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpr_vo.config import MatchingConfig


@dataclass(frozen=True)
class Matches:
    """index_a, index_b: (M,) int64 indices into the two sets; distance: (M,) float32."""

    index_a: np.ndarray
    index_b: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return int(self.index_a.shape[0])

    @staticmethod
    def empty() -> Matches:
        return Matches(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))


def distance_matrix(desc_a: np.ndarray, desc_b: np.ndarray) -> np.ndarray:
    """(Na, Nb) float32: Hamming bits for uint8 descriptors, Euclidean for float descriptors."""
    if desc_a.dtype == np.uint8:
        # Hamming distance of bit vectors = |a| + |b| - 2 a.b, one float matrix product.
        bits_a = np.unpackbits(desc_a, axis=1).astype(np.float32)
        bits_b = np.unpackbits(desc_b, axis=1).astype(np.float32)
        dist = bits_a.sum(1)[:, None] + bits_b.sum(1)[None, :] - 2.0 * (bits_a @ bits_b.T)
        return np.rint(dist).astype(np.float32)
    a = desc_a.astype(np.float32)
    b = desc_b.astype(np.float32)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def max_distance(binary: bool, cfg: MatchingConfig) -> float:
    # Unit vectors are at most 2 apart; 1.2 ~ cosine 0.28, which only rejects clear non-matches.
    return float(cfg.max_hamming) if binary else 1.2


def match_from_distances(
    dist: np.ndarray, cfg: MatchingConfig, binary: bool, valid: np.ndarray | None = None
) -> Matches:
    """Mutual NN + ratio test on a (Na, Nb) distance matrix; `valid` (Na, Nb) bool masks pairs
    that may match (e.g. inside a search radius); masked pairs get +inf."""
    na, nb = dist.shape
    if na == 0 or nb == 0:
        return Matches.empty()
    dist = dist.astype(np.float32, copy=True)
    if valid is not None:
        dist[~valid] = np.inf
    rows = np.arange(na)
    if nb >= 2:
        two = np.argpartition(dist, 1, axis=1)[:, :2]
        d2 = dist[rows[:, None], two]
        order = np.argsort(d2, axis=1)
        best = two[rows, order[:, 0]]
        best_d = d2[rows, order[:, 0]]
        second_d = d2[rows, order[:, 1]]
    else:
        best = np.zeros(na, np.int64)
        best_d = dist[:, 0]
        second_d = np.full(na, np.inf, np.float32)
    keep = np.isfinite(best_d) & (best_d <= max_distance(binary, cfg))
    if cfg.ratio < 1.0:
        keep &= best_d < cfg.ratio * second_d
    if cfg.mutual:
        back = np.argmin(dist, axis=0)
        keep &= back[best] == rows
    idx_a = rows[keep].astype(np.int64)
    idx_b = best[keep].astype(np.int64)
    return Matches(idx_a, idx_b, best_d[keep].astype(np.float32))


def match_descriptors(desc_a: np.ndarray, desc_b: np.ndarray, cfg: MatchingConfig) -> Matches:
    """Brute-force mutual nearest neighbour with ratio test."""
    if len(desc_a) == 0 or len(desc_b) == 0:
        return Matches.empty()
    binary = desc_a.dtype == np.uint8
    return match_from_distances(distance_matrix(desc_a, desc_b), cfg, binary)


def match_guided(
    desc_a: np.ndarray,
    predicted_px: np.ndarray,
    desc_b: np.ndarray,
    keypoints_b_px: np.ndarray,
    radius_px: float,
    cfg: MatchingConfig,
) -> Matches:
    """Match set a (with predicted pixel positions (Na, 2) in image b) to keypoints of image b,
    only within `radius_px` of the prediction."""
    if len(desc_a) == 0 or len(desc_b) == 0:
        return Matches.empty()
    d_px = np.linalg.norm(predicted_px[:, None, :] - keypoints_b_px[None, :, :], axis=2)
    valid = d_px <= radius_px
    binary = desc_a.dtype == np.uint8
    return match_from_distances(distance_matrix(desc_a, desc_b), cfg, binary, valid)


def match_stereo(
    desc_left: np.ndarray,
    keypoints_left_px: np.ndarray,
    desc_right: np.ndarray,
    keypoints_right_px: np.ndarray,
    cfg: MatchingConfig,
    max_row_diff_px: float = 2.0,
    min_disparity_px: float = 0.5,
    max_disparity_px: float = 250.0,
) -> Matches:
    """Left-right matches on a rectified pair: same row (within `max_row_diff_px`) and a
    positive disparity x_left - x_right in [min, max]."""
    if len(desc_left) == 0 or len(desc_right) == 0:
        return Matches.empty()
    dy = np.abs(keypoints_left_px[:, None, 1] - keypoints_right_px[None, :, 1])
    disp = keypoints_left_px[:, None, 0] - keypoints_right_px[None, :, 0]
    valid = (dy <= max_row_diff_px) & (disp >= min_disparity_px) & (disp <= max_disparity_px)
    binary = desc_left.dtype == np.uint8
    return match_from_distances(distance_matrix(desc_left, desc_right), cfg, binary, valid)
