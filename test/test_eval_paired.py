from __future__ import annotations

import numpy as np
import pytest
from conftest import load_benchmark

from tpr_vo.eval.paired import paired_difference


def test_a_shared_hard_segment_does_not_hide_a_consistent_lead():
    """Both runs share large errors on hard frames; a is lower by 0.002 on every frame. An
    unpaired comparison of the means would call that noise; the paired one does not."""
    rng = np.random.default_rng(1)
    shared = rng.gamma(2.0, 0.02, size=50)
    shared[:10] += 0.1
    b = shared + rng.normal(0.0, 0.0005, 50)
    a = b - 0.002
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(-0.002)
    assert d.ci_high < 0 and d.verdict == "a lower"
    assert d.frames_a_lower == 50 and d.frames == 50
    assert paired_difference(b, a).verdict == "b lower"


def test_independent_noise_of_equal_size_is_a_tie():
    rng = np.random.default_rng(2)
    shared = rng.gamma(2.0, 0.02, size=50)
    a = shared + rng.normal(0.0, 0.01, 50)
    b = shared + rng.normal(0.0, 0.01, 50)
    d = paired_difference(a, b)
    assert d.ci_low < d.mean < d.ci_high
    assert d.verdict == "tie"


def test_bad_series_are_refused_by_shape():
    with pytest.raises(ValueError, match=r"\(50,\) and \(49,\)"):
        paired_difference(np.zeros(50), np.zeros(49))
    with pytest.raises(ValueError, match="finite"):
        paired_difference(np.array([0.1, np.nan]), np.array([0.1, 0.2]))


def test_compare_features_pairs_the_per_frame_rotation_errors(tmp_path, capsys):
    """benchmarks/compare_features.py --paired on a 16-frame rendered drive: every record keeps
    its per-frame RPE rotation (whose mean is the record's rpe_rot_deg), and the paired table
    has one row per other feature and run."""
    import json

    from tpr_vo.datasets.synthetic import render_synthetic_sequence

    seq = render_synthetic_sequence(tmp_path / "seq", num_frames=16)
    bench = load_benchmark("compare_features")
    out = tmp_path / "cmp.json"
    argv = [str(seq), "--features", "orb", "sift", "--runs", "stereo", "--seeds", "0", "1"]
    assert bench.main(argv + ["--paired", "sift", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    for rec in records:
        assert len(rec["rpe_rot_per_frame_deg"]) == 15
        assert np.mean(rec["rpe_rot_per_frame_deg"]) == pytest.approx(rec["rpe_rot_deg"], abs=1e-5)
    table = capsys.readouterr().out
    assert table.count("| stereo | orb - sift |") == 1
    with pytest.raises(SystemExit):
        bench.main(argv + ["--paired", "tpr"])  # not among --features


def test_benchmark_overrides_are_checked_before_any_run(capsys):
    """A `--set` key the config does not know ends the script with the key's name, not with a
    traceback from the first run."""
    bench = load_benchmark("compare_features")
    with pytest.raises(SystemExit):
        bench.main(["/nonexistent", "--set", "features.bogus=1"])
    assert "features.bogus" in capsys.readouterr().err
