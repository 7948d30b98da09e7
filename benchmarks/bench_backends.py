"""Backend benchmark suite behind benchmarks/README.md: `tpr-vo bench` on the synthetic sequence
(1241x376) and on KITTI 06 (1226x370), ORB measured in the same run each time.

    python benchmarks/bench_backends.py --out benchmarks/results [--frames 50] [--threads 2]

Writes one JSON per case into --out and prints the tables. Numbers depend on the machine and its
load: say which machine they came from when quoting them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tpr_vo.cli import main as tpr_vo_main

ROOT = Path(__file__).resolve().parents[1]
KITTI06 = (
    Path(os.environ.get("TPR_VO_DATA", ROOT.parent / "shared" / "data"))
    / "kitti/dataset/sequences/06"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON files")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = all)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model", help="TPR model (default: the shipped one)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["--backend", args.backend, "--threads", str(args.threads)]
    if args.model:
        common += ["--model", args.model]
    cases = {"synthetic_1241x376": ["--frames", str(args.frames)]}
    if KITTI06.is_dir():
        cases["kitti06_1226x370"] = ["--seq", str(KITTI06), "--frames", str(min(args.frames, 48))]
    status = 0
    for name, extra in cases.items():
        print(f"\n## {name}", flush=True)
        status |= tpr_vo_main(["bench", *common, *extra, "--json", str(out / f"{name}.json")])
    return status


if __name__ == "__main__":
    sys.exit(main())
