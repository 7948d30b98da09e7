"""ATE (Umeyama SE(3)/Sim(3)) and RPE against evo on the real full-length KITTI ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tpr_vo.errors import ConfigError, DataError
from tpr_vo.eval import (
    compute_ate,
    compute_metrics,
    compute_rpe,
    evaluate_files,
    umeyama_alignment,
)
from tpr_vo.geometry.se3 import orthonormalize
from tpr_vo.kitti_poses import read_kitti_poses, write_kitti_poses

evo_metrics = pytest.importorskip("evo.core.metrics")
evo_trajectory = pytest.importorskip("evo.core.trajectory")


def drifting_estimate(gt: np.ndarray, seed: int = 0) -> np.ndarray:
    """Integrate the ground-truth motions with 3 % scale drift, a yaw bias and noise."""
    rng = np.random.default_rng(seed)
    rel = np.linalg.inv(gt[:-1]) @ gt[1:]
    est = [np.eye(4)]
    for M in rel:
        D = np.eye(4)
        D[:3, :3] = Rotation.from_rotvec(rng.normal(0, 2e-3, 3) + [0, 3e-4, 0]).as_matrix()
        M2 = M.copy()
        M2[:3, 3] = M[:3, 3] * 1.03 + rng.normal(0, 0.02, 3)
        est.append(est[-1] @ M2 @ D)
    return np.stack(est)


def similarity(scale: float) -> tuple[np.ndarray, float]:
    G = np.eye(4)
    G[:3, :3] = Rotation.from_euler("xyz", [10, 40, -20], degrees=True).as_matrix()
    G[:3, 3] = [5.0, -3.0, 100.0]
    return G, scale


def evo_ape_rmse(gt: np.ndarray, est: np.ndarray, correct_scale: bool) -> float:
    ref = evo_trajectory.PosePath3D(poses_se3=list(gt))
    traj = evo_trajectory.PosePath3D(poses_se3=list(est))
    traj.align(ref, correct_scale=correct_scale)
    ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    ape.process_data((ref, traj))
    return float(ape.get_statistic(evo_metrics.StatisticsType.rmse))


def evo_rpe_mean(gt, est, relation) -> float:
    ref = evo_trajectory.PosePath3D(poses_se3=list(gt))
    traj = evo_trajectory.PosePath3D(poses_se3=list(est))
    rpe = evo_metrics.RPE(relation, 1, evo_metrics.Unit.frames, all_pairs=False)
    rpe.process_data((ref, traj))
    return float(rpe.get_statistic(evo_metrics.StatisticsType.mean))


@pytest.mark.parametrize("seq", ["07", "05"])
def test_ate_se3_and_sim3_match_evo_on_real_ground_truth(kitti_gt_full, seq):
    gt = read_kitti_poses(kitti_gt_full / "poses" / f"{seq}.txt")
    est = drifting_estimate(gt, seed=int(seq))

    ours_se3 = compute_ate(gt, est, "se3").rmse_m
    ref_se3 = evo_ape_rmse(gt, est, correct_scale=False)
    assert ours_se3 == pytest.approx(ref_se3, rel=1e-6)
    assert ref_se3 > 1.0  # the drift is large enough that alignment matters

    # A scale-free monocular estimate: shrunk by 0.37 and expressed in another frame.
    G, s = similarity(0.37)
    est_sim = est.copy()
    est_sim[:, :3, 3] *= s
    est_sim = G @ est_sim
    ate = compute_ate(gt, est_sim, "sim3")
    ref_sim3 = evo_ape_rmse(gt, est_sim, correct_scale=True)
    assert ate.rmse_m == pytest.approx(ref_sim3, rel=1e-6)
    assert ate.alignment.scale == pytest.approx(1 / 0.37, rel=0.1)
    # Sim(3) on the un-shrunk estimate is at most the SE(3) error (one more degree of freedom).
    assert compute_ate(gt, est, "sim3").rmse_m <= ours_se3 + 1e-9


def test_rpe_matches_evo(kitti_gt_full):
    gt = read_kitti_poses(kitti_gt_full / "poses" / "07.txt")
    est = drifting_estimate(gt, seed=3)
    rpe = compute_rpe(gt, est)
    rel = evo_metrics.PoseRelation
    assert rpe.pairs == len(gt) - 1
    assert rpe.trans_mean_m == pytest.approx(evo_rpe_mean(gt, est, rel.translation_part), rel=1e-6)
    assert rpe.rot_mean_deg == pytest.approx(
        evo_rpe_mean(gt, est, rel.rotation_angle_deg), rel=1e-6
    )


def test_rpe_rotation_is_exact_at_vo_sized_errors_on_rounded_ground_truth(kitti_gt_full):
    """Per-frame errors of ~0.02 deg, the size VO reaches on KITTI, against the real sequence-06
    ground truth, whose 7-digit entries leave its rotations orthonormal only to ~1e-7. Ours and
    evo's must both give back the injected angles; the arccos-of-trace angle did not."""
    gt = read_kitti_poses(kitti_gt_full / "poses" / "06.txt")[:51]
    exact = gt.copy()
    exact[:, :3, :3] = orthonormalize(gt[:, :3, :3])
    rng = np.random.default_rng(0)
    est, injected_deg = [np.eye(4)], []
    for M in np.linalg.inv(exact[:-1]) @ exact[1:]:
        rvec = rng.normal(0.0, 3e-4, 3)
        injected_deg.append(np.degrees(np.linalg.norm(rvec)))
        D = np.eye(4)
        D[:3, :3] = Rotation.from_rotvec(rvec).as_matrix()
        est.append(est[-1] @ M @ D)
    est = np.stack(est)
    ours = compute_rpe(gt, est).rot_errors_deg
    assert np.abs(ours - injected_deg).max() < 1e-9
    assert ours.mean() == pytest.approx(
        evo_rpe_mean(gt, est, evo_metrics.PoseRelation.rotation_angle_deg), abs=1e-9
    )
    # The case is sensitive: the textbook formula is off by more than 0.005 deg on some frame.
    E = np.linalg.inv(np.linalg.inv(gt[:-1]) @ gt[1:]) @ (np.linalg.inv(est[:-1]) @ est[1:])
    cos = 0.5 * (np.trace(E[:, :3, :3], axis1=1, axis2=2) - 1.0)
    textbook_deg = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    assert np.abs(textbook_deg - injected_deg).max() > 0.005


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(1)
    est_xyz = rng.normal(size=(50, 3)) * [10, 1, 30]
    R = Rotation.from_euler("zyx", [30, -70, 5], degrees=True).as_matrix()
    t = np.array([1.0, 2.0, -3.0])
    gt_xyz = 2.5 * est_xyz @ R.T + t
    sim3 = umeyama_alignment(est_xyz, gt_xyz, with_scale=True)
    np.testing.assert_allclose(sim3.R_gt_est, R, atol=1e-12)
    np.testing.assert_allclose(sim3.t_gt_est_m, t, atol=1e-10)
    assert sim3.scale == pytest.approx(2.5, rel=1e-12)
    # SE(3) cannot absorb the scale: positive residual.
    se3 = umeyama_alignment(est_xyz, gt_xyz, with_scale=False)
    assert se3.scale == 1.0
    assert np.linalg.det(se3.R_gt_est) == pytest.approx(1.0)


