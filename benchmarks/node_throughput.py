"""vo_node throughput: the node in its own process (TPR, ONNX Runtime), 48 KITTI 06 frames
published at RATE Hz from this process (reliable QoS, queue 1, so late frames are dropped);
prints how many odometry messages came back per second.

    python benchmarks/node_throughput.py true 25    # ros.pipeline true | false, rate in Hz

KITTI06 (environment) overrides the sequence folder (default ../shared/data/.../06).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))  # the ROS test harness

from ros_harness import KittiFrames, Probe, ros_session  # noqa: E402

SEQUENCE = os.environ.get("KITTI06", "../shared/data/kitti/dataset/sequences/06")
FRAMES = 48


def start_node(pipeline: str) -> subprocess.Popen:
    """The node as `ros2 run` would start it, in the session's ROS domain (set by ros_session)."""
    params = {
        "features.backend": "onnxruntime",
        "ros.image_qos": "reliable",
        "ros.queue_size": "1",
        "ros.pipeline": pipeline,
    }
    argv = [sys.executable, "-m", "tpr_vo.ros.node", "--ros-args"]
    for key, value in params.items():
        argv += ["-p", f"{key}:={value}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while "ready:" not in (line := proc.stdout.readline()):
        if not line:
            raise RuntimeError("vo_node exited before it was ready")
    return proc


def main() -> None:
    pipeline, rate_hz = sys.argv[1], float(sys.argv[2])
    frames = KittiFrames(Path(SEQUENCE), FRAMES)
    with ros_session() as (context, executor):
        proc = start_node(pipeline)
        try:
            probe = Probe(context)
            executor.add_node(probe)
            probe.wait_connected()
            probe.send_frame(frames.images[0], frames.times_s[0], frames.intrinsics)
            probe.wait_odometry(1)
            t0 = time.perf_counter()
            for i in range(1, FRAMES):
                probe.send_frame(frames.images[i], frames.times_s[i], frames.intrinsics)
                time.sleep(max(0.0, t0 + i / rate_hz - time.perf_counter()))
            time.sleep(0.3)  # the last frame's odometry
            n, dt = len(probe.odometry) - 1, time.perf_counter() - t0 - 0.3
            print(
                f"ros.pipeline {pipeline}, {rate_hz:g} Hz in: {n} odometry messages for "
                f"{FRAMES - 1} frames in {dt:.2f} s = {n / dt:.1f} Hz"
            )
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)


if __name__ == "__main__":
    main()
