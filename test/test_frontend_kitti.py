"""The frontend on real KITTI 06 frames (first 25 frames, ~30 m): stereo (ORB) is metric without
ground truth, mono with ground-truth step lengths follows the road (f2f and the local map with
ORB, the local map with SIFT). ATE after SE(3) Umeyama alignment (tpr_vo.eval)."""

from __future__ import annotations

import numpy as np
import pytest

from tpr_vo.config import VoConfig, replace
from tpr_vo.datasets import open_sequence
from tpr_vo.eval import compute_metrics
from tpr_vo.frontend import VisualOdometry

NUM_FRAMES = 25


@pytest.fixture(scope="module")
def kitti_frames():
    from conftest import require_data

    seq = open_sequence(require_data("kitti/dataset/sequences/06"))
    frames = [seq[i] for i in range(NUM_FRAMES)]
    return seq, frames


def _run(kitti_frames, **overrides):
    seq, frames = kitti_frames
    cfg = replace(VoConfig(), **{"features.kind": "orb", "seed": 0, **overrides})
    vo = VisualOdometry(cfg, seq.intrinsics)
    gt = seq.gt_poses[:NUM_FRAMES]
    results = []
    for i, f in enumerate(frames):
        step = float(np.linalg.norm(gt[i, :3, 3] - gt[i - 1, :3, 3])) if i else 0.0
        results.append(vo.process_frame(f.image_left, f.stamp_s, f.image_right, step))
    est = np.stack([r.T_world_cam for r in results])
    tracked = np.array([r.tracked for r in results])
    return compute_metrics(gt, est, align="se3", tracked=tracked), results


def test_stereo_is_metric_without_ground_truth(kitti_frames):
    metrics, results = _run(kitti_frames, **{"frontend.mode": "stereo"})
    assert metrics.tracked_frames == NUM_FRAMES
    assert metrics.ate_rmse_m < 0.20  # measured 0.14 m
    assert metrics.rpe_rot_deg < 0.15  # per frame
    assert all(np.isfinite(r.covariance_6x6).all() for r in results)


def test_subpixel_disparity_makes_the_stereo_map_more_accurate(kitti_frames):
    # ORB keypoints on coarse pyramid levels are quantised; without the patch refinement the
    # stereo depths were biased (map ~3 % too large on these frames). Measured 0.24 -> 0.14 m.
    on, _ = _run(kitti_frames, **{"frontend.mode": "stereo", "frontend.stereo_subpixel": True})
    off, _ = _run(kitti_frames, **{"frontend.mode": "stereo", "frontend.stereo_subpixel": False})
    print(f"stereo ATE: subpixel {on.ate_rmse_m:.3f} m, keypoint x {off.ate_rmse_m:.3f} m")
    assert on.ate_rmse_m < 0.75 * off.ate_rmse_m


def test_mono_gt_scale_f2f_orb(kitti_frames):
    f2f, _ = _run(kitti_frames, **{"frontend.kind": "f2f", "frontend.scale": "gt"})
    assert f2f.tracked_frames == NUM_FRAMES
    assert f2f.ate_rmse_m < 0.15


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mono_gt_scale_map_orb_is_stable_across_seeds(kitti_frames, seed):
    # Frames 16-22 (a scaffolded facade, a car ahead) used to break the ORB map on some seeds:
    # one weak PnP pose became a keyframe, then a 4x scale collapse and a direction flip followed
    # (ATE up to 1.7 m). The ground-truth scale correction of the map and the two-view check of
    # weak PnP poses keep every seed at centimetres; with the epipolar term in the pose
    # refinement the map also beats the frame-to-frame chain with the same scale.
    mapped, _ = _run(
        kitti_frames, **{"frontend.kind": "map", "frontend.scale": "gt", "seed": seed}
    )
    f2f, _ = _run(kitti_frames, **{"frontend.kind": "f2f", "frontend.scale": "gt", "seed": seed})
    print(
        f"seed {seed}: map ATE {mapped.ate_rmse_m:.3f} m ({mapped.tracked_frames} tracked), "
        f"f2f {f2f.ate_rmse_m:.3f} m"
    )
    assert mapped.tracked_frames >= NUM_FRAMES - 3  # a frame can stay untracked, not a run
    assert mapped.ate_rmse_m < 0.05  # measured 0.022-0.027 m
    assert mapped.ate_rmse_m < f2f.ate_rmse_m


def test_mono_gt_scale_map_sift(kitti_frames):
    mapped, _ = _run(
        kitti_frames, **{"frontend.kind": "map", "frontend.scale": "gt", "features.kind": "sift"}
    )
    assert mapped.tracked_frames >= NUM_FRAMES - 1
    assert mapped.ate_rmse_m < 0.15


def _path_length_m(poses: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum())


def test_mono_height_scale_from_the_road(kitti_frames):
    # Few corners lie on the road, so a plane fitted to map points found cars and kerbs instead
    # (every step ~18 % short); the road's homography measures the steps directly. Measured:
    # road ATE 0.084-0.102 m and path length +0.2..+1.1 %, map-point plane 1.52 m and -18 %.
    seq, _ = kitti_frames
    gt_length = _path_length_m(seq.gt_poses[:NUM_FRAMES])
    road, results = _run(kitti_frames, **{"frontend.scale": "height"})
    plane, _ = _run(kitti_frames, **{"frontend.scale": "height", "frontend.road_scale": False})
    length = _path_length_m(np.stack([r.T_world_cam for r in results]))
    print(f"height: road {road.ate_rmse_m:.3f} m, map-point plane {plane.ate_rmse_m:.3f} m")
    assert road.tracked_frames == NUM_FRAMES
    assert road.ate_rmse_m < 0.2
    assert abs(length / gt_length - 1.0) < 0.03
    assert road.ate_rmse_m < 0.25 * plane.ate_rmse_m
