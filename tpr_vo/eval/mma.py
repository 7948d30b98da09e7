"""Mean matching accuracy (HPatches protocol) on folders in HPatches layout.

A folder holds images `1.*` ... `6.*` and ground-truth homographies `H_1_k` (3x3 text, image 1
pixel -> image k pixel). For each pair (1, k): features of both images, mutual nearest
neighbours (L2 for float descriptors -- the cosine order for unit vectors --, Hamming for packed
binary ones), and the fraction of matches whose keypoint in image 1, mapped by H_1_k, lands
within t px of its match, for t = 1..10. MMA@t is that fraction averaged over pairs; a pair with
no match counts as 0 correct.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tpr_vo.errors import DataError
from tpr_vo.geometry.triangulation import warp_points
from tpr_vo.types import Features

log = logging.getLogger(__name__)

THRESHOLDS_PX = tuple(range(1, 11))
IMAGE_SUFFIXES = (".ppm", ".png", ".jpg", ".jpeg", ".pgm", ".bmp", ".tif", ".tiff")


def descriptor_distances(desc1: np.ndarray, desc2: np.ndarray) -> np.ndarray:
    """(N1, N2) float32: Hamming distance for uint8 (packed bits), Euclidean for float."""
    if desc1.dtype == np.uint8:
        a = np.unpackbits(desc1, axis=1).astype(np.float32)
        b = np.unpackbits(desc2, axis=1).astype(np.float32)
        return a.sum(1)[:, None] + b.sum(1)[None, :] - 2.0 * (a @ b.T)
    a = desc1.astype(np.float32)
    b = desc2.astype(np.float32)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def mutual_nearest_neighbors(desc1: np.ndarray, desc2: np.ndarray) -> np.ndarray:
    """(M, 2) int indices (i in 1, j in 2) where j is i's nearest neighbour and vice versa."""
    if len(desc1) == 0 or len(desc2) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    dist = descriptor_distances(desc1, desc2)
    nn12 = np.argmin(dist, axis=1)
    nn21 = np.argmin(dist, axis=0)
    i = np.nonzero(nn21[nn12] == np.arange(len(desc1)))[0]
    return np.stack([i, nn12[i]], axis=1)


@dataclass(frozen=True)
class PairMatches:
    """One image pair: keypoint counts, matches, and the correct fraction per threshold."""

    name: str  # "<set>/1-<k>"
    keypoints: tuple[int, int]
    matches: int
    correct_fraction: np.ndarray  # (len(THRESHOLDS_PX),)


def match_pair(
    features1: Features,
    features2: Features,
    H_1_k: np.ndarray,
    name: str = "",
    thresholds_px: Sequence[float] = THRESHOLDS_PX,
) -> PairMatches:
    matches = mutual_nearest_neighbors(features1.descriptors, features2.descriptors)
    counts = (len(features1), len(features2))
    if len(matches) == 0:
        return PairMatches(name, counts, 0, np.zeros(len(thresholds_px)))
    projected = warp_points(H_1_k, features1.keypoints_px[matches[:, 0]])
    errors_px = np.linalg.norm(projected - features2.keypoints_px[matches[:, 1]], axis=1)
    correct = np.array([np.mean(errors_px <= t) for t in thresholds_px])
    return PairMatches(name, counts, len(matches), correct)


@dataclass(frozen=True)
class MmaResult:
    features: str
    thresholds_px: tuple[float, ...]
    mma: np.ndarray  # (len(thresholds_px),) fraction of correct matches, averaged over pairs
    pairs: list[PairMatches]
    sets: list[str]

    @property
    def keypoints(self) -> float:
        """Mean keypoints per image (both images of every pair)."""
        return float(np.mean([k for p in self.pairs for k in p.keypoints]))

    @property
    def matches(self) -> float:
        """Mean mutual-nearest-neighbour matches per pair."""
        return float(np.mean([p.matches for p in self.pairs]))

    def at(self, threshold_px: float) -> float:
        return float(self.mma[list(self.thresholds_px).index(threshold_px)])

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"features": self.features}
        out.update({f"mma@{t:g}": float(v) for t, v in zip(self.thresholds_px, self.mma)})
        out["keypoints"] = self.keypoints
        out["matches"] = self.matches
        out["pairs"] = [
            {
                "pair": p.name,
                "keypoints": list(p.keypoints),
                "matches": p.matches,
                "correct_fraction": [float(v) for v in p.correct_fraction],
            }
            for p in self.pairs
        ]
        out["sets"] = self.sets
        out["protocol"] = "HPatches MMA: mutual nearest neighbours, pairs (1, k), mean over pairs"
        return out


def find_image(folder: Path, stem: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise DataError(f"{folder}: image {stem} not found (expected {stem}.ppm or another format)")


def read_gray(path: Path) -> np.ndarray:
    """(H, W) uint8; colour images are converted to grayscale."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"{path}: not an image OpenCV can read")
    return image


def read_homography(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: homography file not found (expected 3x3 numbers, H_1_k)")
    try:
        H = np.loadtxt(path, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: not a 3x3 matrix of numbers ({exc})") from exc
    if H.shape != (3, 3) or not np.isfinite(H).all() or abs(np.linalg.det(H)) < 1e-12:
        raise DataError(f"{path}: expected an invertible finite 3x3 homography, got {H.shape}")
    return H


def hpatches_pairs(folder: str | os.PathLike) -> list[tuple[str, Path, np.ndarray]]:
    """(k, image k path, H_1_k) for every H_1_k in the folder, k sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected HPatches layout: 1.ppm.., H_1_k)")
    targets = sorted((p.name[4:] for p in folder.glob("H_1_*")), key=lambda k: (len(k), k))
    if not targets:
        raise DataError(f"{folder}: no homographies H_1_k (expected HPatches layout)")
    pairs = []
    for k in targets:
        H = read_homography(folder / f"H_1_{k}")
        pairs.append((k, find_image(folder, k), H))
    return pairs


def evaluate_mma(
    sets: Sequence[str | os.PathLike], backend, thresholds_px: Sequence[float] = THRESHOLDS_PX
) -> MmaResult:
    """MMA of one FeatureBackend over every pair (1, k) of every HPatches-layout folder."""
    pairs: list[PairMatches] = []
    for folder in sets:
        folder = Path(folder)
        targets = hpatches_pairs(folder)  # check the layout before extracting anything
        features1 = backend.extract(read_gray(find_image(folder, "1")))
        for k, path, H in targets:
            pair = match_pair(
                features1,
                backend.extract(read_gray(path)),
                H,
                name=f"{folder.name}/1-{k}",
                thresholds_px=thresholds_px,
            )
            log.debug(
                "%s 1-%s: %d matches, MMA@3 %.3f",
                folder.name,
                k,
                pair.matches,
                pair.correct_fraction[min(2, len(thresholds_px) - 1)],
            )
            pairs.append(pair)
    mma = np.mean([p.correct_fraction for p in pairs], axis=0)
    return MmaResult(backend.name, tuple(thresholds_px), mma, pairs, [str(Path(s)) for s in sets])
