"""Write a Sequence (e.g. a KITTI folder or the synthetic sequence) as a rosbag2 recording with
the `rosbags` library: sensor_msgs/Image (mono8) + CameraInfo per frame, stamped with the
frame's stamp, sqlite3 or mcap. No ROS install needed. Used to test the rosbag2 input path.

    from tpr_vo.datasets import open_sequence
    write_sequence_bag(open_sequence("seq/"), "seq_bag", storage="mcap")
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tpr_vo.datasets.base import Sequence
from tpr_vo.errors import DataError
from tpr_vo.msg_decode import camera_info_matrices, encode_image

log = logging.getLogger(__name__)

LEFT_TOPIC = "/camera/left/image_rect"
RIGHT_TOPIC = "/camera/right/image_rect"


def _info_topic(image_topic: str) -> str:
    return image_topic.rsplit("/", 1)[0] + "/camera_info"


def write_sequence_bag(
    sequence: Sequence,
    bag_path: str | Path,
    storage: str = "sqlite3",
    stereo: bool = False,
    max_frames: int | None = None,
    left_topic: str = LEFT_TOPIC,
    right_topic: str = RIGHT_TOPIC,
) -> Path:
    """Write frames (left, and right when `stereo`) with their camera_info; returns the bag
    folder. Header stamps are the frame stamps; camera_info sits on the image's sibling topic."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
    if storage not in plugins:
        raise DataError(f"rosbag2 storage {storage!r}: expected one of {sorted(plugins)}")
    if stereo and not (sequence.has_right and sequence.intrinsics.baseline_m):
        raise DataError(f"{sequence.name}: stereo bag needs right images and a baseline")
    bag_path = Path(bag_path)
    if bag_path.exists():
        raise DataError(f"{bag_path}: already exists (rosbag2 writes a new folder)")
    store = get_typestore(Stores.ROS2_KILTED)
    types = store.types
    count = len(sequence) if max_frames is None else min(max_frames, len(sequence))
    intr = sequence.intrinsics
    cameras = [(left_topic, False)] + ([(right_topic, True)] if stereo else [])

    def header(stamp_s: float, frame_id: str):
        ns = int(round(stamp_s * 1e9))
        stamp = types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9)
        return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def camera_info(stamp_s: float, frame_id: str, right: bool):
        K, P = camera_info_matrices(intr, right=right)
        roi = types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        return types["sensor_msgs/msg/CameraInfo"](
            header=header(stamp_s, frame_id),
            height=intr.height_px,
            width=intr.width_px,
            distortion_model="plumb_bob",
            d=np.zeros(5),
            k=K.ravel(),
            r=np.eye(3).ravel(),
            p=P.ravel(),
            binning_x=0,
            binning_y=0,
            roi=roi,
        )

    def image(pixels: np.ndarray, stamp_s: float, frame_id: str):
        encoding, height, width, step, data = encode_image(pixels)
        return types["sensor_msgs/msg/Image"](
            header=header(stamp_s, frame_id),
            height=height,
            width=width,
            encoding=encoding,
            is_bigendian=0,
            step=step,
            data=np.frombuffer(data, np.uint8),
        )

    with Writer(bag_path, version=9, storage_plugin=plugins[storage]) as writer:
        conns = {}
        for topic, _ in cameras:
            conns[topic] = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=store)
            conns[_info_topic(topic)] = writer.add_connection(
                _info_topic(topic), "sensor_msgs/msg/CameraInfo", typestore=store
            )
        for i in range(count):
            frame = sequence[i]
            bag_ns = int(round(frame.stamp_s * 1e9))
            for topic, right in cameras:
                pixels = frame.image_right if right else frame.image_left
                if pixels is None:
                    log.warning(
                        "%s: frame %d has no %s image; not written", sequence.name, i, topic
                    )
                    continue
                frame_id = "camera_right_optical_frame" if right else "camera_optical_frame"
                info = camera_info(frame.stamp_s, frame_id, right)
                info_conn = conns[_info_topic(topic)]
                writer.write(info_conn, bag_ns, store.serialize_cdr(info, info_conn.msgtype))
                msg = image(pixels, frame.stamp_s, frame_id)
                writer.write(conns[topic], bag_ns, store.serialize_cdr(msg, conns[topic].msgtype))
    log.info("%s: wrote %d frames to %s (%s)", sequence.name, count, bag_path, storage)
    return bag_path
