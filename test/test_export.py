"""Export: torch -> ONNX (names, dynamic/fixed size, metadata, parity), the `tpr-vo export`
command, TensorRT engine-cache keys and score-head selection; TensorRT parity on a GPU."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import has_tensorrt_gpu

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tpr_vo.cli import main  # noqa: E402
from tpr_vo.export.onnx import export_onnx, onnx_metadata  # noqa: E402
from tpr_vo.features.model import TPRNet, save_checkpoint  # noqa: E402


def random_model(seed=0, **arch):
    torch.manual_seed(seed)
    return TPRNet(**arch).eval()


def input_dims(path: Path) -> list:
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


def test_dynamic_export_runs_at_any_multiple_of_32(tmp_path):
    model = random_model()
    path = tmp_path / "net.onnx"
    report = export_onnx(model, path, opset=17)
    assert report.passed, report.summary()
    assert report.max_abs_score_diff < 1e-4 and report.max_abs_descriptor_diff < 1e-4
    assert report.num_reference > 500
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["scores", "descriptors"]
    assert proto.opset_import[0].version == 17
    assert input_dims(path) == [1, 1, "height", "width"]
    assert not [n for n in proto.graph.node if n.op_type in ("Identity", "BatchNormalization")]
    meta = onnx_metadata(path)
    assert json.loads(meta["tpr_vo.arch"]) == model.arch and meta["tpr_vo.input_size"] == "dynamic"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in ((64, 96), (128, 320)):
        scores, desc = session.run(None, {"image": np.random.rand(1, 1, h, w).astype(np.float32)})
        assert scores.shape == (1, 1, h, w) and desc.shape == (1, 64, h // 8, w // 8)
        np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1.0, atol=1e-4)


def test_fixed_size_export_from_checkpoint_with_stride_4(tmp_path):
    model = random_model(seed=1, descriptor_stride=4, descriptor_dim=32)
    save_checkpoint(tmp_path / "s4.pt", model, {"note": "test"})
    path = tmp_path / "s4.onnx"
    report = export_onnx(tmp_path / "s4.pt", path, height=376, width=1241)
    assert report.passed, report.summary()
    assert input_dims(path) == [1, 1, 384, 1248]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _, desc = session.run(None, {"image": np.zeros((1, 1, 384, 1248), np.float32)})
    assert desc.shape == (1, 32, 96, 312)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="dimension"):
        session.run(None, {"image": np.zeros((1, 1, 64, 64), np.float32)})


@pytest.mark.parametrize("branch", ["fine", "half"])
def test_detector_branch_starts_as_the_base_model_and_exports(tmp_path, branch):
    """An optional detector branch's last conv starts at zero: a base checkpoint's weights give
    the same outputs. Once trained (non-zero), its graph (pixel-unshuffle for the fine branch,
    a 1/2-resolution pixel-shuffle for the half branch) exports with parity."""
    base, extra = random_model(seed=2), random_model(seed=3, **{f"{branch}_width": 16})
    missing = extra.load_state_dict(base.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith(f"{branch}_head.") for k in missing)
    x = torch.rand(1, 1, 64, 96)
    head = getattr(extra, f"{branch}_head")
    with torch.no_grad():
        assert torch.equal(base(x)[0], extra(x)[0])
        torch.nn.init.normal_(head[-1].weight, std=0.5)
        assert not torch.allclose(base(x)[0], extra(x)[0], atol=1e-3)
    report = export_onnx(extra, tmp_path / "m.onnx", opset=17)
    assert report.passed, report.summary()
    assert report.max_abs_score_diff < 1e-4
    assert json.loads(onnx_metadata(tmp_path / "m.onnx")["tpr_vo.arch"])[f"{branch}_width"] == 16


def test_export_command_writes_model_and_parity_report(tmp_path, capsys):
    save_checkpoint(tmp_path / "m.pt", random_model(seed=2), {"note": "test"})
    assert main(["export", str(tmp_path / "m.pt")]) == 0
    report = json.loads((tmp_path / "m.parity.json").read_text())
    assert report["passed"] and report["shared_fraction"] >= 0.98
    assert (tmp_path / "m.onnx").is_file()
    assert "PASS" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing.pt")]) == 1
    assert "missing.pt" in capsys.readouterr().err


class FakeTensor(SimpleNamespace):
    pass


class FakeLayer:
    def __init__(self, inputs, outputs):
        self._inputs = [None if i is None else FakeTensor(name=i) for i in inputs]
        self._outputs = [FakeTensor(name=o) for o in outputs]
        self.num_inputs, self.num_outputs = len(inputs), len(outputs)

    def get_input(self, k):
        return self._inputs[k]

    def get_output(self, k):
        return self._outputs[k]


class FakeNetwork:
    """The TensorRT INetworkDefinition calls score_head_layers uses, over a TPRNet-like graph."""

    def __init__(self, layers):
        self._layers = layers
        self.num_layers = len(layers)

    def get_layer(self, i):
        return self._layers[i]


def test_score_head_is_what_only_scores_depend_on():
    from tpr_vo.export.tensorrt import score_head_layers

    net = FakeNetwork(
        [
            FakeLayer(["image", None], ["stem"]),  # 0 shared
            FakeLayer(["stem"], ["trunk"]),  # 1 shared
            FakeLayer(["trunk"], ["s1"]),  # 2 score conv3x3
            FakeLayer(["s1"], ["s2"]),  # 3 score conv1x1
            FakeLayer(["s2"], ["s3"]),  # 4 pixel shuffle
            FakeLayer(["s3"], ["scores"]),  # 5 sigmoid
            FakeLayer(["trunk"], ["d1"]),  # 6 descriptor conv
            FakeLayer(["d1"], ["d_norm"]),  # 7 ReduceL2
            FakeLayer(["d1", "d_norm"], ["descriptors"]),  # 8 Div
        ]
    )
    assert score_head_layers(net) == [2, 3, 4, 5]


def test_engine_cache_key_changes_with_each_component(tmp_path):
    from tpr_vo.export.tensorrt import engine_cache_path

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")
    base = (tmp_path, a, "NVIDIA H100 80GB HBM3", "10.9.0", 384, 1248, "fp16")
    key = engine_cache_path(*base)
    assert key.parent == tmp_path and key.suffix == ".engine"
    assert "NVIDIA-H100-80GB-HBM3" in key.name and "trt10.9.0" in key.name
    variants = [
        (tmp_path, b, *base[2:]),
        (*base[:2], "Orin", *base[3:]),
        (*base[:3], "10.8.0", *base[4:]),
        (*base[:4], 376, 1248, "fp16"),
        (*base[:6], "fp32"),
    ]
    names = {engine_cache_path(*v).name for v in variants}
    assert len(names) == len(variants) and key.name not in names


@pytest.mark.gpu
@pytest.mark.skipif(not has_tensorrt_gpu(), reason="needs tensorrt, cuda-python and a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_matches_onnxruntime(kitti06, tmp_path, precision):
    import cv2

    from tpr_vo.config import FeaturesConfig
    from tpr_vo.features.onnx_backend import OnnxRuntimeBackend
    from tpr_vo.features.parity import compare_features, repeatability
    from tpr_vo.features.tensorrt_backend import TensorRTBackend

    shipped = Path(__file__).resolve().parents[1] / "models" / "tpr_large.onnx"
    onnx_path = shipped if shipped.is_file() else tmp_path / "net.onnx"
    if not shipped.is_file():
        export_onnx(random_model(), onnx_path)
    cfg = FeaturesConfig(engine_cache_dir=str(tmp_path / "engines"))
    reference = OnnxRuntimeBackend(cfg, device="cpu", onnx_path=onnx_path)
    trt_backend = TensorRTBackend(cfg, onnx_path=onnx_path, precision=precision)
    for name in ("000000.png", "000025.png"):
        frame = cv2.imread(str(kitti06 / "image_0" / name), cv2.IMREAD_GRAYSCALE)
        ref, test = reference.extract(frame), trt_backend.extract(frame)
        if precision == "fp32":
            report = compare_features(ref, test)
            assert report.passed, report.summary()
        else:
            assert trt_backend.precision in ("fp16", "fp16-score32")
            assert repeatability(ref.keypoints_px, test.keypoints_px, 1.0) >= 0.95
    assert trt_backend.engine_path is not None and trt_backend.engine_path.is_file()
    # Second backend: the engine comes from the cache (same file, no rebuild).
    again = TensorRTBackend(cfg, onnx_path=onnx_path, precision=precision)
    again.extract(frame)
    assert again.engine_path == trt_backend.engine_path
