"""Sequence adapters behind one protocol (base.Sequence), chosen by `open_sequence`.

    KITTI folder (image_0/ + calib.txt)        -> kitti.KittiSequence
    rosbag2 folder (metadata.yaml), .mcap/.db3 -> rosbag.RosbagSequence (imported only then)
    folder of images + intrinsics YAML         -> image_folder.ImageFolderSequence
The synthetic driving sequence (synthetic.render_synthetic_sequence) is written as a KITTI folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from tpr_vo.datasets.base import Sequence
from tpr_vo.errors import DataError

BAG_SUFFIXES = (".mcap", ".db3")


def open_sequence(
    path: str | os.PathLike,
    *,
    image_topic: str | None = None,
    camera_info_topic: str | None = None,
    right_image_topic: str | None = None,
    intrinsics_yaml: str | os.PathLike | None = None,
    gt_path: str | os.PathLike | None = None,
) -> Sequence:
    """Open a KITTI folder, a rosbag2 recording or an image folder. `intrinsics_yaml` overrides
    KITTI's calib.txt and a bag's camera_info; `gt_path` names a KITTI-format pose file (line i =
    frame i). Raises DataError naming the path and what was expected."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: sequence not found (expected a KITTI folder, rosbag2 or images)")
    is_bag = path.suffix in BAG_SUFFIXES if path.is_file() else (path / "metadata.yaml").is_file()
    if is_bag:
        return _open_rosbag(path, image_topic, camera_info_topic, right_image_topic,
                            intrinsics_yaml, gt_path)  # fmt: skip
    if path.is_file():
        raise DataError(f"{path}: not a sequence (expected a folder, or a .mcap/.db3 rosbag2)")
    if (path / "image_0").is_dir():
        from tpr_vo.datasets.kitti import KittiSequence

        intrinsics = None
        if intrinsics_yaml is not None:
            from tpr_vo.datasets.files import first_image_size, list_images
            from tpr_vo.datasets.image_folder import read_intrinsics_yaml

            size = first_image_size(list_images(path / "image_0"))
            intrinsics = read_intrinsics_yaml(intrinsics_yaml, size)
        return KittiSequence(path, gt_path=gt_path, intrinsics=intrinsics)
    from tpr_vo.datasets.image_folder import ImageFolderSequence

    try:
        return ImageFolderSequence(path, intrinsics_yaml=intrinsics_yaml, gt_path=gt_path)
    except DataError as exc:
        raise DataError(
            f"{path}: not a KITTI folder (no image_0/), not a rosbag2 (no metadata.yaml), and "
            f"not an image folder: {exc}"
        ) from exc


def _open_rosbag(path, image_topic, camera_info_topic, right_image_topic, intrinsics_yaml, gt):
    from tpr_vo.datasets.rosbag import RosbagSequence

    if not image_topic:
        raise DataError(f"{path}: a rosbag2 needs an image topic (--image-topic)")
    intrinsics = None
    if intrinsics_yaml is not None:
        from tpr_vo.datasets.image_folder import read_intrinsics_yaml

        intrinsics = read_intrinsics_yaml(intrinsics_yaml)  # a bag's YAML must give width/height
    sequence = RosbagSequence(
        path,
        image_topic,
        camera_info_topic=camera_info_topic,
        right_image_topic=right_image_topic,
        intrinsics=intrinsics,
    )
    if gt is not None:
        from tpr_vo.datasets.files import read_ground_truth

        sequence.gt_poses = read_ground_truth(Path(gt), len(sequence))
    return sequence


__all__ = ["Sequence", "open_sequence"]
