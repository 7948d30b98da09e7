"""Shared TPR pre/post-processing on synthetic score and descriptor maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tpr_vo.errors import DataError
from tpr_vo.features.postprocess import (
    PostprocessParams,
    descriptor_stride,
    detect_keypoints,
    extract_features,
    refine_subpixel,
    sample_descriptors,
)
from tpr_vo.features.preprocess import padded_size, prepare_image


def gaussian_peaks(shape, peaks_xy, amplitudes, sigma=1.0):
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros(shape, np.float32)
    for (x, y), a in zip(peaks_xy, amplitudes):
        out = np.maximum(out, a * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)))
    return out


def test_prepare_image_pads_bottom_right_to_multiple_of_32():
    image = np.arange(370 * 1226, dtype=np.int64).reshape(370, 1226) % 256
    net_in = prepare_image(image.astype(np.uint8))
    assert padded_size(370, 1226) == (384, 1248)
    assert net_in.tensor.shape == (1, 1, 384, 1248) and net_in.tensor.dtype == np.float32
    assert (net_in.height_px, net_in.width_px) == (370, 1226)
    np.testing.assert_allclose(net_in.tensor[0, 0, :370, :1226], image / 255.0, atol=1e-7)
    assert not net_in.tensor[0, 0, 370:].any() and not net_in.tensor[0, 0, :, 1226:].any()
    assert padded_size(64, 32) == (64, 32)


@pytest.mark.parametrize(
    "bad", [np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.float32), [[1, 2]]]
)
def test_prepare_image_rejects_non_gray_uint8(bad):
    with pytest.raises(DataError, match="uint8 grayscale"):
        prepare_image(bad)


def test_nms_threshold_border_and_topk():
    peaks = [(40, 30), (43, 31), (100, 60), (150, 20), (3, 50), (120, 90)]
    amps = [0.9, 0.5, 0.8, 0.02, 0.95, 0.7]
    scores = gaussian_peaks((100, 200), peaks, amps)
    params = PostprocessParams(nms_radius_px=4, score_threshold=0.05, border_px=8)
    kps, vals = detect_keypoints(scores, params)
    # (43, 31) is suppressed by the stronger (40, 30) 3 px away; (150, 20) is below the
    # threshold; (3, 50) lies in the 8 px border. Sorted by score, best first.
    assert kps.tolist() == [[40, 30], [100, 60], [120, 90]]
    np.testing.assert_allclose(vals, [0.9, 0.8, 0.7], atol=1e-6)
    top2 = detect_keypoints(scores, PostprocessParams(score_threshold=0.05, max_keypoints=2))
    assert top2[0].tolist() == [[40, 30], [100, 60]]
    # With radius 1 the 3 px neighbour survives as its own local maximum.
    kps_r1, _ = detect_keypoints(scores, PostprocessParams(nms_radius_px=1, score_threshold=0.05))
    assert [43, 31] in kps_r1.tolist()


def test_topk_ties_break_by_raster_order():
    scores = np.zeros((40, 40), np.float32)
    for y, x in [(30, 30), (10, 20), (10, 12), (20, 15)]:
        scores[y, x] = 0.5
    kps, _ = detect_keypoints(scores, PostprocessParams(border_px=2, max_keypoints=3))
    assert kps.tolist() == [[12, 10], [20, 10], [15, 20]]


def test_subpixel_soft_argmax_known_answer():
    # 1-D along x: neighbours 0.6 (left), 1.0 (peak), 0.8 (right); y neighbours zero.
    scores = np.zeros((9, 9), np.float32)
    scores[4, 3:6] = [0.6, 1.0, 0.8]
    kp = np.array([[4, 4]])
    t = 0.1
    w = np.exp((np.array([0.6, 1.0, 0.8]) - 1.0) / t)
    w_zero = np.exp(-1.0 / t)
    expected_dx = (w[2] - w[0]) / (w.sum() + 6 * w_zero)
    refined = refine_subpixel(scores, kp, radius_px=1, temperature=t)
    assert refined[0, 0] == pytest.approx(4 + expected_dx, abs=1e-5)
    assert refined[0, 1] == pytest.approx(4.0, abs=1e-6)  # symmetric in y
    assert refine_subpixel(scores, kp, radius_px=0, temperature=t).tolist() == [[4.0, 4.0]]


def test_subpixel_moves_towards_the_true_peak():
    true_xy = [(50.3, 40.0), (80.0, 30.7), (120.8, 60.6)]  # off-grid peaks
    scores = gaussian_peaks((100, 200), true_xy, [1.0, 0.9, 0.8], sigma=1.2)
    params = PostprocessParams(score_threshold=0.1)
    kps, _ = detect_keypoints(scores, params)
    refined = refine_subpixel(scores, kps, 1, 0.1)
    for kp, r in zip(kps, refined):
        truth = min(true_xy, key=lambda t: np.hypot(t[0] - kp[0], t[1] - kp[1]))
        err_int = np.abs(kp - np.array(truth))
        err_ref = np.abs(r - np.array(truth))
        # Soft-argmax is biased towards the centre pixel but must move the right way.
        assert np.all(err_ref <= err_int + 1e-6)
        assert err_ref.sum() < err_int.sum()


def test_descriptor_sampling_convention_and_norm():
    stride, hc, wc = 8, 6, 10
    v, u = np.mgrid[0:hc, 0:wc].astype(np.float32)
    const = 1000.0
    desc = np.stack([u, v, np.full_like(u, const)])  # channel 0 = column, 1 = row of the cell
    kps = np.array([[3.5, 3.5], [20.0, 11.0], [44.0, 30.0], [0.0, 0.0], [79.0, 47.0]], np.float32)
    out = sample_descriptors(desc, kps, stride)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    u_hat = out[:, 0] / out[:, 2] * const
    v_hat = out[:, 1] / out[:, 2] * const
    # Cell j's centre is pixel j*s + (s-1)/2 = 3.5 + 8j; positions outside clamp to the edge.
    expected_u = np.clip((kps[:, 0] + 0.5) / stride - 0.5, 0, wc - 1)
    expected_v = np.clip((kps[:, 1] + 0.5) / stride - 0.5, 0, hc - 1)
    np.testing.assert_allclose(u_hat, expected_u, atol=1e-3)
    np.testing.assert_allclose(v_hat, expected_v, atol=1e-3)
    assert u_hat[0] == pytest.approx(0.0, abs=1e-3) and u_hat[2] == pytest.approx(5.0625, abs=1e-3)
    assert sample_descriptors(desc, np.zeros((0, 2), np.float32), stride).shape == (0, 3)


def test_descriptor_stride_from_shapes():
    assert descriptor_stride((384, 1248), (48, 156)) == 8
    assert descriptor_stride((384, 1248), (96, 312)) == 4
    with pytest.raises(DataError, match="stride"):
        descriptor_stride((384, 1248), (48, 312))
    with pytest.raises(DataError, match="stride"):
        descriptor_stride((384, 1248), (50, 156))


def test_extract_features_crops_padding_and_maps_coordinates():
    h, w = 70, 100  # padded to 96 x 128
    scores = gaussian_peaks((96, 128), [(30, 20), (60.4, 40), (115, 50), (50, 85)], [0.9] * 4)
    rng = np.random.default_rng(0)
    desc = rng.standard_normal((1, 16, 12, 16)).astype(np.float32)
    feats = extract_features(scores[None, None], desc, h, w, PostprocessParams(border_px=4))
    # The peaks at x=115 and y=85 lie in the padding, outside the 100 x 70 image.
    assert len(feats) == 2
    assert feats.keypoints_px[:, 0].max() < w and feats.keypoints_px[:, 1].max() < h
    assert feats.keypoints_px.dtype == np.float32 and feats.descriptors.shape == (2, 16)
    assert feats.descriptors.dtype == np.float32 and feats.scores.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats.descriptors, axis=1), 1.0, atol=1e-6)
    assert feats.keypoints_px[1, 0] == pytest.approx(60.4, abs=0.3)
    zeros = np.zeros((1, 1, 96, 128), np.float32)
    empty = extract_features(zeros, desc, h, w, PostprocessParams())
    assert len(empty) == 0 and empty.descriptors.shape == (0, 16)
    with pytest.raises(DataError, match="NaN"):
        extract_features(np.full((96, 128), np.nan, np.float32), desc, h, w, PostprocessParams())


def test_wider_refinement_window_is_less_biased_on_a_broad_peak():
    """Soft-argmax in a 3x3 window is pulled towards the centre pixel; on a peak as wide as the
    score map's blobs (sigma 2 px) the default 7x7 window (radius 3, `features.refine_radius_px`)
    lands nearer the true position, and the config value reaches the postprocess params."""
    from tpr_vo.config import FeaturesConfig

    true_xy = np.array([[60.4, 40.3], [120.7, 70.6], [30.35, 80.65]])
    scores = gaussian_peaks((120, 200), [tuple(t) for t in true_xy], [1.0, 0.9, 0.8], sigma=2.0)
    kps, _ = detect_keypoints(scores, PostprocessParams(score_threshold=0.1))
    order = [int(np.argmin(np.hypot(*(true_xy - kp).T))) for kp in kps]
    err = {
        r: np.abs(refine_subpixel(scores, kps, r, 0.1) - true_xy[order]).sum(axis=1)
        for r in (1, 3)
    }
    assert len(kps) == 3 and np.all(err[3] < err[1]) and err[3].max() < 0.1
    assert PostprocessParams().refine_radius_px == FeaturesConfig().refine_radius_px == 3
    params = PostprocessParams.from_config(FeaturesConfig(refine_radius_px=0))
    assert params.refine_radius_px == 0


def test_merge_scales_maps_pixel_centres_and_keeps_the_best():
    from tpr_vo.features.postprocess import merge_scales
    from tpr_vo.types import Features

    d = np.eye(4, dtype=np.float32)
    full = Features(np.array([[10.0, 20.0], [3.0, 4.0]], np.float32), np.array([0.9, 0.2]), d[:2])
    half = Features(np.array([[5.0, 7.0], [1.0, 1.0]], np.float32), np.array([0.5, 0.2]), d[2:])
    merged = merge_scales([(full, 1.0, 1.0), (half, 2.0, 2.0)], max_keypoints=3)
    # (x + 0.5) * 2 - 0.5: the half-size image's pixel 5 covers full-size pixels 10 and 11.
    np.testing.assert_allclose(merged.keypoints_px, [[10.0, 20.0], [10.5, 14.5], [3.0, 4.0]])
    np.testing.assert_allclose(merged.scores, [0.9, 0.5, 0.2])  # tie 0.2: the first scale's
    np.testing.assert_array_equal(merged.descriptors, d[[0, 2, 1]])
    assert merged.keypoints_px.dtype == np.float32 and merged.scores.dtype == np.float32
