"""Descriptor matching: mutual nearest neighbour + Lowe ratio, brute force or restricted to
candidate pairs (guided by predicted positions, or the same row of a rectified stereo pair).
Binary descriptors (uint8, packed) use Hamming distance; float descriptors use the L2 distance
between unit vectors (monotonic in cosine similarity)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from tpr_vo.config import MatchingConfig

GUIDED_MAX_CANDIDATES = 32  # nearest keypoints (by pixel distance) tried per predicted point


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
        # Sums of 0/1 products are exact in float32, so no rounding is needed.
        bits_a = np.unpackbits(desc_a, axis=1).astype(np.float32)
        bits_b = np.unpackbits(desc_b, axis=1).astype(np.float32)
        dist = bits_a @ bits_b.T
        dist *= -2.0
        dist += bits_a.sum(1)[:, None]
        dist += bits_b.sum(1)[None, :]
        return dist
    return np.sqrt(_squared_l2(desc_a, desc_b))


def pair_distances(desc_a: np.ndarray, desc_b: np.ndarray, ia: np.ndarray, ib: np.ndarray):
    """(P,) float32 distances of the pairs (desc_a[ia], desc_b[ib])."""
    if len(ia) == 0:
        return np.zeros(0, np.float32)
    if desc_a.dtype == np.uint8:
        return np.bitwise_count(desc_a[ia] ^ desc_b[ib]).sum(1, dtype=np.int32).astype(np.float32)
    # Gather (a copy already) in float32 without a second astype copy.
    diff = np.asarray(desc_a, np.float32)[ia]
    diff -= np.asarray(desc_b, np.float32)[ib]
    diff *= diff
    return np.sqrt(diff.sum(1))


def max_distance(binary: bool, cfg: MatchingConfig) -> float:
    # Unit vectors are at most 2 apart; 1.2 ~ cosine 0.28, which only rejects clear non-matches.
    return float(cfg.max_hamming) if binary else 1.2


def shuffled_pixel_pairs(
    keypoints_a_px: np.ndarray, keypoints_b_px: np.ndarray, m: Matches, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The matches in a seeded random order (OpenCV's RANSAC samples in input order, so this
    makes runs follow the seed): (index_a, index_b, (M, 2) pixels in a, (M, 2) pixels in b,
    median pixel displacement)."""
    perm = rng.permutation(len(m))
    ia, ib = m.index_a[perm], m.index_b[perm]
    p0 = keypoints_a_px[ia].astype(np.float64)
    p1 = keypoints_b_px[ib].astype(np.float64)
    return ia, ib, p0, p1, float(np.median(np.linalg.norm(p1 - p0, axis=1)))


def match_from_distances(dist: np.ndarray, cfg: MatchingConfig, binary: bool) -> Matches:
    """Mutual NN + ratio test on a dense (Na, Nb) distance matrix."""
    na, nb = dist.shape
    if na == 0 or nb == 0:
        return Matches.empty()
    ia = np.repeat(np.arange(na), nb)
    ib = np.tile(np.arange(nb), na)
    return match_pairs(ia, ib, dist.ravel(), na, nb, cfg, binary)


def match_pairs(ia, ib, d, na: int, nb: int, cfg: MatchingConfig, binary: bool) -> Matches:
    """Mutual NN + ratio test over sparse candidate pairs (ia[k], ib[k]) with distances d[k]."""
    if len(ia) == 0:
        return Matches.empty()
    ia = np.asarray(ia, np.int64)
    ib = np.asarray(ib, np.int64)
    d = np.asarray(d, np.float32)
    # One stable sort by distance; the first position of each a (or b) in that order is its
    # nearest neighbour, ties going to the earlier pair.
    order = np.argsort(d, kind="stable")
    ia_s, ib_s, d_s = ia[order], ib[order], d[order]
    n = len(d_s)
    pos = np.arange(n)
    first_a = np.full(na, n)
    np.minimum.at(first_a, ia_s, pos)
    best_a = np.flatnonzero(first_a < n)
    p1 = first_a[best_a]
    best_b, best_d = ib_s[p1], d_s[p1]
    rest = np.ones(n, bool)
    rest[p1] = False
    second_pos = np.full(na, n)
    np.minimum.at(second_pos, ia_s[rest], pos[rest])
    p2 = second_pos[best_a]
    second = np.full(len(best_a), np.inf, np.float32)
    second[p2 < n] = d_s[p2[p2 < n]]
    keep = best_d <= max_distance(binary, cfg)
    if cfg.ratio < 1.0:
        keep &= best_d < cfg.ratio * second
    if cfg.mutual:
        first_b = np.full(nb, n)
        np.minimum.at(first_b, ib_s, pos)
        keep &= ia_s[first_b[best_b]] == best_a
    return Matches(best_a[keep], best_b[keep], best_d[keep].astype(np.float32))


