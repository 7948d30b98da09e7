"""Helpers for the ROS tests: an isolated rclpy context (fresh Context, random domain, localhost
discovery), a background executor, a probe node that plays camera messages and records the
node's outputs, and a minimal KITTI reader for the first frames of a sequence."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy._rclpy_pybind11 import InvalidHandle
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from tpr_vo.ros.conversions import (
    intrinsics_to_camera_info,
    numpy_to_image_msg,
    seconds_to_stamp,
    stamp_to_seconds,
)
from tpr_vo.types import CameraIntrinsics


@contextmanager
def ros_session() -> Iterator[tuple[Context, MultiThreadedExecutor]]:
    """A fresh, isolated rclpy context with an executor spinning in a background thread. Nodes
    are destroyed by the context's shutdown, after the executor has stopped."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    domain_id = random.randint(1, 100)
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    stopping = threading.Event()

    def spin() -> None:
        try:
            executor.spin()
        except InvalidHandle:
            # rclpy race at teardown: a callback still running in the executor's pool when
            # shutdown destroys the executor's guard condition triggers it on its way out.
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield context, executor
    finally:
        stopping.set()
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=5.0)  # the spin thread is out before nodes are destroyed
        rclpy.try_shutdown(context=context)


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.005)


def params(**dotted) -> list[Parameter]:
    """`params(**{"features.kind": "orb"})` -> parameter_overrides."""
    return [Parameter(name, value=value) for name, value in dotted.items()]


class Probe(Node):
    """Plays images + camera_info into the node and records odometry, path and diagnostics."""

    def __init__(self, context: Context, stereo: bool = False):
        super().__init__("probe", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(Image, "image", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        if stereo:
            self.right_image_pub = self.create_publisher(Image, "right/image", qos)
            self.right_info_pub = self.create_publisher(CameraInfo, "right/camera_info", qos)
        self.odometry: list[Odometry] = []
        self.paths: list[PathMsg] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(Odometry, "odometry", self.odometry.append, 100)
        self.create_subscription(PathMsg, "path", self.paths.append, 10)
        self.create_subscription(DiagnosticArray, "diagnostics", self.diagnostics.append, 10)
        self.reset_client = self.create_client(Trigger, "reset")

    def wait_connected(self, timeout_s: float = 10.0) -> None:
        wait_for(
            lambda: (
                self.image_pub.get_subscription_count() > 0
                and self.count_publishers(self.resolve_topic_name("odometry")) > 0
            ),
            timeout_s,
            "the probe to discover vo_node",
        )

    def send(self, image_msg: Image, info: CameraInfo | None) -> None:
        if info is not None:
            self.info_pub.publish(info)
        self.image_pub.publish(image_msg)

    def send_frame(self, image: np.ndarray, stamp_s: float, intrinsics: CameraIntrinsics | None):
        stamp = seconds_to_stamp(stamp_s)
        info = None if intrinsics is None else intrinsics_to_camera_info(intrinsics, stamp, "cam")
        self.send(numpy_to_image_msg(image, stamp, "cam"), info)

    def wait_odometry(self, count: int, timeout_s: float = 20.0) -> None:
        wait_for(lambda: len(self.odometry) >= count, timeout_s, f"{count} odometry messages")

    def odometry_stamps(self) -> list[float]:
        return [stamp_to_seconds(m.header.stamp) for m in self.odometry]


class KittiFrames:
    """The first frames of a KITTI sequence folder, read directly (image_0, calib P0/P1, times)."""

    def __init__(self, folder: Path, count: int):
        calib = {}
        for line in (folder / "calib.txt").read_text().splitlines():
            key, _, values = line.partition(":")
            calib[key.strip()] = np.array(values.split(), dtype=np.float64).reshape(3, 4)
        P0, P1 = calib["P0"], calib["P1"]
        self.times_s = [float(t) for t in (folder / "times.txt").read_text().split()][:count]
        files = sorted((folder / "image_0").glob("*.png"))[:count]
        self.images = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        h, w = self.images[0].shape
        self.intrinsics = CameraIntrinsics(
            P0[0, 0], P0[1, 1], P0[0, 2], P0[1, 2], w, h, float(-P1[0, 3] / P1[0, 0])
        )
