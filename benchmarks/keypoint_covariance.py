"""Do the keypoints' covariances predict their errors? Check, and refit the covariance models.

Keypoints carry a position covariance (`Features.keypoint_cov_px2`): TPR's from the spread of
the sub-pixel soft-argmax (`features.postprocess.keypoint_covariance_px2`), ORB's and SIFT's
from the image's structure tensor (`features.classical.structure_tensor_covariance_px2`). The
frontend weighs residuals by them (`frontend.keypoint_covariance`). This script measures whether
they are right.

Each pair of consecutive frames is matched as the frontend matches them. For each match, the
signed distance d of the current keypoint to the epipolar line of the previous one is taken,
under the ground-truth motion. On a rendered sequence that motion is exact, so d comes from
keypoint localisation alone. Its predicted variance is n1^T C1 n1 + n0^T C0 n0, with C the two
keypoints' covariances and n the epipolar lines' unit normals. Matches within `--max-error-px`
enter:
- a table by quintile of the predicted variance: predicted RMS, measured RMS, and the measured
  robust sigma (1.4826 * median |d|; mismatches inflate the RMS);
- a fit of sigma^2 = c0 + c1 * predicted over deciles. A right model gives c0 = 0 and c1 = 1.
  The refit model constants that would give that are printed (the models are affine in their
  inputs). Only relative weights matter to the frontend (`geometry.whitening`).

    python benchmarks/keypoint_covariance.py SEQ --features tpr sift orb --frames 100 \\
        --json benchmarks/results/keypoint_covariance.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tpr_vo.atomic import write_text_atomic
from tpr_vo.eval.rpe import relative_motions
from tpr_vo.features.classical import STRUCTURE_COV
from tpr_vo.features.postprocess import COV_FLOOR_PX2, COV_GAIN
from tpr_vo.geometry.se3 import skew
from tpr_vo.matching import match_descriptors

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling two_view_accuracy.py
from two_view_accuracy import add_sequence_arguments, extract_sequence  # noqa: E402


def epipolar_errors(sequence, features: list, matching_cfg, max_error_px: float):
    """(d, predicted variance) of every match of consecutive frames with |d| < max_error_px:
    d the signed distance (px) of the current keypoint to the previous one's epipolar line."""
    K_inv = np.linalg.inv(sequence.intrinsics.K)
    gt_T_1_0 = np.linalg.inv(relative_motions(np.asarray(sequence.gt_poses[: len(features)])))
    d_all, var_all = [], []
    for i, T_1_0 in enumerate(gt_T_1_0):
        a, b = features[i], features[i + 1]
        length = np.linalg.norm(T_1_0[:3, 3])
        if length < 1e-6 or a.keypoint_cov_px2 is None or b.keypoint_cov_px2 is None:
            continue
        m = match_descriptors(a.descriptors, b.descriptors, matching_cfg)
        F = K_inv.T @ skew(T_1_0[:3, 3] / length) @ T_1_0[:3, :3] @ K_inv
        x0 = np.c_[a.keypoints_px[m.index_a], np.ones(len(m))].astype(np.float64)
        x1 = np.c_[b.keypoints_px[m.index_b], np.ones(len(m))].astype(np.float64)
        line1, line0 = x0 @ F.T, x1 @ F  # the epipolar lines in the current / previous image
        norm1 = np.linalg.norm(line1[:, :2], axis=1)
        n1 = line1[:, :2] / norm1[:, None]
        n0 = line0[:, :2] / np.linalg.norm(line0[:, :2], axis=1, keepdims=True)
        d = np.sum(line1 * x1, axis=1) / norm1
        c0 = a.keypoint_cov_px2[m.index_a].astype(np.float64)
        c1 = b.keypoint_cov_px2[m.index_b].astype(np.float64)
        var = np.einsum("ni,nij,nj->n", n1, c1, n1) + np.einsum("ni,nij,nj->n", n0, c0, n0)
        keep = np.abs(d) < max_error_px
        d_all.append(d[keep])
        var_all.append(var[keep])
    if not d_all:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(d_all), np.concatenate(var_all)


ROBUST_SIGMA = 1.4826  # sigma of a zero-mean normal from its median absolute value
MIN_FLOOR_PX2 = 0.005  # a refit floor never goes below this (no keypoint gets unbounded weight)


