"""The world of the synthetic driving sequence: a curving road, a textured ground atlas, building
facades, parked boxes, poles and signs, all planar textured quads with exact geometry.

World frame = KITTI camera convention at the start: x right, y down, z forward; the ground is the
plane y = +CAMERA_HEIGHT_M. Textures are real photographs bundled with scikit-image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tpr_vo.datasets.synthetic_textures import (
    TextureSource,
    ground_atlas,
    load_photos,
    mip_pyramid,
)

log = logging.getLogger(__name__)

CAMERA_HEIGHT_M = 1.65
LANE_OFFSET_M = 1.8  # the car drives in the right lane
ROAD_HALF_WIDTH_M = 3.5  # edge lines; parking strip to 5.5 m, sidewalk to 8.5 m
GROUND_RES_M = 0.05  # metres per ground-atlas texel
PATH_STEP_M = 0.1
VIEW_DISTANCE_M = 120.0  # quads farther than this are not drawn
ROAD_AHEAD_M = VIEW_DISTANCE_M + 40.0  # scene built beyond the last frame (view + a building)


@dataclass(frozen=True)
class Quad:
    """A textured parallelogram: texel (a, b) of level 0 sits at origin + a * axis_u + b * axis_v.

    corners_m: (4, 3) world corners (convex, any order around the rim); normal: unit vector on
    the visible side; texture_id indexes Scene.textures (a mip pyramid of uint8 images)."""

    origin_m: np.ndarray
    axis_u_m: np.ndarray
    axis_v_m: np.ndarray
    corners_m: np.ndarray
    normal: np.ndarray
    texture_id: int


@dataclass(frozen=True)
class Scene:
    """All quads, also stacked into arrays (Q = number of quads) for vectorised culling."""

    quads: list[Quad]
    textures: list[list[np.ndarray]]  # mip pyramids, level 0 first
    ground: Quad  # the ground plane; its texture is the atlas (reflected beyond its border)
    path_xz_m: np.ndarray  # (S, 2) road centreline from the start, every PATH_STEP_M
    heading_rad: np.ndarray  # (S,) road direction, 0 = +z, positive turns towards +x
    corners_m: np.ndarray  # (Q, 4, 3)
    normals: np.ndarray  # (Q, 3)
    origins_m: np.ndarray  # (Q, 3) where texel (0, 0) of each quad's texture sits
    axes_u_m: np.ndarray  # (Q, 3) world step of one level-0 texel along u
    axes_v_m: np.ndarray  # (Q, 3)
    centers_m: np.ndarray  # (Q, 3)
    radii_m: np.ndarray  # (Q,) centre-to-corner distance
    texel_areas: np.ndarray  # (Q,) area of each quad in level-0 texels
    num_levels: np.ndarray  # (Q,) mip levels of each quad's texture


def road_path(length_m: float, rng: np.random.Generator, start_m: float = 40.0):
    """Centreline (S, 2) x/z and heading (S,), sampled every PATH_STEP_M from -start_m: straight
    stretches and left/right turns with smoothly ramped curvature. Index of s=0 is returned too."""
    n = int((length_m + start_m) / PATH_STEP_M) + 1
    curvature = np.zeros(n)
    s = int((start_m + rng.uniform(10, 30)) / PATH_STEP_M)
    while s < n:
        radius = rng.uniform(30, 90)
        angle = np.deg2rad(rng.uniform(20, 80)) * rng.choice([-1, 1])
        arc = int(abs(angle) * radius / PATH_STEP_M)
        curvature[s : s + arc] = np.sign(angle) / radius
        s += arc + int(rng.uniform(20, 50) / PATH_STEP_M)
    ramp = int(8 / PATH_STEP_M)
    curvature = np.convolve(curvature, np.ones(ramp) / ramp, mode="same")
    heading = np.cumsum(curvature) * PATH_STEP_M
    heading -= heading[int(start_m / PATH_STEP_M)]
    xz = np.cumsum(np.stack([np.sin(heading), np.cos(heading)], 1), 0) * PATH_STEP_M
    xz -= xz[int(start_m / PATH_STEP_M)]
    return xz, heading, int(start_m / PATH_STEP_M)


def _quad(origin, axis_u, axis_v, size_uv, texture_id, towards=None) -> Quad:
    origin, axis_u, axis_v = (np.asarray(v, np.float64) for v in (origin, axis_u, axis_v))
    wu, wv = size_uv
    corners = np.stack([origin, origin + wu * axis_u, origin + wu * axis_u + wv * axis_v])
    corners = np.vstack([corners, origin + wv * axis_v])
    normal = np.cross(axis_u, axis_v)
    normal /= np.linalg.norm(normal)
    if towards is not None and normal @ (np.asarray(towards) - corners.mean(0)) < 0:
        normal = -normal
    return Quad(origin, axis_u, axis_v, corners, normal, texture_id)


def _ground_point(xz, y=CAMERA_HEIGHT_M):
    return np.array([xz[0], y, xz[1]])


class _Builder:
    """Collects quads and their mip-mapped textures."""

    def __init__(self, source: TextureSource):
        self.source = source
        self.quads: list[Quad] = []
        self.textures: list[list[np.ndarray]] = []

    def texture(self, image: np.ndarray) -> int:
        self.textures.append(mip_pyramid(image))
        return len(self.textures) - 1

    def building_row(self, xz, heading, side, setback_m, heights_m, gap_odds):
        """Buildings along one side (-1 left, +1 right) of the road: a facade of 5 m panels
        (one texture, one plane) facing the road, and side walls seen through the gaps."""
        rng, down = self.source.rng, np.array([0.0, 1.0, 0.0])
        i = 0
        while i < len(xz) - 1:
            j = min(i + int(rng.uniform(8, 22) / PATH_STEP_M), len(xz) - 1)
            if rng.random() > gap_odds and j - i > 20:
                d = side * (setback_m + rng.uniform(0, 5))
                height = rng.uniform(*heights_m)
                a, c = _frame_at(xz, heading, i, d), _frame_at(xz, heading, j, d)
                width_m = float(np.linalg.norm(c - a))
                px_per_m = 40.0 if setback_m < 20 else 20.0
                tex = self.source.facade(int(width_m * px_per_m), int(height * px_per_m))
                tid = self.texture(tex)
                u = np.r_[c[0] - a[0], 0.0, c[1] - a[1]] / width_m / px_per_m
                top = _ground_point(a, CAMERA_HEIGHT_M - height)
                road = _ground_point(xz[(i + j) // 2])
                panels = max(1, int(np.ceil(width_m / 5.0)))
                cols = tex.shape[1] / panels
                for p in range(panels):
                    panel = _quad(top + u * cols * p, u, down / px_per_m, (cols, tex.shape[0]),
                                  tid, towards=road)  # fmt: skip
                    self.quads.append(Quad(top, u, down / px_per_m, panel.corners_m,
                                           panel.normal, tid))  # fmt: skip
                depth = rng.uniform(6, 12)
                wall_tid = self.texture(self.source.facade(int(depth * 20), int(height * 20)))
                for end, k, toward in ((a, i, -1), (c, j, 1)):
                    o = _ground_point(end, CAMERA_HEIGHT_M - height)
                    out = _direction(heading[k], lateral=True) * side / 20
                    facing = o + toward * _direction(heading[k])
                    size = (depth * 20, height * 20)
                    self.quads.append(_quad(o, out, down / 20, size, wall_tid, facing))
            i = j + 1

    def street_furniture(self, xz, heading, side):
        """Parked boxes (car-sized), poles and signs every 6-18 m along one side."""
        rng = self.source.rng
        s = rng.uniform(5, 20)
        while s < (len(xz) - 1) * PATH_STEP_M:
            k = int(s / PATH_STEP_M)
            kind = rng.random()
            if kind < 0.45:
                tids = [self.texture(self.source.photo()) for _ in range(2)]
                size = (rng.uniform(3.8, 4.8), rng.uniform(1.6, 1.9), rng.uniform(1.3, 1.7))
                self.box(_frame_at(xz, heading, k, side * 4.5), heading[k], size, tids)
            elif kind < 0.8:
                tid = self.texture(self.source.photo())
                size = (0.3, 0.3, rng.uniform(3.5, 6.0))
                where = _frame_at(xz, heading, k, side * rng.uniform(6, 8))
                self.box(where, heading[k], size, [tid])
            else:  # a sign 2 m above the ground, facing the traffic
                tid = self.texture(self.source.photo())
                th, tw = self.textures[tid][0].shape
                m_per_px = rng.uniform(1.5, 3.0) / tw
                u = _direction(heading[k], lateral=True) * m_per_px
                v = np.array([0.0, 1.0, 0.0]) * m_per_px
                centre = _frame_at(xz, heading, k, side * rng.uniform(6, 8))
                o = _ground_point(centre, CAMERA_HEIGHT_M - 2.0 - th * m_per_px) - u * tw / 2
                toward = o - _direction(heading[k])
                self.quads.append(_quad(o, u, v, (tw, th), tid, towards=toward))
            s += rng.uniform(6, 18)

    def box(self, center_xz, heading, size_lwh, texture_ids):
        """Axis-aligned (in the road frame) box on the ground: 4 sides + top, outward normals."""
        length, width, height = size_lwh
        fwd = np.array([np.sin(heading), 0.0, np.cos(heading)])
        right = np.array([np.cos(heading), 0.0, -np.sin(heading)])
        up = np.array([0.0, -1.0, 0.0])
        base = _ground_point(center_xz)
        centre = base + up * height / 2
        faces = [  # (face centre offset, u axis, v axis, size)
            (-fwd * length / 2, right, -up, (width, height)),
            (fwd * length / 2, right, -up, (width, height)),
            (-right * width / 2, fwd, -up, (length, height)),
            (right * width / 2, fwd, -up, (length, height)),
            (up * height / 2, right, fwd, (width, length)),
        ]
        for k, (offset, u, v, (wu, wv)) in enumerate(faces):
            tid = texture_ids[k % len(texture_ids)]
            th, tw = self.textures[tid][0].shape
            px_per_m = min(tw / wu, th / wv)
            corner = centre + offset - u * wu / 2 - v * wv / 2
            size = (wu * px_per_m, wv * px_per_m)
            outside = centre + 3 * offset
            self.quads.append(_quad(corner, u / px_per_m, v / px_per_m, size, tid, outside))


def _frame_at(xz, heading, i, lateral_m):
    """(x, z) of the point `lateral_m` to the right of path sample i."""
    right = np.array([np.cos(heading[i]), -np.sin(heading[i])])
    return xz[i] + right * lateral_m


def _direction(heading_rad: float, lateral: bool = False) -> np.ndarray:
    """Unit 3-vector along the road (or to its right when `lateral`)."""
    c, s = np.cos(heading_rad), np.sin(heading_rad)
    return np.array([c, 0.0, -s]) if lateral else np.array([s, 0.0, c])


def build_scene(path_length_m: float, seed: int) -> Scene:
    """Everything along `path_length_m` of road (plus margins), deterministic for `seed`.

    Each part (road, each row of buildings, each side's obstacles) draws from its own random
    stream, in order along the road, so a longer road extends a shorter one: the world does not
    depend on how many frames are rendered."""
    photos = load_photos()
    xz, heading, i0 = road_path(path_length_m + ROAD_AHEAD_M, np.random.default_rng([seed, 20]))
    b = _Builder(TextureSource(photos, np.random.default_rng([seed, 21])))
    for side in (-1, 1):
        rows = ((9.0, (5, 14), 0.35), (30.0, (12, 26), 0.5))  # setback m, heights m, gap odds
        for row, (setback_m, heights_m, gap_odds) in enumerate(rows):
            b.source.rng = np.random.default_rng([seed, 22, side + 1, row])
            b.building_row(xz, heading, side, setback_m, heights_m, gap_odds)
        b.source.rng = np.random.default_rng([seed, 23, side + 1])
        b.street_furniture(xz, heading, side)
    ground = _ground_quad(b, photos, xz)
    corners = np.stack([q.corners_m for q in b.quads])
    centers = corners.mean(1)
    radii = np.linalg.norm(corners - centers[:, None], axis=2).max(1)
    edge_u, edge_v = corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0]
    area_m2 = np.linalg.norm(np.cross(edge_u, edge_v), axis=1)
    texel_m2 = np.array([np.linalg.norm(np.cross(q.axis_u_m, q.axis_v_m)) for q in b.quads])
    return Scene(
        quads=b.quads,
        textures=b.textures,
        ground=ground,
        path_xz_m=xz[i0:],
        heading_rad=heading[i0:],
        corners_m=corners,
        normals=np.stack([q.normal for q in b.quads]),
        origins_m=np.stack([q.origin_m for q in b.quads]),
        axes_u_m=np.stack([q.axis_u_m for q in b.quads]),
        axes_v_m=np.stack([q.axis_v_m for q in b.quads]),
        centers_m=centers,
        radii_m=radii,
        texel_areas=area_m2 / texel_m2,
        num_levels=np.array([len(b.textures[q.texture_id]) for q in b.quads]),
    )


def _ground_quad(b: _Builder, photos, xz) -> Quad:
    """The ground plane, textured by an atlas covering the road and 25 m around it."""
    margin, cell = 25.0, 4 * GROUND_RES_M
    lo = np.floor((xz.min(0) - margin) / cell) * cell  # on a world-anchored grid
    w, h = (np.ceil((xz.max(0) + margin - lo) / cell) * 4).astype(int)
    atlas = ground_atlas(photos, xz, lo, (h, w), GROUND_RES_M, ROAD_HALF_WIDTH_M)
    return _quad(_ground_point(lo), [GROUND_RES_M, 0, 0], [0, 0, GROUND_RES_M], (w, h),
                 b.texture(atlas), towards=[0, 0, 0])  # fmt: skip
