"""MMA (HPatches protocol): matching primitives, a synthetic pair with a known homography, and
the real Oxford graffiti sequence with SIFT."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import DataError
from tpr_vo.eval import evaluate_mma, match_pair, mutual_nearest_neighbors
from tpr_vo.eval.mma import hpatches_pairs
from tpr_vo.features import create_backend
from tpr_vo.geometry.triangulation import warp_points
from tpr_vo.types import Features

H_KNOWN = np.array(
    [[0.92, -0.12, 40.0], [0.10, 0.95, 10.0], [1.5e-4, -8e-5, 1.0]], dtype=np.float64
)


def write_pair(folder: Path, H: np.ndarray, H_written: np.ndarray | None = None) -> Path:
    """1.png = a colour photograph, 2.png = it warped by H; H_1_2 holds H_written (or H)."""
    skimage_data = pytest.importorskip("skimage.data")
    folder.mkdir(parents=True, exist_ok=True)
    image = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)  # 512x512 colour
    warped = cv2.warpPerspective(image, H, (image.shape[1], image.shape[0]))
    cv2.imwrite(str(folder / "1.png"), image)
    cv2.imwrite(str(folder / "2.png"), warped)
    np.savetxt(folder / "H_1_2", H if H_written is None else H_written)
    return folder


def features(xy, desc) -> Features:
    xy = np.asarray(xy, np.float32)
    return Features(xy, np.ones(len(xy), np.float32), np.asarray(desc))


def test_mutual_nearest_neighbours_float_and_hamming():
    d1 = np.eye(4, dtype=np.float32)
    d2 = np.eye(4, dtype=np.float32)[[2, 0, 1]]  # 3 of the 4 descriptors, permuted
    assert mutual_nearest_neighbors(d1, d2).tolist() == [[0, 1], [1, 2], [2, 0]]
    # Two queries share one nearest neighbour: only the closer one is mutual.
    q = np.array([[1.0, 0.0], [0.8, 0.6]], np.float32)
    t = np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32)
    assert mutual_nearest_neighbors(q, t).tolist() == [[0, 0]]
    # Packed binary: Hamming distance, not byte values.
    b1 = np.array([[0b00000001, 0], [0b11111111, 0]], np.uint8)
    b2 = np.array([[0b11111110, 0], [0b00000011, 0]], np.uint8)  # 7 bits / 1 bit from b1[1], b1[0]
    assert mutual_nearest_neighbors(b1, b2).tolist() == [[0, 1], [1, 0]]
    assert mutual_nearest_neighbors(np.zeros((0, 4), np.float32), d2).shape == (0, 2)


def test_match_pair_counts_correct_matches_per_threshold():
    xy1 = np.array([[10, 10], [50, 20], [30, 80], [90, 40]], np.float32)
    H = np.array([[1, 0, 5], [0, 1, -3], [0, 0, 1]], np.float64)  # a shift
    xy2 = warp_points(H, xy1).astype(np.float32)
    xy2[2] += [0.0, 2.5]  # 2.5 px off
    xy2[3] += [6.0, 8.0]  # 10 px off
    desc = np.eye(4, dtype=np.float32)
    pair = match_pair(features(xy1, desc), features(xy2, desc), H)
    assert pair.matches == 4 and pair.keypoints == (4, 4)
    expected = [0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 1.0]  # t = 1..10 px
    np.testing.assert_allclose(pair.correct_fraction, expected)


def test_sift_on_a_synthetic_pair_with_known_homography(tmp_path):
    folder = write_pair(tmp_path / "synthetic", H_KNOWN)
    sift = create_backend(FeaturesConfig(kind="sift", max_keypoints=1000))
    result = evaluate_mma([folder], sift)
    assert len(result.pairs) == 1
    assert result.keypoints >= 900 and result.matches >= 300
    assert result.at(3) > 0.85
    assert np.all(np.diff(result.mma) >= 0)  # MMA grows with the threshold

    # The same images scored against a homography 6 px off: few matches within 3 px.
    off = H_KNOWN.copy()
    off[:2, 2] += [6.0, 0.0]
    wrong = evaluate_mma([write_pair(tmp_path / "wrong", H_KNOWN, off)], sift)
    assert wrong.at(3) < 0.1
    assert wrong.at(10) > 0.7


def test_orb_uses_hamming_and_scores_the_synthetic_pair(tmp_path):
    folder = write_pair(tmp_path / "synthetic", H_KNOWN)
    orb = create_backend(FeaturesConfig(kind="orb", max_keypoints=1000))
    result = evaluate_mma([folder], orb)
    assert result.features == "orb"
    assert result.at(5) > 0.7
    d = result.to_json_dict()
    assert [f"mma@{k}" in d for k in range(1, 11)] == [True] * 10
    assert {"features", "keypoints", "matches"} <= d.keys()


def test_graffiti_sift_regression(graffiti):
    """Oxford graffiti (v_graf), SIFT, 2000 keypoints. Measured 2026-11-25: MMA@1 0.204, @3 0.307,
    @5 0.334; 770 matches/pair; pair 1-2 MMA@3 0.768, pair 1-6 0.008."""
    result = evaluate_mma([graffiti], create_backend(FeaturesConfig(kind="sift")))
    assert [p.name for p in result.pairs] == [f"v_graf/1-{k}" for k in range(2, 7)]
    assert result.keypoints == pytest.approx(2000, abs=5)
    assert 0.27 <= result.at(3) <= 0.36
    assert 0.18 <= result.at(1) <= result.at(3) <= result.at(5) <= 0.40
    # Accuracy falls with the viewpoint angle: 1-2 easy, 1-6 (60 degrees) hardly matchable.
    at3 = [p.correct_fraction[2] for p in result.pairs]
    assert at3[0] > 0.6 and at3[-1] < 0.05
    assert at3 == sorted(at3, reverse=True)


def test_layout_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no homographies"):
        hpatches_pairs(tmp_path)
    (tmp_path / "H_1_2").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(DataError, match="H_1_2"):
        hpatches_pairs(tmp_path)
    (tmp_path / "H_1_2").write_text("1 0 0\n0 1 0\n0 0 1\n")
    with pytest.raises(DataError, match="image 2 not found"):
        hpatches_pairs(tmp_path)


def test_viewpoint_set_generator_writes_a_consistent_hpatches_folder(tmp_path):
    """benchmarks/make_viewpoint_set.py: the orbit homography is the identity at 0 degrees and
    moves the image centre's column sideways as the angle grows; the written set reads back as
    five pairs, and SIFT matches image 1 to image 2 through the written H_1_2."""
    from conftest import load_benchmark

    mvs = load_benchmark("make_viewpoint_set")
    np.testing.assert_allclose(mvs.orbit_homography(640, 480, 0.0), np.eye(3), atol=1e-6)
    # The plane's centre stays at the image centre (the camera keeps looking at it); its left
    # and right edges foreshorten unequally.
    H30 = mvs.orbit_homography(640, 480, 30.0)
    np.testing.assert_allclose(
        warp_points(H30, np.array([[320.0, 240.0]])), [[320, 240]], atol=1e-3
    )
    left, right = warp_points(H30, np.array([[0.0, 240.0], [640.0, 240.0]]))
    assert abs((320 - left[0]) - (right[0] - 320)) > 20
    skimage_data = pytest.importorskip("skimage.data")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), skimage_data.camera())
    mvs.make_set(photo, tmp_path / "set")
    pairs = hpatches_pairs(tmp_path / "set")
    assert [k for k, _, _ in pairs] == ["2", "3", "4", "5", "6"]
    result = evaluate_mma([tmp_path / "set"], create_backend(FeaturesConfig(kind="sift")))
    assert result.pairs[0].correct_fraction[2] > 0.5  # pair 1-2 through H_1_2, 3 px
