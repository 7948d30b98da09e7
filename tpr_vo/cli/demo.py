"""`tpr-vo demo`: render the built-in synthetic sequence, run VO, evaluate, print a table."""

from __future__ import annotations

import argparse
from pathlib import Path

from tpr_vo.cli.common import command_parser
from tpr_vo.cli.run import add_common_options, config_from_args, format_summary

HELP = "render the built-in synthetic driving sequence, run VO on it, evaluate and plot"
EPILOG = """examples:
  tpr-vo demo                       # tpr and orb, stereo, 200 frames, results in out/demo
  tpr-vo demo --features sift --mode mono --scale height --frames 100"""


def add_parser(sub) -> None:
    p = command_parser(sub, "demo", HELP, EPILOG)
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    p.add_argument("--frames", type=int, default=200, help="frames to render (default: 200)")
    p.add_argument("--render-seed", type=int, default=0, help="seed of the synthetic scene")
    add_common_options(p)
    p.set_defaults(func=run, mode="stereo")
    p.set_defaults(features=None)


def run(args: argparse.Namespace) -> int:
    from tpr_vo.datasets import open_sequence
    from tpr_vo.datasets.synthetic import render_synthetic_sequence
    from tpr_vo.pipeline import OfflinePipeline

    out = Path(args.out)
    seq_dir = render_synthetic_sequence(
        out / "sequence", num_frames=args.frames, seed=args.render_seed
    )
    print(f"rendered {args.frames} synthetic frames into {seq_dir}")
    sequence = open_sequence(seq_dir)
    rows = []
    for kind in [args.features] if args.features else ["tpr", "orb"]:
        config = config_from_args(args, **{"features.kind": kind})
        result = OfflinePipeline(sequence, config, out / kind, max_frames=args.max_frames).run()
        rows.append((kind, config, result))
    print(format_summary(rows))
    print(f"results (poses.txt, metrics.json, trajectory.png, ...) in {out.resolve()}/<features>/")
    return 0
