"""Network input for every TPR backend: grayscale uint8 -> float32 [0, 1], padded to a multiple
of 32 at the bottom and right so the keypoints of the padded image are those of the original."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpr_vo.errors import DataError

SIZE_MULTIPLE_PX = 32


@dataclass(frozen=True)
class NetworkInput:
    """tensor: (1, 1, H_pad, W_pad) float32 in [0, 1], C-contiguous; padding is zeros.
    height_px / width_px: the original image size (keypoints live inside it)."""

    tensor: np.ndarray
    height_px: int
    width_px: int


def padded_size(height_px: int, width_px: int) -> tuple[int, int]:
    """(H_pad, W_pad): each side rounded up to a multiple of 32."""
    m = SIZE_MULTIPLE_PX
    return -(-height_px // m) * m, -(-width_px // m) * m


def prepare_image(image: np.ndarray, name: str = "tpr") -> NetworkInput:
    """(H, W) uint8 grayscale -> NetworkInput. Raises DataError for anything else."""
    if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
        got = f"{image.shape} {image.dtype}" if isinstance(image, np.ndarray) else type(image)
        raise DataError(f"{name}: expected a (H, W) uint8 grayscale image, got {got}")
    height_px, width_px = image.shape
    if height_px < 1 or width_px < 1:
        raise DataError(f"{name}: empty image {image.shape}")
    h_pad, w_pad = padded_size(height_px, width_px)
    tensor = np.zeros((1, 1, h_pad, w_pad), np.float32)
    np.multiply(image, np.float32(1.0 / 255.0), out=tensor[0, 0, :height_px, :width_px])
    return NetworkInput(tensor, height_px, width_px)
