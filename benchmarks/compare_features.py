"""Compare feature types through the same frontend over several seeds (ATE, RPE rotation, FPS).

On a 50-frame clip one RANSAC draw can move ATE tenfold, so every cell is a mean +- std over
seeds. Writes a Markdown table to stdout and the raw per-run metrics as JSON.

    python benchmarks/compare_features.py ../shared/data/kitti/dataset/sequences/06 \
        --features tpr orb sift --runs "mono gt" "mono height" stereo --seeds 0 1 2 \
        --json benchmarks/results/compare_kitti06.json
    # any config key, e.g. a fast profile or another model:
    python benchmarks/compare_features.py SEQ --set features.max_keypoints=1000 \
        --set features.model_path=runs/x/model.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tpr_vo.atomic import write_text_atomic
from tpr_vo.config import load_config, parse_set_overrides
from tpr_vo.datasets import open_sequence
from tpr_vo.errors import ConfigError
from tpr_vo.eval.paired import paired_difference
from tpr_vo.eval.rpe import compute_rpe
from tpr_vo.features import create_backend
from tpr_vo.pipeline import OfflinePipeline
from tpr_vo.prefetch import features_for_prefetch


def overrides_or_exit(parser: argparse.ArgumentParser, values: list[str]) -> dict:
    """`--set KEY=VALUE` values as config overrides; a bad one (malformed, an unknown key, a
    value the config refuses) ends the run with its message."""
    try:
        overrides = parse_set_overrides(values)
        load_config(None, overrides)
    except ConfigError as exc:
        parser.error(str(exc))
    return overrides


def sequence_with_ground_truth(parser: argparse.ArgumentParser, path: str):
    """The sequence at `path`; ends the run when it has no ground-truth poses."""
    sequence = open_sequence(path)
    if sequence.gt_poses is None:
        parser.error(f"{path}: no ground-truth poses")
    return sequence


def prefetch_backend(features: str, extra: dict):
    """The backend of `features` as `tpr-vo run` uses it: extraction in the pipeline's prefetch
    thread, with its thread counts."""
    config = load_config(None, extra | {"features.kind": features})
    return create_backend(
        features_for_prefetch(config.features),
        keypoint_covariance=config.frontend.uses_keypoint_covariance,
    )


def run_pipeline(
    sequence, features: str, run: str, frontend: str, seed: int, backend, extra: dict | None = None
):
    """One `tpr-vo run`-equivalent run; `run` is "MODE [SCALE]", e.g. "mono gt" or "stereo"."""
    mode, _, scale = run.partition(" ")
    overrides = dict(extra or {})
    overrides |= {
        "features.kind": features,
        "frontend.mode": mode,
        "frontend.scale": scale or "none",
        "frontend.kind": frontend,
        "seed": seed,
    }
    config = load_config(None, overrides)
    return OfflinePipeline(sequence, config, None, show_progress=False, backend=backend).run()


def run_one(
    sequence, features: str, run: str, frontend: str, seed: int, backend, extra: dict | None = None
) -> dict:
    result = run_pipeline(sequence, features, run, frontend, seed, backend, extra)
    metrics = dict(result.metrics)
    metrics.update(features=features, run=run, frontend=frontend, seed=seed)
    if sequence.gt_poses is not None:
        n = len(result.T_world_cam)
        rpe = compute_rpe(sequence.gt_poses[:n], result.T_world_cam)
        metrics["rpe_rot_per_frame_deg"] = [round(float(e), 6) for e in rpe.rot_errors_deg]
    return metrics


def per_frame_rotation(records: list[dict], feature: str, run: str) -> np.ndarray:
    """(N - 1,) per-frame RPE rotation of one feature and run, averaged over seeds."""
    group = [r["rpe_rot_per_frame_deg"] for r in records
             if r["features"] == feature and r["run"] == run]  # fmt: skip
    return np.mean(group, axis=0)


def paired_rows(records: list[dict], reference: str, features: list[str], runs: list[str]):
    """Per run, each feature's per-frame RPE rotation against the reference's on the same
    frames (tpr_vo.eval.paired) -> Markdown rows."""
    rows = []
    for run in runs:
        ref = per_frame_rotation(records, reference, run)
        for feature in features:
            if feature == reference:
                continue
            d = paired_difference(per_frame_rotation(records, feature, run), ref)
            cells = paired_cells(d, feature, reference)
            rows.append(f"| {run} | {feature} - {reference} | {cells}")
    return rows


def paired_cells(d, feature: str, reference: str) -> str:
    """The Markdown cells of a PairedDifference of feature - reference: mean, 95 % interval,
    frames where the feature is lower, verdict (ends the row)."""
    verdict = {"a lower": f"{feature} lower", "b lower": f"{reference} lower"}
    return (
        f"{d.mean:+.4f} | [{d.ci_low:+.4f}, {d.ci_high:+.4f}] | {d.frames_a_lower}/{d.frames} | "
        f"{verdict.get(d.verdict, d.verdict)} |"
    )


def median(records: list[dict], key: str) -> str:
    values = [r[key] for r in records if r[key] is not None]
    return f"{np.median(values):.3f}" if values else "-"


def summarise(records: list[dict], key: str) -> str:
    values = np.array([r[key] for r in records if r[key] is not None], dtype=float)
    if len(values) == 0:
        return "-"
    return f"{values.mean():.3f} ± {values.std():.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sequence")
    parser.add_argument("--features", nargs="+", default=["tpr", "orb", "sift"])
    parser.add_argument("--runs", nargs="+", default=["mono gt", "mono height", "stereo"])
    parser.add_argument("--frontend", default="map", choices=["map", "f2f"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--json", help="write every run's metrics here")
    parser.add_argument(
        "--paired",
        metavar="FEATURE",
        help="also compare every feature's per-frame RPE rotation with this one's on the same "
        "frames (mean difference, 95 %% bootstrap interval over frames; needs ground truth)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override (dotted key, YAML value), repeatable",
    )
    args = parser.parse_args(argv)
    extra = overrides_or_exit(parser, args.set)
    if args.paired and args.paired not in args.features:
        parser.error(f"--paired {args.paired}: not among --features {args.features}")
    sequence = (
        sequence_with_ground_truth(parser, args.sequence)
        if args.paired
        else open_sequence(args.sequence)
    )
    records = []
    for features in args.features:
        backend = prefetch_backend(features, extra)
        for run in args.runs:
            for seed in args.seeds:
                rec = run_one(sequence, features, run, args.frontend, seed, backend, extra)
                records.append(rec)
                print(f"{features:5s} {run:12s} seed {seed}: ATE {rec['ate_rmse_m']:.3f} m, "
                      f"RPE rot {rec['rpe_rot_deg']:.3f} deg, tracked {rec['tracked_frames']}, "
                      f"{rec['fps']:.1f} FPS", file=sys.stderr, flush=True)  # fmt: skip
    print(f"\n{Path(args.sequence).name}, frontend {args.frontend}, seeds {args.seeds}")
    print(f"overrides: {extra}\n" if extra else "")
    # Mono runs on a 50-frame clip are chaotic (round-off alone moves one seed's ATE several
    # fold), so the median stands next to the mean.
    print(
        "| features | run | ATE RMSE (m) | ATE median (m) | RPE rot (deg/frame) | tracked | FPS |"
    )
    print("|---|---|---|---|---|---|---|")
    for features in args.features:
        for run in args.runs:
            group = [r for r in records if r["features"] == features and r["run"] == run]
            tracked = min(r["tracked_frames"] for r in group)
            print(f"| {features} | {run} | {summarise(group, 'ate_rmse_m')} | "
                  f"{median(group, 'ate_rmse_m')} | "
                  f"{summarise(group, 'rpe_rot_deg')} | >= {tracked}/{group[0]['frames']} | "
                  f"{summarise(group, 'fps')} |")  # fmt: skip
    if args.paired:
        print(
            "\nPer-frame RPE rotation (deg/frame), paired over the same frames, seeds averaged:\n"
        )
        print("| run | difference | mean | 95 % interval | frames lower | verdict |")
        print("|---|---|---|---|---|---|")
        print("\n".join(paired_rows(records, args.paired, args.features, args.runs)))
    if args.json:
        write_text_atomic(args.json, json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
