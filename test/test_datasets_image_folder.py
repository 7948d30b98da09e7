"""A plain image folder plus an intrinsics YAML (our keys or the ROS camera_calibration format)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tpr_vo.datasets import open_sequence
from tpr_vo.datasets.image_folder import ImageFolderSequence, read_intrinsics_yaml
from tpr_vo.errors import DataError
from tpr_vo.kitti_poses import write_kitti_poses


def _folder(root: Path, n: int = 4, suffix: str = ".jpg") -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for k in range(n):
        image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        cv2.imwrite(str(root / f"frame_{k * 3 + 7:04d}{suffix}"), image)
    (root / "notes.md").write_text("not an image")
    return root


def test_folder_with_intrinsics_yaml(tmp_path: Path):
    folder = _folder(tmp_path / "imgs")
    (folder / "intrinsics.yaml").write_text("fx: 500.5\nfy: 501\ncx: 30\ncy: 20.5\n")
    seq = open_sequence(folder)
    assert isinstance(seq, ImageFolderSequence)
    assert len(seq) == 4 and not seq.has_right and seq.gt_poses is None
    k = seq.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == (500.5, 501.0, 30.0, 20.5)
    assert (k.width_px, k.height_px, k.baseline_m) == (60, 40, None)
    frame = seq[2]
    assert frame.path_left.endswith("frame_0013.jpg")  # sorted by name
    assert frame.image_left.shape == (40, 60) and frame.image_left.dtype == np.uint8
    assert frame.stamp_s == pytest.approx(0.2) and frame.image_right is None


def test_explicit_yaml_times_and_poses(tmp_path: Path):
    folder = _folder(tmp_path / "imgs", n=3, suffix=".png")
    yaml_path = tmp_path / "cam.yaml"
    yaml_path.write_text("fx: 400\nfy: 400\ncx: 31\ncy: 19\nbaseline_m: 0.12\n")
    (folder / "times.txt").write_text("10.0\n10.05\n10.1\n")
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, 2, 3] = [0.0, 0.5, 1.0]
    write_kitti_poses(folder / "poses.txt", poses)
    seq = open_sequence(folder, intrinsics_yaml=yaml_path)
    assert seq.intrinsics.baseline_m == pytest.approx(0.12)
    assert seq[1].stamp_s == pytest.approx(10.05)
    np.testing.assert_allclose(seq.gt_poses[:, 2, 3], [0.0, 0.5, 1.0])


def test_ros_camera_calibration_yaml(tmp_path: Path):
    path = tmp_path / "camera.yaml"
    path.write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: cam\n"
        "camera_matrix:\n  rows: 3\n  cols: 3\n"
        "  data: [520.1, 0, 321.5, 0, 519.8, 240.2, 0, 0, 1]\n"
    )
    k = read_intrinsics_yaml(path)
    assert (k.fx, k.fy, k.cx, k.cy) == (520.1, 519.8, 321.5, 240.2)
    assert (k.width_px, k.height_px) == (640, 480)


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "intrinsics YAML not found"),
        ("fx: 500\nfy: 500\ncx: 30\n", "missing 'cy'"),
        ("fx: -5\nfy: 500\ncx: 30\ncy: 20\n", "'fx' must be positive"),
        ("fx: abc\nfy: 500\ncx: 30\ncy: 20\n", "'fx' must be a finite number"),
        ("fx: .nan\nfy: 500\ncx: 30\ncy: 20\n", "'fx' must be a finite number"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("fx: [1\n", "not valid YAML"),
        ("camera_matrix:\n  data: [1, 2, 3]\n", "camera_matrix.data must be 9 numbers"),
    ],
)
def test_bad_intrinsics_yaml(tmp_path: Path, text, message):
    path = tmp_path / "k.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError) as info:
        read_intrinsics_yaml(path, (60, 40))
    assert message in str(info.value) and str(path) in str(info.value)


def test_folder_errors(tmp_path: Path):
    folder = _folder(tmp_path / "imgs", n=2)
    with pytest.raises(DataError, match="no intrinsics"):
        open_sequence(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        open_sequence(empty)
    (folder / "intrinsics.yaml").write_text("fx: 1\nfy: 1\ncx: 1\ncy: 1\n")
    write_kitti_poses(folder / "poses.txt", np.tile(np.eye(4), (3, 1, 1)))
    with pytest.raises(DataError, match="3 poses for 2 images"):
        open_sequence(folder)
