"""`tpr-vo eval` and `tpr-vo mma`: outputs, multi-sequence table, and bad-input messages."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from tpr_vo.cli import main
from tpr_vo.eval import compute_metrics
from tpr_vo.kitti_poses import read_kitti_poses, write_kitti_poses

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def arc(n: int, yaw_rad_per_m: float, step_m: float = 1.0, scale: float = 1.0) -> np.ndarray:
    T = np.tile(np.eye(4), (n, 1, 1))
    for i in range(1, n):
        a = yaw_rad_per_m * step_m * i
        T[i, :3, :3] = [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
        T[i, :3, 3] = T[i - 1, :3, 3] + T[i - 1, :3, :3] @ [0.0, 0.0, step_m * scale]
    return T


@pytest.fixture
def pair_files(tmp_path):
    gt, est = tmp_path / "gt.txt", tmp_path / "est.txt"
    write_kitti_poses(gt, arc(301, 0.0))
    write_kitti_poses(est, arc(301, 1e-4, scale=1.02))
    return gt, est


def test_eval_prints_table_writes_json_and_plots(pair_files, tmp_path, capsys):
    gt, est = pair_files
    out_json, plots = tmp_path / "m.json", tmp_path / "plots"
    rc = main(["eval", "--gt", str(gt), "--est", str(est), "--align", "sim3",
               "--json", str(out_json), "--plot", str(plots)])  # fmt: skip
    assert rc == 0
    stdout = capsys.readouterr().out
    assert "ATE RMSE [m] (sim3)" in stdout and "t_rel [%] (KITTI devkit)" in stdout
    data = json.loads(out_json.read_text())
    expected = compute_metrics(read_kitti_poses(gt), read_kitti_poses(est), align="sim3")
    for key in ("frames", "tracked_frames", "ate_rmse_m", "ate_align", "rpe_trans_m",
                "rpe_rot_deg", "t_rel_pct", "r_rel_deg_per_100m", "fps"):  # fmt: skip
        assert key in data
    assert data["frames"] == 301 and data["ate_align"] == "sim3"
    assert data["ate_rmse_m"] == pytest.approx(expected.ate_rmse_m)
    assert data["t_rel_pct"] == pytest.approx(expected.t_rel_pct)
    assert data["kitti_segments"] == 30 and data["scale_source"] == "unknown"
    assert data["fps"] is None
    for name in ("trajectory.png", "segment_errors.png", "position_error.png"):
        png = (plots / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 10_000


def test_multi_sequence_table_pools_segments(tmp_path, capsys):
    gt_dir, est_dir = tmp_path / "gt", tmp_path / "est"
    write_kitti_poses(gt_dir / "00.txt", arc(301, 0.0))
    write_kitti_poses(est_dir / "00.txt", arc(301, 0.0, scale=1.01))
    write_kitti_poses(gt_dir / "01.txt", arc(2001, 0.0, step_m=0.5))
    write_kitti_poses(est_dir / "01.txt", arc(2001, 0.0, step_m=0.5))
    write_kitti_poses(est_dir / "99.txt", arc(10, 0.0))  # no ground truth: ignored
    out_json = tmp_path / "all.json"
    plots = tmp_path / "plots"
    rc = main(["eval", "--gt-dir", str(gt_dir), "--est-dir", str(est_dir), "--json", str(out_json),
               "--plot", str(plots)])  # fmt: skip
    assert rc == 0
    kinds = ("position_error", "segment_errors", "trajectory")
    expected_pngs = [f"{s}_{kind}.png" for s in ("00", "01") for kind in kinds]
    assert sorted(p.name for p in plots.glob("*.png")) == sorted(
        [*expected_pngs, "avg_segment_errors.png"]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| metric | 00 | 01 | avg |"
    assert lines[2].startswith("| ATE RMSE [m] (se3) |")
    assert lines[3].startswith("| t_rel [%] |") and lines[4].startswith("| r_rel [deg/100m] |")
    data = json.loads(out_json.read_text())
    assert sorted(data["sequences"]) == ["00", "01"]
    assert data["average"]["kitti_segments"] == 30 + 880
    t00 = data["sequences"]["00"]["t_rel_pct"]
    assert t00 == pytest.approx(1.00833, rel=1e-4)
    assert data["sequences"]["01"]["t_rel_pct"] == pytest.approx(0.0, abs=1e-9)
    assert data["average"]["t_rel_pct"] == pytest.approx(t00 * 30 / 910, rel=1e-5)


def test_short_trajectory_reports_null_t_rel(tmp_path, capsys):
    gt, est = tmp_path / "gt.txt", tmp_path / "est.txt"
    write_kitti_poses(gt, arc(51, 0.0))
    write_kitti_poses(est, arc(51, 1e-3))
    rc = main(["eval", "--gt", str(gt), "--est", str(est), "--json", str(tmp_path / "m.json")])
    assert rc == 0
    assert "| t_rel [%] (KITTI devkit) | n/a |" in capsys.readouterr().out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["t_rel_pct"] is None and data["r_rel_deg_per_100m"] is None
    assert data["kitti_segments"] == 0 and data["ate_rmse_m"] > 0


def _pose_line(T: np.ndarray) -> str:
    return " ".join(f"{v:.9e}" for v in T[:3].reshape(-1))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda lines: lines[:-1], r"est.txt has 300 poses but .*gt.txt has 301"),
        (lambda lines: lines[:5] + [lines[5].replace(lines[5].split()[3], "nan", 1)] + lines[6:],
         r"est.txt:6: NaN or inf"),
        (lambda lines: lines[:2] + [" ".join(lines[2].split()[:11])] + lines[3:],
         r"est.txt:3: expected 12 numbers"),
        (lambda lines: lines[:7] + ["2 0 0 0 0 1 0 0 0 0 1 7"] + lines[8:],
         r"est.txt:8: rotation is not orthonormal"),
    ],
    ids=["line-count", "nan", "columns", "non-orthonormal"],
)  # fmt: skip
def test_bad_estimates_exit_1_naming_the_file(pair_files, capsys, mutate, message):
    gt, est = pair_files
    est.write_text("\n".join(mutate(est.read_text().splitlines())) + "\n")
    rc = main(["eval", "--gt", str(gt), "--est", str(est)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("tpr-vo eval: error: ")
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_missing_files_and_bad_usage(pair_files, tmp_path, capsys):
    gt, est = pair_files
    assert main(["eval", "--gt", str(gt), "--est", str(tmp_path / "nope.txt")]) == 1
    assert "nope.txt: pose file not found" in capsys.readouterr().err
    assert main(["eval", "--gt", str(gt)]) == 2
    assert main(["eval", "--gt", str(gt), "--est", str(est), "--gt-dir", str(tmp_path)]) == 2
    assert main(["eval"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--gt", str(gt), "--est", str(est), "--align", "sim2"])
    assert exc.value.code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", "--gt-dir", str(tmp_path), "--est-dir", str(empty)]) == 1
    assert "no estimated pose files" in capsys.readouterr().err


def test_mma_cli_json_and_plot(tmp_path, capsys):
    from test_eval_mma import H_KNOWN, write_pair

    folder = write_pair(tmp_path / "set", H_KNOWN)
    out_json, out_png = tmp_path / "mma.json", tmp_path / "mma.png"
    rc = main(["mma", str(folder), "--features", "sift", "orb", "--max-keypoints", "500",
               "--json", str(out_json), "--plot", str(out_png)])  # fmt: skip
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| features | MMA@1 | MMA@3 | MMA@5 |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["sift", "orb"]
    data = json.loads(out_json.read_text())
    results = data["results"]
    assert [r["features"] for r in results] == ["sift", "orb"]
    for r in results:
        assert all(0.0 <= r[f"mma@{k}"] <= 1.0 for k in range(1, 11))
        assert r["mma@10"] > 0.7 and r["keypoints"] <= 500 and r["matches"] > 50
    assert out_png.read_bytes().startswith(PNG_MAGIC)


def test_mma_cli_missing_folder(tmp_path, capsys):
    assert main(["mma", str(tmp_path / "absent"), "--features", "orb"]) == 1
    assert "absent: not a folder" in capsys.readouterr().err


def test_mma_cli_model_option(tmp_path, capsys):
    """--model evaluates another checkpoint; a missing one is named in the error."""
    torch = pytest.importorskip("torch")
    from test_eval_mma import H_KNOWN, write_pair

    from tpr_vo.features.model import TPRNet, save_checkpoint

    folder = write_pair(tmp_path / "set", H_KNOWN)
    missing = tmp_path / "absent.pt"
    assert main(["mma", str(folder), "--features", "tpr", "--model", str(missing)]) == 1
    assert "absent.pt" in capsys.readouterr().err
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "net.pt", TPRNet(width=8, descriptor_dim=16).eval(), {})
    out_json = tmp_path / "m.json"
    model = str(tmp_path / "net.pt")
    rc = main(["mma", str(folder), "--features", "tpr", "--backend", "torch", "--model", model,
               "--max-keypoints", "300", "--json", str(out_json)])  # fmt: skip
    assert rc == 0
    assert json.loads(out_json.read_text())["results"][0]["keypoints"] <= 300
