"""TensorRT fp16 end to end: visual odometry on KITTI 06 with the fp16 engine stays within 5 % of
the ONNX Runtime result. Runs on a machine with a CUDA GPU, tensorrt and cuda-python; skipped
elsewhere (never faked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import has_tensorrt_gpu

from tpr_vo.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def run_vo(config, sequence, backend) -> np.ndarray:
    from tpr_vo.frontend import VisualOdometry

    gt = sequence.gt_poses
    vo = VisualOdometry(config, sequence.intrinsics, backend=backend)
    poses = []
    for i in range(len(sequence)):
        frame = sequence[i]
        step = float(np.linalg.norm(gt[i, :3, 3] - gt[i - 1, :3, 3])) if i else 0.0
        poses.append(vo.process_frame(frame.image_left, frame.stamp_s, step_length_m=step))
    return np.stack([p.T_world_cam for p in poses])


@pytest.mark.gpu
@pytest.mark.skipif(not has_tensorrt_gpu(), reason="needs tensorrt, cuda-python and a CUDA GPU")
def test_fp16_vo_on_kitti06_within_5_percent_of_onnxruntime(kitti06, tmp_path):
    from tpr_vo.datasets import open_sequence
    from tpr_vo.eval import compute_metrics
    from tpr_vo.features.onnx_backend import OnnxRuntimeBackend
    from tpr_vo.features.tensorrt_backend import TensorRTBackend

    model = ROOT / "models" / "tpr_large.onnx"  # the default; TensorRT runs the float graph
    if not model.is_file():
        pytest.fail(f"the shipped model is needed for a meaningful VO comparison: {model}")
    config = load_config(
        ROOT / "config" / "kitti.yaml",
        {"frontend.scale": "gt", "features.engine_cache_dir": str(tmp_path / "engines")},
    )
    sequence = open_sequence(kitti06)
    ate = {}
    for name, backend in (
        ("onnxruntime", OnnxRuntimeBackend(config.features, device="cpu", onnx_path=model)),
        ("tensorrt-fp16", TensorRTBackend(config.features, onnx_path=model, precision="fp16")),
    ):
        est = run_vo(config, sequence, backend)
        metrics = compute_metrics(sequence.gt_poses, est, align="se3", scale_source="gt")
        ate[name] = metrics.ate_rmse_m
    assert ate["tensorrt-fp16"] <= 1.05 * ate["onnxruntime"] + 0.01, ate
