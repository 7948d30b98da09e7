"""float ONNX -> int8 ONNX for ONNX Runtime on CPUs (static QDQ quantization), with a parity
report against the float model.

What is quantized, and why (measured on `tpr_large`, one KITTI frame 1248x384, 2 threads, this
2-core AVX-512 VNNI VM; model card, "Session 15"):
- weights int8 per output channel, activations uint8 per tensor, ranges from calibration images
  (scikit-image's bundled photographs and frames of our synthetic drive: never KITTI);
- Conv, Relu and Concat everywhere, and DepthToSpace / Add on the descriptor path only;
- the score path after its last convolutions (pixel-shuffles, the sum of the heads' logits,
  sigmoid) stays float: quantizing the sigmoid's input coarsened the low scores, and every
  v_graf image reached the 2,000-keypoint cap instead of ~1,190 keypoints, while float costs
  ~1 ms there;
- a convolution with few output channels (the half head's 48 -> 4) runs slowly as an int8
  kernel (5.6 ms of 26), so it is widened to 16 channels with zero filters and sliced back
  (1.6 ms).

The result is an ordinary ONNX graph (QuantizeLinear / DequantizeLinear around the float ops),
loadable by any ONNX Runtime. TensorRT reads QDQ graphs differently, so the TensorRT backend
refuses these files and keeps using the float model (fp16/fp32 engines).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from tpr_vo.atomic import atomic_path
from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import DataError
from tpr_vo.features.learned import (
    INPUT_NAME,
    OUTPUT_NAMES,
    QUANTIZED_KEY,
    int8_model_path,
)
from tpr_vo.features.parity import ParityReport, compare_features, textured_test_image
from tpr_vo.features.preprocess import prepare_image

log = logging.getLogger(__name__)

MIN_INT8_OUT_CHANNELS = 16  # narrower convs are widened with zero filters (see above)
CALIBRATION_HW = (384, 1248)  # KITTI's padded size: calibration images are resized to it
# Acceptance of an int8 graph against its float source on the parity image (looser than the
# float backends' 0.5 px / 98 % / 0.999: int8 moves some scores across the top-k cut).
INT8_TOL_PX = 1.0
INT8_MIN_SHARED_FRACTION = 0.85
INT8_MIN_MEAN_COSINE = 0.99


def is_quantized(onnx_path: str | os.PathLike) -> bool:
    """True when the file was written by `quantize_int8` (its metadata says so). False when the
    `onnx` package is absent or the file cannot be parsed: the backend that loads it then
    reports why."""
    try:
        from tpr_vo.export.onnx import onnx_metadata

        return QUANTIZED_KEY in onnx_metadata(onnx_path)
    except Exception:  # ImportError, or onnx/protobuf's own parse errors
        return False


def calibration_images(num_synthetic: int = 4) -> list[np.ndarray]:
    """uint8 (H, W) images: scikit-image's photographs plus synthetic-drive frames, resized to
    CALIBRATION_HW. No KITTI frame is used, so no evaluation frame leaks into the ranges."""
    import cv2

    from tpr_vo.training.data import skimage_images, synthetic_images

    images = skimage_images() + synthetic_images(num_synthetic * 5, stride=5)
    height, width = CALIBRATION_HW
    return [cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) for image in images]


def _initializers(graph) -> dict:
    return {init.name: init for init in graph.initializer}


def widen_narrow_convs(proto, min_out_channels: int = MIN_INT8_OUT_CHANNELS) -> list[str]:
    """Give every Conv with fewer than `min_out_channels` outputs (and at least that many
    inputs) zero filters up to `min_out_channels`, then Slice its real channels back.
    Same outputs; returns the names of the widened convs."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    inits = _initializers(graph)
    widened: list[str] = []
    for node in list(graph.node):
        if node.op_type != "Conv" or node.input[1] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        c_out, c_in = weight.shape[:2]
        if c_out >= min_out_channels or c_in < min_out_channels:
            continue
        padded = np.zeros((min_out_channels,) + weight.shape[1:], weight.dtype)
        padded[:c_out] = weight
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(padded, node.input[1]))
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(inits[node.input[2]])
            bias_padded = np.zeros(min_out_channels, bias.dtype)
            bias_padded[:c_out] = bias
            inits[node.input[2]].CopyFrom(numpy_helper.from_array(bias_padded, node.input[2]))
        prefix = f"{node.name}/narrow"
        starts, ends, axes = (f"{prefix}_{k}" for k in ("starts", "ends", "axes"))
        for name, value in ((starts, 0), (ends, c_out), (axes, 1)):
            graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), name))
        real_out = node.output[0]
        node.output[0] = f"{real_out}_wide"
        slice_node = helper.make_node(
            "Slice", [node.output[0], starts, ends, axes], [real_out], name=f"{prefix}_slice"
        )
        graph.node.insert(list(graph.node).index(node) + 1, slice_node)
        widened.append(node.name)
    return widened


def _walk_back(graph, output_name: str, stop_at_conv: bool = False) -> set[str]:
    """Names of the nodes `output_name` depends on; with `stop_at_conv`, only those between it
    and the nearest Conv nodes (the Convs themselves excluded)."""
    producer = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    stack = [output_name]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen or (stop_at_conv and node.op_type == "Conv"):
            continue
        seen.add(node.name)
        stack.extend(node.input)
    return seen


