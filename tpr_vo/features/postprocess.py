"""Keypoints and descriptors from the network's dense outputs, in numpy, shared by every backend.

The network returns a score map (H_pad, W_pad) in [0, 1] and a coarse descriptor map
(D, H_pad / s, W_pad / s). Extraction, in order:

1. crop both to the original image (the padding lies bottom/right, so no shift is needed);
2. non-maximum suppression: keep a pixel when it is the maximum of its (2r+1)^2 window
   (r = `nms_radius_px`, a max-pool written as a grey dilation);
3. drop scores <= `score_threshold` and pixels closer than `border_px` to the image edge;
4. keep the `max_keypoints` highest scores (ties broken by raster order, so every backend agrees);
5. sub-pixel refinement: soft-argmax over the (2 * refine_radius + 1)^2 window around each
   keypoint, weights exp((s - s_peak) / (temperature * s_peak)), so the temperature is relative to
   the peak and works for sharp or flat score heads alike;
6. bilinear sampling of the descriptor map and re-normalisation to unit length.

With several image scales (`features.scales`) each scale goes through 1-6 on its resized image,
and `merge_scales` maps the keypoints back to the original image and keeps the `max_keypoints`
best scores of all of them. Keypoints of one corner found at two scales are both kept: on
v_graf a 2 or 4 px suppression across scales lowered MMA@3 (0.270 -> 0.217 / 0.190).

Pixel convention: (x, y) = (column, row) of the pixel centre. Descriptor cell j covers pixels
[j*s, (j+1)*s) and sits at pixel j*s + (s-1)/2, i.e. the `grid_sample(align_corners=False)`
convention; the stride s is derived from the two shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tpr_vo.config import FeaturesConfig
from tpr_vo.errors import DataError
from tpr_vo.types import Features

# Keypoint position covariance from the soft-argmax spread (`keypoint_covariance_px2`): the gain
# fitted on a rendered drive (render seed 3, frames 0-99) with `benchmarks/keypoint_covariance.py`,
# the floor chosen by the VO rotation error on that drive (model card, "Session 18").
COV_FLOOR_PX2 = 0.001
COV_GAIN = 0.154


@dataclass(frozen=True)
class PostprocessParams:
    # The defaults are FeaturesConfig's, so one place sets them.
    nms_radius_px: int = FeaturesConfig.nms_radius_px
    score_threshold: float = FeaturesConfig.score_threshold
    border_px: int = FeaturesConfig.border_px
    max_keypoints: int = FeaturesConfig.max_keypoints
    refine_radius_px: int = FeaturesConfig.refine_radius_px  # 0 disables sub-pixel refinement
    refine_temperature: float = 0.1

    @staticmethod
    def from_config(cfg: FeaturesConfig) -> PostprocessParams:
        return PostprocessParams(
            nms_radius_px=cfg.nms_radius_px,
            score_threshold=cfg.score_threshold,
            border_px=cfg.border_px,
            max_keypoints=cfg.max_keypoints,
            refine_radius_px=cfg.refine_radius_px,
        )


def descriptor_stride(
    score_shape_hw: tuple[int, int], descriptor_shape_hw: tuple[int, int]
) -> int:
    """Integer stride s with score_shape == s * descriptor_shape; DataError otherwise."""
    (h, w), (hc, wc) = score_shape_hw, descriptor_shape_hw
    if hc < 1 or wc < 1 or h % hc or w % wc or h // hc != w // wc:
        raise DataError(
            f"network outputs: score map {h}x{w} is not an integer multiple of the descriptor "
            f"map {hc}x{wc} with one stride"
        )
    return h // hc


def detect_keypoints(
    scores_hw: np.ndarray, params: PostprocessParams
) -> tuple[np.ndarray, np.ndarray]:
    """NMS + threshold + border + top-k on a (H, W) float32 score map.

    Returns (keypoints_int (N, 2) int64 (x, y), scores (N,) float32), best first.
    """
    scores_hw = np.ascontiguousarray(scores_hw, dtype=np.float32)
    h, w = scores_hw.shape
    r = int(params.nms_radius_px)
    if r > 0:
        kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        local_max = cv2.dilate(scores_hw, kernel, borderType=cv2.BORDER_REPLICATE)
        keep = scores_hw >= local_max
    else:
        keep = np.ones_like(scores_hw, dtype=bool)
    keep &= scores_hw > params.score_threshold
    b = int(params.border_px)
    if b > 0:
        keep[:b] = False
        keep[h - b :] = False
        keep[:, :b] = False
        keep[:, w - b :] = False
    raster = np.flatnonzero(keep)  # raster order; much faster than a 2-D np.nonzero
    values = scores_hw.ravel()[raster]
    k = int(params.max_keypoints)
    if values.size > k:
        # Partition first (O(n)), then sort the survivors by score, raster order for ties.
        threshold = np.partition(values, values.size - k)[values.size - k]
        above = np.flatnonzero(values > threshold)
        tied = np.flatnonzero(values == threshold)[: k - above.size]
        chosen = np.concatenate([above, tied])
        raster, values = raster[chosen], values[chosen]
    order = np.lexsort((raster, -values))
    ys, xs = np.divmod(raster[order], w)
    keypoints = np.stack([xs, ys], axis=1).astype(np.int64)
    return keypoints, values[order].astype(np.float32)


def refine_subpixel(
    scores_hw: np.ndarray, keypoints_int: np.ndarray, radius_px: int, temperature: float
) -> np.ndarray:
    """Soft-argmax around each integer keypoint -> (N, 2) float32 (x, y) in pixels."""
    return soft_argmax(scores_hw, keypoints_int, radius_px, temperature)[0]


def soft_argmax(
    scores_hw: np.ndarray, keypoints_int: np.ndarray, radius_px: int, temperature: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Soft-argmax around each integer keypoint: (N, 2) float32 (x, y) in pixels, and the
    spread of its weights, (N, 2, 2) float32 second central moments in px^2 (None when
    `radius_px` is 0: no window, no spread). A flat or elongated peak spreads the weights; the
    spread predicts the keypoint's position error (`keypoint_covariance_px2`)."""
    keypoints = keypoints_int.astype(np.float32)
    if radius_px <= 0 or len(keypoints_int) == 0:
        return keypoints, None if radius_px <= 0 else np.zeros((0, 2, 2), np.float32)
    h, w = scores_hw.shape
    offsets = np.arange(-radius_px, radius_px + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    dx, dy = dx.ravel().astype(np.float32), dy.ravel().astype(np.float32)
    xs = np.clip(keypoints_int[:, :1] + dx[None].astype(np.int64), 0, w - 1)
    ys = np.clip(keypoints_int[:, 1:] + dy[None].astype(np.int64), 0, h - 1)
    patch = scores_hw[ys, xs].astype(np.float32)  # (N, K)
    peak = patch.max(axis=1, keepdims=True)
    scale = np.maximum(peak, 1e-12) * np.float32(temperature)
    weights = np.exp((patch - peak) / scale)
    weights /= weights.sum(axis=1, keepdims=True)
    mean_x, mean_y = weights @ dx, weights @ dy
    refined = keypoints + np.stack([mean_x, mean_y], axis=1)
    refined[:, 0] = np.clip(refined[:, 0], 0, w - 1)
    refined[:, 1] = np.clip(refined[:, 1], 0, h - 1)
    spread = np.empty((len(keypoints), 2, 2), np.float32)
    spread[:, 0, 0] = weights @ (dx * dx) - mean_x * mean_x
    spread[:, 1, 1] = weights @ (dy * dy) - mean_y * mean_y
    spread[:, 0, 1] = spread[:, 1, 0] = weights @ (dx * dy) - mean_x * mean_y
    return refined, spread


def keypoint_covariance_px2(spread_px2: np.ndarray) -> np.ndarray:
    """(N, 2, 2) position covariance (px^2) of keypoints from their soft-argmax spread:
    COV_FLOOR_PX2 * I + COV_GAIN * spread, the linear model fitted by
    `benchmarks/keypoint_covariance.py` (squared epipolar errors under an exact motion against
    the spreads of the two matched keypoints)."""
    cov = COV_GAIN * spread_px2.astype(np.float32)
    cov[:, 0, 0] += COV_FLOOR_PX2
    cov[:, 1, 1] += COV_FLOOR_PX2
    return cov


def sample_descriptors(
    descriptors_dhw: np.ndarray, keypoints_px: np.ndarray, stride: int
) -> np.ndarray:
    """Bilinear samples of a (D, Hc, Wc) map at (N, 2) pixel positions -> (N, D) unit float32."""
    d, hc, wc = descriptors_dhw.shape
    n = len(keypoints_px)
    if n == 0:
        return np.zeros((0, d), np.float32)
    u = (keypoints_px[:, 0].astype(np.float64) + 0.5) / stride - 0.5
    v = (keypoints_px[:, 1].astype(np.float64) + 0.5) / stride - 0.5
    u = np.clip(u, 0.0, wc - 1)
    v = np.clip(v, 0.0, hc - 1)
    x0 = np.minimum(np.floor(u).astype(np.int64), max(wc - 2, 0))
    y0 = np.minimum(np.floor(v).astype(np.int64), max(hc - 2, 0))
    x1 = np.minimum(x0 + 1, wc - 1)
    y1 = np.minimum(y0 + 1, hc - 1)
    fx = (u - x0).astype(np.float32)
    fy = (v - y0).astype(np.float32)
    flat = descriptors_dhw.reshape(d, hc * wc)
    out = flat[:, y0 * wc + x0] * ((1 - fx) * (1 - fy))
    out += flat[:, y0 * wc + x1] * (fx * (1 - fy))
    out += flat[:, y1 * wc + x0] * ((1 - fx) * fy)
    out += flat[:, y1 * wc + x1] * (fx * fy)
    out = np.ascontiguousarray(out.T, dtype=np.float32)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def extract_features(
    scores: np.ndarray,
    descriptors: np.ndarray,
    height_px: int,
    width_px: int,
    params: PostprocessParams,
) -> Features:
    """Network outputs -> Features of the original (height_px, width_px) image.

    scores: (1, 1, H_pad, W_pad) or (H_pad, W_pad) float32 in [0, 1].
    descriptors: (1, D, H_pad/s, W_pad/s) or (D, H_pad/s, W_pad/s) float32.
    """
    scores_hw = scores.reshape(scores.shape[-2:])
    descriptors_dhw = descriptors.reshape(descriptors.shape[-3:])
    if not np.isfinite(scores_hw).all():
        raise DataError("network outputs: the score map contains NaN or inf")
    stride = descriptor_stride(scores_hw.shape, descriptors_dhw.shape[1:])
    scores_hw = np.ascontiguousarray(scores_hw[:height_px, :width_px], dtype=np.float32)
    keypoints_int, values = detect_keypoints(scores_hw, params)
    keypoints_px, spread_px2 = soft_argmax(
        scores_hw, keypoints_int, params.refine_radius_px, params.refine_temperature
    )
    desc = sample_descriptors(descriptors_dhw.astype(np.float32, copy=False), keypoints_px, stride)
    cov = None if spread_px2 is None else keypoint_covariance_px2(spread_px2)
    return Features(keypoints_px, values, desc, cov)


def scaled_size(height_px: int, width_px: int, scale: float) -> tuple[int, int]:
    """(height, width) of an image resized by `scale`, at least 1 px each."""
    return max(1, round(height_px * scale)), max(1, round(width_px * scale))


def merge_scales(per_scale: list[tuple[Features, float, float]], max_keypoints: int) -> Features:
    """Features of one image from several resized copies: `per_scale` holds (features of the
    resized image, x factor, y factor), where factor = original size / resized size. Keypoints
    are mapped back by pixel centres ((x + 0.5) * factor - 0.5), then the `max_keypoints`
    highest scores are kept, best first (ties in the order given, so every backend agrees)."""
    keypoints = [
        (f.keypoints_px + np.float32(0.5)) * np.array([fx, fy], np.float32) - np.float32(0.5)
        for f, fx, fy in per_scale
    ]
    kp = np.concatenate(keypoints).astype(np.float32)
    scores = np.concatenate([f.scores for f, _, _ in per_scale]).astype(np.float32)
    desc = np.concatenate([f.descriptors for f, _, _ in per_scale])
    order = np.argsort(-scores, kind="stable")[: int(max_keypoints)]
    cov = None
    if all(f.keypoint_cov_px2 is not None for f, _, _ in per_scale):
        # x' = fx x, y' = fy y: the covariance scales by diag(f) . diag(f).
        cov = np.concatenate(
            [f.keypoint_cov_px2 * np.outer([fx, fy], [fx, fy]) for f, fx, fy in per_scale]
        ).astype(np.float32)[order]
    return Features(kp[order], scores[order], desc[order], cov)
