"""KITTI sequence folders: the real sequence 06 clip, a copy whose first frame is not 000000,
colour images, a corrupt frame, and every malformed input named in the error."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tpr_vo.datasets import open_sequence
from tpr_vo.datasets.kitti import KittiSequence
from tpr_vo.errors import DataError
from tpr_vo.kitti_poses import read_kitti_poses, write_kitti_poses

CALIB = (
    "P0: 700 0 320 0 0 700 120 0 0 0 1 0\n"
    "P1: 700 0 320 -350 0 700 120 0 0 0 1 0\n"  # baseline 0.5 m
)


def test_real_sequence_06(kitti06: Path):
    seq = open_sequence(kitti06)
    assert isinstance(seq, KittiSequence)
    assert len(seq) == 51 and seq.name == "06" and seq.has_right
    k = seq.intrinsics
    assert k.fx == pytest.approx(707.0912) and k.fy == pytest.approx(707.0912)
    assert (k.cx, k.cy) == pytest.approx((601.8873, 183.1104))
    assert (k.width_px, k.height_px) == (1226, 370)
    assert k.baseline_m == pytest.approx(379.8145 / 707.0912, abs=1e-9)  # 0.5372 m
    assert k.baseline_m == pytest.approx(0.537, abs=1e-3)
    # ground truth from the official layout dataset/poses/06.txt, one pose per image
    assert seq.gt_path == kitti06.parent.parent / "poses" / "06.txt"
    assert seq.gt_poses.shape == (51, 4, 4)
    np.testing.assert_allclose(seq.gt_poses, read_kitti_poses(seq.gt_path))
    frame = seq[10]
    assert frame.index == 10 and frame.stamp_s == pytest.approx(1.038877)
    assert frame.image_left.shape == (370, 1226) and frame.image_left.dtype == np.uint8
    assert frame.image_right.shape == (370, 1226) and frame.image_right.dtype == np.uint8
    assert frame.path_left.endswith("image_0/000010.png")
    assert seq[-1].index == 50
    with pytest.raises(IndexError):
        seq[51]
    seq.read_right = False  # a mono run: the right image is not decoded
    mono = seq[10]
    assert mono.image_right is None and seq.has_right
    np.testing.assert_array_equal(mono.image_left, frame.image_left)


def _copy_clip(kitti06: Path, dst: Path, first: int, count: int, start_number: int) -> Path:
    """A KITTI folder of symlinked frames `first..first+count-1`, renumbered from start_number,
    with its own poses.txt and times.txt."""
    for cam in ("image_0", "image_1"):
        (dst / cam).mkdir(parents=True)
        for k in range(count):
            src = kitti06 / cam / f"{first + k:06d}.png"
            os.symlink(src, dst / cam / f"{start_number + k:06d}.png")
    shutil.copy(kitti06 / "calib.txt", dst / "calib.txt")
    times = (kitti06 / "times.txt").read_text().split()[first : first + count]
    (dst / "times.txt").write_text("\n".join(times) + "\n")
    gt = read_kitti_poses(kitti06.parent.parent / "poses" / "06.txt")
    write_kitti_poses(dst / "poses.txt", gt[first : first + count])
    return dst


def test_first_frame_not_zero_and_own_poses(kitti06: Path, tmp_path: Path):
    folder = _copy_clip(kitti06, tmp_path / "clip", first=20, count=8, start_number=1000)
    seq = open_sequence(folder)
    full = open_sequence(kitti06)
    assert len(seq) == 8 and seq.gt_path == folder / "poses.txt"
    assert seq[0].path_left.endswith("image_0/001000.png")
    # line i of the pose file belongs to the i-th image, whatever its number
    np.testing.assert_allclose(seq.gt_poses[0], full.gt_poses[20])
    np.testing.assert_array_equal(seq[0].image_left, full[20].image_left)
    np.testing.assert_array_equal(seq[7].image_right, full[27].image_right)
    assert seq[0].stamp_s == pytest.approx(full[20].stamp_s)
    # an explicit gt_path wins over the folder's poses.txt
    other = tmp_path / "other.txt"
    write_kitti_poses(other, full.gt_poses[:8])
    np.testing.assert_allclose(open_sequence(folder, gt_path=other).gt_poses, full.gt_poses[:8])


def _tiny_kitti(root: Path, n: int = 3, colour: bool = False, right: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for cam in ("image_0", "image_1") if right else ("image_0",):
        (root / cam).mkdir(parents=True)
        for k in range(n):
            shape = (48, 64, 3) if colour else (48, 64)
            image = rng.integers(0, 255, shape, dtype=np.uint8)
            cv2.imwrite(str(root / cam / f"{k + 5:06d}.png"), image)
    (root / "calib.txt").write_text(CALIB)
    return root


def test_tiny_folder_defaults_and_colour(tmp_path: Path):
    seq = open_sequence(_tiny_kitti(tmp_path / "seq", n=3, colour=True))
    assert seq.gt_poses is None and seq.gt_path is None
    assert seq.intrinsics.baseline_m == pytest.approx(0.5)
    assert (seq.intrinsics.width_px, seq.intrinsics.height_px) == (64, 48)
    assert [seq[k].stamp_s for k in range(3)] == pytest.approx([0.0, 0.1, 0.2])  # 10 Hz
    frame = seq[1]
    assert frame.image_left.shape == (48, 64) and frame.image_left.dtype == np.uint8
    colour = cv2.imread(frame.path_left, cv2.IMREAD_COLOR)
    gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY).astype(int)
    assert np.abs(frame.image_left.astype(int) - gray).max() <= 1  # decoder rounding


def test_left_only_has_no_baseline(tmp_path: Path):
    seq = open_sequence(_tiny_kitti(tmp_path / "mono", right=False))
    assert not seq.has_right and seq.intrinsics.baseline_m is None
    assert seq[0].image_right is None


def test_corrupt_image_is_not_fatal_and_warned_once(tmp_path: Path, caplog):
    folder = _tiny_kitti(tmp_path / "seq", n=3)
    bad = folder / "image_0" / "000006.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    seq = open_sequence(folder)
    with caplog.at_level(logging.WARNING, logger="tpr_vo.datasets"):
        assert seq[1].image_left is None and seq[1].image_right is not None
        assert seq[1].image_left is None
        assert seq[2].image_left is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "000006.png" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("missing_folder", "sequence not found"),
        ("no_images", "no images"),
        ("no_calib", "calib.txt: calibration file not found"),
        ("calib_without_p0", "no 'P0:' line"),
        ("calib_short_p0", "P0 must be 12 finite numbers"),
        ("calib_text_p0", "P0 is not numeric"),
        ("gt_count", "2 poses for 3 images"),
        ("gt_columns", "expected 12 numbers"),
        ("gt_nan", "NaN or inf"),
        ("times_count", "2 timestamps for 3 images"),
        ("right_count", "2 right images for 3 left images"),
        ("right_without_p1", "no 'P1:' line"),
    ],
)
def test_errors_name_the_file_and_expectation(tmp_path: Path, breakage: str, message: str):
    folder = _tiny_kitti(tmp_path / "seq", n=3)
    poses = np.tile(np.eye(4), (3, 1, 1))
    if breakage == "missing_folder":
        folder = tmp_path / "nope"
    elif breakage == "no_images":
        for p in (folder / "image_0").iterdir():
            p.unlink()
    elif breakage == "no_calib":
        (folder / "calib.txt").unlink()
    elif breakage == "calib_without_p0":
        (folder / "calib.txt").write_text(CALIB.splitlines()[1] + "\n")
    elif breakage == "calib_short_p0":
        (folder / "calib.txt").write_text("P0: 700 0 320 0 0 700 120 0 0 0 1\n")
    elif breakage == "calib_text_p0":
        (folder / "calib.txt").write_text("P0: 700 0 320 0 0 700 120 0 0 0 1 x\n")
    elif breakage == "gt_count":
        write_kitti_poses(folder / "poses.txt", poses[:2])
    elif breakage == "gt_columns":
        (folder / "poses.txt").write_text("1 0 0 0 0 1 0 0 0 0 1\n" * 3)
    elif breakage == "gt_nan":
        (folder / "poses.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 nan\n" * 3)
    elif breakage == "times_count":
        (folder / "times.txt").write_text("0.0\n0.1\n")
    elif breakage == "right_count":
        sorted((folder / "image_1").iterdir())[-1].unlink()
    elif breakage == "right_without_p1":
        (folder / "calib.txt").write_text(CALIB.splitlines()[0] + "\n")
    with pytest.raises(DataError) as info:
        open_sequence(folder)
    text = str(info.value)
    assert message in text, text
    if breakage != "missing_folder":
        assert str(folder) in text  # names the file or folder


def test_open_sequence_rejects_a_plain_file(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a sequence"):
        open_sequence(path)