def quantization_plan(graph) -> tuple[list[str], list[str]]:
    """(op types to quantize, node names to leave float) for a TPRNet graph."""
    score_nodes = _walk_back(graph, OUTPUT_NAMES[0])
    # The score tail after the last convolutions (pixel-shuffles, slices, the heads' sum, the
    # sigmoid) stays float.
    exclude = _walk_back(graph, OUTPUT_NAMES[0], stop_at_conv=True)
    # DepthToSpace and Add are quantized on the descriptor path only (QLinearAdd and a uint8
    # pixel-shuffle of the 4*D-channel map: 2.5 -> 1.4 ms); elsewhere they stay float.
    for node in graph.node:
        if node.op_type in ("DepthToSpace", "Add") and node.name in score_nodes:
            exclude.add(node.name)
    return ["Conv", "Relu", "Concat", "DepthToSpace", "Add"], sorted(exclude)


class _Reader:
    """onnxruntime.quantization.CalibrationDataReader over network input tensors."""

    def __init__(self, images: list[np.ndarray]):
        self._tensors = iter([prepare_image(image).tensor for image in images])

    def get_next(self):
        tensor = next(self._tensors, None)
        return None if tensor is None else {INPUT_NAME: tensor}


def quantize_int8(
    float_onnx: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    images: list[np.ndarray] | None = None,
    parity_image: np.ndarray | None = None,
) -> ParityReport:
    """Write the int8 graph of `float_onnx` (default path: `<stem>_int8.onnx`) atomically and
    return its parity report against the float graph, both run by ONNX Runtime on the CPU."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    from tpr_vo.features.onnx_backend import OnnxRuntimeBackend

    float_onnx = Path(float_onnx)
    out_path = Path(out_path) if out_path else int8_model_path(float_onnx)
    if not float_onnx.is_file():
        raise DataError(f"{float_onnx}: no such ONNX file to quantize")
    proto = onnx.load(str(float_onnx))
    meta = {p.key: p.value for p in proto.metadata_props}
    if QUANTIZED_KEY in meta:
        raise DataError(f"{float_onnx}: already quantized ({meta[QUANTIZED_KEY]})")
    if "tpr_vo.arch" not in meta:
        raise DataError(f"{float_onnx}: not a tpr-vo export (no tpr_vo.arch metadata)")
    images = calibration_images() if images is None else images
    if not images:
        raise DataError("quantize_int8: no calibration images")

    class Reader(_Reader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="tpr_vo_int8_") as tmp_dir:
        widened = widen_narrow_convs(proto)
        wide_path = Path(tmp_dir) / "wide.onnx"
        onnx.save(proto, str(wide_path))
        pre_path = Path(tmp_dir) / "pre.onnx"
        # Shape inference cannot resolve the dynamic H, W through the pixel-shuffles; the
        # graph-level optimisation still runs.
        quant_pre_process(str(wide_path), str(pre_path), skip_symbolic_shape=True)
        graph = onnx.load(str(pre_path)).graph
        op_types, exclude = quantization_plan(graph)
        q_path = Path(tmp_dir) / "int8.onnx"
        quantize_static(
            str(pre_path),
            str(q_path),
            Reader(images),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=op_types,
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
        )
        quantized = onnx.load(str(q_path))
    kept = {p.key for p in quantized.metadata_props}
    for key, value in meta.items():  # quantize_static keeps them today; make sure
        if key not in kept:
            entry = quantized.metadata_props.add()
            entry.key, entry.value = key, value
    entry = quantized.metadata_props.add()
    entry.key = QUANTIZED_KEY
    entry.value = json.dumps(
        {
            "format": "QDQ int8 weights per channel, uint8 activations per tensor",
            "source": float_onnx.name,
            "calibration_images": len(images),
            "widened_convs": widened,
            "float_nodes": len(exclude),
        },
        sort_keys=True,
    )
    onnx.checker.check_model(quantized)
    with atomic_path(out_path) as tmp:
        onnx.save(quantized, str(tmp))
    log.info("wrote %s (%d calibration images; widened %s)", out_path, len(images), widened)

    cfg = FeaturesConfig()
    reference = OnnxRuntimeBackend(cfg, device="cpu", onnx_path=float_onnx)
    test = OnnxRuntimeBackend(cfg, device="cpu", onnx_path=out_path)
    image = parity_image if parity_image is not None else textured_test_image()
    tensor = prepare_image(image).tensor
    dense_ref, dense_test = reference.infer(tensor), test.infer(tensor)
    report = compare_features(
        reference.extract(image),
        test.extract(image),
        reference_name=f"{reference.name} {float_onnx.name}",
        test_name=f"{test.name} {out_path.name}",
        tol_px=INT8_TOL_PX,
        dense=(dense_ref[0], dense_test[0], dense_ref[1], dense_test[1]),
    )
    log.info("int8 parity: %s", int8_summary(report))
    return report


def int8_parity_passed(report: ParityReport) -> bool:
    """The int8 acceptance (INT8_*), not the float backends' `report.passed`."""
    return (
        report.shared_fraction >= INT8_MIN_SHARED_FRACTION
        and report.mean_descriptor_cosine >= INT8_MIN_MEAN_COSINE
    )


def int8_parity_record(report: ParityReport) -> dict:
    """The report as JSON, with the int8 verdict and the acceptance it was judged by."""
    return {
        **report.to_json_dict(),
        "passed": int8_parity_passed(report),
        "acceptance": {
            "tol_px": INT8_TOL_PX,
            "min_shared_fraction": INT8_MIN_SHARED_FRACTION,
            "min_mean_descriptor_cosine": INT8_MIN_MEAN_COSINE,
        },
    }


def int8_summary(report: ParityReport) -> str:
    return (
        f"int8 vs float: {report.num_shared}/{max(report.num_reference, 1)} keypoints shared "
        f"within {INT8_TOL_PX:g} px ({100 * report.shared_fraction:.1f} %), descriptor cosine "
        f"mean {report.mean_descriptor_cosine:.4f} -> "
        f"{'PASS' if int8_parity_passed(report) else 'FAIL'}"
    )
