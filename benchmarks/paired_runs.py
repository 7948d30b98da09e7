"""One feature against a reference over several `compare_features.py --json` files (paired).

Each file is one run of `compare_features.py`, e.g. one trained model per file (`--set
features.model_path=...`). Per file and run, the feature's per-frame RPE rotation (seeds
averaged) is compared with the reference's from the same file, as `--paired` does. The last row
pools the files: the feature's per-frame errors averaged over files against the reference's, so
"is the recipe lower than SIFT?" is asked of all its training runs at once.

    python benchmarks/paired_runs.py benchmarks/results/paired_kitti06_s17.json \
        benchmarks/results/paired_kitti06_*_int8_s17.json --feature tpr --reference sift
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tpr_vo.eval.paired import paired_difference

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling compare_features.py
from compare_features import paired_cells, per_frame_rotation  # noqa: E402


def load_series(path: str, feature: str, reference: str, runs: list[str]) -> dict:
    """{run: (feature's (N,) per-frame errors, reference's)} of one file; ValueError naming the
    file and what it lacks."""
    try:
        records = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a compare_features.py --json file ({exc})") from exc
    out = {}
    for run in runs:
        pair = []
        for name in (feature, reference):
            group = [r for r in records if r.get("features") == name and r.get("run") == run]
            if not group or any("rpe_rot_per_frame_deg" not in r for r in group):
                raise ValueError(
                    f"{path}: no per-frame RPE rotation of {name!r} in run {run!r} "
                    "(rerun compare_features.py with both features and --json)"
                )
            pair.append(per_frame_rotation(records, name, run))
        out[run] = tuple(pair)
    return out


def table_rows(series: dict[str, dict], feature: str, reference: str, runs: list[str]) -> list:
    """Markdown rows: every file, then the pooled row, per run."""
    rows = []
    for run in runs:
        pooled_a, pooled_b = [], []
        for path, by_run in series.items():
            a, b = by_run[run]
            if pooled_a and len(a) != len(pooled_a[0]):
                raise ValueError(f"{path}: {len(a)} frame pairs in run {run!r}, others have "
                                 f"{len(pooled_a[0])}")  # fmt: skip
            pooled_a.append(a)
            pooled_b.append(b)
            rows.append(_row(run, Path(path).name, a, b, feature, reference))
        a, b = np.mean(pooled_a, axis=0), np.mean(pooled_b, axis=0)
        rows.append(_row(run, f"pooled ({len(pooled_a)} files)", a, b, feature, reference))
    return rows


def _row(run, label, a, b, feature, reference) -> str:
    d = paired_difference(a, b)
    return (
        f"| {run} | {label} | {a.mean():.4f} | {b.mean():.4f} | "
        f"{paired_cells(d, feature, reference)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="compare_features.py --json outputs")
    parser.add_argument("--feature", default="tpr")
    parser.add_argument("--reference", default="sift")
    parser.add_argument("--runs", nargs="+", default=["mono gt", "stereo"])
    args = parser.parse_args(argv)
    try:
        series = {f: load_series(f, args.feature, args.reference, args.runs) for f in args.files}
        rows = table_rows(series, args.feature, args.reference, args.runs)
    except ValueError as exc:
        parser.error(str(exc))
    f, ref = args.feature, args.reference
    print(f"| run | file | {f} (deg/frame) | {ref} | difference | 95 % interval "
          f"| frames {f} lower | verdict |")  # fmt: skip
    print("|---|---|---:|---:|---:|---|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
