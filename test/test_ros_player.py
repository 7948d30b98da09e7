"""kitti_player -> vo_node in one process (MultiThreadedExecutor) against the real rclpy: an
Odometry for every published frame, equal to `tpr-vo run`'s OfflinePipeline to 1e-6 m."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CI", "").lower() != "true":  # CI installs it: fail, never skip
    pytest.importorskip("rclpy")

from ros_harness import Probe, params, ros_session, wait_for  # noqa: E402

from tpr_vo.config import load_config  # noqa: E402
from tpr_vo.datasets import open_sequence  # noqa: E402
from tpr_vo.errors import ConfigError  # noqa: E402
from tpr_vo.pipeline import OfflinePipeline  # noqa: E402
from tpr_vo.ros.body_frame import T_base_cam_from_config, T_odom_base_from_cam  # noqa: E402
from tpr_vo.ros.conversions import pose_to_matrix  # noqa: E402
from tpr_vo.ros.kitti_player import KittiPlayer  # noqa: E402
from tpr_vo.ros.node import VoNode  # noqa: E402

pytestmark = pytest.mark.ros
CONFIG = Path(__file__).resolve().parents[1] / "config" / "kitti.yaml"


def play(kitti06, mode: str, frames: int):
    """Run player + node until the player finishes; returns (node config, odometry list)."""
    with ros_session() as (context, executor):
        node = VoNode(
            context=context,
            parameter_overrides=params(**{"features.kind": "orb", "frontend.mode": mode}),
        )
        probe = Probe(context)  # only listens here
        player = KittiPlayer(
            context=context,
            parameter_overrides=params(
                sequence=str(kitti06),
                mode=mode,
                rate=0,  # an int as `-p rate:=0` gives; lock-step: next frame after odometry
                max_frames=frames,
                stamp_from_now=False,
            ),
        )
        for n in (node, probe, player):
            executor.add_node(n)
        wait_for(lambda: player.done, 120.0, "the player to finish")
        wait_for(lambda: len(probe.odometry) >= frames, 5.0, "the last odometry")
        assert player.published == frames
        assert node.counts["processed"] == frames
        assert set(node.skipped) <= {"duplicate_stamp"}  # only lock-step resends, if any
        config, odometry = node.config, list(probe.odometry)
    return config, odometry


def offline(kitti06, config, frames: int) -> tuple[np.ndarray, list[float]]:
    sequence = open_sequence(kitti06)
    result = OfflinePipeline(sequence, config, out_dir=None, max_frames=frames).run()
    T_bc = T_base_cam_from_config(config.camera)
    T = np.stack([T_odom_base_from_cam(T_wc, T_bc) for T_wc in result.T_world_cam])
    return T, [sequence[i].stamp_s for i in range(frames)]


@pytest.mark.parametrize("mode, frames", [("mono", 8), ("stereo", 4)])
def test_player_to_node_matches_offline_pipeline(kitti06, mode, frames):
    config, odometry = play(kitti06, mode, frames)
    # The node read config/kitti.yaml (its default parameter file) plus the overrides: the
    # same config as `tpr-vo run --config config/kitti.yaml --features orb --mode MODE`.
    assert config == load_config(CONFIG, {"features.kind": "orb", "frontend.mode": mode})
    assert len(odometry) == frames  # one Odometry per published frame, none dropped
    expected_T, expected_stamps = offline(kitti06, config, frames)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in odometry]
    np.testing.assert_allclose(stamps, expected_stamps, atol=1e-9)
    got = np.stack([pose_to_matrix(m.pose.pose) for m in odometry])
    np.testing.assert_allclose(got[:, :3, 3], expected_T[:, :3, 3], atol=1e-6)  # metres
    np.testing.assert_allclose(got[:, :3, :3], expected_T[:, :3, :3], atol=1e-6)
    travelled_m = np.linalg.norm(got[-1, :3, 3])
    assert got[-1, 0, 3] > 0.5 * travelled_m > 0  # it drove forward (body +x)
    if mode == "stereo":  # metric: KITTI 06 moves about 1.1 m per frame here
        assert 0.6 * (frames - 1) < travelled_m < 1.6 * (frames - 1)


def test_a_looped_pass_never_stamps_before_the_previous_one(kitti06):
    """Played faster than the clock (lock-step, nothing waiting), a pass ends with stamps ahead
    of now; the next pass then starts one frame period after the last stamp, not at now. No
    node runs here, so the player loops without a reset and publishes frame 0 at once."""
    with ros_session() as (context, _executor):
        player = KittiPlayer(
            context=context,
            parameter_overrides=params(sequence=str(kitti06), rate=0.0, max_frames=3, loop=True),
        )
        stamps_s = []
        for _ in range(7):  # two passes of three frames and the third's first
            player._advance()
            stamps_s.append(player._last_stamp_s)
            player._awaiting = None  # lock-step: as if the odometry had come back
        player.destroy_node()
    steps_s = np.diff(stamps_s)
    assert np.all(steps_s > 0), steps_s
    period_s = steps_s[0]  # KITTI 06 times.txt: ~0.10 s
    np.testing.assert_allclose(steps_s[2], period_s, rtol=0.05)  # pass 2 right after pass 1


def test_looping_restarts_tracking_with_the_reset_service(kitti06):
    with ros_session() as (context, executor):
        node = VoNode(context=context, parameter_overrides=params(**{"features.kind": "orb"}))
        probe = Probe(context)
        player = KittiPlayer(
            context=context,
            parameter_overrides=params(sequence=str(kitti06), rate=0.0, max_frames=3, loop=True),
        )
        for n in (node, probe, player):
            executor.add_node(n)
        probe.wait_odometry(5, timeout_s=60.0)
        odometry = list(probe.odometry)[:5]
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in odometry]
    assert np.all(np.diff(stamps) > 0)  # stamped from now: time keeps going forward
    T = np.stack([pose_to_matrix(m.pose.pose) for m in odometry])
    np.testing.assert_allclose(T[0], np.eye(4))
    assert np.linalg.norm(T[2, :3, 3]) > 0.1  # moved during the first pass
    np.testing.assert_allclose(T[3], np.eye(4))  # frame 0 again: the new origin after reset
    np.testing.assert_allclose(T[4], T[1], atol=1e-6)  # and the same first step as before


def test_rate_paces_frames_by_times_txt(kitti06):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    with ros_session() as (context, executor):
        probe = Probe(context)
        arrivals, infos = [], []
        probe.create_subscription(
            Image,
            "image",
            lambda m: arrivals.append((time.monotonic(), m)),
            qos_profile_sensor_data,
        )
        probe.create_subscription(CameraInfo, "camera_info", infos.append, 10)
        player = KittiPlayer(
            context=context,
            parameter_overrides=params(sequence=str(kitti06), rate=0.25, max_frames=3),
        )
        executor.add_node(probe)
        executor.add_node(player)
        wait_for(lambda: player.done, 10.0, "the player to finish")
        wait_for(lambda: len(arrivals) == 3, 2.0, "three images")
    times_s = [float(t) for t in (kitti06 / "times.txt").read_text().split()[:3]]
    gaps_s = np.diff([t for t, _ in arrivals])
    # Quarter speed: never faster than times.txt / rate; late only by scheduling (loaded CI cores
    # delay callbacks, so the upper bound is loose).
    expected_s = np.diff(times_s) / 0.25
    assert np.all(gaps_s >= expected_s - 0.05), (gaps_s, expected_s)
    assert gaps_s.sum() < expected_s.sum() + 1.5, (gaps_s, expected_s)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in arrivals]
    np.testing.assert_allclose(np.diff(stamps), np.diff(times_s), atol=1e-6)  # from times.txt
    _, first = arrivals[0]
    assert (first.encoding, first.width, first.height) == ("mono8", 1226, 370)
    assert infos[0].p[0] > 700 and infos[0].width == 1226


def test_player_rejects_bad_parameters(kitti06, tmp_path):
    with ros_session() as (context, _):
        with pytest.raises(ConfigError, match="'sequence'"):
            KittiPlayer(context=context)
        with pytest.raises(ConfigError, match="'mode' must be mono or stereo"):
            KittiPlayer(
                context=context, parameter_overrides=params(sequence=str(kitti06), mode="x")
            )
        with pytest.raises(ConfigError, match="'loop' expects a bool, got 'yes'"):
            KittiPlayer(
                context=context, parameter_overrides=params(sequence=str(kitti06), loop="yes")
            )
        with pytest.raises(ConfigError, match="no frames"):
            KittiPlayer(
                context=context,
                parameter_overrides=params(sequence=str(kitti06), start_frame=10_000),
            )
