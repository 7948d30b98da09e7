"""A plain folder of images (sorted by name) plus an intrinsics YAML.

The YAML holds `fx, fy, cx, cy` (pixels) and optionally `baseline_m`, `width`, `height`; the
ROS camera_calibration format (`camera_matrix: {data: [9 numbers]}`, `image_width`,
`image_height`) is accepted too. Optional `times.txt` (else 10 Hz) and `poses.txt` (KITTI format)
in the folder, or an explicit gt_path.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from tpr_vo.datasets.files import (
    ImageReader,
    first_image_size,
    list_images,
    read_ground_truth,
    read_times,
)
from tpr_vo.errors import DataError
from tpr_vo.types import CameraIntrinsics, Frame

INTRINSICS_NAMES = ("intrinsics.yaml", "camera.yaml")


def read_intrinsics_yaml(path: str | os.PathLike, image_size: tuple[int, int] | None = None):
    """CameraIntrinsics from a YAML file; `image_size` (width, height) fills a missing size."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: intrinsics YAML not found (expected fx, fy, cx, cy)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping with fx, fy, cx, cy")
    if "camera_matrix" in data:  # ROS camera_calibration format
        K = (
            (data["camera_matrix"] or {}).get("data")
            if isinstance(data["camera_matrix"], dict)
            else None
        )
        if not isinstance(K, list) or len(K) != 9:
            raise DataError(f"{path}: camera_matrix.data must be 9 numbers (row-major K)")
        data = {"fx": K[0], "fy": K[4], "cx": K[2], "cy": K[5],
                "width": data.get("image_width"), "height": data.get("image_height"),
                "baseline_m": data.get("baseline_m")}  # fmt: skip
    values = {}
    for key in ("fx", "fy", "cx", "cy", "baseline_m", "width", "height"):
        value = data.get(key)
        if value is None:
            if key in ("fx", "fy", "cx", "cy"):
                raise DataError(f"{path}: missing '{key}' (expected fx, fy, cx, cy in pixels)")
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise DataError(f"{path}: '{key}' must be a finite number, got {value!r}")
        values[key] = float(value)
    for key in ("fx", "fy", "baseline_m", "width", "height"):
        if key in values and values[key] <= 0:
            raise DataError(f"{path}: '{key}' must be positive, got {values[key]}")
    if "width" in values and "height" in values:
        image_size = (int(values["width"]), int(values["height"]))
    if image_size is None:
        raise DataError(f"{path}: no width/height and no image to take them from")
    return CameraIntrinsics(
        fx=values["fx"], fy=values["fy"], cx=values["cx"], cy=values["cy"],
        width_px=image_size[0], height_px=image_size[1], baseline_m=values.get("baseline_m"),
    )  # fmt: skip


class ImageFolderSequence:
    """Monocular sequence from a folder of images and an intrinsics YAML (the folder's
    intrinsics.yaml or camera.yaml when `intrinsics_yaml` is None)."""

    has_right = False
    read_right = False  # no right camera; setting it changes nothing

    def __init__(
        self,
        path: str | os.PathLike,
        intrinsics_yaml: str | os.PathLike | None = None,
        gt_path: str | os.PathLike | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path}: image folder not found")
        self.name = self.path.name
        self._images = list_images(self.path)
        if intrinsics_yaml is None:
            found = [self.path / n for n in INTRINSICS_NAMES if (self.path / n).is_file()]
            if not found:
                raise DataError(
                    f"{self.path}: no intrinsics (pass an intrinsics YAML or put "
                    f"{' or '.join(INTRINSICS_NAMES)} with fx, fy, cx, cy in the folder)"
                )
            intrinsics_yaml = found[0]
        self.intrinsics = read_intrinsics_yaml(intrinsics_yaml, first_image_size(self._images))
        self.times_s = read_times(self.path / "times.txt", len(self._images))
        if gt_path is None and (self.path / "poses.txt").is_file():
            gt_path = self.path / "poses.txt"
        self.gt_path = None if gt_path is None else Path(gt_path)
        self.gt_poses = None
        if self.gt_path is not None:
            self.gt_poses = read_ground_truth(self.gt_path, len(self._images))
        self._reader = ImageReader()

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> Frame:
        if not -len(self) <= index < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} frames")
        index %= len(self)
        path = self._images[index]
        return Frame(index, float(self.times_s[index]), self._reader.read(path), None, str(path))
