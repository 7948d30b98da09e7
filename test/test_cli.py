"""`tpr-vo` end to end: help, `run` on the synthetic sequence, and the error policy (one line on
stderr naming the file, exit 1, no output files that look complete)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tpr_vo.cli import COMMANDS, main
from tpr_vo.datasets.synthetic import render_synthetic_sequence


@pytest.fixture(scope="module")
def synthetic_seq(tmp_path_factory) -> Path:
    return render_synthetic_sequence(tmp_path_factory.mktemp("syn") / "seq", num_frames=24)


def _copy(seq: Path, dst: Path) -> Path:
    shutil.copytree(seq, dst)
    return dst


def _run_error(capsys, argv) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line
    return err[0]


def test_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "tpr_vo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMANDS:
        assert name in out
    assert "examples:" in out


def test_run_writes_the_documented_files(synthetic_seq, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", str(synthetic_seq), "--features", "orb", "--scale", "gt", "--out", str(out)]
    assert main(argv) == 0
    assert "| orb | mono | gt |" in capsys.readouterr().out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.yaml", "metrics.json", "poses.txt", "timing.json", "trajectory.png"]
    assert len((out / "poses.txt").read_text().splitlines()) == 24
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frames"] == 24 and metrics["ate_align"] == "se3"
    assert metrics["scale_source"] == "gt"
    assert 0.0 <= metrics["ate_rmse_m"] < 0.5
    assert (out / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
    timing = json.loads((out / "timing.json").read_text())
    assert {"features", "matching", "geometry"} <= set(timing["ms_per_stage"])


def test_missing_folder(tmp_path, capsys):
    line = _run_error(capsys, ["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert "nope" in line and "not found" in line
    assert not (tmp_path / "o").exists()


def test_calib_without_p0(synthetic_seq, tmp_path, capsys):
    seq = _copy(synthetic_seq, tmp_path / "seq")
    calib = seq / "calib.txt"
    calib.write_text("".join(ln + "\n" for ln in calib.read_text().splitlines()[1:]))
    line = _run_error(capsys, ["run", str(seq), "--features", "orb", "--out", str(tmp_path / "o")])
    assert "calib.txt" in line and "P0" in line
    assert not (tmp_path / "o" / "poses.txt").exists()


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda lines: [ln.rsplit(" ", 1)[0] for ln in lines], "expected 12 numbers"),
        (lambda lines: lines[:-3], "one line per image"),
        (
            lambda lines: lines[:5] + [lines[5].replace(lines[5].split()[3], "nan")] + lines[6:],
            "NaN or inf",
        ),  # fmt: skip
    ],
    ids=["columns", "lines", "nan"],
)
def test_bad_ground_truth(synthetic_seq, tmp_path, capsys, mutate, expected):
    seq = _copy(synthetic_seq, tmp_path / "seq")
    poses = seq / "poses.txt"
    poses.write_text("\n".join(mutate(poses.read_text().splitlines())) + "\n")
    line = _run_error(capsys, ["run", str(seq), "--features", "orb", "--out", str(tmp_path / "o")])
    assert "poses.txt" in line and expected in line
    assert not (tmp_path / "o" / "poses.txt").exists()


def test_corrupt_image_is_reported_and_skipped(synthetic_seq, tmp_path, capsys, caplog):
    seq = _copy(synthetic_seq, tmp_path / "seq")
    bad = seq / "image_0" / "000010.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "o"
    assert main(["run", str(seq), "--features", "orb", "--scale", "gt", "--out", str(out)]) == 0
    assert sum("000010.png" in r.getMessage() for r in caplog.records) == 1
    poses = np.loadtxt(out / "poses.txt")
    assert poses.shape == (24, 12) and np.isfinite(poses).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tracked_frames"] <= 23


def test_exit_codes_in_a_real_process(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "tpr_vo", "run", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("tpr-vo run: error:") and "Traceback" not in bad.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "tpr_vo", "run", "x", "--mode", "trinocular"],
        capture_output=True,
        text=True,
    )
    assert usage.returncode == 2
