"""benchmarks/keypoint_covariance.py: keypoint covariances against their epipolar errors."""

from __future__ import annotations

import json

import numpy as np
from conftest import load_benchmark


def _bench():
    return load_benchmark("keypoint_covariance")


def test_the_fit_recovers_a_known_variance_model():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0.05, 1.0, 200_000)
    d = rng.normal(0.0, np.sqrt(0.02 + 0.5 * predicted))  # sigma^2 = 0.02 + 0.5 * predicted
    r = _bench().calibration(d, predicted)
    assert abs(r["c0_px2"] - 0.02) < 0.01 and abs(r["c1"] - 0.5) < 0.03
    assert r["spearman"] > 0.1
    rows = r["table"]
    assert len(rows) == 5 and sum(row["matches"] for row in rows) == len(d)
    assert rows[0]["measured_sigma_px"] < rows[-1]["measured_sigma_px"]
    # The refit: var = floor + gain x, with the pair's predicted = 2 floor + gain (x_a + x_b).
    floor, gain = _bench().refit(0.1, 2.0, c0=0.02, c1=0.5)
    assert floor == 0.5 * 0.1 + 0.01 and gain == 1.0
    assert _bench().refit(0.001, 1.0, c0=-1.0, c1=1.0)[0] == _bench().MIN_FLOOR_PX2


def test_the_benchmark_runs_on_a_rendered_drive(tmp_path, capsys):
    from tpr_vo.datasets.synthetic import render_synthetic_sequence

    seq = render_synthetic_sequence(tmp_path / "seq", num_frames=6)
    out = tmp_path / "cov.json"
    assert _bench().main([str(seq), "--features", "sift", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["results"]["sift"]
    assert r["matches"] > 500 and np.isfinite(r["c1"])
    assert r["model"]["floor_px2"] > 0 and r["refit"]["gain"] > 0
    assert "sift:" in capsys.readouterr().out
