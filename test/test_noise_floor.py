"""tpr_vo.eval.noise_floor: frame-to-frame rotations and the three-cornered hat."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_benchmark
from scipy.spatial.transform import Rotation

from tpr_vo.eval.noise_floor import (
    pairwise_rms_deg,
    relative_rotvecs_deg,
    signed_rms,
    three_cornered_hat,
)


def _poses(rotvecs_deg: np.ndarray) -> np.ndarray:
    """(N+1, 4, 4) poses whose frame-to-frame rotations are the (N, 3) rotation vectors."""
    poses = [np.eye(4)]
    for rv in rotvecs_deg:
        step = np.eye(4)
        step[:3, :3] = Rotation.from_rotvec(np.radians(rv)).as_matrix()
        step[:3, 3] = [0.1, 0.0, 1.0]
        poses.append(poses[-1] @ step)
    return np.array(poses)


def test_relative_rotvecs_recover_the_steps_of_a_trajectory():
    steps = np.random.default_rng(0).normal(0, 2.0, (20, 3))
    np.testing.assert_allclose(relative_rotvecs_deg(_poses(steps)), steps, atol=1e-9)
    with pytest.raises(ValueError, match="4, 4"):
        relative_rotvecs_deg(np.eye(4)[None])


def test_three_cornered_hat_recovers_independent_noise_levels():
    """Four sources of the same 20,000 rotations with independent noise of 0.05 / 0.02 / 0.01
    / 0.04 deg per axis: each source's RMS (sqrt of 3 sigma^2) comes back within 5 %, though
    every pairwise difference mixes two of them; a correlated pair shows as too small."""
    rng = np.random.default_rng(1)
    truth = rng.normal(0, 0.5, (20000, 3))
    sigmas = {"gt": 0.05, "a": 0.02, "b": 0.01, "c": 0.04}
    sources = {k: truth + rng.normal(0, s, truth.shape) for k, s in sigmas.items()}
    hat = three_cornered_hat(sources)
    for name, sigma in sigmas.items():
        assert signed_rms(hat[name]) == pytest.approx(np.sqrt(3) * sigma, rel=0.05)
    pair = pairwise_rms_deg(sources)[("gt", "a")]
    assert pair == pytest.approx(np.sqrt(3 * (0.05**2 + 0.02**2)), rel=0.05)
    shared = rng.normal(0, 0.03, truth.shape)  # a and c share most of their error
    correlated = dict(
        sources, a=truth + shared, c=truth + shared + rng.normal(0, 0.01, truth.shape)
    )
    assert three_cornered_hat(correlated)["a"] < 0.5 * 3 * 0.03**2  # true: 3 * 0.03**2
    with pytest.raises(ValueError, match=">= 3 sources"):
        three_cornered_hat({"gt": truth, "a": truth})
    with pytest.raises(ValueError, match="numbers of frames"):
        three_cornered_hat({"gt": truth, "a": truth, "b": truth[:10]})


def test_rotation_noise_benchmark_runs_on_a_rendered_drive(tmp_path, capsys):
    """benchmarks/rotation_noise.py end to end on a 16-frame synthetic drive with ORB and SIFT
    in stereo: one record per seed, with a finite RMS against the ground truth per feature
    and a hat value for every source; the table names every source."""
    import json

    from tpr_vo.datasets.synthetic import render_synthetic_sequence

    seq = render_synthetic_sequence(tmp_path / "seq", num_frames=16)
    bench = load_benchmark("rotation_noise")
    out = tmp_path / "noise.json"
    argv = [str(seq), "--features", "orb", "sift", "--runs", "stereo", "--seeds", "0", "1"]
    assert bench.main(argv + ["--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["seed"] for r in records] == [0, 1]
    for rec in records:
        assert set(rec["hat_rms_deg"]) == {"gt", "orb", "sift"}
        assert all(np.isfinite(v) and 0 <= v < 1.0 for v in rec["rms_vs_gt_deg"].values())
    table = capsys.readouterr().out
    assert "| stereo | gt |" in table and "| stereo | sift |" in table
