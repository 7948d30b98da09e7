"""vo_node against the real rclpy (ROS 2 wheels): odometry for every frame equal to the offline
pipeline, reset service, parameters, bad messages skipped, overload, SIGINT shutdown."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

if os.environ.get("CI", "").lower() != "true":  # CI installs it: fail, never skip
    pytest.importorskip("rclpy")

from rclpy.qos import ReliabilityPolicy  # noqa: E402
from ros_harness import KittiFrames, Probe, params, ros_session, wait_for  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from tpr_vo.errors import ConfigError  # noqa: E402
from tpr_vo.pipeline import OfflinePipeline  # noqa: E402
from tpr_vo.ros.body_frame import T_base_cam_from_config, T_odom_base_from_cam  # noqa: E402
from tpr_vo.ros.conversions import pose_to_matrix  # noqa: E402
from tpr_vo.ros.node import VoNode  # noqa: E402
from tpr_vo.types import Frame  # noqa: E402

pytestmark = pytest.mark.ros
ORB = {"features.kind": "orb"}
# Tests that count odometry messages subscribe reliably (the probe publishes reliably): the
# default sensor-data QoS is best effort, and a loaded CI machine dropped a 466 kB image once.
ORB_RELIABLE = {**ORB, "ros.image_qos": "reliable"}


class InMemorySequence:
    """Sequence protocol over already-loaded frames (the same pixels the probe publishes)."""

    def __init__(self, frames: KittiFrames, intrinsics):
        self.name = "kitti06_head"
        self.intrinsics = intrinsics
        self.gt_poses = None
        self.has_right = False
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames.images)

    def __getitem__(self, i: int) -> Frame:
        return Frame(i, self._frames.times_s[i], self._frames.images[i])


def offline_T_odom_base(frames: KittiFrames, config, intrinsics) -> np.ndarray:
    result = OfflinePipeline(InMemorySequence(frames, intrinsics), config, out_dir=None).run()
    T_bc = T_base_cam_from_config(config.camera)
    return np.stack([T_odom_base_from_cam(T, T_bc) for T in result.T_world_cam])


@pytest.mark.parametrize("pipeline", [True, False])  # extract | track threads, or one worker
def test_odometry_for_every_frame_equals_offline_pipeline_then_reset(kitti06, pipeline):
    frames = KittiFrames(kitti06, 6)
    mono = dataclasses.replace(frames.intrinsics, baseline_m=None)  # what camera_info gives
    with ros_session() as (context, executor):
        overrides = params(**ORB_RELIABLE, **{"ros.pipeline": pipeline})
        node = VoNode(context=context, parameter_overrides=overrides)
        assert [w.name for w in node._workers] == (
            ["tpr_vo_extract", "tpr_vo_track"] if pipeline else ["tpr_vo_worker"]
        )
        probe = Probe(context)
        executor.add_node(node)
        executor.add_node(probe)
        probe.wait_connected()
        for i, (image, t) in enumerate(zip(frames.images, frames.times_s)):
            probe.send_frame(image, t, frames.intrinsics)
            probe.wait_odometry(i + 1)
        odom = list(probe.odometry)
        np.testing.assert_allclose(probe.odometry_stamps(), frames.times_s, atol=1e-9)
        assert all(m.header.frame_id == "odom" and m.child_frame_id == "base_link" for m in odom)
        wait_for(lambda: len(probe.paths) >= 6, 5.0, "path messages")
        assert len(probe.paths[-1].poses) == 6

        expected = offline_T_odom_base(frames, node.config, mono)
        got = np.stack([pose_to_matrix(m.pose.pose) for m in odom])
        np.testing.assert_allclose(got[:, :3, 3], expected[:, :3, 3], atol=1e-6)  # metres
        np.testing.assert_allclose(got[:, :3, :3], expected[:, :3, :3], atol=1e-6)
        # Not a trivial trajectory: the car drives forward (body +x) through the frames.
        assert got[-1, 0, 3] > 0.5 * np.linalg.norm(got[-1, :3, 3]) > 0
        cov = np.reshape(odom[-1].pose.covariance, (6, 6))
        assert np.all(np.isfinite(cov)) and np.all(np.diag(cov) > 0)
        assert node.counts["processed"] == 6 and node.counts["dropped_overload"] == 0

        # reset: the next frame is the new odom origin.
        assert probe.reset_client.wait_for_service(timeout_sec=5.0)
        future = probe.reset_client.call_async(Trigger.Request())
        wait_for(future.done, 5.0, "the reset service")
        assert future.result().success
        probe.send_frame(frames.images[3], frames.times_s[-1] + 0.1, frames.intrinsics)
        probe.wait_odometry(7)
        np.testing.assert_allclose(pose_to_matrix(probe.odometry[-1].pose.pose), np.eye(4))
        wait_for(lambda: probe.diagnostics, 3.0, "a /diagnostics message (1 Hz)")
        diag = node.diagnostics().status[0]
        values = {kv.key: kv.value for kv in diag.values}
        assert values["frames_processed"] == "7" and "latency_end_to_end_ms" in values


def test_bad_messages_are_logged_skipped_and_the_next_frame_is_processed(kitti06, capfd):
    frames = KittiFrames(kitti06, 2)
    intr = frames.intrinsics
    with ros_session() as (context, executor):
        node = VoNode(context=context, parameter_overrides=params(**ORB_RELIABLE))
        probe = Probe(context)
        executor.add_node(node)
        executor.add_node(probe)
        probe.wait_connected()

        def processed_or_skipped():
            return node.counts["processed"] + sum(node.skipped.values())

        def send_and_settle(image_msg, with_info: bool, t: float):
            before = processed_or_skipped()
            info = None
            if with_info:
                from tpr_vo.ros.conversions import intrinsics_to_camera_info

                info = intrinsics_to_camera_info(intr, image_msg.header.stamp, "cam")
            probe.send(image_msg, info)
            wait_for(lambda: processed_or_skipped() > before, 5.0, f"frame at t={t}")

        from tpr_vo.ros.conversions import numpy_to_image_msg, seconds_to_stamp

        def good(i, t):
            return numpy_to_image_msg(frames.images[i], seconds_to_stamp(t), "cam")

        send_and_settle(good(0, 1.0), False, 1.0)  # before any camera_info: dropped
        send_and_settle(good(0, 1.1), True, 1.1)  # processed: the origin
        bad = good(1, 1.2)
        bad.encoding = "yuv422"
        send_and_settle(bad, True, 1.2)
        bad = good(1, 1.3)
        bad.width = bad.width - 3  # width*height no longer matches the data
        bad.step = bad.width
        send_and_settle(bad, True, 1.3)
        bad = good(1, 1.4)
        bad.data = b""
        send_and_settle(bad, True, 1.4)
        small = np.ascontiguousarray(frames.images[1][:200, :600])  # sudden size change
        send_and_settle(numpy_to_image_msg(small, seconds_to_stamp(1.5), "cam"), True, 1.5)
        send_and_settle(good(1, 1.6), True, 1.6)  # the next good frame is processed

        assert node.skipped == {"no_camera_info": 1, "bad_image": 3, "size_mismatch": 1}
        assert node.counts["processed"] == 2
        probe.wait_odometry(2)
        np.testing.assert_allclose(probe.odometry_stamps(), [1.1, 1.6], atol=1e-9)
        assert "image data is empty" in node.last_warning["bad_image"]  # the latest one
    err = capfd.readouterr().err
    for text in (
        "no camera_info received yet",
        "image encoding 'yuv422' is not supported",
        "image data has",
        "image data is empty",
        "image is 600x200 px but the camera is 1226x370 px",
    ):
        assert text in err, f"not logged: {text!r}"


def test_stereo_pairs_by_exact_stamp_and_needs_the_right_camera_info(kitti06):
    from tpr_vo.ros.conversions import (
        intrinsics_to_camera_info,
        numpy_to_image_msg,
        seconds_to_stamp,
    )

    frames = KittiFrames(kitti06, 2)
    intr = frames.intrinsics
    stereo = {**ORB_RELIABLE, "frontend.mode": "stereo"}
    with ros_session() as (context, executor):
        node = VoNode(context=context, parameter_overrides=params(**stereo))
        probe = Probe(context, stereo=True)
        executor.add_node(node)
        executor.add_node(probe)
        probe.wait_connected()

        def send(t, right_t=None, right_info=True, right_image=None):
            stamp, right_stamp = seconds_to_stamp(t), seconds_to_stamp(right_t or t)
            right_image = frames.images[1] if right_image is None else right_image
            probe.info_pub.publish(intrinsics_to_camera_info(intr, stamp, "l"))
            if right_info:
                info = intrinsics_to_camera_info(intr, right_stamp, "r", right=True)
                probe.right_info_pub.publish(info)
            probe.right_image_pub.publish(numpy_to_image_msg(right_image, right_stamp, "r"))
            probe.image_pub.publish(numpy_to_image_msg(frames.images[0], stamp, "l"))

        send(1.0, right_info=False)  # no right camera_info yet: no baseline
        wait_for(lambda: node.skipped.get("no_baseline") == 1, 5.0, "the no-baseline skip")
        send(1.1, right_image=np.ascontiguousarray(frames.images[1][:, :600]))
        wait_for(lambda: node.skipped.get("size_mismatch") == 1, 5.0, "the size skip")
        send(1.2, right_t=1.2000001)  # 100 ns apart: never paired
        send(1.3)
        probe.wait_odometry(1)
        time.sleep(0.2)
        assert node.counts["processed"] == 1 and len(probe.odometry) == 1
        assert probe.odometry_stamps() == [pytest.approx(1.3)]
        assert node._intrinsics.baseline_m == pytest.approx(intr.baseline_m)
        assert node._sync.unmatched == 2  # the unpaired left and right of t=1.2


def test_intrinsics_from_config_without_camera_info(kitti06):
    frames = KittiFrames(kitti06, 2)
    intr = frames.intrinsics
    camera = {"camera.fx": intr.fx, "camera.fy": intr.fy, "camera.cx": intr.cx}
    camera["camera.cy"] = intr.cy
    with ros_session() as (context, executor):
        node = VoNode(context=context, parameter_overrides=params(**ORB_RELIABLE, **camera))
        probe = Probe(context)
        executor.add_node(node)
        executor.add_node(probe)
        probe.wait_connected()
        probe.send_frame(frames.images[0], 1.0, None)  # no camera_info at all
        # Wait before sending more: the node's bounded queue drops its oldest frame when three
        # arrive while the first still waits there (a full local run under load lost one).
        probe.wait_odometry(1)
        probe.send_frame(np.ascontiguousarray(frames.images[1][:300]), 1.1, None)
        probe.send_frame(frames.images[1], 1.2, None)
        probe.wait_odometry(2)
        wait_for(lambda: node.skipped.get("size_mismatch") == 1, 5.0, "the size-change skip")
        assert node.counts["processed"] == 2
        np.testing.assert_allclose(probe.odometry_stamps(), [1.0, 1.2])
        assert node._intrinsics == dataclasses.replace(intr, baseline_m=None)


def test_parameters_file_overrides_and_validation(tmp_path):
    config_file = tmp_path / "params.yaml"
    config_file.write_text(
        "/**:\n  ros__parameters:\n    frontend:\n      min_inliers: 33\n      mode: mono\n"
        "    ros:\n      path_max_length: 7\n"
    )
    with ros_session() as (context, _):
        node = VoNode(
            context=context,
            parameter_overrides=params(
                config_file=str(config_file),
                **ORB,
                **{"frontend.ransac_threshold_px": 2, "ros.path_max_length": 5},
            ),
        )
        cfg = node.config
        assert cfg.features.kind == "orb"
        assert cfg.frontend.min_inliers == 33  # from the file
        assert cfg.frontend.ransac_threshold_px == 2.0  # integer override of a float key
        assert cfg.ros.path_max_length == 5  # override beats the file
        assert node.get_parameter("frontend.min_inliers").value == 33
        assert node.has_parameter("camera.base_to_camera_quat_xyzw")
        from rclpy.parameter import Parameter

        (result,) = node.set_parameters([Parameter("frontend.min_inliers", value=40)])
        assert not result.successful and "restart the node" in result.reason
        (sub,) = node.get_subscriptions_info_by_topic("/image")
        assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT  # sensor-data QoS
        node.destroy_node()
        qos = {"ros.image_qos": "reliable"}
        reliable = VoNode(context=context, parameter_overrides=params(**ORB, **qos))
        (sub,) = reliable.get_subscriptions_info_by_topic("/image")
        assert sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        reliable.destroy_node()
        with pytest.raises(ConfigError, match="'frontend.mode' must be one of"):
            VoNode(context=context, parameter_overrides=params(**{"frontend.mode": "sideways"}))
        with pytest.raises(ConfigError, match="'frontend.min_inliers' expects an integer"):
            VoNode(context=context, parameter_overrides=params(**{"frontend.min_inliers": "x"}))


def test_overload_keeps_the_newest_frame_and_counts_drops(kitti06):
    frames = KittiFrames(kitti06, 8)
    with ros_session() as (context, executor):
        node = VoNode(context=context, parameter_overrides=params(**ORB, **{"ros.queue_size": 1}))
        probe = Probe(context)
        executor.add_node(node)
        executor.add_node(probe)
        probe.wait_connected()
        for image, t in zip(frames.images, frames.times_s):  # a burst: no waiting
            probe.send_frame(image, t, frames.intrinsics)
        wait_for(
            lambda: (
                node.counts["received"] >= 2
                and node.counts["processed"] + node.counts["dropped_overload"]
                == node.counts["received"]
            ),
            20.0,
            "the burst to be processed or dropped",
        )
        time.sleep(0.3)
        counts = dict(node.counts)
        assert counts["dropped_overload"] >= 1, counts
        assert counts["processed"] + counts["dropped_overload"] == counts["received"]
        wait_for(lambda: len(probe.odometry) == counts["processed"], 5.0, "odometry")
        assert probe.odometry_stamps()[-1] == pytest.approx(frames.times_s[-1])  # newest kept


def test_sigint_shuts_down_cleanly():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env["ROS_DOMAIN_ID"] = str(np.random.default_rng().integers(1, 100))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tpr_vo.ros.node", "--ros-args", "-p", "features.kind:=orb"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "ready:" in line or not line:
            break
    assert any("ready:" in line for line in lines), "".join(lines)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    output = "".join(lines) + out
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output


def test_map_points_in_odom_equal_the_offline_map_and_only_when_enabled(kitti06):
    from sensor_msgs.msg import PointCloud2

    from tpr_vo.features import create_backend
    from tpr_vo.frontend import VisualOdometry
    from tpr_vo.geometry.se3 import transform_points
    from tpr_vo.ros.conversions import stamp_to_seconds

    frames = KittiFrames(kitti06, 5)
    mono = dataclasses.replace(frames.intrinsics, baseline_m=None)  # what camera_info gives
    with ros_session() as (context, executor):
        node = VoNode(context=context, parameter_overrides=params(**ORB_RELIABLE))
        probe = Probe(context)
        clouds: list[PointCloud2] = []
        probe.create_subscription(PointCloud2, "map_points", clouds.append, 10)
        executor.add_node(node)
        executor.add_node(probe)
        probe.wait_connected()
        wait_for(lambda: node._points_pub.get_subscription_count() > 0, 10.0, "map_points match")
        for i, (image, t) in enumerate(zip(frames.images, frames.times_s)):
            probe.send_frame(image, t, frames.intrinsics)
            probe.wait_odometry(i + 1)
        last_t = frames.times_s[-1]
        wait_for(
            lambda: clouds and stamp_to_seconds(clouds[-1].header.stamp) == pytest.approx(last_t),
            5.0,
            "the last frame's map_points",
        )
        cloud = clouds[-1]
        got = np.frombuffer(bytes(cloud.data), "<f4").reshape(-1, 3)
        assert cloud.header.frame_id == "odom" and cloud.width == len(got) > 100
        assert cloud.point_step == 12 and cloud.is_dense and not cloud.is_bigendian

        # The same frames through VisualOdometry: its map, moved into odom (x forward, z up).
        vo = VisualOdometry(node.config, mono, backend=create_backend(node.config.features))
        for image, t in zip(frames.images, frames.times_s):
            vo.process_frame(image, t)
        T_bc = T_base_cam_from_config(node.config.camera)
        expected = transform_points(T_bc, vo.map_points_world())
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
        assert np.median(got[:, 0]) > 2.0  # ahead of the car, which drives along odom +x

    with ros_session() as (context, executor):
        off = params(**ORB_RELIABLE, **{"ros.publish_map_points": False})
        node = VoNode(context=context, parameter_overrides=off)
        assert node._points_pub is None
        assert node.count_publishers(node.resolve_topic_name("map_points")) == 0
