"""The frontend on the built-in rendered synthetic sequence (tpr_vo.datasets.synthetic): real
images through ORB, exact ground truth. Stereo is metric, a stationary camera does not drift,
and five black frames in the middle leave finite poses and a re-initialised track."""

from __future__ import annotations

import numpy as np
import pytest

from tpr_vo.config import VoConfig, replace
from tpr_vo.datasets import open_sequence
from tpr_vo.datasets.synthetic import render_synthetic_sequence
from tpr_vo.eval import compute_metrics
from tpr_vo.frontend import VisualOdometry


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    return open_sequence(render_synthetic_sequence(tmp_path_factory.mktemp("drive") / "s", 40))


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    path = tmp_path_factory.mktemp("still") / "s"
    return open_sequence(render_synthetic_sequence(path, 15, motion="stationary"))


def _run(seq, black=(), **overrides):
    cfg = replace(VoConfig(), **{"features.kind": "orb", **overrides})
    vo = VisualOdometry(cfg, seq.intrinsics)
    out = []
    for i in range(len(seq)):
        f = seq[i]
        left = np.zeros_like(f.image_left) if i in black else f.image_left
        out.append(vo.process_frame(left, f.stamp_s, f.image_right))
    return out, np.stack([r.T_world_cam for r in out])


def test_rendered_stereo_ate(drive):
    results, est = _run(drive, **{"frontend.mode": "stereo"})
    m = compute_metrics(drive.gt_poses, est, align="se3", tracked=[r.tracked for r in results])
    assert m.tracked_frames >= len(drive) - 1
    assert m.ate_rmse_m < 0.25  # metres over ~40 frames, no ground truth used


@pytest.mark.parametrize("mode", ["mono", "stereo"])
def test_rendered_stationary_drift_below_1cm(still, mode):
    _, est = _run(still, **{"frontend.mode": mode})
    drift_m = np.linalg.norm(est[:, :3, 3] - est[0, :3, 3], axis=1).max()
    assert drift_m < 0.01


def test_rendered_black_frames(drive):
    black = set(range(15, 20))
    results, est = _run(drive, black=black, **{"frontend.mode": "stereo"})
    assert len(results) == len(drive)
    assert np.all(np.isfinite(est))
    assert not any(results[i].tracked for i in black)
    assert any(r.state == "reinitialized" for r in results[20:])
    steps = np.linalg.norm(np.diff(est[:, :3, 3], axis=0), axis=1)
    gt_steps = np.linalg.norm(np.diff(drive.gt_poses[:, :3, 3], axis=0), axis=1)
    assert steps.max() < 3 * gt_steps.max()  # no jump at the gap or at re-initialisation
