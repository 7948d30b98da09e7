"""The built-in synthetic driving sequence: a stereo pair (KITTI-like intrinsics, 0.54 m baseline)
drives along a curving road past textured ground, facades, parked boxes, poles and signs, with
exact ground truth. It is written in the KITTI layout so every tool reads it like KITTI:

    out_dir/image_0/000000.png ...  left, grayscale uint8
    out_dir/image_1/000000.png ...  right
    out_dir/calib.txt               P0..P3 (P1 = K [I | -b e_x], b = 0.54 m) and Tr
    out_dir/times.txt               10 Hz
    out_dir/poses.txt               T_world_cam0 per frame (KITTI format, first = identity)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.special import erfinv

from tpr_vo.atomic import write_text_atomic
from tpr_vo.datasets.synthetic_scene import (
    CAMERA_HEIGHT_M,
    LANE_OFFSET_M,
    PATH_STEP_M,
    Scene,
    build_scene,
)
from tpr_vo.errors import DataError
from tpr_vo.kitti_poses import write_kitti_poses

log = logging.getLogger(__name__)

FX_PX = 718.856  # KITTI 00-02 left camera, scaled with the image width
BASELINE_M = 0.54
FPS = 10.0
MOTIONS = ("drive", "stationary")
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
            cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, cv2.IMWRITE_PNG_FILTER,
            cv2.IMWRITE_PNG_FILTER_SUB]  # fmt: skip  # noisy images: fast beats small


def synthetic_intrinsics(width: int = 1241, height: int = 376) -> np.ndarray:
    """(3, 3) K: fx = fy = 718.856 at 1241 px width (scaled for other widths), centre near the
    middle like KITTI's."""
    f = FX_PX * width / 1241.0
    return np.array([[f, 0, 607.1928 * width / 1241.0], [0, f, 185.2157 * height / 376.0],
                     [0, 0, 1.0]])  # fmt: skip


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def vehicle_arc_lengths(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Distance driven (m) at each frame: speed varies smoothly between ~4 and ~14 m/s."""
    t = np.arange(num_frames) / FPS
    phase = rng.uniform(0, 2 * np.pi, 3)
    speed = 9.0 + 3.5 * np.sin(2 * np.pi * t / 14 + phase[0]) + 1.5 * np.sin(t / 2.3 + phase[1])
    speed = np.clip(speed, 4.0, 14.0)
    return np.concatenate([[0.0], np.cumsum(speed[1:]) / FPS])


def camera_poses(scene: Scene, arc_m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 4, 4) T_scene_cam0: right lane, heading along the road, small pitch/roll/bounce."""
    where = np.clip(arc_m / PATH_STEP_M, 0, len(scene.path_xz_m) - 2)
    i, frac = where.astype(int), where % 1.0
    xz = scene.path_xz_m[i] * (1 - frac)[:, None] + scene.path_xz_m[i + 1] * frac[:, None]
    heading = scene.heading_rad[i] * (1 - frac) + scene.heading_rad[i + 1] * frac
    phase = rng.uniform(0, 2 * np.pi, 3)
    poses = np.tile(np.eye(4), (len(arc_m), 1, 1))
    for n, s in enumerate(arc_m):
        right = np.array([np.cos(heading[n]), -np.sin(heading[n])])
        x, z = xz[n] + right * LANE_OFFSET_M
        pitch = np.deg2rad(0.4) * np.sin(s / 7.0 + phase[0])
        roll = np.deg2rad(0.3) * np.sin(s / 5.0 + phase[1])
        bounce = 0.02 * np.sin(s / 3.0 + phase[2])
        poses[n, :3, :3] = _rot_y(heading[n]) @ _rot_x(pitch) @ _rot_z(roll)
        poses[n, :3, 3] = [x, bounce, z]
    return poses


_GAUSS_LUT = (np.sqrt(2) * erfinv(2 * (np.arange(256) + 0.5) / 256 - 1)).astype(np.float32)[None]


def sensor_effects(image: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Mild optical blur, exposure gain, shot + read noise (sigma^2 = 1.5 + 0.02 I), 8 bits."""
    image = cv2.GaussianBlur(image, (5, 5), 0.7)
    image = image.astype(np.float32) * np.float32(gain)
    sigma = cv2.sqrt(cv2.add(image * np.float32(0.02), 1.5))
    uniform_u8 = np.frombuffer(rng.bytes(image.size), np.uint8).reshape(image.shape)
    noise = cv2.LUT(uniform_u8, _GAUSS_LUT)  # standard normal, quantised to 256 levels (fast)
    return cv2.add(image, cv2.multiply(noise, sigma), dtype=cv2.CV_8U)  # rounds, saturates


@dataclass(frozen=True)
class SyntheticWorld:
    """The scene and the rig's exact trajectory, before rendering.

    T_scene_cam0: (N, 4, 4) left camera poses in the scene frame (what the renderer uses);
    T_world_cam0: (N, 4, 4) the same relative to the first camera (what poses.txt holds);
    T_cam0_cam1: (4, 4) the right camera in the left camera's frame (+baseline along x)."""

    scene: Scene
    T_scene_cam0: np.ndarray
    T_world_cam0: np.ndarray
    T_cam0_cam1: np.ndarray
    arc_m: np.ndarray  # (N,) distance driven at each frame


def synthetic_world(num_frames: int = 200, seed: int = 0, motion: str = "drive") -> SyntheticWorld:
    """Build the scene and trajectory of `render_synthetic_sequence` (same arguments)."""
    if motion not in MOTIONS:
        raise DataError(f"synthetic motion {motion!r}: expected one of {MOTIONS}")
    if num_frames < 1:
        raise DataError(f"synthetic sequence: need num_frames >= 1, got {num_frames}")
    rng = np.random.default_rng([seed, 10])
    arc_m = vehicle_arc_lengths(num_frames, rng)
    if motion == "stationary":
        arc_m = np.zeros(num_frames)
    scene = build_scene(float(arc_m[-1]), seed)
    T_scene_cam = camera_poses(scene, arc_m, rng)
    T_world_cam = np.linalg.inv(T_scene_cam[0]) @ T_scene_cam
    T_world_cam[0] = np.eye(4)  # exactly, not up to rounding
    if motion == "stationary":
        T_world_cam[:] = np.eye(4)
    T_cam0_cam1 = np.eye(4)
    T_cam0_cam1[0, 3] = BASELINE_M
    return SyntheticWorld(scene, T_scene_cam, T_world_cam, T_cam0_cam1, arc_m)


def render_synthetic_sequence(
    out_dir: str | os.PathLike,
    num_frames: int = 200,
    seed: int = 0,
    motion: str = "drive",
    width: int = 1241,
    height: int = 376,
) -> Path:
    """Render the sequence into `out_dir` (KITTI layout, see the module docstring) and return it.

    Deterministic for (num_frames, seed, motion, width, height). Files appear only when the whole
    sequence rendered: everything is written to a temp folder beside `out_dir` and moved in."""
    from tpr_vo.datasets.synthetic_render import QuadRenderer

    if width < 64 or height < 64:
        raise DataError(f"synthetic sequence: need width, height >= 64 px, got {width}x{height}")
    started = time.perf_counter()
    world = synthetic_world(num_frames, seed, motion)
    scene, T_scene_cam, T_cam0_cam1 = world.scene, world.T_scene_cam0, world.T_cam0_cam1
    rng = np.random.default_rng([seed, 1])
    K = synthetic_intrinsics(width, height)
    renderer = QuadRenderer(K, width, height)
    built = time.perf_counter()

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder (expected an output folder)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for cam in ("image_0", "image_1"):
            (tmp / cam).mkdir()
        right_gain = rng.uniform(0.95, 1.05)
        exposure = 1.0 + 0.12 * np.sin(np.arange(num_frames) / 9.0 + rng.uniform(0, 6.3))
        exposure *= np.exp(np.cumsum(rng.normal(0, 0.01, num_frames)))  # auto-exposure drift

        def render_frame(i: int) -> None:
            frame_rng = np.random.default_rng([seed, 2, i])
            views = (("image_0", T_scene_cam[i]), ("image_1", T_scene_cam[i] @ T_cam0_cam1))
            for cam, T_cam in views:
                gain = exposure[i] * (right_gain if cam == "image_1" else 1.0)
                image = sensor_effects(renderer.render(scene, T_cam).image_u8, gain, frame_rng)
                if not cv2.imwrite(str(tmp / cam / f"{i:06d}.png"), image, PNG_FAST):
                    raise DataError(f"{tmp / cam}: could not write frame {i}")

        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(render_frame, range(num_frames)))
        _write_calib(tmp / "calib.txt", K)
        times = "".join(f"{i / FPS:.6e}\n" for i in range(num_frames))
        write_text_atomic(tmp / "times.txt", times)
        write_kitti_poses(tmp / "poses.txt", world.T_world_cam0)
        _move_into(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic %s sequence: %d frames %dx%d, seed %d, %.1f m, scene %.1f s, total %.1f s",
             motion, num_frames, width, height, seed, world.arc_m[-1], built - started,
             time.perf_counter() - started)  # fmt: skip
    return out_dir


def _write_calib(path: Path, K: np.ndarray) -> None:
    def row(name, tx_m):
        P = np.hstack([K, K @ np.array([[tx_m], [0.0], [0.0]])])
        return f"{name}: " + " ".join(f"{v:.12e}" for v in P.ravel()) + "\n"

    # P2/P3 repeat P0/P1 (no separate colour cameras); Tr maps a Velodyne-like body frame
    # (x forward, y left, z up) to the left camera, as in KITTI.
    tr = "Tr: " + " ".join(f"{v:.12e}" for v in [0, -1, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0]) + "\n"
    text = row("P0", 0.0) + row("P1", -BASELINE_M) + row("P2", 0.0) + row("P3", -BASELINE_M)
    write_text_atomic(path, text + tr)


def _move_into(src: Path, dst: Path) -> None:
    """Move the rendered entries into dst, replacing earlier ones; poses.txt goes last."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "poses.txt").unlink(missing_ok=True)
    for name in ("image_0", "image_1", "calib.txt", "times.txt", "poses.txt"):
        target = dst / name
        if target.is_dir():
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=dst))
            target.rename(trash / name)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(src / name, target)


__all__ = [
    "CAMERA_HEIGHT_M",
    "SyntheticWorld",
    "render_synthetic_sequence",
    "synthetic_intrinsics",
    "synthetic_world",
]
