"""The protocol every sequence adapter implements (KITTI folder, image folder, rosbag2,
synthetic). Optional parts are declared (`gt_poses` may be None), never probed with hasattr."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tpr_vo.types import CameraIntrinsics, Frame


class Sequence(Protocol):
    name: str
    intrinsics: CameraIntrinsics  # left camera; baseline_m set when a right camera exists
    gt_poses: np.ndarray | None  # (N, 4, 4) float64 T_world_cam0, one per frame, or None
    has_right: bool
    # False: frames come with image_right None and the right image is not decoded (a mono run
    # sets it; decoding an unused KITTI right image costs ~3 ms a frame).
    read_right: bool

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Frame:
        """Frame `index` (0-based, sorted order). An unreadable image gives image_left=None and
        a warning naming the file, once; it never raises for a single bad frame."""
        ...