def test_ate_none_alignment_and_identical_trajectories():
    T = np.tile(np.eye(4), (5, 1, 1))
    T[:, 0, 3] = np.arange(5.0)
    shifted = T.copy()
    shifted[:, 1, 3] += 2.0
    assert compute_ate(T, shifted, "none").rmse_m == pytest.approx(2.0)
    assert compute_ate(T, shifted, "se3").rmse_m == pytest.approx(0.0, abs=1e-12)
    m = compute_metrics(T, T, align="sim3")
    assert m.ate_rmse_m == pytest.approx(0.0, abs=1e-12)
    assert m.rpe_trans_m == pytest.approx(0.0, abs=1e-12)


def test_degenerate_estimates_do_not_raise():
    gt = np.tile(np.eye(4), (4, 1, 1))
    gt[:, :3, 3] = [[0, 0, 0], [0, 0, 1], [1, 0, 2], [2, 0, 2]]
    stuck = np.tile(np.eye(4), (4, 1, 1))  # VO that never moved
    ate = compute_ate(gt, stuck, "sim3")
    # Best fit of a single point is the ground-truth centroid: ATE = RMS distance to it.
    centroid = gt[:, :3, 3].mean(axis=0)
    expected = np.sqrt(np.mean(np.sum((gt[:, :3, 3] - centroid) ** 2, axis=1)))
    assert ate.rmse_m == pytest.approx(expected)
    line = np.tile(np.eye(4), (4, 1, 1))  # collinear estimate: evo refuses, we still align
    line[:, 2, 3] = np.arange(4.0)
    assert np.isfinite(compute_ate(gt, line, "sim3").rmse_m)
    single = compute_metrics(gt[:1], gt[:1])
    assert single.rpe_trans_m is None and single.t_rel_pct is None


