"""KITTI pose-file reading and atomic writing."""

import numpy as np
import pytest

from tpr_vo.errors import DataError
from tpr_vo.kitti_poses import read_kitti_poses, write_kitti_poses


def _poses(n=5):
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 0, 3] = np.arange(n) * 0.5
    c, s = np.cos(0.1), np.sin(0.1)
    T[:, :3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return T


def test_roundtrip(tmp_path):
    T = _poses()
    write_kitti_poses(tmp_path / "p.txt", T)
    back = read_kitti_poses(tmp_path / "p.txt")
    np.testing.assert_allclose(back, T, atol=1e-9)
    assert [p.name for p in tmp_path.iterdir()] == ["p.txt"]


def test_real_ground_truth(kitti_gt_full):
    T = read_kitti_poses(kitti_gt_full / "poses" / "07.txt")
    assert T.shape == (1101, 4, 4)
    np.testing.assert_allclose(T[0], np.eye(4), atol=1e-6)


@pytest.mark.parametrize(
    "line, message",
    [
        ("1 0 0 0 0 1 0 0 0 0 1", "expected 12 numbers"),
        ("1 0 0 nan 0 1 0 0 0 0 1 0", "NaN or inf"),
        ("1 0 0 0 0 1 0 0 0 0 x 0", "not a number"),
        ("2 0 0 0 0 1 0 0 0 0 1 0", "not orthonormal"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.txt"
    path.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n" + line + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_kitti_poses(path)
    assert f"{path}:2" in str(info.value)


def test_missing_and_empty(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_kitti_poses(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="no poses"):
        read_kitti_poses(tmp_path / "empty.txt")


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "p.txt"
    write_kitti_poses(path, _poses(3))
    with pytest.raises(DataError):
        write_kitti_poses(path, np.zeros((3, 2, 2)))
    assert len(read_kitti_poses(path)) == 3


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    """Not the owner-only mode of the temporary file; an existing file keeps its mode."""
    import os
    import stat

    from tpr_vo.atomic import write_text_atomic

    umask = os.umask(0o022)
    os.umask(umask)
    new = tmp_path / "poses.txt"
    write_text_atomic(new, "1 0 0 0 0 1 0 0 0 0 1 0\n")
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask
    assert new.read_text().startswith("1 0 0")
    existing = tmp_path / "metrics.json"
    existing.write_text("{}")
    existing.chmod(0o640)
    write_text_atomic(existing, '{"ate": 1}')
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640 and "ate" in existing.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "poses.txt"]
