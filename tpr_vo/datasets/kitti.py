"""KITTI odometry sequence folder (DESIGN.md §3).

SEQ/image_0/*.png   left images, sorted by name, any first number, grayscale or colour
SEQ/image_1/*.png   optional right images (same count)
SEQ/calib.txt       `P0: 12 numbers` (intrinsics); `P1:` gives baseline_m = -P1[0,3] / P1[0,0]
SEQ/times.txt       optional, seconds, one per image (else 10 Hz)
ground truth        gt_path, else SEQ/poses.txt, else the official layout
                    dataset/poses/<seq>.txt next to dataset/sequences/<seq>/
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tpr_vo.datasets.files import (
    ImageReader,
    first_image_size,
    list_images,
    read_ground_truth,
    read_times,
)
from tpr_vo.errors import DataError
from tpr_vo.types import CameraIntrinsics, Frame


def read_calib(path: Path) -> dict[str, np.ndarray]:
    """{"P0": (3, 4), "P1": (3, 4), ...} from a KITTI calib.txt; P0 is required."""
    if not path.is_file():
        raise DataError(f"{path}: calibration file not found (expected KITTI 'P0: ...' lines)")
    matrices: dict[str, np.ndarray] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        key, sep, values = line.partition(":")
        if not sep or not key.strip().startswith("P"):
            continue
        try:
            numbers = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError as exc:
            raise DataError(f"{path}:{line_no}: {key.strip()} is not numeric ({exc})") from exc
        if numbers.size != 12 or not np.all(np.isfinite(numbers)):
            raise DataError(
                f"{path}:{line_no}: {key.strip()} must be 12 finite numbers (row-major 3x4 "
                f"projection), got {numbers.size}"
            )
        matrices[key.strip()] = numbers.reshape(3, 4)
    if "P0" not in matrices:
        raise DataError(f"{path}: no 'P0:' line (expected the left camera's 3x4 projection)")
    P0 = matrices["P0"]
    if P0[0, 0] <= 0 or P0[1, 1] <= 0:
        raise DataError(f"{path}: P0 focal lengths must be positive, got {P0[0, 0]}, {P0[1, 1]}")
    return matrices


def find_ground_truth(folder: Path) -> Path | None:
    """SEQ/poses.txt, else dataset/poses/<seq>.txt for dataset/sequences/<seq>."""
    own = folder / "poses.txt"
    if own.is_file():
        return own
    official = folder.parent.parent / "poses" / f"{folder.name}.txt"
    if folder.parent.name == "sequences" and official.is_file():
        return official
    return None


class KittiSequence:
    """A KITTI odometry sequence folder. `gt_poses` is None when no ground truth is found."""

    def __init__(
        self,
        path: str | os.PathLike,
        gt_path: str | os.PathLike | None = None,
        intrinsics: CameraIntrinsics | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path}: sequence folder not found")
        self.name = self.path.name
        self._left = list_images(self.path / "image_0")
        self._right: list[Path] = []
        if (self.path / "image_1").is_dir():
            self._right = list_images(self.path / "image_1")
            if len(self._right) != len(self._left):
                raise DataError(
                    f"{self.path / 'image_1'}: {len(self._right)} right images for "
                    f"{len(self._left)} left images in image_0 (expected the same count)"
                )
        self.has_right = bool(self._right)
        self.read_right = True
        self.intrinsics = intrinsics or self._intrinsics_from_calib()
        self.times_s = read_times(self.path / "times.txt", len(self._left))
        gt_file = Path(gt_path) if gt_path is not None else find_ground_truth(self.path)
        self.gt_path = gt_file
        self.gt_poses = None if gt_file is None else read_ground_truth(gt_file, len(self._left))
        self._reader = ImageReader()

    def _intrinsics_from_calib(self) -> CameraIntrinsics:
        calib_path = self.path / "calib.txt"
        calib = read_calib(calib_path)
        P0 = calib["P0"]
        baseline_m = None
        if self.has_right:
            if "P1" not in calib:
                raise DataError(f"{calib_path}: image_1/ exists but there is no 'P1:' line")
            baseline_m = float(-calib["P1"][0, 3] / calib["P1"][0, 0])
            if baseline_m <= 0:
                raise DataError(
                    f"{calib_path}: P1 gives baseline {baseline_m:.4f} m (expected > 0, "
                    "P1[0,3] = -fx * baseline)"
                )
        width, height = first_image_size(self._left)
        return CameraIntrinsics(
            fx=float(P0[0, 0]), fy=float(P0[1, 1]), cx=float(P0[0, 2]), cy=float(P0[1, 2]),
            width_px=width, height_px=height, baseline_m=baseline_m,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self._left)

    def __getitem__(self, index: int) -> Frame:
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} frames")
        index %= len(self)
        read_right = self.has_right and self.read_right
        right = self._reader.read(self._right[index]) if read_right else None
        return Frame(
            index=index,
            stamp_s=float(self.times_s[index]),
            image_left=self._reader.read(self._left[index]),
            image_right=right,
            path_left=str(self._left[index]),
        )

    def image_paths(self) -> list[Path]:
        return list(self._left)
