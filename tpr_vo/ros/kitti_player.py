"""`kitti_player`: publishes a KITTI sequence folder as a camera would.

Topics (relative, so launch remaps them): image (+ right/image in stereo) as mono8 (bgr8 for
colour), camera_info (+ right/camera_info, P[0,3] = -fx*baseline) built from calib.txt, stamped
from times.txt. Parameters:
  sequence (folder)      mode: mono | stereo      rate: multiple of real time; 0 = lock-step
  loop (restart at the end; calls the node's `reset` service)   start_frame, max_frames (0 = all)
  stamp_from_now: stamps = start time + times.txt (true) or times.txt itself (false)
  frame_id, right_frame_id, lockstep_retry_s, lockstep_timeout_s, wait_for_subscribers_s
With rate 0 the next frame goes out when the node's `odometry` for the previous one arrives, so
the run is as fast as the node. Images travel best-effort (sensor-data QoS), so a frame without
odometry after lockstep_retry_s is sent again (the node skips a stamp it already processed);
after lockstep_timeout_s the player gives up on it and goes on.
Without `loop` the player exits 0 after the last frame.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from tpr_vo.errors import ConfigError, DataError, TprVoError
from tpr_vo.ros.conversions import (
    intrinsics_to_camera_info,
    numpy_to_image_msg,
    seconds_to_stamp,
    stamp_key,
)

TICK_S = 0.005
RESET_TIMEOUT_S = 2.0
PROGRESS_EVERY = 50
DEFAULT_PERIOD_S = 0.1  # KITTI's camera rate, where times.txt is missing or one frame is played


PARAMETERS = (
    ("sequence", ""),
    ("mode", "mono"),
    ("rate", 1.0),
    ("loop", False),
    ("start_frame", 0),
    ("max_frames", 0),
    ("stamp_from_now", True),
    ("frame_id", "camera_optical_frame"),
    ("right_frame_id", "camera_right_optical_frame"),
    ("lockstep_retry_s", 2.0),
    ("lockstep_timeout_s", 30.0),
    ("wait_for_subscribers_s", 10.0),
)


def _coerce(name: str, value, default):
    """The parameter as the type of its default; ConfigError naming it otherwise."""
    if isinstance(default, bool) or isinstance(default, str):
        if isinstance(value, type(default)):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        if not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    kind = type(default).__name__
    raise ConfigError(f"kitti_player: parameter '{name}' expects a {kind}, got {value!r}")


class KittiPlayer(Node):
    def __init__(self, **node_kwargs):
        super().__init__("kitti_player", **node_kwargs)
        p = {}
        dynamic = ParameterDescriptor(dynamic_typing=True)  # `-p rate:=0` is fine for a float
        for name, default in PARAMETERS:
            value = self.declare_parameter(name, default, dynamic).value
            p[name] = _coerce(name, value, default)
        if not p["sequence"]:
            raise ConfigError("kitti_player: parameter 'sequence' (a KITTI folder) is required")
        if p["mode"] not in ("mono", "stereo"):
            raise ConfigError(f"kitti_player: 'mode' must be mono or stereo, got {p['mode']!r}")
        if p["rate"] < 0:
            raise ConfigError(f"kitti_player: 'rate' must be >= 0, got {p['rate']}")
        from tpr_vo.datasets import open_sequence

        self.sequence = open_sequence(p["sequence"])
        self.stereo = p["mode"] == "stereo"
        self.sequence.read_right = self.stereo
        if self.stereo and not (self.sequence.has_right and self.sequence.intrinsics.baseline_m):
            raise ConfigError(f"{p['sequence']}: stereo needs image_1/ and P1 in calib.txt")
        n = len(self.sequence)
        first = min(max(int(p["start_frame"]), 0), n)
        last = n if p["max_frames"] <= 0 else min(n, first + int(p["max_frames"]))
        if last <= first:
            raise ConfigError(f"{p['sequence']}: no frames in [{first}, {last})")
        self.indices = list(range(first, last))
        self.params = p
        self._times = load_times_s(p["sequence"], n)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._image_pub = self.create_publisher(Image, "image", qos)
        self._info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        if self.stereo:
            self._right_image_pub = self.create_publisher(Image, "right/image", qos)
            self._right_info_pub = self.create_publisher(CameraInfo, "right/camera_info", qos)
        self.lockstep = p["rate"] == 0
        self._awaiting: tuple[int, int] | None = None  # stamp whose odometry we wait for
        self.create_subscription(Odometry, "odometry", self._on_odometry, 10)
        self._reset_client = self.create_client(Trigger, "reset")
        self._reset_future = None
        self._reset_sent_s = 0.0
        self.published = 0
        self.done = False
        self._cursor = 0
        self._loop_count = 0
        self._created_s = time.monotonic()
        self._started_s: float | None = None
        self._sent_s = self._first_sent_s = 0.0
        self._last_messages: list = []
        self.resent = 0  # lock-step frames sent again after lockstep_retry_s
        self._stamp_base_s = self._now_s() if p["stamp_from_now"] else 0.0
        self._last_stamp_s = self._stamp_base_s
        steps_s = np.diff([self._times[i] for i in self.indices])
        self._frame_period_s = float(np.median(steps_s)) if len(steps_s) else DEFAULT_PERIOD_S
        self.create_timer(TICK_S, self._tick)
        self.get_logger().info(
            f"playing {self.sequence.name}: frames {first}..{last - 1}, {p['mode']}, "
            f"rate {'lock-step' if self.lockstep else p['rate']}, loop {p['loop']}"
        )

    # -- scheduling ------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        if self._started_s is None:
            if (
                not self._subscribers_ready()
                and now - self._created_s < self.params["wait_for_subscribers_s"]
            ):
                return
            self._started_s = now
            self._rate_origin_s = now
        if self._reset_future is not None:  # looping: the node restarts before frame 0
            if not self._reset_future.done() and now - self._reset_sent_s < RESET_TIMEOUT_S:
                return
            self._reset_future = None
            self._rate_origin_s = now
            self._advance()
            return
        if self.lockstep:
            if self._awaiting is not None:
                if now - self._first_sent_s < self.params["lockstep_timeout_s"]:
                    if now - self._sent_s >= self.params["lockstep_retry_s"]:
                        self._send(self._last_messages)
                        self.resent += 1
                    return
                self.get_logger().warning(
                    f"no odometry for stamp {self._awaiting} after "
                    f"{self.params['lockstep_timeout_s']} s; going on"
                )
                self._awaiting = None
            self._advance()
            return
        index = self.indices[min(self._cursor, len(self.indices) - 1)]
        due = (
            self._rate_origin_s
            + (self._time_of(index) - self._time_of(self.indices[0])) / (self.params["rate"])
        )
        if now >= due:
            self._advance()

    def _subscribers_ready(self) -> bool:
        ready = self._image_pub.get_subscription_count() > 0
        if self.lockstep:
            ready = ready and self.count_publishers(self.resolve_topic_name("odometry")) > 0
        return ready

    def _on_odometry(self, msg: Odometry) -> None:
        if self._awaiting is not None and stamp_key(msg.header.stamp) == self._awaiting:
            self._awaiting = None
            if not self.done:
                self._advance()

    def _advance(self) -> None:
        """Publish the frame at the cursor, or finish / loop at the end."""
        if self._cursor >= len(self.indices):
            if not self.params["loop"]:
                self._finish()
                return
            self._loop_count += 1
            self._cursor = 0
            self._rate_origin_s = time.monotonic()
            if self.params["stamp_from_now"]:
                # A pass can run ahead of the clock (lock-step, rate > 1): the next one starts
                # a frame period after the last stamp when that is later, so stamps never go back.
                after_last_s = (
                    self._last_stamp_s + self._frame_period_s - self._time_of(self.indices[0])
                )
                self._stamp_base_s = max(self._now_s(), after_last_s)
            self.get_logger().info(f"loop {self._loop_count}: restarting the sequence")
            if self._reset_client.service_is_ready():
                self._reset_future = self._reset_client.call_async(Trigger.Request())
                self._reset_sent_s = time.monotonic()
                return  # _tick publishes frame 0 once the node has restarted
        index = self.indices[self._cursor]
        self._cursor += 1
        self._publish_frame(index)

    def _publish_frame(self, index: int) -> None:
        frame = self.sequence[index]
        if frame.image_left is None or (self.stereo and frame.image_right is None):
            self.get_logger().warning(f"frame {index}: image unreadable, skipped")
            return
        self._last_stamp_s = self._stamp_base_s + self._time_of(index)
        stamp = seconds_to_stamp(self._last_stamp_s)
        intrinsics = self.sequence.intrinsics
        frame_id = self.params["frame_id"]
        messages = [(self._info_pub, intrinsics_to_camera_info(intrinsics, stamp, frame_id))]
        if self.stereo:
            right_id = self.params["right_frame_id"]
            right_info = intrinsics_to_camera_info(intrinsics, stamp, right_id, right=True)
            messages.append((self._right_info_pub, right_info))
            right_image = numpy_to_image_msg(frame.image_right, stamp, right_id)
            messages.append((self._right_image_pub, right_image))
        messages.append((self._image_pub, numpy_to_image_msg(frame.image_left, stamp, frame_id)))
        if self.lockstep:
            self._awaiting = stamp_key(stamp)
            self._first_sent_s = time.monotonic()
            self._last_messages = messages
        self._send(messages)
        self.published += 1
        if self.published % PROGRESS_EVERY == 0:
            elapsed = time.monotonic() - (self._started_s or time.monotonic())
            self.get_logger().info(
                f"published {self.published} frames ({self.published / max(elapsed, 1e-9):.1f}"
                f" fps), at frame {index} of {self.indices[-1]}"
            )

    def _send(self, messages) -> None:
        for publisher, msg in messages:
            publisher.publish(msg)
        self._sent_s = time.monotonic()

    def _finish(self) -> None:
        elapsed = time.monotonic() - (self._started_s or time.monotonic())
        self.get_logger().info(
            f"done: published {self.published} frames in {elapsed:.1f} s"
            f" ({self.published / max(elapsed, 1e-9):.1f} fps, {self.resent} resent)"
        )
        self.done = True

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _time_of(self, index: int) -> float:
        return self._times[index]


def load_times_s(folder: str, num_frames: int) -> list[float]:
    """Seconds per frame from times.txt (KITTI), else 10 Hz (KITTI's camera rate)."""
    path = Path(folder) / "times.txt"
    if path.is_file():
        try:
            times = [float(line) for line in path.read_text().split()]
        except ValueError as exc:
            raise DataError(f"{path}: expected one number of seconds per line ({exc})") from exc
        if len(times) >= num_frames:
            return times[:num_frames]
        raise DataError(f"{path}: {len(times)} lines for {num_frames} images")
    return [DEFAULT_PERIOD_S * i for i in range(num_frames)]


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = KittiPlayer()
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except TprVoError as exc:
        print(f"kitti_player: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
