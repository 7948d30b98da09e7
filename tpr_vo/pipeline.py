"""Offline driver: loop a sequence through VisualOdometry, then write results side by side.

`OfflinePipeline(sequence, config, out_dir).run()` reads like its table of contents; the
algorithm lives in `tpr_vo.frontend`, the metrics in `tpr_vo.eval`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tpr_vo.atomic import write_text_atomic
from tpr_vo.config import VoConfig, dump_config
from tpr_vo.datasets.base import Sequence
from tpr_vo.errors import ConfigError
from tpr_vo.kitti_poses import write_kitti_poses
from tpr_vo.prefetch import features_for_prefetch, prefetched
from tpr_vo.progress import progress
from tpr_vo.types import CameraIntrinsics, PoseEstimate

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced. T_world_cam: (N, 4, 4), one pose per input frame, in input order."""

    out_dir: Path | None
    T_world_cam: np.ndarray
    tracked: np.ndarray
    fps: float
    stage_ms: dict[str, float]
    metrics: dict | None = None
    plot_T_world_cam: np.ndarray | None = field(default=None, repr=False)
    estimates: list[PoseEstimate] = field(default_factory=list, repr=False)


def scale_source(config: VoConfig) -> str:
    """Where metric scale comes from: stereo | gt | height | none (scale-free mono)."""
    return "stereo" if config.frontend.mode == "stereo" else config.frontend.scale


def effective_intrinsics(sequence_intrinsics: CameraIntrinsics, config: VoConfig):
    """The dataset's intrinsics, overridden by config.camera where it sets them (> 0)."""
    cam = config.camera
    if cam.fx <= 0 and cam.baseline_m <= 0:
        return sequence_intrinsics
    base = sequence_intrinsics
    return CameraIntrinsics(
        fx=cam.fx if cam.fx > 0 else base.fx,
        fy=cam.fy if cam.fy > 0 else base.fy,
        cx=cam.cx if cam.cx > 0 else base.cx,
        cy=cam.cy if cam.cy > 0 else base.cy,
        width_px=base.width_px,
        height_px=base.height_px,
        baseline_m=cam.baseline_m if cam.baseline_m > 0 else base.baseline_m,
    )


def gt_step_lengths_m(gt_T_world_cam: np.ndarray) -> np.ndarray:
    """(N,) length of each frame's ground-truth translation; 0 for the first frame."""
    centres = gt_T_world_cam[:, :3, 3]
    steps = np.zeros(len(centres))
    steps[1:] = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    return steps