def match_descriptors(desc_a: np.ndarray, desc_b: np.ndarray, cfg: MatchingConfig) -> Matches:
    """Brute-force mutual nearest neighbour with ratio test."""
    if len(desc_a) == 0 or len(desc_b) == 0:
        return Matches.empty()
    binary = desc_a.dtype == np.uint8
    if len(desc_b) < 2:
        return match_from_distances(distance_matrix(desc_a, desc_b), cfg, binary)
    # Float descriptors: a matrix monotonic in the distance (no square roots), converted to
    # distances only for the nearest and second nearest of each row.
    if binary:
        dist, to_distance = distance_matrix(desc_a, desc_b), None
    else:
        dist, to_distance = _l2_order_key(desc_a, desc_b)
    rows = np.arange(len(desc_a))
    # Nearest and second nearest per row by two argmin passes (no full sort or partition).
    best = dist.argmin(axis=1)
    best_d = dist[rows, best].copy()
    # Mutual check by value: row i is b's nearest when it reaches the column minimum (a column
    # reduction is a fast pass over the rows; a column argmin copies the matrix). Ties go to
    # the first row, as argmin picks: integer Hamming distances get a row offset below 1.
    mutual = None
    if cfg.mutual:
        row_offset = np.arange(len(rows), dtype=np.float32) / (len(rows) + 1) if binary else 0.0
        col_key = dist + row_offset[:, None] if binary else dist
        reaches = np.flatnonzero(best_d + row_offset <= col_key.min(axis=0)[best])
        _, first = np.unique(best[reaches], return_index=True)  # exact float duplicates
        mutual = np.zeros(len(rows), bool)
        mutual[reaches[first]] = True
    dist[rows, best] = np.inf
    second_d = dist.min(axis=1)
    if to_distance is not None:
        best_d, second_d = to_distance(best_d), to_distance(second_d)
    keep = best_d <= max_distance(binary, cfg)
    if cfg.ratio < 1.0:
        keep &= best_d < cfg.ratio * second_d
    if mutual is not None:
        keep &= mutual
    return Matches(rows[keep].astype(np.int64), best[keep].astype(np.int64), best_d[keep])


def _l2_order_key(desc_a: np.ndarray, desc_b: np.ndarray):
    """(Na, Nb) float32 matrix ordered like the Euclidean distances, and the function that
    turns its entries into distances. Unit vectors (learned descriptors): minus the dot
    product, since |a - b|^2 = 2 - 2 a.b; one matrix product and one pass, where squared
    distances take three more passes over the matrix. Otherwise: squared distances."""
    a = np.asarray(desc_a, np.float32)
    b = np.asarray(desc_b, np.float32)
    if _unit_rows(a) and _unit_rows(b):
        key = a @ b.T
        np.negative(key, out=key)
        return key, lambda k: np.sqrt(np.maximum(2.0 + 2.0 * k, 0.0))
    return _squared_l2(a, b), np.sqrt


def _unit_rows(x: np.ndarray) -> bool:
    return bool(np.allclose(np.einsum("ij,ij->i", x, x), 1.0, atol=1e-5))


def _squared_l2(desc_a: np.ndarray, desc_b: np.ndarray) -> np.ndarray:
    a = desc_a.astype(np.float32)
    b = desc_b.astype(np.float32)
    sq = a @ b.T
    sq *= -2.0
    if _unit_rows(a) and _unit_rows(b):
        sq += 2.0  # unit vectors (learned descriptors): one pass instead of two
    else:
        sq += (a * a).sum(1)[:, None]
        sq += (b * b).sum(1)[None, :]
    return np.maximum(sq, 0.0, out=sq)


