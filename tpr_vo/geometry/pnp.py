"""Absolute pose from 3D-2D correspondences: PnP-RANSAC (OpenCV) followed by motion-only
Levenberg-Marquardt refinement of the reprojection error with a Huber kernel, and the pose
covariance sigma^2 (J^T W J)^-1 from the final Jacobian.

The pose is `T_cam_world`; updates are left perturbations `T <- exp(delta) T` with
delta = (tx, ty, tz, rx, ry, rz) in the camera frame (metres/map units, radians).

`whiten_2x2` (N, 2, 2), when given, weighs each observation by its keypoint's position
covariance (`geometry.whitening`): residuals and Jacobians are multiplied by it, so the Huber
kernel, the inlier threshold and the covariance all see errors in pixels of a nominal keypoint."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tpr_vo.geometry.epipolar_term import EpipolarTerm
from tpr_vo.geometry.se3 import make_T, orthonormalize, so3_exp
from tpr_vo.geometry.whitening import apply_2x2


@dataclass(frozen=True)
class PnpResult:
    """T_cam_world: (4, 4); inliers: (N,) bool; covariance_6x6 of delta; rms_px of inliers."""

    T_cam_world: np.ndarray
    inliers: np.ndarray
    num_inliers: int
    covariance_6x6: np.ndarray
    rms_px: float


def reprojection_residuals(T_cam_world, points_w, pixels_px, K):
    """(N, 2) residuals (projected - observed) in pixels and (N,) depths."""
    pc = points_w @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = pc[:, 2]
    zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
    uv = (pc[:, :2] / zs[:, None]) * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]
    return uv - pixels_px, z


def _jacobian(T_cam_world, points_w, K):
    """(N, 2, 6) d(pixel)/d(delta) for the left perturbation, in closed form: with
    (x', y') = (x, y) / z, d(pixel)/d(pc) = [[fx/z, 0, -fx x'/z], [0, fy/z, -fy y'/z]] times
    d(pc)/d(delta) = [I | -[pc]x]."""
    pc = points_w @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    inv_z = 1.0 / np.maximum(pc[:, 2], 1e-6)
    xz, yz = pc[:, 0] * inv_z, pc[:, 1] * inv_z
    fx, fy = K[0, 0], K[1, 1]
    J = np.zeros((len(pc), 2, 6))
    J[:, 0, 0] = fx * inv_z
    J[:, 0, 2] = -fx * xz * inv_z
    J[:, 0, 3] = -fx * xz * yz
    J[:, 0, 4] = fx * (1.0 + xz * xz)
    J[:, 0, 5] = -fx * yz
    J[:, 1, 1] = fy * inv_z
    J[:, 1, 2] = -fy * yz * inv_z
    J[:, 1, 3] = -fy * (1.0 + yz * yz)
    J[:, 1, 4] = fy * xz * yz
    J[:, 1, 5] = fy * xz
    return J


def _whitened(r: np.ndarray, whiten_2x2: np.ndarray | None) -> np.ndarray:
    """(N, 2, ...) residuals or Jacobians times each observation's (2, 2) whitening."""
    return r if whiten_2x2 is None else apply_2x2(whiten_2x2, r)


def pose_covariance(
    T_cam_world, points_w, pixels_px, K, min_sigma_px: float = 0.5, whiten_2x2=None
):
    """sigma^2 (J^T J)^-1 (6, 6) with sigma^2 the residual variance (at least min_sigma_px^2)."""
    n = len(points_w)
    if n < 4:
        return np.eye(6) * 1e3
    r, _ = reprojection_residuals(T_cam_world, points_w, pixels_px, K)
    r = _whitened(r, whiten_2x2)
    J = _whitened(_jacobian(T_cam_world, points_w, K), whiten_2x2).reshape(-1, 6)
    dof = max(2 * n - 6, 1)
    sigma2 = max(float((r**2).sum()) / dof, min_sigma_px**2)
    H = J.T @ J
    try:
        cov = sigma2 * np.linalg.inv(H + 1e-9 * np.eye(6))
    except np.linalg.LinAlgError:
        return np.eye(6) * 1e3
    cov = 0.5 * (cov + cov.T)
    if not np.all(np.isfinite(cov)):
        return np.eye(6) * 1e3
    return cov


