"""A stereo frame's two images: extracted side by side when the backend allows it
(`concurrent_extract`), one after the other otherwise, with the same features either way."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from tpr_vo.config import FeaturesConfig
from tpr_vo.frontend import extract_frame
from tpr_vo.types import Features


class _MarkerBackend:
    """Features whose one keypoint holds the image's mean grey level, so left and right can be
    told apart; records the thread of each call and can wait for a second call to be running."""

    name = "marker"

    def __init__(self, concurrent: bool, barrier: threading.Barrier | None = None, fail=None):
        self.concurrent_extract = concurrent
        self.barrier = barrier
        self.fail = fail  # mean grey level whose call raises
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def extract(self, image: np.ndarray) -> Features:
        with self.lock:
            self.threads.append(threading.current_thread().name)
        if self.barrier is not None:
            self.barrier.wait()  # BrokenBarrierError after its timeout if the other never comes
        level = float(image.mean())
        if self.fail is not None and abs(level - self.fail) < 1e-6:
            raise ValueError(f"cannot extract image {level:.0f}")
        kp = np.array([[level, level]], np.float32)
        return Features(kp, np.ones(1, np.float32), np.ones((1, 4), np.float32))


def _images(seed: int = 0):
    rng = np.random.default_rng(seed)
    left = rng.integers(40, 80, (64, 96), dtype=np.uint8)
    right = rng.integers(140, 180, (64, 96), dtype=np.uint8)
    return left, right


def test_side_by_side_when_the_backend_allows_it():
    left, right = _images()
    backend = _MarkerBackend(True, threading.Barrier(2, timeout=10.0))
    out = extract_frame(backend, left, right)  # both calls must be inside extract at once
    assert out.features.keypoints_px[0, 0] == pytest.approx(left.mean(), abs=1e-3)
    assert out.right_features.keypoints_px[0, 0] == pytest.approx(right.mean(), abs=1e-3)
    assert sorted(backend.threads) == sorted([threading.current_thread().name, "tpr_vo_right"])
    assert not any(t.name == "tpr_vo_right" for t in threading.enumerate())


def test_one_after_the_other_otherwise():
    left, right = _images()
    backend = _MarkerBackend(False)
    out = extract_frame(backend, left, right)
    assert backend.threads == [threading.current_thread().name] * 2
    assert out.features.keypoints_px[0, 0] == pytest.approx(left.mean(), abs=1e-3)
    assert out.right_features.keypoints_px[0, 0] == pytest.approx(right.mean(), abs=1e-3)
    mono = extract_frame(_MarkerBackend(True), left, None)  # no right image: no second thread
    assert mono.right_features is None and mono.right_gray is None


@pytest.mark.parametrize("failing", ["left", "right"])
def test_an_error_in_either_image_is_raised_after_both_finished(failing):
    left, right = _images()
    level = float((left if failing == "left" else right).mean())
    backend = _MarkerBackend(True, fail=level)
    with pytest.raises(ValueError, match=f"cannot extract image {level:.0f}"):
        extract_frame(backend, left, right)
    assert len(backend.threads) == 2  # the other image was extracted too
    assert not any(t.name == "tpr_vo_right" for t in threading.enumerate())


def test_onnxruntime_side_by_side_only_with_cores_to_spare(monkeypatch):
    import tpr_vo.features.onnx_backend as onnx_backend

    for cores, threads, expected in ((2, 1, True), (2, 0, False), (2, 2, False), (16, 15, False)):
        monkeypatch.setattr(onnx_backend, "available_cores", lambda c=cores: c)
        backend = onnx_backend.OnnxRuntimeBackend(FeaturesConfig(onnx_threads=threads), "cpu")
        assert backend.concurrent_extract is expected, (cores, threads)


def test_onnxruntime_same_features_side_by_side(kitti06, monkeypatch):
    import tpr_vo.features.onnx_backend as onnx_backend

    left = cv2.imread(str(kitti06 / "image_0" / "000010.png"), cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(str(kitti06 / "image_1" / "000010.png"), cv2.IMREAD_GRAYSCALE)
    monkeypatch.setattr(onnx_backend, "available_cores", lambda: 2)
    backend = onnx_backend.OnnxRuntimeBackend(FeaturesConfig(onnx_threads=1), "cpu")
    assert backend.concurrent_extract
    together = extract_frame(backend, left, right)
    backend.concurrent_extract = False
    apart = extract_frame(backend, left, right)
    for a, b in (
        (together.features, apart.features),
        (together.right_features, apart.right_features),
    ):
        assert len(a) > 500
        np.testing.assert_array_equal(a.keypoints_px, b.keypoints_px)
        np.testing.assert_array_equal(a.descriptors, b.descriptors)
        np.testing.assert_array_equal(a.scores, b.scores)
