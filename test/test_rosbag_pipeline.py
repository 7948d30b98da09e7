"""The synthetic sequence written as rosbag2 (mcap and sqlite3) reads back frame for frame, and
`tpr-vo run BAG --image-topic T` gives exactly the poses of `tpr-vo run FOLDER`, with metrics."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

if os.environ.get("CI", "").lower() != "true":  # CI installs it: fail, never skip
    pytest.importorskip("rosbags")

from tpr_vo.cli import main as tpr_vo  # noqa: E402
from tpr_vo.datasets import open_sequence  # noqa: E402
from tpr_vo.datasets.rosbag import RosbagSequence  # noqa: E402
from tpr_vo.datasets.rosbag_writer import LEFT_TOPIC, RIGHT_TOPIC, write_sequence_bag  # noqa: E402
from tpr_vo.datasets.synthetic import render_synthetic_sequence  # noqa: E402
from tpr_vo.errors import DataError  # noqa: E402
from tpr_vo.kitti_poses import read_kitti_poses  # noqa: E402

FRAMES = 12


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic") / "seq"
    return render_synthetic_sequence(folder, num_frames=FRAMES, seed=3, width=640, height=192)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_of_the_synthetic_sequence_reads_back(synthetic, tmp_path, storage):
    folder = open_sequence(synthetic)
    bag = write_sequence_bag(folder, tmp_path / "bag", storage=storage, stereo=True)
    seq = RosbagSequence(bag, LEFT_TOPIC, right_image_topic=RIGHT_TOPIC)
    assert len(seq) == len(folder) == FRAMES
    assert seq.intrinsics == folder.intrinsics  # fx, fy, cx, cy, size and the 0.54 m baseline
    assert seq.intrinsics.baseline_m == pytest.approx(0.54, abs=1e-6)
    for i in (0, 5, FRAMES - 1):
        a, b = folder[i], seq[i]
        assert b.stamp_s == pytest.approx(a.stamp_s, abs=1e-9)
        np.testing.assert_array_equal(b.image_left, a.image_left)
        np.testing.assert_array_equal(b.image_right, a.image_right)
    with pytest.raises(DataError, match="already exists"):
        write_sequence_bag(folder, bag)


def test_tpr_vo_run_on_the_bag_equals_the_folder_run(synthetic, tmp_path):
    bag = write_sequence_bag(open_sequence(synthetic), tmp_path / "bag", storage="mcap")
    common = ["--features", "orb", "--scale", "gt", "--gt", str(synthetic / "poses.txt")]
    assert tpr_vo(["run", str(synthetic), "--out", str(tmp_path / "folder"), *common]) == 0
    assert (
        tpr_vo(
            ["run", str(bag), "--image-topic", LEFT_TOPIC, "--out", str(tmp_path / "bag_run")]
            + common
        )  # fmt: skip
        == 0
    )
    from_folder = read_kitti_poses(tmp_path / "folder" / "poses.txt")
    from_bag = read_kitti_poses(tmp_path / "bag_run" / "poses.txt")
    assert from_bag.shape == (FRAMES, 4, 4)
    np.testing.assert_allclose(from_bag, from_folder, atol=1e-9)
    metrics = json.loads((tmp_path / "bag_run" / "metrics.json").read_text())
    assert metrics["frames"] == FRAMES and metrics["ate_align"] == "se3"
    assert 0 <= metrics["ate_rmse_m"] < 1.0  # metres, gt scale on a ~10 m synthetic drive
    # an image topic that is not in the bag: a known error, exit code 1
    assert tpr_vo(["run", str(bag), "--image-topic", "/nope", "--out", str(tmp_path / "x")]) == 1