def _huber(e: np.ndarray, huber_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber cost rho(e) and IRLS weight of non-negative errors e (pixels)."""
    rho = np.where(e <= huber_px, 0.5 * e**2, huber_px * (e - 0.5 * huber_px))
    return rho, np.where(e <= huber_px, 1.0, huber_px / np.maximum(e, 1e-12))


def refine_pose_lm(
    T_cam_world: np.ndarray,
    points_w: np.ndarray,
    pixels_px: np.ndarray,
    K: np.ndarray,
    huber_px: float = 2.0,
    iterations: int = 10,
    epipolar: EpipolarTerm | None = None,
    min_rel_decrease: float = 1e-3,
    whiten_2x2: np.ndarray | None = None,
) -> np.ndarray:
    """Motion-only Levenberg-Marquardt on the Huber-weighted reprojection error, plus the
    Huber-weighted Sampson distances of `epipolar` (2D-2D matches to a fixed previous camera)
    when given. Stops when a step lowers the cost by less than `min_rel_decrease` of it."""
    T = T_cam_world.copy()
    lam = 1e-3
    if len(points_w) < 4:
        return T
    epi = epipolar if epipolar is not None and len(epipolar) else None

    def cost_of(T_):
        r, z = reprojection_residuals(T_, points_w, pixels_px, K)
        r = _whitened(r, whiten_2x2)
        e = np.linalg.norm(r, axis=1)
        rho = np.where(z > 0, _huber(e, huber_px)[0], 0.5 * huber_px**2 * 10)
        r_epi = epi.residuals_px(T_) if epi is not None else np.zeros(0)
        cost = float(rho.sum()) + float(_huber(np.abs(r_epi), huber_px)[0].sum())
        return cost, (r, e, r_epi)

    cost, res = cost_of(T)
    for _ in range(iterations):
        prev_cost = cost
        r, e, r_epi = res
        w = _huber(e, huber_px)[1]
        J = _whitened(_jacobian(T, points_w, K), whiten_2x2).reshape(-1, 6)  # rows u, v
        Jw = J * np.repeat(w, 2)[:, None]
        H = Jw.T @ J
        g = Jw.T @ r.ravel()
        if epi is not None:
            J_epi = epi.jacobian(T)  # (M, 6)
            Jw_epi = J_epi * _huber(np.abs(r_epi), huber_px)[1][:, None]
            H += Jw_epi.T @ J_epi
            g += Jw_epi.T @ r_epi
        improved = False
        for _ in range(5):
            try:
                delta = -np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-9), g)
            except np.linalg.LinAlgError:
                break
            T_new = make_T(so3_exp(delta[3:]), delta[:3]) @ T
            new_cost, new_res = cost_of(T_new)
            if new_cost < cost:
                T, cost, res = T_new, new_cost, new_res
                lam = max(lam * 0.3, 1e-7)
                improved = True
                break
            lam *= 10.0
        if not improved or np.linalg.norm(delta) < 1e-10:
            break
        if prev_cost - cost < min_rel_decrease * prev_cost:
            break
    T[:3, :3] = orthonormalize(T[:3, :3])
    return T


def solve_pnp(
    points_w: np.ndarray,
    pixels_px: np.ndarray,
    K: np.ndarray,
    threshold_px: float = 2.0,
    confidence: float = 0.999,
    T_guess: np.ndarray | None = None,
    min_inliers: int = 10,
    whiten_2x2: np.ndarray | None = None,
) -> PnpResult | None:
    """PnP-RANSAC + LM refinement; None when fewer than `min_inliers` inliers survive.
    Seed the sample order (shuffle the inputs) for reproducible runs."""
    n = len(points_w)
    if n < max(min_inliers, 6):
        return None
    obj = np.ascontiguousarray(points_w, dtype=np.float64)
    img = np.ascontiguousarray(pixels_px, dtype=np.float64)
    use_guess = T_guess is not None
    rvec0 = np.zeros((3, 1))
    tvec0 = np.zeros((3, 1))
    if use_guess:
        rvec0 = cv2.Rodrigues(T_guess[:3, :3])[0]
        tvec0 = T_guess[:3, 3].reshape(3, 1).copy()
    try:
        ok, rvec, tvec, inl = cv2.solvePnPRansac(
            obj,
            img,
            K,
            None,
            rvec=rvec0,
            tvec=tvec0,
            useExtrinsicGuess=False,
            iterationsCount=300,
            reprojectionError=float(threshold_px),
            confidence=confidence,
            flags=cv2.SOLVEPNP_EPNP,
        )
    except cv2.error:
        return None
    if not ok or inl is None or len(inl) < min_inliers:
        return None
    T = make_T(cv2.Rodrigues(rvec)[0], tvec.ravel())
    if not np.all(np.isfinite(T)):
        return None
    inliers = np.zeros(n, bool)
    inliers[inl.ravel()] = True
    return refine_with_inliers(
        T, obj, img, K, threshold_px, min_inliers, inliers, whiten_2x2=whiten_2x2
    )


def refine_with_inliers(
    T_cam_world: np.ndarray,
    points_w: np.ndarray,
    pixels_px: np.ndarray,
    K: np.ndarray,
    threshold_px: float,
    min_inliers: int,
    inliers: np.ndarray | None = None,
    epipolar: EpipolarTerm | None = None,
    whiten_2x2: np.ndarray | None = None,
) -> PnpResult | None:
    """LM refinement from a pose estimate, alternating with inlier re-selection (errors below
    `threshold_px`, in front of the camera); None when fewer than `min_inliers` remain. With
    `epipolar`, its matches join the refinement, re-selected the same way (Sampson distance)."""
    obj = np.asarray(points_w, np.float64)
    img = np.asarray(pixels_px, np.float64)
    T = T_cam_world
    L = whiten_2x2
    if inliers is None:
        r, z = reprojection_residuals(T, obj, img, K)
        inliers = (np.linalg.norm(_whitened(r, L), axis=1) < 2.0 * threshold_px) & (z > 0)
    for _ in range(2):
        if inliers.sum() < max(min_inliers, 4):
            return None
        epi = None
        if epipolar is not None:
            epi = epipolar.select(np.abs(epipolar.residuals_px(T)) < threshold_px)
        L_in = None if L is None else L[inliers]
        T = refine_pose_lm(
            T, obj[inliers], img[inliers], K, huber_px=threshold_px, epipolar=epi, whiten_2x2=L_in
        )
        r, z = reprojection_residuals(T, obj, img, K)
        inliers = (np.linalg.norm(_whitened(r, L), axis=1) < threshold_px) & (z > 0)
    if inliers.sum() < max(min_inliers, 4) or not np.all(np.isfinite(T)):
        return None
    L_in = None if L is None else L[inliers]
    cov = pose_covariance(T, obj[inliers], img[inliers], K, whiten_2x2=L_in)
    rms = float(np.sqrt((r[inliers] ** 2).sum(1).mean()))
    return PnpResult(T, inliers, int(inliers.sum()), cov, rms)