def match_guided(
    desc_a: np.ndarray,
    predicted_px: np.ndarray,
    desc_b: np.ndarray,
    keypoints_b_px: np.ndarray,
    radius_px: float,
    cfg: MatchingConfig,
) -> Matches:
    """Match set a, with predicted pixel positions (Na, 2) in image b, to keypoints of image b
    lying within `radius_px` of the prediction (at most the GUIDED_MAX_CANDIDATES nearest)."""
    if len(desc_a) == 0 or len(desc_b) == 0:
        return Matches.empty()
    nb = len(desc_b)
    k = min(GUIDED_MAX_CANDIDATES, nb)
    tree_b = cKDTree(np.asarray(keypoints_b_px, np.float64))
    _, nearest = tree_b.query(
        np.asarray(predicted_px, np.float64), k=k, distance_upper_bound=float(radius_px)
    )
    nearest = np.asarray(nearest).reshape(len(desc_a), k)
    ia, slot = np.nonzero(nearest < nb)  # missing neighbours are reported as index nb
    if len(ia) == 0:
        return Matches.empty()
    # Neighbours come sorted by pixel distance, missing ones last: columns past the fullest
    # row hold no candidate (a tight radius fills few).
    nearest = nearest[:, : int(slot.max()) + 1]
    binary = desc_a.dtype == np.uint8
    if binary:
        dist = np.full(nearest.shape, np.inf, np.float32)  # (Na, k), inf where no candidate
        dist[ia, slot] = pair_distances(desc_a, desc_b, ia, nearest[ia, slot])
    else:
        dist = _candidate_table_l2(desc_a, desc_b, nearest)
    return _match_candidate_table(nearest, dist, nb, cfg, binary)


def _candidate_table_l2(desc_a: np.ndarray, desc_b: np.ndarray, candidates: np.ndarray):
    """(Na, k) float32 Euclidean distances from desc_a[i] to desc_b[candidates[i, j]], inf where
    candidates[i, j] == len(desc_b) (no candidate). One gather and one batched matrix product
    (|a|^2 + |b|^2 - 2 a.b) instead of gathering both sides and subtracting: ~3x faster."""
    nb = len(desc_b)
    a = np.asarray(desc_a, np.float32)
    b = np.asarray(desc_b, np.float32)
    missing = candidates >= nb
    safe = np.where(missing, 0, candidates)
    sq = np.matmul(b[safe], a[:, :, None])[..., 0]  # (Na, k) dot products; b[safe]: (Na, k, D)
    sq *= -2.0
    sq += (a * a).sum(1)[:, None]
    sq += (b * b).sum(1)[safe]
    dist = np.sqrt(np.maximum(sq, 0.0, out=sq))
    dist[missing] = np.inf
    return dist


def _match_candidate_table(
    candidates: np.ndarray, dist: np.ndarray, nb: int, cfg: MatchingConfig, binary: bool
) -> Matches:
    """`match_pairs` for candidates laid out as a table: row i of `candidates` (Na, k) holds
    the b indices tried for a[i], `dist` (Na, k) their distances (inf: no candidate). Row-wise
    minima replace the sort; the result is the same except for exact distance ties between
    rows."""
    rows = np.arange(len(dist))
    best_slot = dist.argmin(axis=1)
    best_d = dist[rows, best_slot]
    best_b = candidates[rows, best_slot]
    dist[rows, best_slot] = np.inf
    second_d = dist.min(axis=1)
    dist[rows, best_slot] = best_d
    keep = best_d <= max_distance(binary, cfg)  # also drops rows without candidates (inf)
    if cfg.ratio < 1.0:
        keep &= best_d < cfg.ratio * second_d
    if cfg.mutual:
        valid = np.isfinite(dist)
        column_min = np.full(nb + 1, np.inf, np.float32)  # [nb]: rows without candidates
        np.minimum.at(column_min, candidates[valid], dist[valid])
        reaches = np.flatnonzero(np.isfinite(best_d) & (best_d <= column_min[best_b]))
        _, first = np.unique(best_b[reaches], return_index=True)  # ties: the first row
        mutual = np.zeros(len(rows), bool)
        mutual[reaches[first]] = True
        keep &= mutual
    return Matches(rows[keep], best_b[keep].astype(np.int64), best_d[keep])


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
    disparity x_left - x_right in [min, max]."""
    if len(desc_left) == 0 or len(desc_right) == 0:
        return Matches.empty()
    yl = np.asarray(keypoints_left_px[:, 1], np.float64)
    order = np.argsort(keypoints_right_px[:, 1], kind="stable")
    yr = np.asarray(keypoints_right_px[order, 1], np.float64)
    lo = np.searchsorted(yr, yl - max_row_diff_px, side="left")
    hi = np.searchsorted(yr, yl + max_row_diff_px, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return Matches.empty()
    ia = np.repeat(np.arange(len(yl)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    ib = order[np.repeat(lo, counts) + offsets]
    disp = keypoints_left_px[ia, 0] - keypoints_right_px[ib, 0]
    ok = (disp >= min_disparity_px) & (disp <= max_disparity_px)
    ia, ib = ia[ok], ib[ok]
    d = pair_distances(desc_left, desc_right, ia, ib)
    return match_pairs(
        ia, ib, d, len(desc_left), len(desc_right), cfg, desc_left.dtype == np.uint8
    )
