"""`tpr-vo mma SET`: HPatches mean matching accuracy of one or several feature types."""

from __future__ import annotations

import argparse
import json

from tpr_vo.cli.common import command_parser

HELP = "mean matching accuracy (MMA@1..10) on HPatches-layout folders"
EPILOG = """examples:
  tpr-vo mma ../shared/data/homography/v_graf --features sift
  tpr-vo mma ../shared/data/homography/v_graf --features tpr orb sift --json m.json --plot m.png
  tpr-vo mma ../shared/data/homography/v_graf --features tpr --model runs/x/model.onnx
  tpr-vo mma ../shared/data/homography/v_graf --features tpr sift --scales 2 1.41 1 0.71 0.5

SET is a folder with images 1..6 (1.ppm ...) and homographies H_1_2 .. H_1_6. Matches are mutual
nearest neighbours (Hamming for ORB); MMA@t is the fraction of matches within t px of the
ground-truth homography, averaged over the pairs (1, k)."""


def add_parser(sub) -> None:
    p = command_parser(sub, "mma", HELP, EPILOG)
    p.add_argument("sets", nargs="+", metavar="SET", help="HPatches-layout folder(s)")
    p.add_argument(
        "--features",
        nargs="+",
        choices=["tpr", "orb", "sift"],
        default=["sift"],
        help="feature types to compare (default: sift)",
    )
    p.add_argument(
        "--backend",
        choices=["auto", "tensorrt", "onnxruntime", "torch"],
        default="auto",
        help="tpr backend",
    )
    p.add_argument("--max-keypoints", type=int, default=2000, help="features per image")
    p.add_argument(
        "--model", default="", help="TPR model (.onnx or .pt; default: the shipped model)"
    )
    p.add_argument(
        "--scales",
        nargs="+",
        type=float,
        default=[1.0],
        metavar="S",
        help="image scales the TPR network runs at, merged by score (default: 1; features.scales)",
    )
    p.add_argument(
        "--nms-radius",
        type=int,
        metavar="PX",
        help="TPR non-maximum suppression radius (default: features.nms_radius_px, 4)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", metavar="FILE", help="write the MMA-vs-threshold curve as PNG")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from tpr_vo.atomic import write_text_atomic
    from tpr_vo.config import from_flat_dict
    from tpr_vo.errors import BackendUnavailableError
    from tpr_vo.eval import evaluate_mma, plot_mma
    from tpr_vo.features import create_backend

    results = []
    for kind in args.features:
        flat = {
            "features.kind": kind,
            "features.backend": args.backend,
            "features.max_keypoints": args.max_keypoints,
            "features.model_path": args.model if kind == "tpr" else "",
            "features.scales": args.scales,
        }
        if args.nms_radius is not None:
            flat["features.nms_radius_px"] = args.nms_radius
        cfg = from_flat_dict(flat, "tpr-vo mma").features
        try:
            backend = create_backend(cfg, keypoint_covariance=False)  # MMA reads positions only
        except ImportError as exc:
            raise BackendUnavailableError(
                f"--features {kind}: backend not available ({exc})"
            ) from exc
        result = evaluate_mma(args.sets, backend)
        if kind == "tpr" and (cfg.scales != [1.0] or args.nms_radius is not None):
            label = f"{result.features} scales {'/'.join(f'{x:g}' for x in cfg.scales)}"
            label += f" nms {cfg.nms_radius_px}"
            result = dataclasses.replace(result, features=label)
        results.append(result)

    print("| features | MMA@1 | MMA@3 | MMA@5 | keypoints/image | matches/pair |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.features} | {r.at(1):.3f} | {r.at(3):.3f} | {r.at(5):.3f} "
            f"| {r.keypoints:.0f} | {r.matches:.0f} |"
        )
    if args.json:
        payload = {"sets": list(args.sets), "results": [r.to_json_dict() for r in results]}
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    if args.plot:
        plot_mma(results, args.plot, title=f"MMA on {', '.join(args.sets)}")
    return 0
