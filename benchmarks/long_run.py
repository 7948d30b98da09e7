"""Long-run stability of the frontend: memory and time per frame over thousands of frames.

Renders the built-in synthetic sequence once (`--loop-length` frames, KITTI layout) and feeds it
to one VisualOdometry object `--frames` times over in a loop (at each wrap the camera jumps back
to the start: tracking is lost and re-initialised, which also exercises recovery). Prints RSS
and milliseconds per frame per window, the RSS growth after warm-up (target < 5 %) and the
ratio of the last window's time per frame to the first post-warm-up window's.

    python benchmarks/long_run.py --frames 5000 --loop-length 500            # the full check
    python benchmarks/long_run.py --frames 600 --loop-length 100 --json out.json  # a quick one

Not part of the test suite (minutes of CPU)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", type=int, default=5000)
    p.add_argument("--loop-length", type=int, default=500)
    p.add_argument(
        "--warmup", type=int, default=0, help="frames before the RSS baseline (default: one loop)"
    )
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--mode", choices=("mono", "stereo"), default="stereo")
    p.add_argument("--features", choices=("orb", "sift", "tpr"), default="orb")
    p.add_argument("--sequence", help="an already rendered sequence folder (skips rendering)")
    p.add_argument("--json", help="write the per-window table here")
    args = p.parse_args(argv)

    from tpr_vo.config import VoConfig, replace
    from tpr_vo.datasets import open_sequence
    from tpr_vo.datasets.synthetic import render_synthetic_sequence
    from tpr_vo.frontend import VisualOdometry

    tmp = None
    if args.sequence:
        seq_dir = Path(args.sequence)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tpr_vo_long_run_")
        t0 = time.perf_counter()
        seq_dir = render_synthetic_sequence(Path(tmp.name) / "seq", num_frames=args.loop_length)
        print(f"rendered {args.loop_length} frames in {time.perf_counter() - t0:.0f} s")
    seq = open_sequence(seq_dir)
    cfg = replace(VoConfig(), **{"features.kind": args.features, "frontend.mode": args.mode})
    vo = VisualOdometry(cfg, seq.intrinsics)
    warmup = args.warmup or min(len(seq), args.frames // 2)
    rows, times, tracked, baseline_rss = [], [], 0, None
    n = len(seq)
    for k in range(args.frames):
        frame = seq[k % n]
        t0 = time.perf_counter()
        est = vo.process_frame(frame.image_left, k * 0.1, frame.image_right)
        times.append(time.perf_counter() - t0)
        tracked += est.tracked
        if not np.all(np.isfinite(est.T_world_cam)):
            print(f"frame {k}: non-finite pose", file=sys.stderr)
            return 1
        if k + 1 == warmup:
            baseline_rss = rss_mb()
        if (k + 1) % args.window == 0:
            row = {
                "frames": k + 1,
                "rss_mb": round(rss_mb(), 1),
                "ms_per_frame": round(1e3 * float(np.mean(times[-args.window :])), 1),
                "map_points": len(vo._tracker.map),
            }
            rows.append(row)
            print(
                f"{row['frames']:6d} frames  RSS {row['rss_mb']:8.1f} MiB  "
                f"{row['ms_per_frame']:7.1f} ms/frame  map points {row['map_points']}",
                flush=True,
            )
    final_rss = rss_mb()
    after = [r for r in rows if r["frames"] > warmup]
    growth = 100.0 * (final_rss - baseline_rss) / baseline_rss if baseline_rss else float("nan")
    time_ratio = after[-1]["ms_per_frame"] / after[0]["ms_per_frame"] if len(after) >= 2 else None
    summary = {
        "frames": args.frames,
        "loop_length": n,
        "mode": args.mode,
        "features": args.features,
        "warmup_frames": warmup,
        "rss_after_warmup_mb": round(baseline_rss or 0.0, 1),
        "rss_final_mb": round(final_rss, 1),
        "rss_growth_pct": round(growth, 2),
        "time_per_frame_last_over_first": None if time_ratio is None else round(time_ratio, 3),
        "tracked_frames": tracked,
        "windows": rows,
    }
    print(
        f"RSS growth after warm-up ({warmup} frames): {growth:+.2f} % (target < 5 %); "
        f"time per frame last/first window after warm-up: {time_ratio}; "
        f"tracked {tracked}/{args.frames}"
    )
    if args.json:
        from tpr_vo.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(summary, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