class OfflinePipeline:
    def __init__(
        self,
        sequence: Sequence,
        config: VoConfig,
        out_dir: str | Path | None,
        max_frames: int | None = None,
        show_progress: bool | None = None,
        backend=None,
        prefetch: bool = True,
    ):
        self.sequence = sequence
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.num_frames = len(sequence) if max_frames is None else min(max_frames, len(sequence))
        self.show_progress = show_progress
        self.backend = backend
        self.prefetch = prefetch  # read + extract frame i+1 while frame i is tracked
        self._check_inputs()

    def run(self) -> RunResult:
        estimates, stage_ms, fps = self._process_frames()
        result = self._collect(estimates, stage_ms, fps)
        result.metrics = self._evaluate(result)
        if self.out_dir is not None:
            self._write_poses(result)
            self._write_metrics(result)
            self._write_plot(result)
            self._write_config_and_timing(result)
        return result

    # -- steps -------------------------------------------------------------------------------

    def _check_inputs(self) -> None:
        front = self.config.frontend
        if self.num_frames <= 0:
            raise ConfigError(f"{self.sequence.name}: no frames to process")
        if front.mode == "stereo" and not self.sequence.has_right:
            raise ConfigError(
                f"{self.sequence.name}: frontend.mode=stereo needs a right camera (image_1/)"
            )
        if (
            front.mode == "stereo"
            and not effective_intrinsics(self.sequence.intrinsics, self.config).baseline_m
        ):
            raise ConfigError(f"{self.sequence.name}: stereo needs a baseline (P1 in calib.txt)")
        if front.mode == "mono" and front.scale == "gt" and self.sequence.gt_poses is None:
            raise ConfigError(
                f"{self.sequence.name}: --scale gt needs ground-truth poses (poses.txt or --gt)"
            )

    def _process_frames(self) -> tuple[list[PoseEstimate], dict[str, float], float]:
        from tpr_vo.features import create_backend
        from tpr_vo.frontend import VisualOdometry

        intrinsics = effective_intrinsics(self.sequence.intrinsics, self.config)
        backend = self.backend
        if backend is None:
            features = self.config.features
            backend = create_backend(
                features_for_prefetch(features) if self.prefetch else features,
                keypoint_covariance=self.config.frontend.uses_keypoint_covariance,
            )
        vo = VisualOdometry(self.config, intrinsics, backend=backend)
        use_gt_scale = self.config.frontend.mode == "mono" and self.config.frontend.scale == "gt"
        steps_m = gt_step_lengths_m(self.sequence.gt_poses) if use_gt_scale else None
        stereo = self.config.frontend.mode == "stereo"
        self.sequence.read_right = stereo  # a mono run decodes no right images
        estimates: list[PoseEstimate] = []
        decode_ms: list[float] = []

        def load(i: int):
            t0 = time.perf_counter()
            frame = self.sequence[i]
            t1 = time.perf_counter()
            right = frame.image_right if stereo else None
            return frame, (t1 - t0) * 1e3, vo.extract(frame.image_left, right)

        frames = progress(
            prefetched(load, self.num_frames, self.prefetch),
            desc=self.sequence.name,
            total=self.num_frames,
            enable=self.show_progress,
        )
        t_start = time.perf_counter()
        for i, (frame, read_ms, extracted) in enumerate(frames):
            estimate = vo.process_frame(
                frame.image_left,
                frame.stamp_s,
                right_image=frame.image_right if stereo else None,
                step_length_m=float(steps_m[i]) if steps_m is not None else None,
                extracted=extracted,
            )
            decode_ms.append(read_ms)
            estimates.append(estimate)
        wall_s = time.perf_counter() - t_start
        stage_ms = _mean_stage_ms(estimates)
        stage_ms["decode"] = float(np.mean(decode_ms)) if decode_ms else 0.0
        # End to end: reading, extraction and tracking, overlapped when prefetching.
        fps = len(estimates) / wall_s if wall_s > 0 else float("nan")
        return estimates, stage_ms, fps

    def _collect(self, estimates, stage_ms, fps) -> RunResult:
        T = np.stack([e.T_world_cam for e in estimates])
        tracked = np.array([e.tracked for e in estimates], dtype=bool)
        return RunResult(self.out_dir, T, tracked, fps, stage_ms, estimates=estimates)

    def _evaluate(self, result: RunResult) -> dict | None:
        gt = self.sequence.gt_poses
        if gt is None:
            return None
        from tpr_vo.eval import compute_metrics

        source = scale_source(self.config)
        metrics = compute_metrics(
            gt[: self.num_frames],
            result.T_world_cam,
            align="sim3" if source == "none" else "se3",
            tracked=result.tracked,
            fps=result.fps,
            scale_source=source,
        )
        if source == "none":
            # scale-free mono: show the estimate in the ground truth's frame and scale
            result.plot_T_world_cam = metrics.alignment.apply(result.T_world_cam)
        return metrics.to_json_dict()

    def _write_poses(self, result: RunResult) -> None:
        write_kitti_poses(self.out_dir / "poses.txt", result.T_world_cam)

    def _write_metrics(self, result: RunResult) -> None:
        if result.metrics is not None:
            text = json.dumps(result.metrics, indent=2, allow_nan=False)
            write_text_atomic(self.out_dir / "metrics.json", text + "\n")

    def _write_plot(self, result: RunResult) -> None:
        from tpr_vo.eval import plot_trajectory

        gt = self.sequence.gt_poses
        title = f"{self.sequence.name}: {self.config.features.kind}, {self.config.frontend.mode}"
        if self.config.frontend.mode == "mono":
            title += f", scale={self.config.frontend.scale}"
        aligned = result.plot_T_world_cam is not None
        plot_trajectory(
            None if gt is None else gt[: self.num_frames],
            result.plot_T_world_cam if aligned else result.T_world_cam,
            self.out_dir / "trajectory.png",
            title=title,
            est_label="estimate (Sim(3)-aligned)" if aligned else "estimate",
        )

    def _write_config_and_timing(self, result: RunResult) -> None:
        dump_config(self.config, self.out_dir / "config.yaml")
        timing = {
            "frames": len(result.estimates),
            "fps": result.fps,
            "ms_per_stage": result.stage_ms,
            "tracked_frames": int(result.tracked.sum()),
        }
        write_text_atomic(self.out_dir / "timing.json", json.dumps(timing, indent=2) + "\n")


def _mean_stage_ms(estimates: list[PoseEstimate]) -> dict[str, float]:
    stages: dict[str, list[float]] = {}
    for estimate in estimates:
        for name, ms in estimate.timings_ms.items():
            stages.setdefault(name, []).append(ms)
    return {name: float(np.mean(values)) for name, values in stages.items()}
