"""The synthetic driving sequence: its ground truth lands scene points on matching image content
within 1 px (left-left across frames and left-right across the baseline), a classical
essential-matrix estimate agrees with it, the files follow the KITTI layout, it is deterministic
for a seed, and `motion="stationary"` keeps the camera still."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from tpr_vo.datasets import open_sequence
from tpr_vo.datasets.kitti import read_calib
from tpr_vo.datasets.synthetic import (
    BASELINE_M,
    render_synthetic_sequence,
    synthetic_intrinsics,
    synthetic_world,
)
from tpr_vo.datasets.synthetic_render import QuadRenderer
from tpr_vo.errors import DataError

NUM_FRAMES, SEED = 12, 3
PATCH_R = 12  # 25x25 patches
SEARCH_R = 4


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "seq"
    started = time.perf_counter()
    render_synthetic_sequence(out, num_frames=NUM_FRAMES, seed=SEED)
    elapsed = time.perf_counter() - started
    print(f"\nsynthetic: {NUM_FRAMES} stereo frames 1241x376 in {elapsed:.2f} s "
          f"({elapsed / NUM_FRAMES * 1000:.0f} ms per frame incl. scene build)")  # fmt: skip
    return out


@pytest.fixture(scope="module")
def world():
    return synthetic_world(NUM_FRAMES, SEED)


def _depth(world, T_scene_cam):
    renderer = QuadRenderer(synthetic_intrinsics(), 1241, 376)
    return renderer.render(world.scene, T_scene_cam).inv_depth_per_m


def _planar_patch(inv_depth, x, y):
    """g with 1/z = g.(u, v, 1) if the patch around (x, y) lies on one plane, else None."""
    v, u = np.mgrid[y - PATCH_R : y + PATCH_R + 1, x - PATCH_R : x + PATCH_R + 1]
    A = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1).astype(np.float64)
    d = inv_depth[v, u].ravel().astype(np.float64)
    if d.min() <= 0:
        return None
    g, *_ = np.linalg.lstsq(A, d, rcond=None)
    return g if np.abs(A @ g - d).max() < 1e-4 * d.mean() else None


def _two_dimensional_texture(image, x, y):
    """Both eigenvalues of the patch's structure tensor large: no aperture problem (a lane
    line or brick course would let a patch slide along itself)."""
    patch = image[y - PATCH_R - 1 : y + PATCH_R + 2, x - PATCH_R - 1 : x + PATCH_R + 2]
    gy, gx = np.gradient(patch)
    a, b, c = (gx * gx).mean(), (gx * gy).mean(), (gy * gy).mean()
    lam_min = (a + c) / 2 - np.sqrt(((a - c) / 2) ** 2 + b * b)
    lam_max = (a + c) / 2 + np.sqrt(((a - c) / 2) ** 2 + b * b)
    return lam_min > 50.0 and lam_min > 0.2 * lam_max


def _alignment(image_i, image_j, H_ji, x, y):
    """Residual shift (px) that best aligns image i, warped by the plane homography into view j,
    with image j around (x, y) of view j; and the NCC at that shift."""
    h, w = image_j.shape
    warped = cv2.warpPerspective(image_i, H_ji, (w, h), flags=cv2.INTER_LINEAR)
    templ = warped[y - PATCH_R : y + PATCH_R + 1, x - PATCH_R : x + PATCH_R + 1]
    r = PATCH_R + SEARCH_R
    area = image_j[y - r : y + r + 1, x - r : x + r + 1]
    ncc = cv2.matchTemplate(area, templ, cv2.TM_CCOEFF_NORMED)
    py, px = np.unravel_index(np.argmax(ncc), ncc.shape)
    n = ncc.shape[0]
    sx = _parabola(*ncc[py, px - 1 : px + 2]) if 0 < px < n - 1 else 0.0
    sy = _parabola(*ncc[py - 1 : py + 2, px]) if 0 < py < n - 1 else 0.0
    return np.array([px - SEARCH_R + sx, py - SEARCH_R + sy]), float(ncc[py, px])


def _parabola(a, b, c):
    """Sub-pixel offset of the peak of three samples around b."""
    denom = a - 2 * b + c
    return 0.5 * (a - c) / denom if denom < 0 else 0.0


def _check_pair(seq, world, i, j, T_world_cam_j, depth_j, image_j, rng, wanted=12):
    """Project textured, planar scene points seen in frame i into view j with the given pose;
    returns (shifts, nccs) of the image-content alignment at the projections."""
    K = seq.intrinsics.K
    depth_i = _depth(world, world.T_scene_cam0[i])
    image_i = seq[i].image_left.astype(np.float32)
    image_j = image_j.astype(np.float32)
    T_cj_ci = np.linalg.inv(T_world_cam_j) @ seq.gt_poses[i]
    h, w = image_i.shape
    margin = PATCH_R + SEARCH_R + 2
    shifts, nccs = [], []
    for _ in range(3000):
        if len(shifts) >= wanted:
            break
        x, y = int(rng.integers(margin, w - margin)), int(rng.integers(margin, h - margin))
        g_i = _planar_patch(depth_i, x, y)
        if g_i is None or not _two_dimensional_texture(image_i, x, y):
            continue
        X_ci = np.linalg.solve(K, [x, y, 1.0]) / (g_i @ [x, y, 1.0])  # the scene point
        X_cj = T_cj_ci[:3, :3] @ X_ci + T_cj_ci[:3, 3]
        xj, yj = (K @ X_cj)[:2] / X_cj[2]
        if X_cj[2] <= 0 or not (margin <= xj < w - margin and margin <= yj < h - margin):
            continue
        xr, yr = int(round(xj)), int(round(yj))
        g_j = _planar_patch(depth_j, xr, yr)
        if g_j is None or abs(g_j @ [xj, yj, 1.0] * X_cj[2] - 1) > 0.01:
            continue  # occluded in view j, or the patch straddles an edge
        # plane-induced homography i -> j: n^T / d = g^T K in view i
        H = K @ (T_cj_ci[:3, :3] + np.outer(T_cj_ci[:3, 3], g_i @ K)) @ np.linalg.inv(K)
        r = PATCH_R + SEARCH_R
        window_j = np.array([[xr - r, yr - r, 1], [xr + r, yr - r, 1], [xr - r, yr + r, 1],
                             [xr + r, yr + r, 1]], np.float64)  # fmt: skip
        window_i = window_j @ np.linalg.inv(H).T
        window_i = window_i[:, :2] / window_i[:, 2:]
        if window_i.min() < 1 or np.any(window_i.max(0) > [w - 2, h - 2]):
            continue  # the warped patch would reach beyond image i
        (u0, v0), (u1, v1) = np.floor(window_i.min(0)).astype(int), np.ceil(window_i.max(0))
        v, u = np.mgrid[v0 : int(v1) + 1, u0 : int(u1) + 1]
        on_plane = g_i[0] * u + g_i[1] * v + g_i[2]
        if np.abs(depth_i[v, u] / on_plane - 1).max() > 0.01:
            continue  # something else is seen in image i inside the compared area
        shift, ncc = _alignment(image_i, image_j, H, xr, yr)
        shifts.append(float(np.hypot(*shift)))
        nccs.append(ncc)
    return np.array(shifts), np.array(nccs)


def test_ground_truth_projects_scene_points_onto_matching_content(drive, world):
    seq = open_sequence(drive)
    rng = np.random.default_rng(0)
    for i, j in ((0, 3), (6, 9)):  # 2-4 m apart
        depth_j = _depth(world, world.T_scene_cam0[j])
        shifts, nccs = _check_pair(seq, world, i, j, seq.gt_poses[j], depth_j,
                                   seq[j].image_left, rng)  # fmt: skip
        assert len(shifts) >= 8, f"too few visible textured points in frames {i}, {j}"
        assert np.all(nccs > 0.8), nccs
        assert shifts.max() <= 1.0, f"frames {i}->{j}: misalignment {shifts} px"
        assert np.median(shifts) <= 0.2, shifts
        # the check has power: the previous frame's pose (about 1 m back) misaligns the points
        wrong, wrong_ncc = _check_pair(seq, world, i, j, seq.gt_poses[j - 1], depth_j,
                                       seq[j].image_left, rng)  # fmt: skip
        assert np.mean((wrong > 1.0) | (wrong_ncc < 0.7)) >= 0.6, (wrong, wrong_ncc)


def test_right_camera_matches_baseline_from_calib(drive, world):
    seq = open_sequence(drive)
    assert seq.has_right
    assert seq.intrinsics.baseline_m == pytest.approx(BASELINE_M, abs=1e-9)
    T_cam0_cam1 = np.eye(4)
    T_cam0_cam1[0, 3] = seq.intrinsics.baseline_m
    i = 5
    depth_r = _depth(world, world.T_scene_cam0[i] @ world.T_cam0_cam1)
    T_world_cam1 = seq.gt_poses[i] @ T_cam0_cam1
    rng = np.random.default_rng(1)
    shifts, nccs = _check_pair(seq, world, i, i, T_world_cam1, depth_r, seq[i].image_right, rng)
    assert len(shifts) >= 8 and np.all(nccs > 0.8)
    assert shifts.max() <= 1.0 and np.median(shifts) <= 0.2, shifts


def test_essential_matrix_rotation_agrees_with_ground_truth(drive):
    seq = open_sequence(drive)
    K = seq.intrinsics.K
    orb = cv2.ORB_create(3000)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    errors_deg = []
    for i in (0, 5, 10):
        ka, da = orb.detectAndCompute(seq[i].image_left, None)
        kb, db = orb.detectAndCompute(seq[i + 1].image_left, None)
        matches = matcher.match(da, db)
        pa = np.float32([ka[m.queryIdx].pt for m in matches])
        pb = np.float32([kb[m.trainIdx].pt for m in matches])
        E, mask = cv2.findEssentialMat(pa, pb, K, cv2.RANSAC, 0.999, 1.0)
        _, R, t, _ = cv2.recoverPose(E, pa, pb, K, mask=mask)
        T_b_a = np.linalg.inv(seq.gt_poses[i + 1]) @ seq.gt_poses[i]
        cos = (np.trace(R @ T_b_a[:3, :3].T) - 1) / 2
        errors_deg.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
        assert int(mask.sum()) > 300
    print(f"\nORB + 5-point rotation error vs GT: {np.round(errors_deg, 3)} deg")
    assert max(errors_deg) < 0.5


def test_kitti_layout_and_trajectory(drive, world):
    seq = open_sequence(drive)
    assert len(seq) == NUM_FRAMES and seq.name == "seq"
    assert sorted(p.name for p in (drive / "image_1").iterdir())[0] == "000000.png"
    frame = seq[3]
    assert frame.image_left.shape == (376, 1241) and frame.image_left.dtype == np.uint8
    assert frame.stamp_s == pytest.approx(0.3)
    calib = read_calib(drive / "calib.txt")
    assert set(calib) == {"P0", "P1", "P2", "P3"}
    assert -calib["P1"][0, 3] / calib["P1"][0, 0] == pytest.approx(0.54)
    assert seq.intrinsics.fx == pytest.approx(718.856) and seq.intrinsics.width_px == 1241
    np.testing.assert_array_equal(seq.gt_poses[0], np.eye(4))
    np.testing.assert_allclose(seq.gt_poses, world.T_world_cam0, atol=1e-8)
    steps = np.linalg.norm(np.diff(seq.gt_poses[:, :3, 3], axis=0), axis=1)
    assert np.all((steps > 0.35) & (steps < 1.5))  # 4-14 m/s at 10 Hz
    # the camera stays at its height over the road (y down) and looks along it
    assert np.abs(seq.gt_poses[:, 1, 3]).max() < 0.1


def test_long_drive_turns_and_changes_speed():
    world = synthetic_world(200, seed=0)
    T = world.T_world_cam0
    yaw_deg = np.degrees(np.arctan2(T[:, 0, 2], T[:, 2, 2]))
    speed = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1) * 10
    assert np.ptp(yaw_deg) > 30  # at least one real turn
    assert speed.max() - speed.min() > 3  # m/s
    assert world.arc_m[-1] > 100


def test_world_does_not_depend_on_frame_count(drive, tmp_path):
    """A shorter render is a prefix of a longer one: same poses, same images (up to a few
    pixels at the horizon, where the longer road's ground reaches farther)."""
    short = render_synthetic_sequence(tmp_path / "short", num_frames=3, seed=SEED)
    long_seq, short_seq = open_sequence(drive), open_sequence(short)
    np.testing.assert_array_equal(short_seq.gt_poses, long_seq.gt_poses[:3])
    for k in range(3):
        for a, b in ((short_seq[k].image_left, long_seq[k].image_left),
                     (short_seq[k].image_right, long_seq[k].image_right)):  # fmt: skip
            assert np.mean(a != b) < 0.002


def test_deterministic_for_a_seed(tmp_path):
    a = render_synthetic_sequence(tmp_path / "a", num_frames=2, seed=7, width=320, height=128)
    b = render_synthetic_sequence(tmp_path / "b", num_frames=2, seed=7, width=320, height=128)
    c = render_synthetic_sequence(tmp_path / "c", num_frames=2, seed=8, width=320, height=128)
    for name in ("image_0/000001.png", "image_1/000000.png", "poses.txt", "calib.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "poses.txt").read_bytes() != (c / "poses.txt").read_bytes()
    # re-rendering into the same folder replaces it completely; no temp folders are left
    render_synthetic_sequence(tmp_path / "a", num_frames=3, seed=7, width=320, height=128)
    assert len(list((a / "image_0").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_stationary_camera(tmp_path):
    seq = open_sequence(render_synthetic_sequence(tmp_path / "s", num_frames=4, seed=1,
                                                  motion="stationary"))  # fmt: skip
    np.testing.assert_array_equal(seq.gt_poses, np.tile(np.eye(4), (4, 1, 1)))
    first = seq[0].image_left.astype(np.float32)
    for k in range(1, 4):
        other = seq[k].image_left.astype(np.float32)
        assert not np.array_equal(first, other)  # fresh noise and exposure per frame
        gain = np.median(other) / np.median(first)
        residual = np.abs(other - first * gain)
        assert np.median(residual) < 6  # same content: only noise/exposure differ
        assert 0.8 < gain < 1.25


@pytest.mark.slow
def test_timing_of_the_demo_sequence(tmp_path):
    """The demo's 200 frames; a few seconds on two idle cores (printed, loosely bounded)."""
    started, cpu = time.perf_counter(), time.process_time()
    render_synthetic_sequence(tmp_path / "demo", num_frames=200, seed=0)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"\nsynthetic: 200 stereo frames 1241x376 in {wall:.1f} s wall, {cpu:.1f} s CPU")
    assert len(list((tmp_path / "demo" / "image_1").iterdir())) == 200
    assert wall < 120


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="motion"):
        render_synthetic_sequence(tmp_path / "x", num_frames=2, motion="fly")
    with pytest.raises(DataError, match="num_frames"):
        render_synthetic_sequence(tmp_path / "x", num_frames=0)
    assert not (tmp_path / "x").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="not a folder"):
        render_synthetic_sequence(tmp_path / "file", num_frames=1)
