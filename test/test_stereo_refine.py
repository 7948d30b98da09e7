"""Sub-pixel disparity by patch correlation (tpr_vo.geometry.stereo_refine), on a rectified
pair with a known disparity: the right image is the left one shifted by a non-integer amount."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tpr_vo.geometry.stereo_refine import SEARCH_PX, refine_right_x

DISPARITY_PX = 12.37


def _pair(rng):
    texture = rng.uniform(0, 255, (120, 200)).astype(np.float32)
    left = cv2.GaussianBlur(texture, (0, 0), 1.5)
    # right(x) = left(x + d): a fronto-parallel plane at disparity d.
    map_x = np.tile(np.arange(200, dtype=np.float32), (120, 1)) + DISPARITY_PX
    map_y = np.tile(np.arange(120, dtype=np.float32)[:, None], (1, 200))
    right = cv2.remap(left, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    # 10 % darker right camera: the mean-removed cost must not care.
    return np.clip(left, 0, 255).astype(np.uint8), np.clip(0.9 * right, 0, 255).astype(np.uint8)


def test_quantised_right_keypoints_are_refined_to_the_true_disparity():
    rng = np.random.default_rng(0)
    left, right = _pair(rng)
    left_px = np.c_[rng.uniform(40, 180, 200), rng.uniform(10, 110, 200)]
    true_right_x = left_px[:, 0] - DISPARITY_PX
    # Descriptor matches off by up to 1.5 px, like keypoints on a coarse pyramid level.
    matched_x = true_right_x + rng.uniform(-1.5, 1.5, 200)
    refined_x, ok = refine_right_x(left, right, left_px, matched_x)
    assert ok.mean() > 0.9
    err = np.abs(refined_x[ok] - true_right_x[ok])
    assert np.median(err) < 0.1 and err.max() < 0.3
    assert np.median(np.abs(matched_x - true_right_x)) > 0.5  # the input really was off


def test_a_match_outside_the_search_range_is_rejected_and_kept_unchanged():
    rng = np.random.default_rng(1)
    left, right = _pair(rng)
    left_px = np.array([[100.0, 60.0]])
    wrong_x = left_px[:, 0] - DISPARITY_PX + SEARCH_PX + 3.0
    refined_x, ok = refine_right_x(left, right, left_px, wrong_x)
    assert not ok[0] and refined_x[0] == wrong_x[0]


def test_patches_off_the_image_are_rejected():
    rng = np.random.default_rng(2)
    left, right = _pair(rng)
    left_px = np.array([[2.0, 60.0], [100.0, 1.0], [20.0, 60.0]])
    _, ok = refine_right_x(left, right, left_px, left_px[:, 0] - DISPARITY_PX)
    assert not ok[0] and not ok[1]  # too close to the left / top border
    assert not ok[2]  # right x = 7.6: its search window leaves the image


def test_mismatched_image_sizes_are_an_error():
    with pytest.raises(ValueError, match="same"):
        refine_right_x(
            np.zeros((10, 20), np.uint8), np.zeros((10, 21), np.uint8), np.zeros((1, 2)), [0.0]
        )


def test_repetitive_or_flat_texture_leaves_the_match_as_it_was():
    # Vertical stripes with a 4 px period: every 4th shift fits equally well.
    stripes = np.tile((np.arange(200) % 4 < 2) * 200, (120, 1)).astype(np.uint8)
    flat = np.full((120, 200), 90, np.uint8)
    left_px = np.array([[100.0, 60.0], [120.5, 40.0]])
    matched_x = left_px[:, 0] - 10.3
    for image in (stripes, flat):
        refined_x, ok = refine_right_x(image, image, left_px, matched_x)
        assert ok.all()
        assert np.array_equal(refined_x, matched_x)
