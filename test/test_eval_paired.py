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


def _records(feature_errors: dict[str, list[list[float]]], run: str = "stereo") -> list[dict]:
    """compare_features.py-shaped records: one per feature and seed."""
    return [
        {"features": f, "run": run, "seed": s, "rpe_rot_per_frame_deg": errs}
        for f, per_seed in feature_errors.items()
        for s, errs in enumerate(per_seed)
    ]


def test_paired_runs_pools_training_runs_against_the_reference(tmp_path, capsys):
    """Two files (two trained models): per-file rows pair each with its own reference, and the
    pooled row pairs the files' averaged per-frame errors."""
    import json

    rng = np.random.default_rng(3)
    ref = rng.gamma(2.0, 0.02, size=30)
    a = ref - 0.002  # lower on every frame
    b = ref + 0.001 + rng.normal(0.0, 0.01, 30)  # higher on average, noisy
    files = []
    for name, errs in (("a.json", a), ("b.json", b)):
        path = tmp_path / name
        # Two seeds each, whose mean is the series.
        per_seed = [list(errs - 0.0005), list(errs + 0.0005)]
        path.write_text(json.dumps(_records({"tpr": per_seed, "sift": [list(ref), list(ref)]})))
        files.append(str(path))
    bench = load_benchmark("paired_runs")
    assert bench.main(files + ["--runs", "stereo"]) == 0
    out = capsys.readouterr().out
    row_a = next(line for line in out.splitlines() if "| a.json |" in line)
    assert "| -0.0020 |" in row_a and row_a.endswith("| tpr lower |")
    pooled = next(line for line in out.splitlines() if "pooled (2 files)" in line)
    expected = paired_difference((a + b) / 2, ref)
    assert f"| {expected.mean:+.4f} |" in pooled


def test_paired_runs_names_the_file_that_lacks_a_feature(tmp_path, capsys):
    import json

    path = tmp_path / "only_sift.json"
    path.write_text(json.dumps(_records({"sift": [[0.1, 0.2, 0.3]]})))
    bench = load_benchmark("paired_runs")
    with pytest.raises(SystemExit):
        bench.main([str(path), "--runs", "stereo"])
    err = capsys.readouterr().err
    assert "only_sift.json: no per-frame RPE rotation of 'tpr' in run 'stereo'" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit):
        bench.main([str(bad)])
    assert "bad.json: not a compare_features.py --json file" in capsys.readouterr().err
