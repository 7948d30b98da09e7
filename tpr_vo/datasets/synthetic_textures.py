"""Textures of the synthetic world, all from real photographs bundled with scikit-image (no
download): brick walls with pasted-on photographs, and a top-down ground atlas (asphalt, lane
markings, paving, grass) anchored to world coordinates."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tpr_vo.errors import DataError

PHOTOS = (
    "astronaut.png camera.png chelsea.png coffee.png rocket.jpg motorcycle_left.png coins.png "
    "text.png clock_motion.png hubble_deep_field.jpg moon.png horse.png cell.png"
).split()
MATERIALS = ("brick", "grass", "gravel")


def load_photos() -> dict[str, np.ndarray]:
    """Grayscale uint8 photographs from scikit-image's data folder, by stem name."""
    try:
        import skimage
    except ImportError as exc:
        raise DataError("the synthetic sequence needs scikit-image's photographs") from exc
    folder = Path(skimage.__file__).parent / "data"
    photos = {}
    for name in PHOTOS + [f"{m}.png" for m in MATERIALS]:
        image = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)
        if image is not None:
            photos[name.split(".")[0]] = image
    missing = set(MATERIALS) - photos.keys()
    if missing or len(photos) < 8:
        raise DataError(f"{folder}: expected scikit-image photographs, missing {sorted(missing)}")
    return photos


def mip_pyramid(image: np.ndarray, levels: int = 5) -> list[np.ndarray]:
    """[image, pyrDown(image), ...]: texel a of level L is texel 2^L a of level 0."""
    pyramid = [np.ascontiguousarray(image)]
    while len(pyramid) < levels and min(pyramid[-1].shape) >= 16:
        pyramid.append(cv2.pyrDown(pyramid[-1]))
    return pyramid


class TextureSource:
    """Random photographs and facades; `rng` may be swapped to give each part its own stream."""

    def __init__(self, photos: dict[str, np.ndarray], rng: np.random.Generator):
        self.photos, self.rng = photos, rng
        self.posters = [k for k in photos if k not in MATERIALS]
        brick = np.ascontiguousarray(np.rot90(photos["brick"][:, 150:370]))  # straightest courses
        self.wall_brick = cv2.resize(brick, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
        self._pyramids: dict[str, list[np.ndarray]] = {}

    def photo(self, scale: float = 1.0) -> np.ndarray:
        """A random photograph, mirrored half of the time, shrunk by `scale` <= 1 (from its
        pyramid, then bilinear: no aliasing, no slow area resampling)."""
        name = self.posters[self.rng.integers(len(self.posters))]
        flip = self.rng.random() < 0.5
        image = self.photos[name]
        if scale < 1.0:
            if name not in self._pyramids:
                self._pyramids[name] = mip_pyramid(image, levels=4)
            level = min(int(np.log2(1.0 / scale)), len(self._pyramids[name]) - 1)
            fx = scale * image.shape[1] / self._pyramids[name][level].shape[1]
            image = cv2.resize(self._pyramids[name][level], None, fx=fx, fy=fx)
        return image[:, ::-1] if flip else image

    def facade(self, width_px: int, height_px: int) -> np.ndarray:
        """Brick wall (random brightness) with photographs pasted on as shop signs/murals."""
        brick = self.wall_brick
        reps = (height_px // brick.shape[0] + 1, width_px // brick.shape[1] + 1)
        wall = np.tile(brick, reps)[:height_px, :width_px].astype(np.float32)
        wall = wall * self.rng.uniform(0.6, 1.2) + self.rng.uniform(-30, 30)
        for _ in range(self.rng.integers(2, 5)):
            size_px = self.rng.uniform(0.3, 0.7) * min(width_px, height_px)
            photo = self.photo(scale=min(1.0, size_px / 512.0))
            ph, pw = photo.shape
            if ph >= height_px or pw >= width_px:
                continue
            y0 = self.rng.integers(0, height_px - ph)
            x0 = self.rng.integers(0, width_px - pw)
            wall[y0 : y0 + ph, x0 : x0 + pw] = photo
        return np.clip(wall, 0, 255).astype(np.uint8)


def ground_atlas(
    photos: dict[str, np.ndarray],
    centreline_xz_m: np.ndarray,
    origin_xz_m: np.ndarray,
    shape_px: tuple[int, int],
    res_m: float,
    road_half_width_m: float,
) -> np.ndarray:
    """(H, W) uint8 top-down ground: pixel (row, col) is world (x, z) = origin + (col, row) * res.
    Asphalt within 5.5 m of the centreline (solid edge lines at +-road_half_width_m, 3 m dashes
    every 9 m on the centre), paving to 8.5 m, grass beyond. `origin_xz_m` must be a multiple of
    4 * res_m so that the atlas of a longer road extends that of a shorter one."""
    h, w = shape_px
    coarse = 4  # distances are computed on a 4x coarser grid, then interpolated

    def to_px(points, res=res_m):  # 4 fractional bits
        return np.round((points - origin_xz_m) / res * 16).astype(np.int32)

    centre = np.full((h // coarse, w // coarse), 255, np.uint8)
    cv2.polylines(centre, [to_px(centreline_xz_m, res_m * coarse)], False, 0, 1, cv2.LINE_8, 4)
    dist = cv2.distanceTransform(centre, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    dist_cm = np.minimum(dist * (res_m * coarse * 100), 65535).astype(np.uint16)
    dist_cm = cv2.resize(dist_cm, (w, h), interpolation=cv2.INTER_LINEAR)

    def tiled(name, scale, gain, offset):
        tex = cv2.resize(photos[name], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        tex = np.clip(tex.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
        tex = np.block([[tex, tex[:, ::-1]], [tex[::-1], tex[::-1, ::-1]]])
        ox, oz = np.round(origin_xz_m / res_m).astype(int)  # tiling anchored to the world
        tex = np.roll(tex, (-oz % tex.shape[0], -ox % tex.shape[1]), axis=(0, 1))
        return np.tile(tex, (h // tex.shape[0] + 1, w // tex.shape[1] + 1))[:h, :w]

    atlas = tiled("grass", 1.0, 0.8, 10)
    cv2.copyTo(tiled("brick", 0.5, 0.7, 40), cv2.compare(dist_cm, 850, cv2.CMP_LT), atlas)
    cv2.copyTo(tiled("gravel", 1.0, 0.45, 30), cv2.compare(dist_cm, 550, cv2.CMP_LT), atlas)
    edge_cm = 100 * road_half_width_m
    edge_lines = cv2.inRange(dist_cm, edge_cm - 8, edge_cm + 8)  # 0 | 255
    atlas = cv2.max(atlas, cv2.min(edge_lines, 215))
    dash = int(round(3.0 / np.linalg.norm(centreline_xz_m[1] - centreline_xz_m[0])))
    for s in range(0, len(centreline_xz_m) - dash, 3 * dash):
        ends = [tuple(p) for p in to_px(centreline_xz_m[[s, s + dash]])]
        cv2.line(atlas, *ends, 215, 3, cv2.LINE_AA, 4)
    return atlas
