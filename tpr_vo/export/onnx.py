"""torch checkpoint -> ONNX with named inputs/outputs, and a parity report against torch.

The graph is the network only (`TPRNet.forward`): input "image" (1, 1, H, W) float32 in [0, 1],
outputs "scores" (1, 1, H, W) and "descriptors" (1, D, H/s, W/s). H and W are dynamic unless a
size is given (then fixed to that size padded to a multiple of 32). The TorchScript exporter runs
with constant folding (BatchNorm is folded into the convolutions); Identity nodes are removed.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from tpr_vo.atomic import atomic_path
from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import DataError
from tpr_vo.features.learned import INPUT_NAME, OUTPUT_NAMES
from tpr_vo.features.parity import ParityReport, compare_features, textured_test_image
from tpr_vo.features.preprocess import padded_size, prepare_image

log = logging.getLogger(__name__)

DEFAULT_EXPORT_SIZE = (376, 1241)  # KITTI-like; only the traced example when H, W are dynamic


def _as_model(checkpoint_or_model):
    from tpr_vo.features.model import load_model

    if isinstance(checkpoint_or_model, (str, os.PathLike)):
        return load_model(checkpoint_or_model, map_location="cpu")
    return checkpoint_or_model.cpu().eval()


def _remove_identities(model_proto) -> int:
    """Bypass Identity nodes (kept by the exporter around outputs); returns how many went."""
    graph = model_proto.graph
    outputs = {o.name for o in graph.output}
    removed = 0
    for node in list(graph.node):
        if node.op_type != "Identity":
            continue
        src, dst = node.input[0], node.output[0]
        if dst in outputs:
            # Keep the graph output's name: rename the producer's output instead.
            for other in graph.node:
                other.output[:] = [dst if o == src else o for o in other.output]
                if other is not node:
                    other.input[:] = [dst if i == src else i for i in other.input]
            if src in {i.name for i in graph.input}:
                continue  # an input passed straight through; leave it
        else:
            for other in graph.node:
                other.input[:] = [src if i == dst else i for i in other.input]
        graph.node.remove(node)
        removed += 1
    return removed


def export_onnx(
    checkpoint_or_model,
    out_path: str | os.PathLike,
    height: int | None = None,
    width: int | None = None,
    opset: int = 17,
    *,
    parity_image: np.ndarray | None = None,
) -> ParityReport:
    """Export and verify: ONNX Runtime (CPU) vs torch on `parity_image` (default: a textured
    synthetic image of the export size). Writes `out_path` atomically; returns the report."""
    import onnx
    import torch

    from tpr_vo.features.onnx_backend import OnnxRuntimeBackend
    from tpr_vo.features.torch_backend import TorchBackend

    if (height is None) != (width is None):
        raise DataError("export_onnx: give both height and width, or neither (dynamic)")
    model = _as_model(checkpoint_or_model)
    dynamic = height is None
    example_hw = DEFAULT_EXPORT_SIZE if dynamic else (int(height), int(width))
    h_pad, w_pad = padded_size(*example_hw)
    example = torch.zeros(1, 1, h_pad, w_pad)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {
            INPUT_NAME: {2: "height", 3: "width"},
            OUTPUT_NAMES[0]: {2: "height", 3: "width"},
            OUTPUT_NAMES[1]: {2: "desc_height", 3: "desc_width"},
        }
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    removed = _remove_identities(proto)
    arch = dict(getattr(model, "arch", {}))
    meta = {
        "tpr_vo.arch": json.dumps(arch, sort_keys=True),
        "tpr_vo.opset": str(opset),
        "tpr_vo.input_size": "dynamic" if dynamic else f"{h_pad}x{w_pad}",
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "tpr_vo"
    onnx.checker.check_model(proto)
    with atomic_path(out_path) as tmp:
        onnx.save(proto, str(tmp))
    ops: dict[str, int] = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    log.info(
        "wrote %s (opset %d, %s input, %d nodes: %s; %d Identity removed)",
        out_path, opset, meta["tpr_vo.input_size"], len(proto.graph.node),
        ", ".join(f"{k} {v}" for k, v in sorted(ops.items())), removed,
    )  # fmt: skip

    image = parity_image if parity_image is not None else textured_test_image(*example_hw)
    cfg = FeaturesConfig()
    reference = TorchBackend(cfg, device="cpu", model=model)
    exported = OnnxRuntimeBackend(cfg, device="cpu", onnx_path=out_path)
    net_in = prepare_image(image)
    dense_ref = reference.infer(net_in.tensor)
    dense_test = exported.infer(net_in.tensor)
    report = compare_features(
        reference.extract(image),
        exported.extract(image),
        reference_name=reference.name,
        test_name=exported.name,
        dense=(dense_ref[0], dense_test[0], dense_ref[1], dense_test[1]),
    )
    log.info("parity: %s", report.summary())
    return report


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an exported model (arch, opset, input size)."""
    import onnx

    proto = onnx.load(str(Path(path)), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
