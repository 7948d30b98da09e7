"""Shared test fixtures: where the real data lives, and a skip policy that never skips in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("TPR_VO_DATA", ROOT.parent / "shared" / "data"))


def has_tensorrt_gpu() -> bool:
    """tensorrt and cuda-python import and a CUDA GPU answers (the `gpu`-marked tests' gate)."""
    try:
        from tpr_vo.features.tensorrt_backend import cuda_gpu_name, import_tensorrt

        import_tensorrt()
        cuda_gpu_name()
        return True
    except Exception:
        return False


def load_benchmark(name: str):
    """benchmarks/<name>.py imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_data(relative: str) -> Path:
    """Path under the real-data folder; skip when absent on a user's machine, fail in CI."""
    path = data_root() / relative
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real data missing in CI: {path}")
        pytest.skip(f"real data not found: {path} (set TPR_VO_DATA)")
    return path


@pytest.fixture
def kitti06() -> Path:
    return require_data("kitti/dataset/sequences/06")


@pytest.fixture
def kitti_gt_full() -> Path:
    return require_data("kitti/gt_full")


@pytest.fixture
def graffiti() -> Path:
    return require_data("homography/v_graf")
