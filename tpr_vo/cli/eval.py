"""`tpr-vo eval`: ATE / RPE / KITTI devkit metrics of KITTI-format pose files."""

from __future__ import annotations

import argparse
import json
import sys

from tpr_vo.cli.common import command_parser

HELP = "evaluate estimated poses against ground truth (ATE, RPE, KITTI t_rel/r_rel)"
EPILOG = """examples:
  tpr-vo eval --gt ../shared/data/kitti/gt_full/poses/07.txt --est out/07/poses.txt
  tpr-vo eval --gt gt.txt --est est.txt --align sim3 --json m.json --plot plots/
  tpr-vo eval --gt-dir ../shared/data/kitti/gt_full/poses --est-dir results/ --json all.json

ATE uses --align (se3 for metric trajectories, sim3 for scale-free monocular ones); the KITTI
devkit t_rel [%] and r_rel [deg/100m] never align and are n/a (null) when the ground truth has
no 100 m segment. --gt-dir/--est-dir evaluate every NN.txt present in both folders and print one
column per sequence plus the average (t_rel/r_rel pooled over all segments)."""


def add_parser(sub) -> None:
    p = command_parser(sub, "eval", HELP, EPILOG)
    p.add_argument("--gt", help="ground-truth KITTI pose file")
    p.add_argument("--est", help="estimated KITTI pose file (one line per ground-truth line)")
    p.add_argument("--gt-dir", help="folder of ground-truth NN.txt files (or its poses/ folder)")
    p.add_argument("--est-dir", help="folder of estimated NN.txt files")
    p.add_argument("--align", choices=["se3", "sim3", "none"], default="se3", help="ATE alignment")
    p.add_argument(
        "--scale-source",
        choices=["none", "gt", "stereo", "height", "unknown"],
        default="unknown",
        help="where the estimate's metric scale came from, recorded in the JSON",
    )
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--plot", metavar="DIR", help="write trajectory / error PNGs into DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    single = args.gt is not None or args.est is not None
    multi = args.gt_dir is not None or args.est_dir is not None
    if (
        single == multi
        or (single and not (args.gt and args.est))
        or (multi and not (args.gt_dir and args.est_dir))
    ):
        print(
            "tpr-vo eval: error: give --gt FILE and --est FILE, or --gt-dir DIR and --est-dir DIR",
            file=sys.stderr,
        )
        return 2
    from pathlib import Path

    from tpr_vo.atomic import write_text_atomic
    from tpr_vo.eval import evaluate_files, evaluate_sequence_dirs, metrics_markdown

    if single:
        metrics = evaluate_files(args.gt, args.est, args.align, args.scale_source)
        print(metrics_markdown(metrics), end="")
        payload = {"gt": str(args.gt), "est": str(args.est), **metrics.to_json_dict()}
        if args.plot:
            _plot_sequence(metrics, args.gt, args.est, Path(args.plot), "")
    else:
        result = evaluate_sequence_dirs(args.gt_dir, args.est_dir, args.align, args.scale_source)
        print(result.to_markdown(), end="")
        payload = {"gt_dir": str(args.gt_dir), "est_dir": str(args.est_dir)}
        payload.update(result.to_json_dict())
        if args.plot:
            from tpr_vo.eval import plot_segment_errors

            for name, (gt_path, est_path) in result.files.items():
                _plot_sequence(result.sequences[name], gt_path, est_path, Path(args.plot), name)
            plot_segment_errors(
                result.pooled,
                Path(args.plot) / "avg_segment_errors.png",
                title=f"KITTI devkit errors, all sequences ({result.pooled.count} segments)",
            )
    if args.json:
        write_text_atomic(args.json, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    if args.plot:
        print(f"plots written to {args.plot}", file=sys.stderr)
    return 0


def _plot_sequence(metrics, gt_path, est_path, out_dir, name: str) -> None:
    from tpr_vo.eval import plot_position_error, plot_segment_errors, plot_trajectory
    from tpr_vo.eval.report import load_pair

    gt, est = load_pair(gt_path, est_path)
    prefix = f"{name}_" if name else ""
    label = f"sequence {name}: " if name else ""
    aligned = metrics.alignment.apply(est)
    plot_trajectory(
        gt,
        aligned,
        out_dir / f"{prefix}trajectory.png",
        title=f"{label}top view, estimate {metrics.ate_align}-aligned "
        f"(ATE {metrics.ate_rmse_m:.3f} m)",
        est_label=f"estimate ({metrics.ate_align})",
    )
    plot_segment_errors(
        metrics.kitti,
        out_dir / f"{prefix}segment_errors.png",
        title=f"{label}KITTI devkit errors ({metrics.kitti_segments} segments, no alignment)",
    )
    plot_position_error(
        metrics.ate.errors_m,
        out_dir / f"{prefix}position_error.png",
        title=f"{label}position error after {metrics.ate_align} alignment",
    )
