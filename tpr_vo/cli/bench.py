"""`tpr-vo bench`: per-stage milliseconds and end-to-end FPS of each TPR backend, with the ORB
pipeline measured in the same run on the same frames."""

from __future__ import annotations

import argparse
import json

from tpr_vo.cli.common import command_parser

HELP = "speed of each stage and backend, with the ORB baseline in the same run"
EPILOG = """examples:
  tpr-vo bench                                  # synthetic sequence, 1241x376, all backends
  tpr-vo bench --backend onnxruntime --threads 2 --json out/bench.json
  tpr-vo bench --seq ../shared/data/kitti/dataset/sequences/06 --frames 40

stages (ms per frame, mean): decode, preprocess, network, postprocess (TPR), features (all of
extraction), matching, geometry; FPS = 1000 / (decode + the whole process_frame); FPS pre =
frames per second of a second pass that reads and extracts frame i+1 while frame i is tracked
(as `tpr-vo run` does)."""

CHOICES = {
    "auto": ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch"),
    "tensorrt": ("tensorrt",),
    "onnxruntime": ("onnxruntime-cuda", "onnxruntime-cpu"),
    "torch": ("torch",),
}


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        msg = f"expected WIDTHxHEIGHT, e.g. 1241x376, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if w < 64 or h < 64:
        raise argparse.ArgumentTypeError(f"size must be at least 64x64, got {text!r}")
    return w, h


def add_parser(sub) -> None:
    p = command_parser(sub, "bench", HELP, EPILOG)
    p.add_argument("--backend", choices=sorted(CHOICES), default="auto", help="TPR backend(s)")
    p.add_argument("--size", type=parse_size, help="WIDTHxHEIGHT (default: the frames' size)")
    p.add_argument("--seq", help="sequence folder (default: the synthetic sequence, 1241x376)")
    p.add_argument("--frames", type=int, default=50, help="timed frames (default 50)")
    p.add_argument("--warmup", type=int, default=3, help="untimed first frames (default 3)")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (0 = default)")
    p.add_argument("--model", help="TPR model (.onnx/.pt; default: the shipped model)")
    p.add_argument("--config", help="YAML config in ROS-params shape")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.set_defaults(func=run)


def format_table(report) -> str:
    stages = ("decode", "preprocess", "network", "postprocess", "matching", "geometry")
    header = (
        f"{'backend':24s}" + "".join(f"{s[:11]:>12s}" for s in stages)
        + f"{'total ms':>10s}{'FPS':>8s}{'FPS pre':>9s}{'x ORB':>7s}{'RSS MB':>8s}{'kpts':>7s}"
    )  # fmt: skip
    lines = [
        f"{report.frames} frames {report.image_size['width']}x{report.image_size['height']} "
        f"of {report.sequence}; ONNX Runtime threads {report.threads} (FPS pre: "
        f"{report.threads_prefetch}); {report.machine.get('cpu', '?')}",
        header,
        "-" * len(header),
    ]
    rows = [("orb", report.orb), *report.backends.items()]
    for _, r in rows:
        ms = r.ms_per_stage
        cells = "".join(f"{ms[s]:12.2f}" if s in ms else f"{'-':>12s}" for s in stages)
        ratio = "1.00" if r.ratio_to_orb is None else f"{r.ratio_to_orb:.2f}"
        pre = "-" if r.fps_prefetch is None else f"{r.fps_prefetch:.1f}"
        lines.append(
            f"{r.name:24s}{cells}{ms['total']:10.2f}{r.fps:8.1f}{pre:>9s}{ratio:>7s}"
            f"{r.peak_rss_mb:8.0f}{r.keypoints_mean:7.0f}"
        )
    for kind, why in report.skipped.items():
        lines.append(f"skipped {kind}: {why}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tpr_vo.atomic import write_text_atomic
    from tpr_vo.benchmark import run_benchmark
    from tpr_vo.config import load_config
    from tpr_vo.errors import ConfigError

    if args.frames < 2 or args.warmup < 0:
        raise ConfigError("--frames must be >= 2 and --warmup >= 0")
    overrides = {}
    if args.threads is not None:
        overrides["features.onnx_threads"] = args.threads
    if args.model:
        overrides["features.model_path"] = args.model
    config = load_config(args.config, overrides)
    report = run_benchmark(
        config,
        backends=list(CHOICES[args.backend]),
        seq_path=args.seq,
        size=args.size,
        frames=args.frames,
        warmup=args.warmup,
    )
    print(format_table(report))
    if args.json:
        write_text_atomic(args.json, json.dumps(report.to_json_dict(), indent=2) + "\n")
    return 0
