"""rosbag2 input: bags written here with the rosbags Writer (sqlite3 and mcap) read back through
RosbagSequence: frame count, stamps, intrinsics, pixels, stereo pairing, errors by name."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI", "").lower() != "true":  # CI installs it: fail, never skip
    pytest.importorskip("rosbags")

from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from tpr_vo.datasets.rosbag import RosbagSequence  # noqa: E402
from tpr_vo.errors import DataError  # noqa: E402

TS = get_typestore(Stores.ROS2_KILTED)
FX, FY, CX, CY, BASELINE_M = 718.856, 718.856, 607.1928, 185.2157, 0.5372
W, H = 96, 64


def _header(stamp_ns: int, frame_id: str):
    Header = TS.types["std_msgs/msg/Header"]
    Time = TS.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=frame_id)


def _image_msg(pixels: np.ndarray, encoding: str, stamp_ns: int):
    Image = TS.types["sensor_msgs/msg/Image"]
    data = np.frombuffer(np.ascontiguousarray(pixels).tobytes(), np.uint8)
    step = pixels.shape[1] * pixels.itemsize * (3 if pixels.ndim == 3 else 1)
    return Image(
        header=_header(stamp_ns, "cam"),
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=data,
    )


def _camera_info_msg(stamp_ns: int, right: bool = False):
    CameraInfo = TS.types["sensor_msgs/msg/CameraInfo"]
    Roi = TS.types["sensor_msgs/msg/RegionOfInterest"]
    K = np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1], dtype=np.float64)
    P = np.array([FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0], dtype=np.float64)
    if right:
        P[3] = -FX * BASELINE_M
    return CameraInfo(
        header=_header(stamp_ns, "cam"),
        height=H,
        width=W,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=K,
        r=np.eye(3).ravel(),
        p=P,
        binning_x=0,
        binning_y=0,
        roi=Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (H, W), dtype=np.uint8) for _ in range(n)]


def write_bag(path: Path, plugin: StoragePlugin, frames, stamps_ns, stereo=False, colour=False):
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        img = writer.add_connection("/cam/left/image_raw", "sensor_msgs/msg/Image", typestore=TS)
        info = writer.add_connection(
            "/cam/left/camera_info", "sensor_msgs/msg/CameraInfo", typestore=TS
        )
        if stereo:
            rimg = writer.add_connection(
                "/cam/right/image_raw", "sensor_msgs/msg/Image", typestore=TS
            )
            rinfo = writer.add_connection(
                "/cam/right/camera_info", "sensor_msgs/msg/CameraInfo", typestore=TS
            )
        for i, (pixels, stamp_ns) in enumerate(zip(frames, stamps_ns)):
            bag_ns = 1_000_000 + i * 50_000_000  # recording time differs from header stamps
            writer.write(info, bag_ns, TS.serialize_cdr(_camera_info_msg(stamp_ns), info.msgtype))
            if colour:
                bgr = np.stack([pixels, pixels, pixels], axis=2)
                msg = _image_msg(bgr, "bgr8", stamp_ns)
            else:
                msg = _image_msg(pixels, "mono8", stamp_ns)
            writer.write(img, bag_ns + 1, TS.serialize_cdr(msg, img.msgtype))
            if stereo:
                rmsg = _camera_info_msg(stamp_ns, right=True)
                writer.write(rinfo, bag_ns + 2, TS.serialize_cdr(rmsg, rinfo.msgtype))
                right = _image_msg(255 - pixels, "mono8", stamp_ns)
                writer.write(rimg, bag_ns + 3, TS.serialize_cdr(right, rimg.msgtype))
    return path


STAMPS_NS = [1_700_000_000_000_000_000 + i * 103_600_000 for i in range(5)]


@pytest.mark.parametrize("plugin", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_bag_reads_back_frames_stamps_intrinsics(tmp_path, plugin):
    frames = _frames(5)
    bag = write_bag(tmp_path / "bag", plugin, frames, STAMPS_NS)
    seq = RosbagSequence(bag, "/cam/left/image_raw")  # camera_info found as the sibling topic
    assert len(seq) == 5
    assert not seq.has_right and seq.gt_poses is None
    intr = seq.intrinsics
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == (FX, FY, CX, CY)
    assert (intr.width_px, intr.height_px, intr.baseline_m) == (W, H, None)
    for i in (0, 3, 1, 4):  # random access, not only in order
        frame = seq[i]
        assert frame.index == i
        assert frame.stamp_s == pytest.approx(STAMPS_NS[i] * 1e-9, abs=1e-6)
        np.testing.assert_array_equal(frame.image_left, frames[i])
        assert frame.image_right is None
    stamps = np.array([seq[i].stamp_s for i in range(5)])
    np.testing.assert_allclose(np.diff(stamps), 0.1036, atol=1e-6)
    seq.close()


def test_single_mcap_file_and_colour_images(tmp_path):
    frames = _frames(3)
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, frames, STAMPS_NS[:3], colour=True)
    (mcap_file,) = sorted(bag.glob("*.mcap"))
    seq = RosbagSequence(mcap_file, "/cam/left/image_raw", "/cam/left/camera_info")
    assert len(seq) == 3
    np.testing.assert_array_equal(seq[2].image_left, frames[2])  # bgr8 gray -> same gray


def test_stereo_pairs_by_stamp_and_reads_baseline(tmp_path):
    frames = _frames(4)
    bag = write_bag(tmp_path / "bag", StoragePlugin.SQLITE3, frames, STAMPS_NS[:4], stereo=True)
    seq = RosbagSequence(bag, "/cam/left/image_raw", right_image_topic="/cam/right/image_raw")
    assert seq.has_right
    assert seq.intrinsics.baseline_m == pytest.approx(BASELINE_M, rel=1e-12)
    frame = seq[2]
    np.testing.assert_array_equal(frame.image_right, 255 - frames[2])
    seq.read_right = False  # a mono run reads only the left topic
    assert seq[2].image_right is None
    np.testing.assert_array_equal(seq[2].image_left, frame.image_left)


def test_errors_name_the_topic(tmp_path):
    bag = write_bag(tmp_path / "bag", StoragePlugin.SQLITE3, _frames(2), STAMPS_NS[:2])
    with pytest.raises(DataError, match="/cam/nope.*not in the bag.*/cam/left/image_raw"):
        RosbagSequence(bag, "/cam/nope")
    with pytest.raises(DataError, match="CameraInfo, not sensor_msgs/msg/Image"):
        RosbagSequence(bag, "/cam/left/camera_info")
    with pytest.raises(DataError, match="rosbag2 not found"):
        RosbagSequence(tmp_path / "missing", "/cam/left/image_raw")
