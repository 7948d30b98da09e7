"""KITTI pose files: one line per frame, 12 numbers, row-major 3x4 `T_world_cam`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tpr_vo.atomic import atomic_path
from tpr_vo.errors import DataError

ORTHONORMAL_TOL = 1e-3


def read_kitti_poses(path: str | os.PathLike, check_rotation: bool = True) -> np.ndarray:
    """(N, 4, 4) float64 from a KITTI pose file. Raises DataError naming the file, the line and
    what was expected (12 finite numbers, an orthonormal rotation)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pose file not found")
    poses = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 12:
            raise DataError(
                f"{path}:{line_no}: expected 12 numbers (row-major 3x4 pose), got {len(parts)}"
            )
        try:
            values = np.array([float(p) for p in parts], dtype=np.float64)
        except ValueError as exc:
            raise DataError(f"{path}:{line_no}: not a number ({exc})") from exc
        if not np.all(np.isfinite(values)):
            raise DataError(f"{path}:{line_no}: NaN or inf in pose")
        T = np.eye(4)
        T[:3, :] = values.reshape(3, 4)
        if check_rotation:
            R = T[:3, :3]
            err = float(np.abs(R.T @ R - np.eye(3)).max())
            if err > ORTHONORMAL_TOL or np.linalg.det(R) < 0:
                raise DataError(
                    f"{path}:{line_no}: rotation is not orthonormal (|R^T R - I| = {err:.2e}, "
                    f"tolerance {ORTHONORMAL_TOL:g})"
                )
        poses.append(T)
    if not poses:
        raise DataError(f"{path}: no poses (expected one line of 12 numbers per frame)")
    return np.stack(poses)


def format_kitti_poses(T_world_cam: np.ndarray) -> str:
    T_world_cam = np.asarray(T_world_cam, dtype=np.float64)
    if T_world_cam.ndim != 3 or T_world_cam.shape[1:] not in ((4, 4), (3, 4)):
        raise DataError(f"poses must be (N, 4, 4) or (N, 3, 4), got {T_world_cam.shape}")
    rows = T_world_cam[:, :3, :].reshape(len(T_world_cam), 12)
    return "".join(" ".join(f"{v:.9e}" for v in row) + "\n" for row in rows)


def write_kitti_poses(path: str | os.PathLike, T_world_cam: np.ndarray) -> None:
    """Write atomically (temp file + rename)."""
    text = format_kitti_poses(T_world_cam)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
