"""Photometric changes for the second view: brightness, contrast, gamma, blur, noise, motion blur.

All operate on float32 images in [0, 1] and scale with `strength` in [0, 1] (the curriculum).
"""

from __future__ import annotations

import cv2
import numpy as np


def motion_blur_kernel(length_px: int, angle_deg: float) -> np.ndarray:
    """(k, k) float32 line kernel summing to 1 (simulated camera shake)."""
    k = max(1, int(length_px)) | 1
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    return kernel / max(float(kernel.sum()), 1e-6)


def photometric(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random photometric change of a (H, W) float32 [0, 1] image; returns a new array."""
    s = float(np.clip(strength, 0.0, 1.0))
    out = image.astype(np.float32, copy=True)
    if rng.random() < 0.5:  # gamma
        out = np.power(np.clip(out, 0, 1), 2.0 ** (rng.uniform(-1, 1) * 0.6 * s))
    if rng.random() < 0.7:  # contrast about the mean, then brightness
        mean = float(out.mean())
        out = (out - mean) * (1.0 + rng.uniform(-0.4, 0.4) * s) + mean
        out = out + rng.uniform(-0.2, 0.2) * s
    if rng.random() < 0.3:  # defocus
        sigma = 0.3 + rng.uniform(0, 1.5) * s
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    elif rng.random() < 0.3:  # motion blur
        length = 1 + int(round(rng.uniform(0, 8) * s))
        if length > 1:
            out = cv2.filter2D(out, -1, motion_blur_kernel(length, rng.uniform(0, 180)))
    if rng.random() < 0.5:  # sensor noise
        out = out + rng.normal(0, 0.03 * s + 1e-3, out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
