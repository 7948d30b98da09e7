"""Two-view epipolar residuals for a motion-only pose refinement.

A monocular map under forward motion is thin (few points have the parallax to be triangulated),
so PnP on its own constrains the rotation with a few hundred points, while the same frame has
two to three times as many 2D-2D matches to the previous frame. This term adds those matches to
the reprojection error: with the previous camera fixed at `T_prev_world`, a pose `T_cam_world`
implies the relative motion T_cur_prev and the essential matrix E = [t]x R, and each match
contributes its Sampson distance (pixels, signed). The term is blind to the length of the
translation, which the map points fix.

With keypoint covariances (`cov_prev`, `cov_cur`: (N, 2, 2), relative to the frame's typical
keypoint, `geometry.whitening.relative_covariance`), the Sampson denominator takes them:
the distance is then in pixels of a typical keypoint, and uncertain keypoints pull less.

The Jacobian is numeric (central differences in the same left perturbation as `pnp`), since it
is 6 columns over vectorised residuals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpr_vo.geometry.se3 import invert, make_T, so3_exp
from tpr_vo.geometry.whitening import quadratic_form_2x2

STEP = 1e-6  # central-difference step (map units / radians)
# exp(+-STEP e_i) for the 6 axes, +steps first: the 12 perturbations, built once.
_PERTURBATIONS = np.stack(
    [make_T(so3_exp(d[3:]), d[:3]) for d in np.concatenate([np.eye(6), -np.eye(6)]) * STEP]
)


@dataclass(frozen=True)
class EpipolarTerm:
    """Matches between the previous frame (fixed pose `T_prev_world`, world -> camera) and the
    current one, as normalised image coordinates (N, 3) with z = 1, the focal length that
    turns normalised distances into pixels, and optionally each keypoint's relative covariance
    (N, 2, 2) in both frames (both or neither)."""

    T_prev_world: np.ndarray
    x_prev: np.ndarray
    x_cur: np.ndarray
    focal_px: float
    cov_prev: np.ndarray | None = None
    cov_cur: np.ndarray | None = None

    @staticmethod
    def from_pixels(T_prev_world, prev_px, cur_px, K, cov_prev=None, cov_cur=None):
        K_inv = np.linalg.inv(K)
        x0 = np.c_[np.asarray(prev_px, np.float64), np.ones(len(prev_px))] @ K_inv.T
        x1 = np.c_[np.asarray(cur_px, np.float64), np.ones(len(cur_px))] @ K_inv.T
        f = 0.5 * float(K[0, 0] + K[1, 1])
        return EpipolarTerm(T_prev_world, x0, x1, f, cov_prev, cov_cur)

    def __len__(self) -> int:
        return len(self.x_prev)

    def select(self, keep: np.ndarray) -> EpipolarTerm:
        c0, c1 = self.cov_prev, self.cov_cur
        return EpipolarTerm(
            self.T_prev_world,
            self.x_prev[keep],
            self.x_cur[keep],
            self.focal_px,
            None if c0 is None else c0[keep],
            None if c1 is None else c1[keep],
        )

    def residuals_px(self, T_cam_world: np.ndarray) -> np.ndarray:
        """(N,) signed Sampson distances in pixels; zeros when the pose has no translation
        relative to the previous camera (E is undefined)."""
        return self._residuals(T_cam_world[None])[0]

    def jacobian(self, T_cam_world: np.ndarray) -> np.ndarray:
        """(N, 6) d(residual)/d(delta) for T <- exp(delta) T, by central differences (all 12
        perturbed poses in one batched evaluation)."""
        r = self._residuals(_PERTURBATIONS @ T_cam_world)  # (12, N)
        return ((r[:6] - r[6:]) / (2 * STEP)).T

    def _residuals(self, poses_cam_world: np.ndarray) -> np.ndarray:
        """(P, N) Sampson distances for P poses (P, 4, 4)."""
        T_rel = poses_cam_world @ invert(self.T_prev_world)  # previous camera -> current
        t = T_rel[:, :3, 3]
        norm = np.linalg.norm(t, axis=1)
        moving = norm >= 1e-12
        t_hat = np.zeros((len(t), 3, 3))
        tx, ty, tz = (t / np.where(moving, norm, 1.0)[:, None]).T
        t_hat[:, 0, 1], t_hat[:, 0, 2], t_hat[:, 1, 2] = -tz, ty, -tx
        t_hat[:, 1, 0], t_hat[:, 2, 0], t_hat[:, 2, 1] = tz, -ty, tx
        E = t_hat @ T_rel[:, :3, :3]  # (P, 3, 3)
        P = len(E)
        # One (N, 3) @ (3, 3P) product per side instead of P small batched ones:
        # Ex0[n, p] = E_p x0_n and Etx1[n, p] = E_p^T x1_n.
        Ex0 = (self.x_prev @ E.transpose(2, 0, 1).reshape(3, 3 * P)).reshape(-1, P, 3)
        Etx1 = (self.x_cur @ E.transpose(1, 0, 2).reshape(3, 3 * P)).reshape(-1, P, 3)
        num = np.einsum("nk,npk->pn", self.x_cur, Ex0)
        if self.cov_prev is None or self.cov_cur is None:
            den2 = Ex0[..., 0] ** 2 + Ex0[..., 1] ** 2 + Etx1[..., 0] ** 2 + Etx1[..., 1] ** 2
        else:  # gradient^T cov gradient, for the current point (E x0) and the previous (E^T x1)
            den2 = quadratic_form_2x2(Ex0[..., :2], self.cov_cur)
            den2 += quadratic_form_2x2(Etx1[..., :2], self.cov_prev)
        den = np.sqrt(den2)
        return np.where(moving[:, None], self.focal_px * num / np.maximum(den.T, 1e-12), 0.0)
