"""`vo_node`: the ROS 2 face of tpr_vo.VisualOdometry (node name `tpr_vo`).

Subscribes (relative names, so launch remaps them; sensor-data QoS):
  image, camera_info                      mono8 | bgr8 | rgb8 | mono16
  right/image, right/camera_info          frontend.mode == stereo, paired by exact stamp
Publishes: odometry (nav_msgs/Odometry odom -> base_link, pose + twist with covariance),
  path (nav_msgs/Path, bounded), TF odom -> base_link (tf2_ros present and ros.publish_tf),
  map_points (sensor_msgs/PointCloud2 in odom: the local map, only while something subscribes;
  ros.publish_map_points), /diagnostics (diagnostic_msgs/DiagnosticArray, 1 Hz).
  Service: reset (std_srvs/Trigger).

Callbacks only queue messages (bounded; the oldest is dropped and counted under overload). With
`ros.pipeline` (default) one worker thread decodes the newest frame and extracts its features
while a second tracks the previous frame and publishes (throughput of the slower stage, like
`tpr-vo run`'s prefetch; ONNX Runtime then leaves the tracker a core); without it one worker does
both in turn. A bad message is logged (throttled per reason), counted and skipped; the node keeps
running.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from nav_msgs.msg import Odometry, Path
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_srvs.srv import Trigger

from tpr_vo.errors import ConfigError, DataError, TprVoError
from tpr_vo.frontend import ExtractedFrame, extract_frame
from tpr_vo.geometry.se3 import transform_points
from tpr_vo.prefetch import features_for_prefetch
from tpr_vo.ros.body_frame import BodyOdometryTracker, T_base_cam_from_config
from tpr_vo.ros.conversions import (
    camera_info_to_intrinsics,
    image_msg_to_gray,
    odometry_msg,
    points_msg,
    pose_stamped_msg,
    stamp_key,
    stamp_to_seconds,
    transform_msg,
)
from tpr_vo.ros.params import declare_config_parameters
from tpr_vo.ros.stereo_sync import ExactStampSync
from tpr_vo.types import CameraIntrinsics

NODE_NAME = "tpr_vo"
WARN_PERIOD_S = 5.0  # per-reason log throttle
CAMERA_INFO_WAIT_S = 0.5  # a frame waits this long for its first camera_info before dropping
STALL_WARN_S = 5.0  # diagnostics turn WARN when no image arrived for this long


@dataclass
class _Input:
    key: tuple[int, int]
    left: Image
    right: Image | None


@dataclass
class _Extracted:
    """A frame ready for tracking: decoded, checked, its features extracted."""

    item: _Input
    intrinsics: CameraIntrinsics
    extracted: ExtractedFrame
    t_start: float  # perf_counter when its preparation began
    decode_ms: float


class VoNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.config = declare_config_parameters(self)
        front = self.config.frontend
        if front.scale == "gt":
            raise ConfigError("frontend.scale: 'gt' needs ground truth, which a live node lacks")
        self.stereo = front.mode == "stereo"
        from tpr_vo.features.base import create_backend

        features = self.config.features
        self._backend = create_backend(
            features_for_prefetch(features) if self.config.ros.pipeline else features,
            keypoint_covariance=front.uses_keypoint_covariance,
        )
        self._tracker = BodyOdometryTracker(T_base_cam_from_config(self.config.camera))
        self._vo = None  # created on the first frame with intrinsics
        self._intrinsics: CameraIntrinsics | None = None
        self._fixed_size: tuple[int, int] | None = None  # (W, H) when intrinsics come from config

        self._cond = threading.Condition()
        self._queue: deque[_Input] = deque()
        self._ready: _Extracted | None = None  # pipeline hand-over slot (guarded by _cond)
        self._camera_info: CameraInfo | None = None
        self._right_camera_info: CameraInfo | None = None
        self._sync = ExactStampSync()
        self._stop = False
        self._vo_lock = threading.Lock()
        self._last_key: tuple[int, int] | None = None
        self._last_image_wall_s: float | None = None
        self._warned_at: dict[str, float] = {}
        self.last_warning: dict[str, str] = {}
        self.counts = {"received": 0, "processed": 0, "dropped_overload": 0, "tracked": 0}
        self.skipped: dict[str, int] = {}
        self._last_estimate = None
        self._last_latency_ms: dict[str, float] = {}

        ros = self.config.ros
        self._odom_pub = self.create_publisher(Odometry, "odometry", 10)
        self._path_pub = self.create_publisher(Path, "path", 1)
        self._points_pub = None
        if ros.publish_map_points:
            self._points_pub = self.create_publisher(PointCloud2, "map_points", 1)
        # Absolute, like diagnostic_updater: the aggregator listens on /diagnostics.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._path = deque(maxlen=ros.path_max_length)
        self._tf = None
        if ros.publish_tf:
            try:
                from tf2_ros import TransformBroadcaster

                self._tf = TransformBroadcaster(self)
            except ImportError:
                self.get_logger().info("tf2_ros is not importable: not broadcasting TF")
        qos = qos_profile_sensor_data
        if ros.image_qos == "reliable":  # no loss of large images, but only reliable publishers
            qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.create_subscription(Image, "image", lambda m: self._on_image("left", m), qos)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
        if self.stereo:
            self.create_subscription(
                Image, "right/image", lambda m: self._on_image("right", m), qos
            )
            self.create_subscription(
                CameraInfo, "right/camera_info", self._on_right_camera_info, qos
            )
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_timer(1.0, self._publish_diagnostics)
        if ros.pipeline:
            stages = [("tpr_vo_extract", self._extract_loop), ("tpr_vo_track", self._track_loop)]
        else:
            stages = [("tpr_vo_worker", self._serial_loop)]
        self._workers = [threading.Thread(target=f, name=n, daemon=True) for n, f in stages]
        for worker in self._workers:
            worker.start()
        self.get_logger().info(
            f"ready: {front.mode} VO, features {self.config.features.kind}"
            f" ({type(self._backend).__name__}), queue {ros.queue_size}, "
            + ("pipelined (extract | track)" if ros.pipeline else "one worker")
        )

    # -- callbacks (executor thread): store and return -------------------------------------

    def _on_camera_info(self, msg: CameraInfo) -> None:
        with self._cond:
            self._camera_info = msg
            self._cond.notify_all()

    def _on_right_camera_info(self, msg: CameraInfo) -> None:
        with self._cond:
            self._right_camera_info = msg
            self._cond.notify_all()

    def _on_image(self, side: str, msg: Image) -> None:
        with self._cond:
            self._last_image_wall_s = time.monotonic()
            key = stamp_key(msg.header.stamp)
            if self.stereo:
                pair = self._sync.add(side, key, msg)
                if pair is None:
                    return
                item = _Input(key, pair[0], pair[1])
            else:
                item = _Input(key, msg, None)
            self.counts["received"] += 1
            if len(self._queue) >= self.config.ros.queue_size:
                self._queue.popleft()  # keep the newest frames
                self.counts["dropped_overload"] += 1
            self._queue.append(item)
            self._cond.notify_all()

    def _on_reset(self, request, response):
        self.reset_tracking("reset service")
        response.success = True
        response.message = "tracking restarted; the next frame is the new odom origin"
        return response

    # -- worker threads --------------------------------------------------------------------

    def _next_input(self) -> _Input | None:
        """The oldest queued frame; None when the node stops."""
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait()
            return None if self._stop else self._queue.popleft()

    def _guarded(self, key, step, *args) -> None:
        try:
            step(*args)
        except Exception as exc:  # the node must not stop on one frame: log, count, go on
            self._skip("internal_error", f"frame {key} failed: {exc!r}")
            logging.getLogger(__name__).exception("frame %s failed", key)

    def _serial_loop(self) -> None:
        while (item := self._next_input()) is not None:
            self._guarded(item.key, self._prepare_and_track, item)

    def _prepare_and_track(self, item: _Input) -> None:
        ready = self._prepare(item)
        if ready is not None:
            self._track(ready)

    def _extract_loop(self) -> None:
        """Pipeline stage 1: decode + extract, then wait for the tracker to take the frame (new
        images meanwhile wait in the bounded queue, which drops the oldest)."""
        while (item := self._next_input()) is not None:
            self._guarded(item.key, self._hand_over, item)

    def _hand_over(self, item: _Input) -> None:
        ready = self._prepare(item)
        if ready is None:
            return
        with self._cond:
            while self._ready is not None and not self._stop:
                self._cond.wait()
            self._ready = ready
            self._cond.notify_all()

    def _track_loop(self) -> None:
        """Pipeline stage 2: track and publish the frames stage 1 hands over, in order."""
        while True:
            with self._cond:
                while self._ready is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                ready, self._ready = self._ready, None
                self._cond.notify_all()
            self._guarded(ready.item.key, self._track, ready)

    def _prepare(self, item: _Input) -> _Extracted | None:
        """Decode and check a frame, find its intrinsics and extract its features; None (and a
        counted skip) when the frame cannot be used."""
        t0 = time.perf_counter()
        if self._repeats_last_stamp(item):  # cheap early out; _track checks again in order
            return None
        try:
            left = image_msg_to_gray(item.left)
            right = image_msg_to_gray(item.right) if item.right is not None else None
        except DataError as exc:
            self._skip("bad_image", f"skipping frame {item.key}: {exc}")
            return None
        height, width = left.shape
        if right is not None and right.shape != left.shape:
            size = f"right image {right.shape[1]}x{right.shape[0]} px, left {width}x{height}"
            self._skip("size_mismatch", f"skipping frame {item.key}: {size}")
            return None
        intrinsics = self._wait_for_intrinsics(width, height)
        if intrinsics is None:
            return None
        if (intrinsics.width_px, intrinsics.height_px) != (width, height):
            self._skip(
                "size_mismatch",
                f"skipping frame {item.key}: image is {width}x{height} px but the camera is "
                f"{intrinsics.width_px}x{intrinsics.height_px} px (camera_info or first frame)",
            )
            return None
        t1 = time.perf_counter()
        extracted = extract_frame(self._backend, left, right if self.stereo else None)
        return _Extracted(item, intrinsics, extracted, t0, (t1 - t0) * 1e3)

    def _track(self, ready: _Extracted) -> None:
        item, intrinsics = ready.item, ready.intrinsics
        with self._vo_lock:
            if self._repeats_last_stamp(item):
                return
            if self._last_key is not None and item.key < self._last_key:
                self._restart("time went backwards (looped playback?)")
            if self._vo is None or intrinsics != self._intrinsics:
                self._create_vo(intrinsics)
            stamp_s = stamp_to_seconds(item.left.header.stamp)
            estimate = self._vo.process_frame(None, stamp_s, extracted=ready.extracted)
            sample = self._tracker.update(estimate.T_world_cam, estimate.covariance_6x6, stamp_s)
            self._last_key = item.key
            points_world = None
            if self._points_pub is not None and self._points_pub.get_subscription_count() > 0:
                points_world = self._vo.map_points_world()
        t2 = time.perf_counter()
        self._publish(sample, points_world)
        t3 = time.perf_counter()
        self.counts["processed"] += 1
        self.counts["tracked"] += int(estimate.tracked)
        self._last_estimate = estimate
        latency = {f"{k}_ms": float(v) for k, v in estimate.timings_ms.items()}
        latency.update(decode_ms=ready.decode_ms, publish_ms=(t3 - t2) * 1e3)
        latency["end_to_end_ms"] = (t3 - ready.t_start) * 1e3
        self._last_latency_ms = latency

    def _repeats_last_stamp(self, item: _Input) -> bool:
        if self._last_key is not None and item.key == self._last_key:
            self._skip("duplicate_stamp", f"frame {item.key} repeats the previous stamp")
            return True
        return False

    def _wait_for_intrinsics(self, width: int, height: int) -> CameraIntrinsics | None:
        """Intrinsics from camera_info (override config), else config.camera; None = drop."""
        cam = self.config.camera
        deadline = time.monotonic() + CAMERA_INFO_WAIT_S
        with self._cond:
            while True:
                info, right_info = self._camera_info, self._right_camera_info
                ready = info is not None and (not self.stereo or right_info is not None)
                if ready or cam.fx > 0 or self._stop or time.monotonic() >= deadline:
                    break
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
        baseline = cam.baseline_m if cam.baseline_m > 0 else None
        if info is not None:
            try:
                intrinsics = camera_info_to_intrinsics(info, right_info if self.stereo else None)
            except DataError as exc:
                self._skip("bad_camera_info", f"camera_info unusable: {exc}")
                return None
            if intrinsics.baseline_m is None and baseline is not None:
                intrinsics = _with_baseline(intrinsics, baseline)
        elif cam.fx > 0:
            if self._fixed_size is None:
                self._fixed_size = (width, height)
            w, h = self._fixed_size
            cx = cam.cx if cam.cx > 0 else (w - 1) / 2
            cy = cam.cy if cam.cy > 0 else (h - 1) / 2
            fy = cam.fy if cam.fy > 0 else cam.fx
            intrinsics = CameraIntrinsics(cam.fx, fy, cx, cy, w, h, baseline)
        else:
            self._skip("no_camera_info", "dropping frame: no camera_info received yet")
            return None
        if self.stereo and not intrinsics.baseline_m:
            self._skip(
                "no_baseline",
                "dropping frame: stereo needs right/camera_info (P[0,3] = -fx*B) "
                "or camera.baseline_m",
            )
            return None
        return intrinsics

    def _create_vo(self, intrinsics: CameraIntrinsics) -> None:
        from tpr_vo.frontend import VisualOdometry

        if self._vo is not None:
            self.get_logger().warning(f"intrinsics changed to {intrinsics}: restarting tracking")
        self._vo = VisualOdometry(self.config, intrinsics, backend=self._backend)
        self._intrinsics = intrinsics
        self._tracker.reset()
        self._path.clear()

    def _restart(self, why: str) -> None:
        """Caller holds _vo_lock."""
        self.get_logger().warning(f"{why}: restarting tracking")
        if self._vo is not None:
            self._vo.reset()
        self._tracker.reset()
        self._path.clear()
        self._last_key = None
        with self._cond:
            self._sync.reset()

    def reset_tracking(self, why: str) -> None:
        with self._vo_lock:
            self._restart(why)

    # -- outputs ---------------------------------------------------------------------------

    def _publish(self, sample, points_world: np.ndarray | None = None) -> None:
        """Odometry, path and TF of `sample`; the map's points (world frame, (N, 3)) when given,
        in odom: p_odom = T_base_cam · p_world, since odom is base_link at the first frame."""
        ros = self.config.ros
        self._odom_pub.publish(odometry_msg(sample, ros.odom_frame, ros.base_frame))
        self._path.append(pose_stamped_msg(sample, ros.odom_frame))
        path = Path()
        path.header = self._path[-1].header
        path.poses = list(self._path)
        self._path_pub.publish(path)
        if self._tf is not None:
            self._tf.sendTransform(transform_msg(sample, ros.odom_frame, ros.base_frame))
        if points_world is not None:
            points_odom = transform_points(self._tracker.T_base_cam, points_world)
            self._points_pub.publish(points_msg(points_odom, ros.odom_frame, sample.stamp_s))

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(self.diagnostics())

    def diagnostics(self) -> DiagnosticArray:
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: visual odometry")
        status.hardware_id = self.config.features.kind
        estimate = self._last_estimate
        state = estimate.state if estimate is not None else "waiting for images"
        idle_s = (
            None if self._last_image_wall_s is None else time.monotonic() - self._last_image_wall_s
        )
        if estimate is None or (idle_s is not None and idle_s > STALL_WARN_S):
            status.level = DiagnosticStatus.WARN
            status.message = "no images" if idle_s is None else f"no image for {idle_s:.0f} s"
        elif not estimate.tracked:
            status.level = DiagnosticStatus.WARN
            status.message = f"not tracking ({state})"
        else:
            status.level = DiagnosticStatus.OK
            status.message = state
        if self.skipped.get("internal_error"):
            status.level = DiagnosticStatus.ERROR
        values = {"state": state, "tracked": estimate is not None and estimate.tracked}
        if estimate is not None:
            values.update(matches=estimate.num_matches, inliers=estimate.num_inliers)
        values.update({f"frames_{k}": v for k, v in dict(self.counts).items()})
        values["frames_unpaired_stereo"] = self._sync.unmatched
        values.update({f"skipped_{k}": v for k, v in sorted(dict(self.skipped).items())})
        latency = dict(self._last_latency_ms)
        values.update({f"latency_{k}": round(v, 3) for k, v in latency.items()})
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array

    def _skip(self, reason: str, text: str) -> None:
        """Count a skipped frame and log it; the same message (numbers aside) at most once per
        WARN_PERIOD_S."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.last_warning[reason] = text
        now = time.monotonic()
        kind = reason + re.sub(r"\d+", "#", text)  # same message up to numbers
        if now - self._warned_at.get(kind, -1e9) >= WARN_PERIOD_S:
            self._warned_at[kind] = now
            count = self.skipped[reason]
            self.get_logger().warning(f"{text} [{reason}: {count} so far]")

    def destroy_node(self) -> None:
        workers = getattr(self, "_workers", [])  # absent when __init__ failed
        if workers:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            for worker in workers:
                worker.join(timeout=10.0)
        super().destroy_node()


def _with_baseline(intrinsics: CameraIntrinsics, baseline_m: float) -> CameraIntrinsics:
    return CameraIntrinsics(
        intrinsics.fx,
        intrinsics.fy,
        intrinsics.cx,
        intrinsics.cy,
        intrinsics.width_px,
        intrinsics.height_px,
        baseline_m,
    )


class _RosLogHandler(logging.Handler):
    """Core library log records -> the node's ROS logger (so they reach /rosout)."""

    def __init__(self, node: Node):
        super().__init__(level=logging.INFO)
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        else:
            self._logger.info(text)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    handler = None
    try:
        node = VoNode()
        handler = _RosLogHandler(node)
        logging.getLogger("tpr_vo").addHandler(handler)
        logging.getLogger("tpr_vo").setLevel(logging.INFO)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except TprVoError as exc:
        print(f"vo_node: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if handler is not None:
            logging.getLogger("tpr_vo").removeHandler(handler)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
