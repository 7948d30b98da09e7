"""TPR backends: ONNX Runtime vs torch parity on real KITTI 06 frames, model-file resolution,
backend selection and its messages, and the ONNX Runtime path without torch or tensorrt."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import BackendUnavailableError
from tpr_vo.features.learned import resolve_model_path, shipped_model_dirs
from tpr_vo.features.parity import (
    MAX_KEYPOINT_DIST_PX,
    MIN_DESCRIPTOR_COSINE,
    MIN_SHARED_FRACTION,
    compare_features,
)
from tpr_vo.features.select import create_tpr_backend

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
KITTI_FRAMES = ("000000.png", "000025.png")


@pytest.fixture(scope="module")
def random_model_files(tmp_path_factory):
    """A randomly initialised TPRNet (fixed seed) as .pt + .onnx in a tmp dir: tests the
    export/runtime chain; never shipped."""
    from tpr_vo.export.onnx import export_onnx
    from tpr_vo.features.model import TPRNet, save_checkpoint

    torch.manual_seed(0)
    model = TPRNet().eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, as after training
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    folder = tmp_path_factory.mktemp("model")
    save_checkpoint(folder / "net.pt", model, {"note": "random init, tests only"})
    report = export_onnx(model, folder / "net.onnx")
    assert report.passed, report.summary()
    return folder / "net.pt", folder / "net.onnx"


def kitti_frames(kitti06: Path) -> list[np.ndarray]:
    frames = [cv2.imread(str(kitti06 / "image_0" / n), cv2.IMREAD_GRAYSCALE) for n in KITTI_FRAMES]
    assert all(f is not None and f.shape == (370, 1226) for f in frames)
    return frames


def assert_parity(model_pt: Path, model_onnx: Path, frames: list[np.ndarray]):
    from tpr_vo.features.onnx_backend import OnnxRuntimeBackend
    from tpr_vo.features.torch_backend import TorchBackend

    cfg = FeaturesConfig(model_path=str(model_pt), onnx_int8=False)  # the float graph
    reference = TorchBackend(cfg, device="cpu")
    ort = OnnxRuntimeBackend(cfg, device="cpu")
    assert ort.model_path == model_onnx and ort.name == "tpr/onnxruntime-cpu"
    for frame in frames:
        ref, test = reference.extract(frame), ort.extract(frame)
        assert len(ref) > 500, "too few keypoints for a meaningful parity check"
        report = compare_features(ref, test)
        assert report.shared_fraction >= MIN_SHARED_FRACTION, report.summary()
        assert report.max_keypoint_dist_px <= MAX_KEYPOINT_DIST_PX, report.summary()
        assert report.min_descriptor_cosine >= MIN_DESCRIPTOR_COSINE, report.summary()
        assert abs(len(ref) - len(test)) <= 0.02 * len(ref)


def test_onnxruntime_matches_torch_on_kitti06(kitti06, random_model_files):
    assert_parity(*random_model_files, kitti_frames(kitti06))


@pytest.mark.parametrize("stem", ["tpr_small", "tpr_large", "tpr_large_subpix"])
def test_shipped_model_onnx_matches_its_checkpoint(kitti06, stem):
    pt, onnx = ROOT / "models" / f"{stem}.pt", ROOT / "models" / f"{stem}.onnx"
    assert pt.is_file() and onnx.is_file(), f"{stem} ships in models/"
    assert_parity(pt, onnx, kitti_frames(kitti06))


def test_model_path_resolution(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(BackendUnavailableError, match="nope.onnx"):
        resolve_model_path(str(missing), ".onnx")
    (tmp_path / "mine.onnx").write_bytes(b"x")
    # A .pt path names the model family: the ONNX file beside it is used.
    assert resolve_model_path(str(tmp_path / "mine.pt"), ".onnx") == tmp_path / "mine.onnx"
    dirs = shipped_model_dirs()
    assert dirs[-1] == ROOT / "models"
    shipped = [d / "tpr_large.onnx" for d in dirs]
    if any(p.is_file() for p in shipped):
        assert resolve_model_path("", ".onnx") in shipped
    else:
        with pytest.raises(BackendUnavailableError, match="tpr_large.onnx"):
            resolve_model_path("", ".onnx")


def test_shipped_model_found_in_a_colcon_install(tmp_path, monkeypatch):
    """A colcon install puts models/* in <prefix>/share/tpr_vo/models (setup.py data_files);
    ament_index finds the prefix through AMENT_PREFIX_PATH."""
    pytest.importorskip("ament_index_python")
    prefix = tmp_path / "install"
    (prefix / "share/ament_index/resource_index/packages").mkdir(parents=True)
    (prefix / "share/ament_index/resource_index/packages/tpr_vo").write_text("")
    models = prefix / "share/tpr_vo/models"
    models.mkdir(parents=True)
    (models / "tpr_small.onnx").write_bytes(b"onnx")
    (models / "tpr_large.onnx").write_bytes(b"onnx")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    assert shipped_model_dirs()[0] == models
    assert resolve_model_path("", ".onnx") == models / "tpr_large.onnx"
    assert resolve_model_path("tpr_small", ".onnx") == models / "tpr_small.onnx"


def test_a_bare_model_name_finds_a_shipped_model_and_a_file_comes_first(tmp_path, monkeypatch):
    """`features.model_path: tpr_large` (no folder, no suffix) names a shipped model; a file of
    that name in the working folder wins; a folder or a suffix turns the lookup off; a name
    that is nowhere is refused with every path tried."""
    monkeypatch.chdir(tmp_path)
    for suffix in (".onnx", ".pt"):
        shipped = [d / f"tpr_large{suffix}" for d in shipped_model_dirs()]
        assert resolve_model_path("tpr_large", suffix) in shipped
    (tmp_path / "tpr_large.onnx").write_bytes(b"x")
    assert resolve_model_path("tpr_large", ".onnx") == Path("tpr_large.onnx")
    with pytest.raises(BackendUnavailableError, match="sub/tpr_small.onnx"):
        resolve_model_path("sub/tpr_small", ".onnx")
    with pytest.raises(BackendUnavailableError, match="models/no_such_model.onnx"):
        resolve_model_path("no_such_model", ".onnx")


def test_explicit_and_auto_selection(random_model_files, caplog):
    _, onnx = random_model_files
    cfg = FeaturesConfig(model_path=str(onnx), backend="onnxruntime", onnx_threads=1)
    assert create_tpr_backend(cfg).name == "tpr/onnxruntime-cpu"
    with caplog.at_level(logging.INFO, logger="tpr_vo.features.select"):
        auto = create_tpr_backend(FeaturesConfig(model_path=str(onnx), backend="auto"))
    assert auto.name == "tpr/onnxruntime-cpu"  # no GPU, no tensorrt on this machine
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "chose tpr/onnxruntime-cpu" in message
    assert "tensorrt (" in message and "onnxruntime-cuda (" in message


def test_missing_libraries_name_the_package(random_model_files, monkeypatch):
    _, onnx = random_model_files
    try:
        import tensorrt  # noqa: F401

        has_trt = True
    except ImportError:
        has_trt = False
    if not has_trt:
        with pytest.raises(BackendUnavailableError, match="pip install tensorrt"):
            create_tpr_backend(FeaturesConfig(model_path=str(onnx), backend="tensorrt"))
    # Simulate a machine without onnxruntime / torch: the error names what to install.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailableError, match="pip install onnxruntime"):
        create_tpr_backend(FeaturesConfig(model_path=str(onnx), backend="onnxruntime"))
    with pytest.raises(BackendUnavailableError, match="pip install torch"):
        create_tpr_backend(FeaturesConfig(model_path=str(onnx), backend="torch"))
    with pytest.raises(BackendUnavailableError, match="no TPR backend can run here"):
        create_tpr_backend(FeaturesConfig(model_path=str(onnx), backend="auto"))


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "tensorrt", "pycuda", "cuda"):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def test_onnxruntime_path_runs_without_torch_or_tensorrt(kitti06, random_model_files, tmp_path):
    """The whole auto-selected ONNX Runtime path in a fresh interpreter where importing torch,
    tensorrt or cuda raises ImportError (a sitecustomize meta-path hook)."""
    _, onnx = random_model_files
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    frame_path = kitti06 / "image_0" / KITTI_FRAMES[0]
    script = textwrap.dedent(
        f"""
        import json, sys, cv2
        try:
            import torch
            raise SystemExit("torch import was not blocked")
        except ImportError:
            pass
        from tpr_vo.config import FeaturesConfig
        from tpr_vo.features.base import create_backend
        backend = create_backend(FeaturesConfig(model_path={str(onnx)!r}))
        feats = backend.extract(cv2.imread({str(frame_path)!r}, cv2.IMREAD_GRAYSCALE))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorrt"))
        print(json.dumps({{"name": backend.name, "n": len(feats), "heavy": heavy,
                          "xy": feats.keypoints_px[:5].tolist()}}))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["name"] == "tpr/onnxruntime-cpu" and result["heavy"] == []
    # Same keypoints as the ONNX Runtime backend in this (torch-enabled) process.
    from tpr_vo.features.onnx_backend import OnnxRuntimeBackend

    here = OnnxRuntimeBackend(FeaturesConfig(model_path=str(onnx)), device="cpu")
    expected = here.extract(cv2.imread(str(frame_path), cv2.IMREAD_GRAYSCALE))
    assert result["n"] == len(expected) > 500
    np.testing.assert_allclose(result["xy"], expected.keypoints_px[:5], atol=1e-4)


def test_stage_timings_are_reported(random_model_files):
    from tpr_vo.features.onnx_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(FeaturesConfig(model_path=str(random_model_files[1])))
    backend.extract(np.full((100, 150), 128, np.uint8))
    assert set(backend.last_timings_ms) == {"preprocess", "network", "postprocess"}
    assert all(v >= 0 for v in backend.last_timings_ms.values())


def test_multi_scale_extraction_maps_each_scale_back(kitti06, random_model_files):
    """features.scales: a scale's keypoints are that resized image's keypoints in the original
    image's pixels; [1.0] is the single-scale extraction; several scales merge by score."""
    onnx_path = str(random_model_files[1])
    image = cv2.imread(str(kitti06 / "image_0" / KITTI_FRAMES[0]), cv2.IMREAD_GRAYSCALE)
    h, w = image.shape

    def backend(scales):
        cfg = FeaturesConfig(backend="onnxruntime", model_path=onnx_path, scales=scales)
        return create_tpr_backend(cfg)

    single = backend([1.0]).extract(image)
    small = cv2.resize(image, (round(w * 0.5), round(h * 0.5)), interpolation=cv2.INTER_AREA)
    at_half = backend([1.0]).extract(small)
    only_half = backend([0.5]).extract(image)
    factor = np.array([w / small.shape[1], h / small.shape[0]], np.float32)
    np.testing.assert_allclose(only_half.keypoints_px, (at_half.keypoints_px + 0.5) * factor - 0.5)
    np.testing.assert_array_equal(only_half.descriptors, at_half.descriptors)
    both_backend = backend([1.0, 0.5])
    both = both_backend.extract(image)
    assert len(both) == min(2000, len(single) + len(at_half))
    assert np.all(np.diff(both.scores) <= 0)
    assert both.keypoints_px.min() >= 0
    assert np.all(both.keypoints_px.max(axis=0) <= [w - 1, h - 1])
    assert set(both_backend.last_timings_ms) == {"preprocess", "network", "postprocess"}
