"""Split per-frame rotation error into the ground truth's and each feature's (three-cornered hat).

RPE rotation against KITTI's GPS/INS poses adds the ground truth's own noise to every feature's
error. This runs each feature through the same frontend, takes the frame-to-frame rotations of
the ground truth and of every estimate, and solves for each source's error variance from their
pairwise differences (`tpr_vo.eval.noise_floor`). Prints, per run and over seeds, the RMS
difference from the ground truth (what RPE sees) and the per-source RMS (deg/frame).

    python benchmarks/rotation_noise.py ../shared/data/kitti/dataset/sequences/06 \
        --features tpr orb sift --runs stereo "mono gt" --seeds 0 1 2 3 \
        --json benchmarks/results/rotation_noise_kitti06.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tpr_vo.atomic import write_text_atomic
from tpr_vo.eval.noise_floor import (
    pairwise_rms_deg,
    relative_rotvecs_deg,
    signed_rms,
    three_cornered_hat,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling compare_features.py
from compare_features import (  # noqa: E402
    overrides_or_exit,
    prefetch_backend,
    run_pipeline,
    sequence_with_ground_truth,
)


def estimate_rotvecs(sequence, features: str, run: str, seed: int, backend, extra: dict):
    """(N-1, 3) frame-to-frame rotation vectors (deg) of one `tpr-vo run`-equivalent run."""
    frontend = extra.get("frontend.kind", "map")  # --set frontend.kind=... still applies
    result = run_pipeline(sequence, features, run, frontend, seed, backend, extra)
    return relative_rotvecs_deg(np.asarray(result.T_world_cam))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequence")
    parser.add_argument("--features", nargs="+", default=["tpr", "orb", "sift"])
    parser.add_argument("--runs", nargs="+", default=["stereo", "mono gt"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--json", help="write the per-seed results here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override (dotted key, YAML value), repeatable")  # fmt: skip
    args = parser.parse_args(argv)
    if len(args.features) < 2:
        parser.error("--features: need at least two (with the ground truth, three sources)")
    extra = overrides_or_exit(parser, args.set)
    sequence = sequence_with_ground_truth(parser, args.sequence)
    gt = relative_rotvecs_deg(np.asarray(sequence.gt_poses))
    backends = {f: prefetch_backend(f, extra) for f in args.features}
    records = []
    for run in args.runs:
        for seed in args.seeds:
            sources = {"gt": gt}
            for f in args.features:
                sources[f] = estimate_rotvecs(sequence, f, run, seed, backends[f], extra)
            variances = three_cornered_hat(sources)
            pairwise = pairwise_rms_deg(sources)
            records.append({
                "run": run, "seed": seed,
                "rms_vs_gt_deg": {f: pairwise[("gt", f)] for f in args.features},
                "hat_rms_deg": {k: signed_rms(v) for k, v in variances.items()},
            })  # fmt: skip
            levels = ", ".join(f"{k} {signed_rms(v):.4f}" for k, v in variances.items())
            print(f"{run:8s} seed {seed}: hat {levels}", file=sys.stderr)
    print(f"\nper-frame rotation error, deg/frame RMS, mean ± std over seeds {args.seeds}")
    print("(a negative hat value: that source's errors correlate with another's)\n")
    print("| run | source | RMS vs ground truth | own error (three-cornered hat) |")
    print("|---|---|---|---|")
    for run in args.runs:
        group = [r for r in records if r["run"] == run]
        for source in ["gt", *args.features]:
            hat = np.array([r["hat_rms_deg"][source] for r in group])
            vs_gt = (
                "-" if source == "gt" else
                _mean_std(np.array([r["rms_vs_gt_deg"][source] for r in group]))
            )  # fmt: skip
            print(f"| {run} | {source} | {vs_gt} | {_mean_std(hat)} |")
    if args.json:
        write_text_atomic(args.json, json.dumps(records, indent=1) + "\n")
    return 0


def _mean_std(values: np.ndarray) -> str:
    return f"{values.mean():.4f} ± {values.std():.4f}"


if __name__ == "__main__":
    sys.exit(main())
