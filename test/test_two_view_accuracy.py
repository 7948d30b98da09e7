"""benchmarks/two_view_accuracy.py: epipolar error of matches under the true motion."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import load_benchmark

from tpr_vo.config import MatchingConfig
from tpr_vo.types import CameraIntrinsics, Features


def _bench():
    return load_benchmark("two_view_accuracy")


def _scene(noise_px: float, rng):
    """Three frames of a camera moving forward 1 m and yawing 0.5 deg per frame, seeing 400
    points 5-40 m ahead; each point keeps one random unit descriptor in every frame."""
    K = np.array([[700.0, 0, 600], [0, 700, 180], [0, 0, 1]])
    intr = CameraIntrinsics(700.0, 700.0, 600.0, 180.0, 1200, 360)
    points_w = np.c_[rng.uniform(-15, 15, 400), rng.uniform(-3, 2, 400), rng.uniform(5, 40, 400)]
    desc = rng.normal(size=(400, 32)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    poses, features = [], []
    for k in range(3):
        yaw = np.radians(0.5 * k)
        T = np.eye(4)
        T[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
        T[:3, 3] = [0.0, 0.0, 1.0 * k]
        poses.append(T)
        p_cam = (points_w - T[:3, 3]) @ T[:3, :3]
        uv = p_cam @ K.T
        uv = uv[:, :2] / uv[:, 2:] + rng.normal(0.0, noise_px, (400, 2))
        features.append(Features(uv.astype(np.float32), np.ones(400, np.float32), desc))
    return SimpleNamespace(intrinsics=intr, gt_poses=np.array(poses)), features


@pytest.mark.parametrize("noise_px", [0.0, 0.5])
def test_sampson_error_and_rotation_follow_the_keypoint_noise(noise_px):
    bench = _bench()
    seq, features = _scene(noise_px, np.random.default_rng(3))
    r = bench.pair_accuracy(seq, features, MatchingConfig(), [0, 1], max_error_px=2.0)
    assert r["pairs"] == 2 and r["matches_per_pair"] == 400
    if noise_px == 0.0:
        assert r["sampson_median_px"] < 1e-3
        assert r["rotation_rms_deg"] < 1e-3
    else:
        # Sampson distance of two independent 0.5 px errors: about 0.5 px RMS along the
        # epipolar normal, median about 0.67 of that.
        assert 0.2 < r["sampson_median_px"] < 0.5
        assert 0.35 < r["sampson_rms_px"] < 0.65
        assert 1e-3 < r["rotation_rms_deg"] < 0.2


def test_the_benchmark_runs_on_a_rendered_drive(tmp_path, capsys):
    from tpr_vo.datasets.synthetic import render_synthetic_sequence

    seq = render_synthetic_sequence(tmp_path / "seq", num_frames=6)
    out = tmp_path / "acc.json"
    argv = [str(seq), "--features", "orb", "sift", "--seeds", "0", "--json", str(out)]
    assert _bench().main(argv) == 0
    import json

    record = json.loads(out.read_text())
    for feature in ("orb", "sift"):
        r = record["results"][feature]
        assert r["pairs"] == 5 and r["good_per_pair"] > 100
        assert 0 < r["sampson_median_px"] < 0.5
    assert "| sift |" in capsys.readouterr().out
