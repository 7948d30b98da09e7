"""Procedural training images: "dead leaves" (`tpr-vo train --dead-leaves N`).

Our photographs are few (21 from scikit-image, plus frames of one synthetic drive), and nothing
may be downloaded. A dead-leaves image is a stack of random opaque shapes (discs, ellipses,
rectangles, polygons) whose sizes follow a power law, so the image looks alike at every scale,
each filled with a flat grey, a gradient or stripes. Such images carry corners, T-junctions and
edges at all scales and orientations; Baradad et al. (NeurIPS 2021, "Learning to See by Looking
at Noise") found textured dead leaves the best of their procedural sources for pre-training.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_SHAPES_PER_IMAGE = 20000
COVERED_FRACTION = 0.995  # stop adding shapes once this much of the image is painted
MIN_RADIUS_PX = 3.0
RADIUS_POWER = 3.0  # density of radius r ~ r^-power: scale invariant at 3


def _radius(rng: np.random.Generator, r_max: float) -> float:
    """Inverse-CDF draw of r ~ r^-power on [MIN_RADIUS_PX, r_max]."""
    a = 1.0 - RADIUS_POWER
    lo, hi = MIN_RADIUS_PX**a, r_max**a
    return float((lo + rng.random() * (hi - lo)) ** (1.0 / a))


def _shape_mask(rng: np.random.Generator, radius: float) -> np.ndarray:
    """(s, s) uint8 0/1 mask of one random shape of about `radius` px, s = 2 radius + 3."""
    size = int(2 * radius) + 3
    mask = np.zeros((size, size), np.uint8)
    c = size / 2.0
    kind = rng.integers(4)
    if kind == 0:  # disc
        cv2.circle(mask, (int(c), int(c)), int(radius), 1, -1, cv2.LINE_8)
    elif kind == 1:  # ellipse
        axes = (int(radius), max(1, int(radius * rng.uniform(0.3, 1.0))))
        cv2.ellipse(mask, (int(c), int(c)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    else:  # rectangle (kind 2) or polygon with 3-6 corners, rotated
        n = 4 if kind == 2 else int(rng.integers(3, 7))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n)) if kind == 3 else np.arange(4) * np.pi / 2
        angles = angles + rng.uniform(0, 2 * np.pi)
        radii = radius * (rng.uniform(0.5, 1.0, n) if kind == 3 else np.ones(n))
        pts = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def _fill(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float32 grey levels in [0, 1]: flat, a linear gradient, or stripes."""
    base = rng.uniform(0.0, 1.0)
    kind = rng.integers(3)
    if kind == 0:
        return np.full((size, size), base, np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size, 1)
    theta = rng.uniform(0, 2 * np.pi)
    u = np.cos(theta) * x + np.sin(theta) * y
    amplitude = rng.uniform(0.1, 0.5)
    if kind == 1:
        wave = u - 0.5
    else:
        wave = 0.5 * np.sin(2 * np.pi * rng.uniform(1.0, 6.0) * u)
    return np.clip(base + amplitude * wave, 0.0, 1.0).astype(np.float32)


def dead_leaves_image(
    rng: np.random.Generator, height_px: int = 480, width_px: int = 640
) -> np.ndarray:
    """One (height_px, width_px) uint8 dead-leaves image. Shapes are painted front to back
    (each one only where no nearer shape is) until COVERED_FRACTION of the image is covered;
    the rest gets a random grey; then a slight blur (sigma 0-1 px) and noise."""
    canvas = np.zeros((height_px, width_px), np.float32)
    covered = np.zeros((height_px, width_px), bool)
    r_max = 0.25 * min(height_px, width_px)
    for i in range(MAX_SHAPES_PER_IMAGE):
        radius = _radius(rng, r_max)
        mask = _shape_mask(rng, radius)
        size = mask.shape[0]
        x0 = int(rng.integers(-size // 2, width_px - size // 2))
        y0 = int(rng.integers(-size // 2, height_px - size // 2))
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + size, width_px), min(y0 + size, height_px)
        if xb <= xa or yb <= ya:
            continue
        free = ~covered[ya:yb, xa:xb]
        paint = mask[ya - y0 : yb - y0, xa - x0 : xb - x0].astype(bool) & free
        if not paint.any():
            continue
        fill = _fill(rng, size)[ya - y0 : yb - y0, xa - x0 : xb - x0]
        canvas[ya:yb, xa:xb][paint] = fill[paint]
        covered[ya:yb, xa:xb] |= paint
        if i % 64 == 0 and covered.mean() >= COVERED_FRACTION:
            break
    canvas[~covered] = rng.uniform(0, 1)
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.2:
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    canvas += rng.normal(0.0, 0.01, canvas.shape).astype(np.float32)
    return np.clip(canvas * 255.0 + 0.5, 0, 255).astype(np.uint8)


def dead_leaves_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` dead-leaves images from one seed (the same list for the same arguments)."""
    rng = np.random.default_rng([seed, 31337])
    return [dead_leaves_image(rng) for _ in range(count)]
