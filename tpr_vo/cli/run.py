"""`tpr-vo run SEQ`: visual odometry on a sequence folder or rosbag2, results in --out."""

from __future__ import annotations

import argparse
from pathlib import Path

from tpr_vo.cli.common import command_parser

HELP = "run visual odometry on a sequence (KITTI folder, image folder, rosbag2)"
EPILOG = """examples:
  tpr-vo run ../shared/data/kitti/dataset/sequences/06 --features orb --scale gt --out out/06
  tpr-vo run ../shared/data/kitti/dataset/sequences/06 --mode stereo --seed 3 --out out/06s
  tpr-vo run my_bag/ --image-topic /camera/image_raw --camera-info-topic /camera/camera_info

writes OUT/poses.txt (KITTI format, one line per input frame), metrics.json (when ground truth
exists), trajectory.png, config.yaml (the effective config) and timing.json."""


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `demo`; each maps to one dotted config key."""
    p.add_argument("--config", help="YAML config in ROS-params shape (e.g. config/kitti.yaml)")
    p.add_argument("--features", choices=["tpr", "orb", "sift"], help="feature type")
    p.add_argument(
        "--backend", choices=["auto", "tensorrt", "onnxruntime", "torch"], help="tpr backend"
    )
    p.add_argument("--mode", choices=["mono", "stereo"], help="camera mode")
    p.add_argument(
        "--scale",
        choices=["none", "gt", "height"],
        help="mono scale: none (Sim(3)-evaluated), gt (GT step lengths, the TPR paper's "
        "protocol), height (camera height above the road)",
    )
    p.add_argument("--frontend", choices=["map", "f2f"], help="local map + PnP, or f2f chain")
    p.add_argument("--max-keypoints", type=int, help="features per frame")
    p.add_argument("--seed", type=int, help="seed for every random choice (RANSAC included)")
    p.add_argument("--max-frames", type=int, help="process only the first N frames")


def config_from_args(args: argparse.Namespace, **forced):
    from tpr_vo.config import load_config

    overrides = {
        "features.kind": args.features,
        "features.backend": args.backend,
        "features.max_keypoints": args.max_keypoints,
        "frontend.mode": args.mode,
        "frontend.scale": args.scale,
        "frontend.kind": args.frontend,
        "seed": args.seed,
    }
    overrides.update(forced)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides.get("frontend.mode") == "stereo" and "frontend.scale" not in overrides:
        overrides["frontend.scale"] = "none"
    return load_config(args.config, overrides)


def add_parser(sub) -> None:
    p = command_parser(sub, "run", HELP, EPILOG)
    p.add_argument("sequence", help="KITTI-layout folder, image folder, or rosbag2 folder/file")
    p.add_argument("--out", default="out/run", help="output folder (default: out/run)")
    p.add_argument("--gt", help="ground-truth KITTI pose file (overrides the sequence's)")
    p.add_argument("--intrinsics", help="intrinsics YAML for a plain image folder")
    p.add_argument("--image-topic", help="rosbag2: image topic")
    p.add_argument("--camera-info-topic", help="rosbag2: camera_info topic")
    p.add_argument("--right-image-topic", help="rosbag2: right image topic (stereo)")
    add_common_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tpr_vo.datasets import open_sequence
    from tpr_vo.pipeline import OfflinePipeline

    config = config_from_args(args)
    sequence = open_sequence(
        args.sequence,
        image_topic=args.image_topic,
        camera_info_topic=args.camera_info_topic,
        right_image_topic=args.right_image_topic,
        intrinsics_yaml=args.intrinsics,
        gt_path=args.gt,
    )
    result = OfflinePipeline(sequence, config, args.out, max_frames=args.max_frames).run()
    print(format_summary([(config.features.kind, config, result)]))
    print(f"results in {Path(args.out).resolve()}")
    return 0


def format_summary(rows) -> str:
    """Markdown table: one row per (label, config, RunResult)."""
    head = (
        "| features | mode | scale | frames | tracked | ATE (m) | align | RPE rot (deg) "
        "| t_rel (%) | r_rel (deg/100m) | FPS |"
    )
    lines = [head, "|" + "---|" * 11]
    for label, config, result in rows:
        m = result.metrics or {}
        lines.append(
            f"| {label} | {config.frontend.mode} | "
            f"{'stereo' if config.frontend.mode == 'stereo' else config.frontend.scale} | "
            f"{len(result.tracked)} | {int(result.tracked.sum())} | {_fmt(m.get('ate_rmse_m'))} | "
            f"{m.get('ate_align', '-')} | {_fmt(m.get('rpe_rot_deg'))} | "
            f"{_fmt(m.get('t_rel_pct'))} | {_fmt(m.get('r_rel_deg_per_100m'))} | "
            f"{result.fps:.1f} |"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
