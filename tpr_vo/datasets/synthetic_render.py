"""A small z-buffered rasteriser for planar textured quads (the synthetic sequence's renderer).

Each quad maps its texture to the image by an exact homography `K [R u | R v | R o + t]`
(cv2.warpPerspective over the quad's bounding box), the inverse depth of a plane is affine in the
pixel coordinates, so a per-pixel depth test is a few array operations. Mip levels keep distant
textures from aliasing. Pixel centres are at integer coordinates everywhere (OpenCV convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tpr_vo.datasets.synthetic_scene import VIEW_DISTANCE_M, Quad, Scene

NEAR_M = 0.3
FAR_M = VIEW_DISTANCE_M
MIP_BIAS = 0.5  # round the level: at most 1.4 texels per pixel, so thin lines do not alias


@dataclass(frozen=True)
class View:
    """A rendered view before sensor effects: image_u8 (H, W) uint8; inv_depth_per_m (H, W)
    float32, 1/z of the visible surface (0 = sky)."""

    image_u8: np.ndarray
    inv_depth_per_m: np.ndarray


class QuadRenderer:
    def __init__(self, K: np.ndarray, width_px: int, height_px: int):
        self.K = np.asarray(K, np.float64)
        self.width, self.height = int(width_px), int(height_px)
        self.u, self.v = np.meshgrid(
            np.arange(self.width, dtype=np.float32), np.arange(self.height, dtype=np.float32)
        )
        rows = np.linspace(200.0, 165.0, self.height, dtype=np.float32)[:, None]
        self.sky = np.repeat(rows, self.width, axis=1)

    def render(self, scene: Scene, T_world_cam: np.ndarray) -> View:
        """Render the scene seen by a camera at `T_world_cam` (4x4, optical frame)."""
        T_cam_world = np.linalg.inv(T_world_cam)
        R, t = T_cam_world[:3, :3], T_cam_world[:3, 3]
        image = self.sky.astype(np.uint8)
        inv_depth = np.zeros((self.height, self.width), np.float32)
        self._draw_ground(scene, R, t, image, inv_depth)
        # vectorised culling: distance, back faces, behind the camera, outside the image
        corners = scene.corners_m @ R.T + t  # (Q, 4, 3)
        z = corners[..., 2]
        dist = np.linalg.norm(scene.centers_m @ R.T + t, axis=1)
        facing = np.einsum("qi,qi->q", scene.normals @ R.T, -(scene.origins_m @ R.T + t)) > 0
        keep = facing & (dist < FAR_M + scene.radii_m) & (z.max(1) > NEAR_M)
        in_front = z.min(1) >= NEAR_M
        px = corners @ self.K.T
        px = px[..., :2] / np.where(in_front[:, None], z, 1.0)[..., None]
        lo, hi = px.min(1), px.max(1)
        outside = (hi[:, 0] < 0) | (hi[:, 1] < 0) | (lo[:, 0] > self.width)
        outside |= lo[:, 1] > self.height
        keep &= ~(in_front & outside)
        x, y = px[..., 0], px[..., 1]
        pixel_area = 0.5 * np.abs((x * np.roll(y, -1, 1) - y * np.roll(x, -1, 1)).sum(1))
        ratio = scene.texel_areas / np.maximum(pixel_area, 1e-9)
        levels = np.floor(0.5 * np.log2(np.maximum(ratio, 1e-9)) + MIP_BIAS)
        levels = np.where(in_front, np.maximum(levels, 0), 0).astype(int)
        levels = np.minimum(levels, scene.num_levels - 1)
        nearest_inv = 1.0 / np.maximum(z.min(1), NEAR_M)
        order = np.flatnonzero(keep)[np.argsort(dist[keep])]  # near to far: cheap occlusion
        polygons = list(px[order])
        boxes = np.concatenate([lo, hi], axis=1)[order]
        for k in np.flatnonzero(~in_front[order]):  # crosses the near plane: clip
            polygons[k] = _project(_clip_near(corners[order[k]]), self.K)
            boxes[k] = np.r_[polygons[k].min(0), polygons[k].max(0)]
        boxes = np.floor(boxes) + [0, 0, 2, 2]
        boxes = np.clip(boxes, 0, [self.width, self.height] * 2).astype(int)
        # homographies into each bounding box, for each quad's mip level (a level-L texel a_L
        # is level-0 texel 2^L a_L: pyrDown keeps the even samples' centres)
        H = self._homographies(scene, order, R, t)
        H[:, :, :2] *= (2.0 ** levels[order])[:, None, None]
        H[:, 0] -= boxes[:, 0, None] * H[:, 2]
        H[:, 1] -= boxes[:, 1, None] * H[:, 2]
        g = self._plane_inv_depths(scene, order, R, t).tolist()
        for k, q in enumerate(order.tolist()):
            x0, y0, x1, y1 = boxes[k].tolist()
            if x1 <= x0 or y1 <= y0 or inv_depth[y0:y1, x0:x1].min() > nearest_inv[q]:
                continue  # off-screen, or hidden behind what is drawn already
            texture = scene.textures[scene.quads[q].texture_id][levels[q]]
            warped = cv2.warpPerspective(texture, H[k], (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            poly = np.clip(np.round((polygons[k] - [x0, y0]) * 16), -(2**26), 2**26)
            cv2.fillConvexPoly(mask, poly.astype(np.int32), 255, cv2.LINE_8, 4)
            gu, gv, g1 = g[k]
            quad_inv = cv2.addWeighted(self.u[y0:y1, x0:x1], gu, self.v[y0:y1, x0:x1], gv, g1)
            depth_roi = inv_depth[y0:y1, x0:x1]
            win = cv2.bitwise_and(mask, cv2.compare(quad_inv, depth_roi, cv2.CMP_GT))
            cv2.copyTo(warped, win, image[y0:y1, x0:x1])
            cv2.copyTo(quad_inv, win, depth_roi)
        return View(image, inv_depth)

    def _homography(self, quad: Quad, R, t, level: int) -> np.ndarray:
        scale = float(2**level)
        cols = [R @ quad.axis_u_m * scale, R @ quad.axis_v_m * scale, R @ quad.origin_m + t]
        return self.K @ np.stack(cols, axis=1)

    def _plane_inv_depth(self, quad: Quad, R, t) -> np.ndarray:
        """g with 1/z = g . (u, v, 1) on the quad's plane, in camera coordinates."""
        n_cam = R @ quad.normal
        offset = n_cam @ (R @ quad.origin_m + t)
        return np.linalg.solve(self.K.T, n_cam) / offset

    def _homographies(self, scene: Scene, index: np.ndarray, R, t) -> np.ndarray:
        """(len(index), 3, 3) level-0 texel -> pixel homographies K [R u | R v | R o + t]."""
        cols = np.stack([scene.axes_u_m[index] @ R.T, scene.axes_v_m[index] @ R.T,
                         scene.origins_m[index] @ R.T + t], axis=2)  # fmt: skip
        return self.K @ cols

    def _plane_inv_depths(self, scene: Scene, index: np.ndarray, R, t) -> np.ndarray:
        """(len(index), 3) float32 g with 1/z = g . (u, v, 1) on each quad's plane."""
        n_cam = scene.normals[index] @ R.T
        offset = np.einsum("qi,qi->q", n_cam, scene.origins_m[index] @ R.T + t)
        return (n_cam @ np.linalg.inv(self.K) / offset[:, None]).astype(np.float32)

    def _draw_ground(self, scene: Scene, R, t, image, inv_depth):
        g = self._plane_inv_depth(scene.ground, R, t).tolist()
        ground_inv = cv2.addWeighted(self.u, g[0], self.v, g[1], g[2])
        visible = cv2.compare(ground_inv, 1.0 / (FAR_M * 4), cv2.CMP_GT)  # 0 | 255
        rows_visible = visible.max(1) > 0
        if not rows_visible.any():
            return
        cv2.copyTo(ground_inv, visible, inv_depth)
        # texel footprint per row (the camera barely rolls): lateral z/f by along-track z^2/(f h);
        # their geometric mean picks the mip level
        z = 1.0 / np.maximum(ground_inv[:, self.width // 2].astype(np.float64), 1e-6)
        res = np.linalg.norm(scene.ground.axis_u_m)
        height_m = 1.0 / np.linalg.norm(self._plane_inv_depth(scene.ground, R, t) @ self.K)
        footprint = z / self.K[0, 0] * np.sqrt(z / height_m) / res
        pyramid = scene.textures[scene.ground.texture_id]
        level = np.floor(np.log2(np.maximum(footprint, 1e-3)) + MIP_BIAS)
        level = np.clip(level, 0, len(pyramid) - 1)
        for lv in np.unique(level[rows_visible]).astype(int):
            rows = np.flatnonzero(rows_visible & (level == lv))
            r0, r1 = rows[0], rows[-1] + 1
            shift = np.array([[1, 0, 0], [0, 1, -r0], [0, 0, 1]], np.float64)
            H = shift @ self._homography(scene.ground, R, t, lv)
            warped = cv2.warpPerspective(
                pyramid[lv], H, (self.width, r1 - r0), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT_101,
            )  # fmt: skip
            cv2.copyTo(warped, visible[r0:r1], image[r0:r1])


def _project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    p = points_cam @ K.T
    return p[:, :2] / p[:, 2:3]


def _clip_near(polygon: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a convex 3-D polygon against z >= NEAR_M."""
    out = []
    n = len(polygon)
    for k in range(n):
        p, q = polygon[k], polygon[(k + 1) % n]
        p_in, q_in = p[2] >= NEAR_M, q[2] >= NEAR_M
        if p_in:
            out.append(p)
        if p_in != q_in:
            out.append(p + (q - p) * (NEAR_M - p[2]) / (q[2] - p[2]))
    return np.array(out)
