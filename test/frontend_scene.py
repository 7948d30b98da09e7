"""A synthetic multi-view scene for frontend tests: a fixed 3D point cloud along a road, a
camera trajectory with known poses, and a fake FeatureBackend that 'detects' the projections of
the visible points (with pixel noise and optional outliers) and gives each point a unique
descriptor. Images are only frame counters, so VisualOdometry is exercised without rendering."""

from __future__ import annotations

import numpy as np

from tpr_vo.geometry.se3 import invert, make_T, so3_exp
from tpr_vo.types import CameraIntrinsics, Features

INTRINSICS = CameraIntrinsics(500.0, 500.0, 320.0, 240.0, 640, 480, baseline_m=0.5)


def road_scene(num_points: int = 3000, length_m: float = 80.0, seed: int = 0) -> np.ndarray:
    """(N, 3) world points: walls left and right, a ground plane 1.65 m below the camera."""
    rng = np.random.default_rng(seed)
    n3 = num_points // 3
    z = rng.uniform(-5, length_m + 40, num_points)
    left = np.stack([rng.uniform(-9, -5, n3), rng.uniform(-6, 1.6, n3), z[:n3]], 1)
    right = np.stack([rng.uniform(5, 9, n3), rng.uniform(-6, 1.6, n3), z[n3 : 2 * n3]], 1)
    rest = num_points - 2 * n3
    ground = np.stack([rng.uniform(-5, 5, rest), np.full(rest, 1.65), z[2 * n3 :]], 1)
    return np.concatenate([left, right, ground])


def drive_poses(num_frames: int, step_m: float = 1.0, yaw_deg_per_frame: float = 0.3):
    """(F, 4, 4) T_world_cam: forward along +z with a gentle constant turn."""
    poses = [np.eye(4)]
    step = make_T(so3_exp([0.0, np.radians(yaw_deg_per_frame), 0.0]), [0.0, 0.0, step_m])
    for _ in range(num_frames - 1):
        poses.append(poses[-1] @ step)
    return np.stack(poses)


class SceneBackend:
    """FeatureBackend over the scene. The 'image' passed to extract is ignored except for its
    first pixel, which carries the frame number (0..255 cycles are enough for the tests); the
    right camera is selected by a pixel value of 255 at [0, 1]. With `noisy_fraction` > 0 that
    fraction of the points is also `noisy_px` noisy along x, and every keypoint carries its true
    position covariance."""

    name = "scene"

    def __init__(
        self,
        points_w,
        poses,
        intrinsics=INTRINSICS,
        noise_px=0.3,
        outlier_ratio=0.0,
        seed=0,
        noisy_fraction=0.0,
        noisy_px=3.0,
    ):
        self.points_w = points_w
        self.poses = poses
        self.K = intrinsics.K
        self.size = (intrinsics.width_px, intrinsics.height_px)
        self.baseline = intrinsics.baseline_m or 0.0
        self.noise_px = noise_px
        self.outlier_ratio = outlier_ratio
        rng = np.random.default_rng(seed + 1)
        d = rng.normal(size=(len(points_w), 64)).astype(np.float32)
        self.descriptors = d / np.linalg.norm(d, axis=1, keepdims=True)
        self.rng = np.random.default_rng(seed + 2)
        self.noisy = rng.random(len(points_w)) < noisy_fraction
        self.noisy_px = noisy_px

    def image(self, frame: int, right: bool = False) -> np.ndarray:
        img = np.zeros((self.size[1], self.size[0]), np.uint8)
        img[::7, ::5] = 200  # texture so the frontend does not treat it as blank
        img[0, 0] = frame % 256
        img[0, 1] = 255 if right else 0
        img[0, 2] = frame // 256
        return img

    def extract(self, image: np.ndarray) -> Features:
        frame = int(image[0, 0]) + 256 * int(image[0, 2])
        T_cam_world = invert(self.poses[frame])
        if image[0, 1] == 255:
            T_cam_world = make_T(np.eye(3), [-self.baseline, 0, 0]) @ T_cam_world
        pc = self.points_w @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
        z = pc[:, 2]
        uv = (
            pc[:, :2] / np.maximum(z, 1e-9)[:, None] * [self.K[0, 0], self.K[1, 1]] + self.K[:2, 2]
        )
        w, h = self.size
        vis = (
            (z > 0.5)
            & (z < 60)
            & (uv[:, 0] >= 0)
            & (uv[:, 0] < w)
            & (uv[:, 1] >= 0)
            & (uv[:, 1] < h)
        )
        idx = np.flatnonzero(vis)
        uv = uv[idx] + self.rng.normal(0, self.noise_px, (len(idx), 2))
        n_out = int(self.outlier_ratio * len(idx))
        if n_out:
            uv[:n_out] = self.rng.uniform([0, 0], [w, h], (n_out, 2))
        noisy = self.noisy[idx]
        uv[noisy, 0] += self.rng.normal(0, self.noisy_px, noisy.sum())
        desc = self.descriptors[idx]
        cov = None
        if self.noisy.any():
            cov = np.tile(np.eye(2, dtype=np.float32) * self.noise_px**2, (len(idx), 1, 1))
            cov[noisy, 0, 0] += self.noisy_px**2
        return Features(uv.astype(np.float32), np.ones(len(idx), np.float32), desc, cov)
