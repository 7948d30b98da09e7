"""File helpers shared by the folder-based sequences: image lists, times, ground truth, and an
image reader that turns a corrupt frame into None with one warning naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from tpr_vo.errors import DataError
from tpr_vo.kitti_poses import read_kitti_poses

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 10.0


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name. DataError if the folder has none."""
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(
            f"{folder}: no images (expected files ending in {', '.join(IMAGE_SUFFIXES)})"
        )
    return images


def read_times(path: Path, num_frames: int) -> np.ndarray:
    """(N,) seconds from a one-number-per-line file, or 10 Hz when `path` does not exist."""
    if not path.is_file():
        return np.arange(num_frames, dtype=np.float64) / DEFAULT_FPS
    try:
        times = np.array([float(x) for x in path.read_text().split()], dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: expected one timestamp in seconds per line ({exc})") from exc
    if len(times) != num_frames:
        raise DataError(
            f"{path}: {len(times)} timestamps for {num_frames} images (expected one each)"
        )
    if not np.all(np.isfinite(times)):
        raise DataError(f"{path}: NaN or inf timestamp")
    return times


def read_ground_truth(path: Path, num_frames: int) -> np.ndarray:
    """(N, 4, 4) T_world_cam0; line i belongs to the i-th image, so the counts must agree."""
    poses = read_kitti_poses(path)
    if len(poses) != num_frames:
        raise DataError(
            f"{path}: {len(poses)} poses for {num_frames} images (expected one line per image)"
        )
    return poses


class ImageReader:
    """Reads grayscale uint8 images (colour is converted); a file that cannot be decoded gives
    None and a single warning naming it."""

    def __init__(self) -> None:
        self._warned: set[Path] = set()

    def read(self, path: Path) -> np.ndarray | None:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None or image.size == 0:
            if path not in self._warned:
                self._warned.add(path)
                log.warning("%s: unreadable or corrupt image, frame left untracked", path)
            return None
        return image


def first_image_size(paths: list[Path]) -> tuple[int, int]:
    """(width, height) of the first decodable image in `paths`."""
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is not None and image.size:
            return int(image.shape[1]), int(image.shape[0])
    raise DataError(f"{paths[0].parent}: none of the {len(paths)} images could be read")
