"""How much of a per-frame rotation error is the ground truth's own (three-cornered hat).

RPE rotation compares an estimate with the ground truth, so it measures the estimate's error
plus the ground truth's. KITTI's poses come from a GPS/INS unit, whose per-frame rotation noise
is of the same order as a good visual odometry's. With three or more sources that see the same
motion (the ground truth and several estimates) and errors independent between sources, the
variance of the difference of sources a and b is v_a + v_b; the per-source variances follow by
least squares (the "three-cornered hat" of clock metrology). Correlated errors (two features
through the same frontend) show up as too small, even negative, variances.
"""

from __future__ import annotations

import itertools

import numpy as np


def relative_rotvecs_deg(T_world_cam: np.ndarray) -> np.ndarray:
    """(N-1, 3) rotation vectors in degrees of the frame-to-frame motions of (N, 4, 4) poses,
    each in the earlier camera's frame: log(R_{k}^T R_{k+1})."""
    from scipy.spatial.transform import Rotation

    poses = np.asarray(T_world_cam, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) < 2:
        raise ValueError(f"expected (N >= 2, 4, 4) poses, got shape {poses.shape}")
    rel = np.einsum("nji,njk->nik", poses[:-1, :3, :3], poses[1:, :3, :3])
    return np.degrees(Rotation.from_matrix(rel).as_rotvec())


def pairwise_rms_deg(rotvecs_deg: dict[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """RMS over frames of the 3-D difference between every two sources' (N, 3) rotation
    vectors (degrees per frame)."""
    return {
        (a, b): float(np.sqrt(np.mean(np.sum((rotvecs_deg[a] - rotvecs_deg[b]) ** 2, axis=1))))
        for a, b in itertools.combinations(rotvecs_deg, 2)
    }


def three_cornered_hat(rotvecs_deg: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-source error variance (deg^2 per frame, all three axes summed) of >= 3 sources of
    the same (N, 3) frame-to-frame rotations, from their pairwise differences by least squares.
    A negative value means the independence assumption fails for that source."""
    names = list(rotvecs_deg)
    if len(names) < 3:
        raise ValueError(f"the three-cornered hat needs >= 3 sources, got {len(names)}")
    lengths = {len(v) for v in rotvecs_deg.values()}
    if len(lengths) != 1:
        raise ValueError(f"sources cover different numbers of frames: {sorted(lengths)}")
    index = {name: i for i, name in enumerate(names)}
    rows, rhs = [], []
    for (a, b), rms in pairwise_rms_deg(rotvecs_deg).items():
        row = np.zeros(len(names))
        row[[index[a], index[b]]] = 1.0
        rows.append(row)
        rhs.append(rms**2)
    variances, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return {name: float(v) for name, v in zip(names, variances)}


def signed_rms(variance: float) -> float:
    """sqrt(|v|) with v's sign: an RMS for printing that keeps a negative variance visible."""
    return float(np.sign(variance) * np.sqrt(abs(variance)))