def test_compute_metrics_records_protocol_and_rejects_bad_arrays():
    gt = np.tile(np.eye(4), (120, 1, 1))
    gt[:, 2, 3] = np.arange(120.0)
    tracked = np.ones(120, bool)
    tracked[[5, 6, 7]] = False
    m = compute_metrics(gt, gt, align="sim3", tracked=tracked, fps=float("nan"), scale_source="gt")
    d = m.to_json_dict()
    json.dumps(d, allow_nan=False)  # metrics.json must be strict JSON
    assert (d["frames"], d["tracked_frames"], d["fps"]) == (120, 117, None)
    assert (d["ate_align"], d["scale_source"], d["kitti_alignment"]) == ("sim3", "gt", "none")
    assert d["kitti_segments"] == 2  # 119 m: L = 100 from frames 0 and 10
    assert d["rpe_pairs"] == 119 and d["kitti_step_frames"] == 10
    assert [row["segments"] for row in d["kitti_per_length"]] == [2, 0, 0, 0, 0, 0, 0, 0]

    with pytest.raises(DataError, match="est.txt has 119 poses but gt.txt has 120"):
        compute_metrics(gt, gt[:-1], gt_name="gt.txt", est_name="est.txt")
    bad = gt.copy()
    bad[4, 0, 3] = np.inf
    with pytest.raises(DataError, match="estimate: pose 4 has NaN or inf"):
        compute_metrics(gt, bad)
    with pytest.raises(DataError, match=r"expected \(N, 4, 4\)"):
        compute_metrics(gt, gt[:, :2])
    with pytest.raises(DataError, match="tracked"):
        compute_metrics(gt, gt, tracked=tracked[:-1])
    with pytest.raises(ConfigError, match="align"):
        compute_metrics(gt, gt, align="sim2")
    with pytest.raises(ConfigError, match="scale_source"):
        compute_metrics(gt, gt, scale_source="lidar")


def test_file_level_agreement_with_evo_reader(kitti_gt_full, tmp_path):
    """Same files through both readers: `tpr-vo eval`'s path vs evo's own KITTI reader."""
    file_interface = pytest.importorskip("evo.tools.file_interface")
    gt_path = kitti_gt_full / "poses" / "07.txt"
    est_path = tmp_path / "07_est.txt"
    gt = read_kitti_poses(gt_path)
    write_kitti_poses(est_path, drifting_estimate(gt, seed=11))
    ref = file_interface.read_kitti_poses_file(str(gt_path))
    for align, correct_scale in (("se3", False), ("sim3", True)):
        est = file_interface.read_kitti_poses_file(str(est_path))
        est.align(ref, correct_scale=correct_scale)
        ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
        ape.process_data((ref, est))
        ours = evaluate_files(gt_path, est_path, align=align).ate_rmse_m
        assert ours == pytest.approx(ape.get_statistic(evo_metrics.StatisticsType.rmse), rel=1e-6)
