"""How precisely do a feature's matches sit on the scene? (epipolar error under the true motion)

For each pair of consecutive frames of a sequence with ground truth, the features are matched as
the frontend matches them (`matching` config) and two numbers are taken:
- the Sampson distance (px) of every match under the ground-truth relative pose. Matches within
  `--max-error-px` count as good; the median and RMS of their distances measure localisation
  (on a rendered sequence, whose ground truth is exact, nothing else contributes);
- the rotation error (deg) of the frontend's two-view estimate (`estimate_relative_pose`, one
  run per seed) against the ground truth.

    python benchmarks/two_view_accuracy.py SEQ --features tpr sift orb --frames 100 \
        --json benchmarks/results/two_view_accuracy.json
    # variants of one feature, any config key (one run each):
    python benchmarks/two_view_accuracy.py SEQ --features tpr --set features.refine_radius_px=2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tpr_vo.atomic import write_text_atomic
from tpr_vo.config import load_config
from tpr_vo.eval.rpe import relative_motions
from tpr_vo.geometry.essential import estimate_relative_pose, sampson_sq_px
from tpr_vo.geometry.se3 import rotation_angle_deg, skew
from tpr_vo.matching import match_descriptors
from tpr_vo.progress import progress

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling compare_features.py
from compare_features import (  # noqa: E402
    overrides_or_exit,
    prefetch_backend,
    sequence_with_ground_truth,
)


def pair_accuracy(sequence, features: list, matching_cfg, seeds, max_error_px: float) -> dict:
    """Match statistics and two-view rotation errors over the consecutive pairs of
    `features` (one Features per frame, in order)."""
    K = sequence.intrinsics.K
    # Ground-truth motion of each pair, frame i -> frame i + 1 coordinates.
    gt_T_1_0 = np.linalg.inv(relative_motions(np.asarray(sequence.gt_poses[: len(features)])))
    matches, good, rot_errors_deg = [], [], []
    for i, T_1_0 in enumerate(gt_T_1_0):
        a, b = features[i], features[i + 1]
        m = match_descriptors(a.descriptors, b.descriptors, matching_cfg)
        p0 = a.keypoints_px[m.index_a].astype(np.float64)
        p1 = b.keypoints_px[m.index_b].astype(np.float64)
        length = np.linalg.norm(T_1_0[:3, 3])
        if length < 1e-6 or len(p0) < 8:  # no baseline: the epipolar geometry is undefined
            continue
        E = skew(T_1_0[:3, 3] / length) @ T_1_0[:3, :3]
        dist = np.sqrt(sampson_sq_px(E, K, p0, p1))
        matches.append(len(p0))
        good.append(dist[dist < max_error_px])
        for seed in seeds:
            est = estimate_relative_pose(p0, p1, K, rng=np.random.default_rng(seed))
            if est is not None:
                R_err = est.R_1_0 @ T_1_0[:3, :3].T
                rot_errors_deg.append(rotation_angle_deg(R_err))
    good_all = np.concatenate(good) if good else np.zeros(0)
    rot = np.array(rot_errors_deg)
    return {
        "pairs": len(matches),
        "matches_per_pair": float(np.mean(matches)) if matches else 0.0,
        "good_per_pair": float(len(good_all) / max(len(matches), 1)),
        "sampson_median_px": float(np.median(good_all)) if len(good_all) else None,
        "sampson_rms_px": float(np.sqrt(np.mean(good_all**2))) if len(good_all) else None,
        "rotation_mean_deg": float(rot.mean()) if len(rot) else None,
        "rotation_rms_deg": float(np.sqrt(np.mean(rot**2))) if len(rot) else None,
        "estimates": int(len(rot)),
    }


def add_sequence_arguments(parser: argparse.ArgumentParser, features: list[str]) -> None:
    """SEQ, --features, --frames, --max-error-px, --json and --set (shared with
    keypoint_covariance.py)."""
    parser.add_argument("sequence")
    parser.add_argument("--features", nargs="+", default=features)
    parser.add_argument("--frames", type=int, default=0, help="first N frames (0 = all)")
    parser.add_argument("--max-error-px", type=float, default=2.0)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )


def extract_sequence(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """(sequence, frames used, overrides, per-feature iterator): the iterator yields (feature,
    config, [Features of each frame]) for `args.features`, extracted as `tpr-vo run` does."""
    extra = overrides_or_exit(parser, args.set)
    sequence = sequence_with_ground_truth(parser, args.sequence)
    n = len(sequence) if args.frames <= 0 else min(args.frames, len(sequence))
    images = [sequence[i].image_left for i in range(n)]
    if any(image is None for image in images):
        parser.error(f"{args.sequence}: unreadable frames among the first {n}")

    def per_feature():
        for feature in args.features:
            config = load_config(None, extra | {"features.kind": feature})
            backend = prefetch_backend(feature, extra)
            yield feature, config, [backend.extract(im) for im in progress(images, desc=feature)]

    return sequence, n, extra, per_feature()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sequence_arguments(parser, ["tpr", "orb", "sift"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    sequence, n, extra, extracted = extract_sequence(parser, args)
    results = {}
    for feature, config, features in extracted:
        results[feature] = pair_accuracy(
            sequence, features, config.matching, args.seeds, args.max_error_px
        )
    print(f"\n{Path(args.sequence).name}, frames 0-{n - 1}, RANSAC seeds {args.seeds}")
    print(f"overrides: {extra}\n" if extra else "")
    print(
        "| features | matches / pair | good / pair | Sampson median (px) | Sampson RMS (px) "
        "| two-view rotation mean / RMS (deg) |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for feature, r in results.items():
        print(f"| {feature} | {r['matches_per_pair']:.0f} | {r['good_per_pair']:.0f} | "
              f"{r['sampson_median_px']:.3f} | {r['sampson_rms_px']:.3f} | "
              f"{r['rotation_mean_deg']:.4f} / {r['rotation_rms_deg']:.4f} |")  # fmt: skip
    if args.json:
        record = {"sequence": str(args.sequence), "frames": n, "seeds": args.seeds,
                  "overrides": extra, "results": results}  # fmt: skip
        write_text_atomic(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
