"""rosbag2 recordings (sqlite3 or mcap) as a Sequence, read with the `rosbags` library: no ROS
install needed.

One frame per message on `image_topic` (sensor_msgs/Image, mono8 | bgr8 | rgb8 | mono16), in bag
order, stamped with its header stamp. Intrinsics come from the first message on
`camera_info_topic` (default: the image topic's sibling `.../camera_info`, else the bag's only
CameraInfo topic). With `right_image_topic`, right images are paired to left ones by exact header
stamp and the baseline comes from the right camera_info's P[0,3] = -fx*baseline.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tpr_vo.errors import DataError
from tpr_vo.msg_decode import decode_image, intrinsics_from_camera_info, to_gray_u8
from tpr_vo.types import CameraIntrinsics, Frame

log = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def _bag_path(path: Path) -> Path:
    """A bag folder (metadata.yaml) or a single .mcap / .db3 file (its folder when it has one)."""
    if path.is_file() and (path.parent / "metadata.yaml").is_file():
        return path.parent
    return path


class RosbagSequence:
    """Sequence protocol over one rosbag2 recording."""

    def __init__(
        self,
        path: str | Path,
        image_topic: str,
        camera_info_topic: str | None = None,
        right_image_topic: str | None = None,
        right_camera_info_topic: str | None = None,
        intrinsics: CameraIntrinsics | None = None,
    ):
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"{self.path}: rosbag2 not found")
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.gt_poses: np.ndarray | None = None
        try:
            self._reader = AnyReader(
                [_bag_path(self.path)], default_typestore=get_typestore(Stores.ROS2_KILTED)
            )
            self._reader.open()
        except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
            raise DataError(
                f"{self.path}: not a readable rosbag2 (sqlite3 or mcap): {exc}"
            ) from exc
        self._topics = {c.topic: c.msgtype for c in self._reader.connections}
        self._left_conns = self._connections(image_topic, IMAGE_TYPE, "image_topic")
        self._left = self._index(self._left_conns)
        if not self._left:
            raise DataError(f"{self.path}: no messages on image topic {image_topic!r}")
        self._right: dict[int, int] = {}  # header stamp ns -> bag time ns
        self._right_conns = []
        if right_image_topic:
            self._right_conns = self._connections(
                right_image_topic, IMAGE_TYPE, "right_image_topic"
            )
            self._right = dict(self._index(self._right_conns))
        self.has_right = bool(right_image_topic)
        self.read_right = True
        if intrinsics is None:
            intrinsics = self._read_intrinsics(
                image_topic, camera_info_topic, right_image_topic, right_camera_info_topic
            )
        self.intrinsics = intrinsics
        self._warned_missing_right = False

    # -- Sequence protocol -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._left)

    def __getitem__(self, index: int) -> Frame:
        if not 0 <= index < len(self._left):
            raise IndexError(f"{self.name}: frame {index} out of range [0, {len(self._left)})")
        stamp_ns, bag_ns = self._left[index]
        left = self._read_image(self._left_conns, bag_ns, stamp_ns, f"frame {index}")
        right = None
        if self.has_right and self.read_right:
            if stamp_ns in self._right:
                right = self._read_image(
                    self._right_conns, self._right[stamp_ns], stamp_ns, f"right frame {index}"
                )
            elif not self._warned_missing_right:
                self._warned_missing_right = True
                log.warning(
                    "%s: frame %d has no right image with the same stamp", self.name, index
                )
        return Frame(index, stamp_ns * 1e-9, left, right, f"{self.path}#{index}")

    def close(self) -> None:
        self._reader.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _connections(self, topic: str, msgtype: str, what: str):
        conns = [c for c in self._reader.connections if c.topic == topic]
        if not conns:
            raise DataError(
                f"{self.path}: {what} {topic!r} is not in the bag (topics: "
                f"{', '.join(f'{t} [{m}]' for t, m in sorted(self._topics.items()))})"
            )
        if any(c.msgtype != msgtype for c in conns):
            raise DataError(f"{self.path}: {what} {topic!r} is {conns[0].msgtype}, not {msgtype}")
        return conns

    def _index(self, conns) -> list[tuple[int, int]]:
        """(header stamp ns, bag time ns) per message, in bag order."""
        index = []
        for conn, bag_ns, raw in self._reader.messages(connections=conns):
            header = self._reader.deserialize(raw, conn.msgtype).header
            index.append((header.stamp.sec * 1_000_000_000 + header.stamp.nanosec, bag_ns))
        return index

    def _read_image(self, conns, bag_ns: int, stamp_ns: int, what: str) -> np.ndarray | None:
        for conn, _, raw in self._reader.messages(
            connections=conns, start=bag_ns, stop=bag_ns + 1
        ):
            msg = self._reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp
            if stamp.sec * 1_000_000_000 + stamp.nanosec != stamp_ns:
                continue  # another message recorded at the same bag time
            try:
                image = decode_image(
                    msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian)
                )
                return to_gray_u8(image, msg.encoding)
            except DataError as exc:
                log.warning("%s: %s unreadable: %s", self.name, what, exc)
                return None
        log.warning("%s: %s not found at bag time %d", self.name, what, bag_ns)
        return None

    def _first(self, topic: str):
        conns = self._connections(topic, CAMERA_INFO_TYPE, "camera_info topic")
        for conn, _, raw in self._reader.messages(connections=conns):
            return self._reader.deserialize(raw, conn.msgtype)
        raise DataError(f"{self.path}: no messages on camera_info topic {topic!r}")

    def _camera_info_topic(self, image_topic: str, given: str | None, what: str) -> str:
        if given:
            return given
        sibling = image_topic.rsplit("/", 1)[0] + "/camera_info"
        if self._topics.get(sibling) == CAMERA_INFO_TYPE:
            return sibling
        infos = [t for t, m in self._topics.items() if m == CAMERA_INFO_TYPE]
        if what == "camera_info_topic" and len(infos) == 1:
            return infos[0]
        raise DataError(
            f"{self.path}: cannot tell which CameraInfo topic belongs to {image_topic!r} "
            f"(candidates: {infos or 'none'}); pass {what} or intrinsics"
        )

    def _read_intrinsics(self, image_topic, info_topic, right_topic, right_info_topic):
        info = self._first(self._camera_info_topic(image_topic, info_topic, "camera_info_topic"))
        right_p = None
        if right_topic:
            topic = self._camera_info_topic(
                right_topic, right_info_topic, "right_camera_info_topic"
            )
            right_p = np.asarray(self._first(topic).p)
        try:
            return intrinsics_from_camera_info(
                np.asarray(info.k), np.asarray(info.p), info.width, info.height, right_p
            )
        except DataError as exc:
            raise DataError(f"{self.path}: {exc}") from exc