def calibration(d: np.ndarray, predicted_var: np.ndarray, bins: int = 5, fit_bins: int = 10):
    """Quantile table of predicted against measured spread, and the fit sigma^2 = c0 + c1 *
    var through `fit_bins` quantile bins, with sigma = 1.4826 * median |d| of each bin (robust to
    the mismatches that |d| < max_error_px still lets in; they inflate the RMS)."""

    def binned(k: int):
        edges = np.quantile(predicted_var, np.linspace(0.0, 1.0, k + 1))
        which = np.clip(np.searchsorted(edges, predicted_var, side="right") - 1, 0, k - 1)
        return [which == j for j in range(k) if np.any(which == j)]

    table = [
        {
            "predicted_rms_px": float(np.sqrt(predicted_var[sel].mean())),
            "measured_rms_px": float(np.sqrt(np.mean(d[sel] ** 2))),
            "measured_sigma_px": float(ROBUST_SIGMA * np.median(np.abs(d[sel]))),
            "matches": int(sel.sum()),
        }
        for sel in binned(bins)
    ]
    x = np.array([predicted_var[sel].mean() for sel in binned(fit_bins)])
    y = np.array([(ROBUST_SIGMA * np.median(np.abs(d[sel]))) ** 2 for sel in binned(fit_bins)])
    if len(x) >= 2 and np.ptp(x) > 0:
        (c0, c1), *_ = np.linalg.lstsq(np.c_[np.ones_like(x), x], y, rcond=None)
    else:  # one predicted value for every match: only a scale is measurable
        c0, c1 = 0.0, float(y.mean() / max(x.mean(), 1e-12))
    rank = np.argsort(np.argsort(predicted_var)), np.argsort(np.argsort(np.abs(d)))
    spearman = float(np.corrcoef(*rank)[0, 1])
    return {"matches": len(d), "c0_px2": float(c0), "c1": float(c1), "spearman": spearman,
            "table": table}  # fmt: skip


def refit(floor: float, gain: float, c0: float, c1: float) -> tuple[float, float]:
    """Model var = floor + gain * x with the fit sigma^2 = c0 + c1 * (var_a + var_b): the
    constants for which the fit would be c0 = 0, c1 = 1 (floor at least MIN_FLOOR_PX2)."""
    return max(c1 * floor + 0.5 * c0, MIN_FLOOR_PX2), c1 * gain


def model_constants(feature: str) -> tuple[float, float]:
    """(floor px^2, gain) of the covariance model of `feature`."""
    return (COV_FLOOR_PX2, COV_GAIN) if feature == "tpr" else STRUCTURE_COV[feature]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sequence_arguments(parser, ["tpr", "sift", "orb"])
    args = parser.parse_args(argv)
    sequence, n, extra, extracted = extract_sequence(parser, args)
    results = {}
    for feature, config, features in extracted:
        d, var = epipolar_errors(sequence, features, config.matching, args.max_error_px)
        if len(d) < 10:
            parser.error(f"{feature}: fewer than 10 matches carry covariances")
        r = calibration(d, var)
        floor, gain = model_constants(feature)
        r["model"] = {"floor_px2": floor, "gain": gain}
        r["refit"] = dict(zip(("floor_px2", "gain"), refit(floor, gain, r["c0_px2"], r["c1"])))
        results[feature] = r
    print(f"\n{Path(args.sequence).name}, frames 0-{n - 1}, |d| < {args.max_error_px} px")
    for feature, r in results.items():
        print(f"\n{feature}: {r['matches']} matches, sigma^2 = {r['c0_px2']:.4f} + {r['c1']:.3g} "
              f"* predicted (sigma^2), Spearman {r['spearman']:.3f}; model {r['model']}, "
              f"refit {{floor_px2: {r['refit']['floor_px2']:.4f}, "
              f"gain: {r['refit']['gain']:.3g}}}")  # fmt: skip
        print("| predicted RMS (px) | measured RMS (px) | measured robust sigma (px) | matches |")
        print("|---:|---:|---:|---:|")
        for row in r["table"]:
            print(f"| {row['predicted_rms_px']:.3f} | {row['measured_rms_px']:.3f} | "
                  f"{row['measured_sigma_px']:.3f} | {row['matches']} |")  # fmt: skip
    if args.json:
        record = {"sequence": str(args.sequence), "frames": n, "overrides": extra,
                  "max_error_px": args.max_error_px, "results": results}  # fmt: skip
        write_text_atomic(args.json, json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
