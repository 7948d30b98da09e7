"""`tpr-vo export`: torch checkpoint -> ONNX with a parity report; `--engine` also builds the
TensorRT engine (fp16 with `--fp16`) for the camera's input size."""

from __future__ import annotations

import argparse
import json

from tpr_vo.cli.common import command_parser

HELP = "export a TPR checkpoint to ONNX (and a TensorRT engine), with a parity report"
EPILOG = """examples:
  tpr-vo export models/tpr_small.pt                         # -> models/tpr_small.onnx
  tpr-vo export ckpt.pt --out my.onnx --size 1241x376       # fixed input size
  tpr-vo export models/tpr_large.pt --engine --fp16 --size 1241x376
  tpr-vo export models/tpr_large.pt --int8                  # also models/tpr_large_int8.onnx

writes OUT.onnx and OUT.parity.json (ONNX Runtime vs torch: keypoints shared within 0.5 px,
descriptor cosine); with --engine the engine goes to the cache folder
(features.engine_cache_dir) and OUT.engine.json records the precision chosen and measured.
--int8 also writes OUT_int8.onnx for ONNX Runtime on CPUs (static int8 quantization calibrated
on scikit-image photographs and synthetic frames) and OUT_int8.parity.json (against OUT.onnx).
Use it with --model OUT_int8.onnx; TensorRT keeps the float model."""


def add_parser(sub) -> None:
    from tpr_vo.cli.bench import parse_size

    p = command_parser(sub, "export", HELP, EPILOG)
    p.add_argument("checkpoint", help="torch checkpoint (.pt) written by tpr-vo train")
    p.add_argument("--out", help="ONNX file (default: the checkpoint path with .onnx)")
    p.add_argument("--size", type=parse_size, help="fixed WIDTHxHEIGHT (default: dynamic)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--image", help="image for the parity check (default: a textured test image)")
    p.add_argument("--engine", action="store_true", help="also build the TensorRT engine")
    p.add_argument("--fp16", action="store_true", help="fp16 engine (score head fp32 if needed)")
    p.add_argument("--engine-size", type=parse_size, help="engine WIDTHxHEIGHT (default --size)")
    p.add_argument("--cache-dir", help="engine cache folder (default features.engine_cache_dir)")
    p.add_argument(
        "--int8", action="store_true", help="also write OUT_int8.onnx (ONNX Runtime, CPU)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2

    from tpr_vo.atomic import write_text_atomic
    from tpr_vo.errors import ConfigError, DataError
    from tpr_vo.export.onnx import export_onnx

    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {out}: expected a .onnx file name")
    image = None
    if args.image:
        image = cv2.imread(args.image, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"{args.image}: cannot read the parity image")
    width, height = args.size if args.size else (None, None)
    report = export_onnx(args.checkpoint, out, height, width, args.opset, parity_image=image)
    parity_path = out.with_suffix(".parity.json")
    write_text_atomic(parity_path, json.dumps(report.to_json_dict(), indent=2) + "\n")
    print(f"wrote {out}")
    print(report.summary())
    if not report.passed:
        raise DataError(f"{out}: ONNX Runtime does not match torch (see {parity_path})")
    if args.int8:
        _quantize(out, image)
    if args.engine:
        _build_engine(args, out, image)
    return 0


def _quantize(onnx_path, image) -> None:
    from tpr_vo.atomic import write_text_atomic
    from tpr_vo.errors import DataError
    from tpr_vo.export.quantize import int8_parity_record, int8_summary, quantize_int8
    from tpr_vo.features.learned import int8_model_path

    out = int8_model_path(onnx_path)
    report = quantize_int8(onnx_path, out, parity_image=image)
    record = int8_parity_record(report)
    parity_path = out.with_suffix(".parity.json")
    write_text_atomic(parity_path, json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    print(int8_summary(report))
    if not record["passed"]:
        raise DataError(f"{out}: the int8 graph departs from the float one (see {parity_path})")


def _build_engine(args: argparse.Namespace, onnx_path, image) -> None:
    import os
    from pathlib import Path

    from tpr_vo.atomic import write_text_atomic
    from tpr_vo.config import FeaturesConfig
    from tpr_vo.errors import ConfigError
    from tpr_vo.export.tensorrt import load_or_build_engine
    from tpr_vo.features.postprocess import PostprocessParams
    from tpr_vo.features.preprocess import padded_size, prepare_image

    size = args.engine_size or args.size
    if size is None:
        raise ConfigError("--engine needs the camera's input size: --size or --engine-size WxH")
    width, height = size
    h_pad, w_pad = padded_size(height, width)
    check = None
    if image is not None:
        import cv2

        check = prepare_image(cv2.resize(image, (width, height))).tensor
    cfg = FeaturesConfig()
    cache_dir = Path(os.path.expanduser(args.cache_dir or cfg.engine_cache_dir))
    engine = load_or_build_engine(
        onnx_path,
        cache_dir,
        h_pad,
        w_pad,
        "fp16" if args.fp16 else "fp32",
        check_input=check,
        params=PostprocessParams.from_config(cfg),
        redecide=True,
    )
    record = {
        "engine": str(engine.path),
        "precision": engine.precision,
        "input_hw": [h_pad, w_pad],
        "fp16_measurement": engine.fp16_decision,
    }
    write_text_atomic(Path(onnx_path).with_suffix(".engine.json"), json.dumps(record, indent=2))
    print(f"TensorRT engine ({engine.precision}, {h_pad}x{w_pad}): {engine.path}")
