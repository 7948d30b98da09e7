"""Reading and extracting frame i+1 in a background thread (tpr_vo.prefetch): items in order,
errors raised at their item, and the same poses as the sequential loop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tpr_vo.config import FeaturesConfig, load_config
from tpr_vo.datasets import open_sequence
from tpr_vo.datasets.synthetic import render_synthetic_sequence
from tpr_vo.pipeline import OfflinePipeline
from tpr_vo.prefetch import available_cores, features_for_prefetch, prefetched


def test_prefetch_threads_leave_tracking_a_core(monkeypatch):
    import tpr_vo.prefetch as prefetch

    assert features_for_prefetch(FeaturesConfig(onnx_threads=3)).onnx_threads == 3
    auto = FeaturesConfig()  # onnx_threads 0 = auto
    assert features_for_prefetch(auto).onnx_threads == max(1, available_cores() - 1)
    for cores, threads in ((1, 1), (2, 1), (8, 7)):
        monkeypatch.setattr(prefetch, "available_cores", lambda c=cores: c)
        resolved = features_for_prefetch(auto)
        assert resolved.onnx_threads == threads
        assert resolved.model_path == auto.model_path and resolved.kind == auto.kind


def test_items_in_order_one_ahead_in_another_thread():
    threads, started = [], []

    def load(i):
        threads.append(threading.current_thread().name)
        started.append(i)
        return i * i

    seen = []
    for k, item in enumerate(prefetched(load, 5)):
        seen.append(item)
        # While the caller holds item k, item k+1 is being loaded, and nothing further.
        deadline = time.monotonic() + 5.0
        while k < 4 and k + 1 not in started and time.monotonic() < deadline:
            time.sleep(0.001)
        assert max(started) == min(k + 1, 4)
    assert seen == [0, 1, 4, 9, 16]
    assert all(name.startswith("tpr_vo_prefetch") for name in threads)
    assert list(prefetched(load, 3, enabled=False)) == [0, 1, 4]
    assert list(prefetched(load, 0)) == []


def test_error_is_raised_at_its_item():
    def load(i):
        if i == 2:
            raise ValueError("frame 2 is unreadable")
        return i

    got = []
    with pytest.raises(ValueError, match="frame 2"):
        for item in prefetched(load, 4):
            got.append(item)
    assert got == [0, 1]


@pytest.mark.parametrize("features, mode", [("orb", "stereo"), ("sift", "mono")])
def test_pipeline_poses_identical_with_and_without_prefetch(tmp_path, features, mode):
    seq = open_sequence(render_synthetic_sequence(tmp_path / "seq", num_frames=16))
    scale = "none" if mode == "stereo" else "gt"
    overrides = {"features.kind": features, "frontend.mode": mode, "frontend.scale": scale}
    config = load_config(None, overrides)
    runs = [
        OfflinePipeline(seq, config, None, show_progress=False, prefetch=on).run()
        for on in (False, True)
    ]
    assert runs[0].tracked.sum() >= 12
    assert np.array_equal(runs[0].T_world_cam, runs[1].T_world_cam)
    assert runs[1].fps > 0 and runs[1].stage_ms["features"] > 0
