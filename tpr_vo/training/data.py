"""Training images and random homography pairs.

Sources: any image folder (recursively), the photographs bundled with scikit-image
(`skimage/data`, no download), and frames rendered by our synthetic sequence generator. Images
from the evaluation sets (KITTI 06 frames, the v_graf homography sequence) are refused.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tpr_vo.errors import DataError
from tpr_vo.training.augment import photometric
from tpr_vo.training.homography import HomographyRange, random_homography, translation

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff")
# Never train on what we evaluate on (path fragments, matched on resolved paths).
EVAL_ONLY_FRAGMENTS = ("homography/v_graf", "sequences/06/")
MIN_SIDE_PX = 200


def _is_eval_only(path: Path) -> bool:
    text = str(path.resolve()).replace(os.sep, "/")
    return any(fragment in text for fragment in EVAL_ONLY_FRAGMENTS)


def _read_gray(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or min(image.shape) < MIN_SIDE_PX:
        return None
    return image


def folder_images(folder: str | os.PathLike) -> list[np.ndarray]:
    """Every readable image under `folder` (sorted), grayscale uint8; eval sets are refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: training image folder not found")
    if _is_eval_only(folder / "x"):
        raise DataError(f"{folder}: is an evaluation set (v_graf / KITTI 06); never train on it")
    images = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and not _is_eval_only(path):
            image = _read_gray(path)
            if image is not None:
                images.append(image)
    if not images:
        raise DataError(f"{folder}: no readable images of at least {MIN_SIDE_PX} px per side")
    return images


def skimage_images() -> list[np.ndarray]:
    """The photographs bundled in scikit-image's package data (no network)."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    images = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".png", ".jpg") and "chessboard" not in path.name:
            image = _read_gray(path)
            if image is not None:
                images.append(image)
    return images


def synthetic_images(num_frames: int, seed: int = 0, stride: int = 5) -> list[np.ndarray]:
    """Every `stride`-th left frame of a rendered synthetic drive (tpr_vo.datasets.synthetic)."""
    try:
        from tpr_vo.datasets.synthetic import render_synthetic_sequence
    except ImportError:
        log.warning("tpr_vo.datasets.synthetic not available; no synthetic training frames")
        return []
    with tempfile.TemporaryDirectory(prefix="tpr_train_synth_") as tmp:
        seq = render_synthetic_sequence(Path(tmp) / "seq", num_frames=num_frames, seed=seed)
        paths = sorted((Path(seq) / "image_0").iterdir())[::stride]
        return [im for im in (_read_gray(p) for p in paths) if im is not None]


@dataclass(frozen=True)
class PairBatch:
    """image_a, image_b: (B, 1, H, W) float32 in [0, 1]; H_b_a: (B, 3, 3) float64, view a
    pixels -> view b pixels."""

    image_a: np.ndarray
    image_b: np.ndarray
    H_b_a: np.ndarray


class PairSampler:
    """Draws pairs: view a is a random crop (random rescale) of a source image, view b the same
    source through a random homography about the crop, so b has real content up to its borders;
    both views get independent photometric changes."""

    def __init__(
        self,
        images: list[np.ndarray],
        crop_hw: tuple[int, int],
        rng: np.random.Generator,
        limits: HomographyRange | None = None,
    ) -> None:
        if not images:
            raise DataError("no training images (give --images, --skimage or --synthetic)")
        self.images = images
        self.crop_h, self.crop_w = crop_hw
        self.rng = rng
        self.limits = limits or HomographyRange()

    def _source(self) -> np.ndarray:
        image = self.images[int(self.rng.integers(len(self.images)))]
        min_scale = max(self.crop_h / image.shape[0], self.crop_w / image.shape[1]) * 1.05
        scale = max(min_scale, float(self.rng.uniform(0.5, 1.2)))
        if abs(scale - 1.0) > 1e-3:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if self.rng.random() < 0.5:
            image = image[:, ::-1]
        return np.ascontiguousarray(image)

    def pair(
        self, strength: float, photometric_change: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(view_a (h, w), view_b (h, w), H_b_a (3, 3)) float32 views in [0, 1]."""
        src = self._source().astype(np.float32) / 255.0
        h, w = self.crop_h, self.crop_w
        y0 = int(self.rng.integers(0, src.shape[0] - h + 1))
        x0 = int(self.rng.integers(0, src.shape[1] - w + 1))
        view_a = src[y0 : y0 + h, x0 : x0 + w]
        H_b_a = random_homography(w, h, strength, self.rng, self.limits)
        H_b_src = H_b_a @ translation(-x0, -y0)
        view_b = cv2.warpPerspective(
            src, H_b_src, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        if not photometric_change:
            return np.ascontiguousarray(view_a), view_b, H_b_a
        view_a = photometric(view_a, strength, self.rng)
        return view_a, photometric(view_b, strength, self.rng), H_b_a

    def batch(self, batch_size: int, strength: float) -> PairBatch:
        pairs = [self.pair(strength) for _ in range(batch_size)]
        return PairBatch(
            np.stack([p[0] for p in pairs])[:, None],
            np.stack([p[1] for p in pairs])[:, None],
            np.stack([p[2] for p in pairs]),
        )
