"""Two-view epipolar residuals for a motion-only pose refinement.

A monocular map under forward motion is thin (few points have the parallax to be triangulated),
so PnP on its own constrains the rotation with a few hundred points, while the same frame has
two to three times as many 2D-2D matches to the previous frame. This term adds those matches to
the reprojection error: with the previous camera fixed at `T_prev_world`, a pose `T_cam_world`
implies the relative motion T_cur_prev and the essential matrix E = [t]x R, and each match
contributes its Sampson distance (pixels, signed). The term is blind to the length of the
translation, which the map points fix.

The Jacobian is numeric (central differences in the same left perturbation as `pnp`), since it
is 6 columns over vectorised residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpr_vo.geometry.se3 import invert, make_T, skew, so3_exp

STEP = 1e-6  # central-difference step (map units / radians)


@dataclass(frozen=True)
class EpipolarTerm:
    """Matches between the previous frame (fixed pose `T_prev_world`, world -> camera) and the
    current one, as normalised image coordinates (N, 3) with z = 1, and the focal length that
    turns normalised distances into pixels."""

    T_prev_world: np.ndarray
    x_prev: np.ndarray
    x_cur: np.ndarray
    focal_px: float

    @staticmethod
    def from_pixels(T_prev_world, prev_px, cur_px, K) -> EpipolarTerm:
        K_inv = np.linalg.inv(K)
        x0 = np.c_[np.asarray(prev_px, np.float64), np.ones(len(prev_px))] @ K_inv.T
        x1 = np.c_[np.asarray(cur_px, np.float64), np.ones(len(cur_px))] @ K_inv.T
        return EpipolarTerm(T_prev_world, x0, x1, 0.5 * float(K[0, 0] + K[1, 1]))

    def __len__(self) -> int:
        return len(self.x_prev)

    def select(self, keep: np.ndarray) -> EpipolarTerm:
        return EpipolarTerm(self.T_prev_world, self.x_prev[keep], self.x_cur[keep], self.focal_px)

    def residuals_px(self, T_cam_world: np.ndarray) -> np.ndarray:
        """(N,) signed Sampson distances in pixels; zeros when the pose has no translation
        relative to the previous camera (E is undefined)."""
        T_rel = T_cam_world @ invert(self.T_prev_world)  # previous camera -> current camera
        t = T_rel[:3, 3]
        norm = float(np.linalg.norm(t))
        if norm < 1e-12:
            return np.zeros(len(self))
        E = skew(t / norm) @ T_rel[:3, :3]
        Ex0 = self.x_prev @ E.T
        Etx1 = self.x_cur @ E
        num = (self.x_cur * Ex0).sum(1)
        den = np.sqrt(Ex0[:, 0] ** 2 + Ex0[:, 1] ** 2 + Etx1[:, 0] ** 2 + Etx1[:, 1] ** 2)
        return self.focal_px * num / np.maximum(den, 1e-12)

    def jacobian(self, T_cam_world: np.ndarray) -> np.ndarray:
        """(N, 6) d(residual)/d(delta) for T <- exp(delta) T, by central differences."""
        J = np.empty((len(self), 6))
        for k in range(6):
            d = np.zeros(6)
            d[k] = STEP
            plus = make_T(so3_exp(d[3:]), d[:3]) @ T_cam_world
            minus = make_T(so3_exp(-d[3:]), -d[:3]) @ T_cam_world
            J[:, k] = (self.residuals_px(plus) - self.residuals_px(minus)) / (2 * STEP)
        return J
