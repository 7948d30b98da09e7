"""Keypoint position covariances -> whitening matrices for the least-squares refinements.

A keypoint whose position is uncertain along some direction should pull less along it. With
Sigma (2, 2) its covariance, a whitening L with L^T L = s^2 Sigma^-1 turns a pixel residual r into
L r, whose squared norm is the Mahalanobis distance in units of s. Here s is the frame's median
keypoint sigma, so a typical keypoint keeps unit weight: the thresholds of the frontend (Huber,
inliers), which are in pixels, keep their meaning, and only the relative weights change.
"""

from __future__ import annotations

import numpy as np

from tpr_vo.errors import DataError


def relative_covariance(cov_px2: np.ndarray) -> np.ndarray:
    """(N, 2, 2) float64 cov / s^2 for the (N, 2, 2) covariances `cov_px2` (px^2), s^2 the
    median of trace / 2: a typical keypoint's is about the identity. Symmetrised; DataError
    unless every covariance is finite and positive definite."""
    cov = np.asarray(cov_px2, np.float64)
    if cov.ndim != 3 or cov.shape[1:] != (2, 2):
        raise DataError(f"keypoint covariances: expected (N, 2, 2), got {cov.shape}")
    if len(cov) == 0:
        return np.zeros((0, 2, 2))
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    if not (np.all(np.isfinite(cov)) and np.all(a > 0) and np.all(a * c - b * b > 0)):
        raise DataError("keypoint covariances: every one must be finite and positive definite")
    return cov / float(np.median(0.5 * (a + c)))


def whitening_2x2(cov_px2: np.ndarray) -> np.ndarray:
    """(N, 2, 2) float64 L, upper triangular, with L^T L = s^2 cov^-1 for the (N, 2, 2)
    covariances `cov_px2` (px^2), s^2 the median of trace / 2."""
    cov = relative_covariance(cov_px2)
    if len(cov) == 0:
        return np.zeros((0, 2, 2))
    a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    det = a * c - b * b
    # Information cov^-1 = [[p, q], [q, r]]; its Cholesky factor, transposed (upper).
    p, q, r = c / det, -b / det, a / det
    L = np.zeros((len(cov), 2, 2))
    L[:, 0, 0] = np.sqrt(p)
    L[:, 0, 1] = q / L[:, 0, 0]
    L[:, 1, 1] = np.sqrt(r - q * q / p)
    return L


def apply_2x2(matrices: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, 2, 2) matrices times (N, 2, ...) vectors or stacked columns, row by row: the same as
    einsum("nij,nj...->ni...") at a fraction of its cost on small trailing shapes."""
    shape = (len(x),) + (1,) * (x.ndim - 2)
    m = [[matrices[:, i, j].reshape(shape) for j in range(2)] for i in range(2)]
    out = np.empty(np.broadcast_shapes(x.shape), np.result_type(matrices, x))
    out[:, 0] = m[0][0] * x[:, 0] + m[0][1] * x[:, 1]
    out[:, 1] = m[1][0] * x[:, 0] + m[1][1] * x[:, 1]
    return out


def quadratic_form_2x2(vectors: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """v^T M v for (N, ..., 2) vectors and (N, 2, 2) symmetric matrices -> (N, ...)."""
    shape = (len(vectors),) + (1,) * (vectors.ndim - 2)
    a, b, c = (matrices[:, i, j].reshape(shape) for i, j in ((0, 0), (0, 1), (1, 1)))
    v0, v1 = vectors[..., 0], vectors[..., 1]
    return a * v0 * v0 + 2.0 * b * v0 * v1 + c * v1 * v1
