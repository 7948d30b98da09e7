"""PyTorch on a CUDA GPU vs ONNX Runtime on the CPU: keypoint/descriptor parity and network time
for fp32 (TF32 off), TF32 and fp16, on real frames. For machines with a GPU but no TensorRT:
it measures what the GPU precisions do to the features, not TensorRT itself.

  python benchmarks/gpu_torch_parity.py \
      --frames ../shared/data/kitti/dataset/sequences/06/image_0 --json out/gpu_parity.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tpr_vo.atomic import atomic_path  # noqa: E402
from tpr_vo.config import load_config  # noqa: E402
from tpr_vo.features.onnx_backend import OnnxRuntimeBackend  # noqa: E402
from tpr_vo.features.parity import compare_features  # noqa: E402
from tpr_vo.features.torch_backend import TorchBackend  # noqa: E402

PRECISIONS = ("fp32", "tf32", "fp16")


class CudaPrecisionBackend(TorchBackend):
    """TorchBackend on CUDA with the weights and input in `precision`."""

    def __init__(self, features_cfg, precision: str):
        super().__init__(features_cfg, device="cuda")
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self._model = self._model.to(self.dtype)
        self.name = f"tpr/torch-cuda-{precision}"

    def set_tf32(self) -> None:
        allow = self.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow

    def _infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.set_tf32()
        with torch.inference_mode():
            x = torch.from_numpy(tensor).to(self.device, self.dtype)
            scores, descriptors = self._model(x)
        return scores.float().cpu().numpy(), descriptors.float().cpu().numpy()

    def network_ms(self, tensor: np.ndarray, repeats: int = 200) -> float:
        """Median device time of the network alone (input already on the GPU), CUDA events."""
        self.set_tf32()
        x = torch.from_numpy(tensor).to(self.device, self.dtype)
        times = []
        with torch.inference_mode():
            for i in range(repeats + 20):
                start = torch.cuda.Event(enable_timing=True)
                stop = torch.cuda.Event(enable_timing=True)
                start.record()
                self._model(x)
                stop.record()
                stop.synchronize()
                if i >= 20:
                    times.append(start.elapsed_time(stop))
        return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True, help="folder of grayscale frames (PNG)")
    parser.add_argument("--count", type=int, default=5, help="frames compared")
    parser.add_argument("--config", default=str(ROOT / "config" / "kitti.yaml"))
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure", file=sys.stderr)
        return 2
    paths = sorted(Path(args.frames).glob("*.png"))[: args.count]
    if not paths:
        print(f"{args.frames}: no PNG frames", file=sys.stderr)
        return 2
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]
    features_cfg = load_config(args.config).features
    reference = OnnxRuntimeBackend(features_cfg, device="cpu")
    ref_features = [reference.extract(im) for im in images]
    result = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "frames": [str(p.name) for p in paths],
        "image_hw": list(images[0].shape),
        "reference": reference.name,
        "precisions": {},
    }
    for precision in PRECISIONS:
        backend = CudaPrecisionBackend(features_cfg, precision)
        reports, reports_1px, extract_ms = [], [], []
        for image, ref in zip(images, ref_features):
            backend.extract(image)  # warm-up (cuDNN algorithm choice)
            t0 = time.perf_counter()
            feats = backend.extract(image)
            extract_ms.append((time.perf_counter() - t0) * 1e3)
            reports.append(compare_features(ref, feats, reference_name=reference.name,
                                            test_name=backend.name))  # fmt: skip
            reports_1px.append(compare_features(ref, feats, tol_px=1.0))
        tensor = np.zeros((1, 1, 384, 1248), np.float32)
        tensor[0, 0, : images[0].shape[0], : images[0].shape[1]] = images[0] / 255.0
        entry = {
            "network_ms_median": backend.network_ms(tensor),
            "network_input_hw": [384, 1248],
            "extract_ms_median": float(np.median(extract_ms)),
            "shared_fraction_0.5px_min": min(r.shared_fraction for r in reports),
            "shared_fraction_1px_min": min(r.shared_fraction for r in reports_1px),
            "max_keypoint_dist_px": max(r.max_keypoint_dist_px for r in reports),
            "min_descriptor_cosine": min(r.min_descriptor_cosine for r in reports),
            "mean_descriptor_cosine": float(np.mean([r.mean_descriptor_cosine for r in reports])),
            "passed_all": all(r.passed for r in reports),
            "reports": [r.to_json_dict() for r in reports],
        }
        result["precisions"][precision] = entry
        print(
            f"{precision:5s} network {entry['network_ms_median']:.3f} ms  extract "
            f"{entry['extract_ms_median']:.1f} ms  shared@0.5px "
            f"{entry['shared_fraction_0.5px_min']:.4f}  shared@1px "
            f"{entry['shared_fraction_1px_min']:.4f}  cos min {entry['min_descriptor_cosine']:.5f}"
            f"  parity {'PASS' if entry['passed_all'] else 'FAIL'}"
        )
    with atomic_path(args.json) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
