"""Sliding-window local bundle adjustment: keyframe poses and the points they observe, jointly
refined on the Huber-robust reprojection error by Levenberg-Marquardt with the Schur complement
(points eliminated block-wise; the reduced camera system is at most 6*window unknowns).
Stereo observations add the right-image x residual (a metric depth constraint).

`least_squares_ba` solves the same problem with scipy.optimize.least_squares and a sparse
Jacobian; it is the slower reference the tests compare against.

Poses are `T_cam_world`, updated by left perturbations `exp(delta) @ T` (delta: t, r)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import least_squares

from tpr_vo.geometry.se3 import make_T, orthonormalize, so3_exp
from tpr_vo.geometry.whitening import apply_2x2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaProblem:
    """poses_cw: (C, 4, 4) initial T_cam_world; fixed: (C,) bool; points_w: (P, 3);
    obs_cam/obs_pt: (O,) int indices; obs_px: (O, 2) left pixels; obs_right_x: (O,) right-image x
    or NaN; K: (3, 3); baseline: stereo baseline in map units (0 for mono); obs_whiten: (O, 2, 2)
    whitening of each observation's pixel residual (`geometry.whitening`), or None (identity).
    With it, a stereo observation's third residual is its disparity's (unit weight) instead of
    the right x's."""

    poses_cw: np.ndarray
    fixed: np.ndarray
    points_w: np.ndarray
    obs_cam: np.ndarray
    obs_pt: np.ndarray
    obs_px: np.ndarray
    obs_right_x: np.ndarray
    K: np.ndarray
    baseline: float = 0.0
    obs_whiten: np.ndarray | None = None


@dataclass(frozen=True)
class BaResult:
    poses_cw: np.ndarray
    points_w: np.ndarray
    initial_rms_px: float
    final_rms_px: float
    inlier_obs: np.ndarray  # (O,) bool, reprojection error below 3 * huber after BA
    iterations: int


def _linearize(poses, points, prob: BaProblem):
    """Residuals (O, m) and Jacobians w.r.t. pose (O, m, 6) and point (O, m, 3), whitened
    when the problem has `obs_whiten`.

    Written out per entry instead of building d(pc)/d(delta) and two stacked matrix products
    (49 local-BA problems captured on KITTI 06: ~17-20 -> ~12-15 ms each): with (x, y, z) the
    point in the camera, a = f/z and x' = x/z, the left-perturbation pose Jacobian of u is
    [a, 0, -a x', -f x' y', f (1 + x'^2), -f y'], of v [0, a, -a y', -f (1 + y'^2), f x' y',
    f x'], and the point Jacobian is d(pixel)/d(pc) @ R."""
    R = poses[prob.obs_cam, :3, :3]
    t = poses[prob.obs_cam, :3, 3]
    pw = points[prob.obs_pt]
    pc = np.einsum("oij,oj->oi", R, pw) + t
    z = np.maximum(pc[:, 2], 1e-6)
    fx, fy, cx, cy = prob.K[0, 0], prob.K[1, 1], prob.K[0, 2], prob.K[1, 2]
    inv_z = 1.0 / z
    xz, yz = pc[:, 0] * inv_z, pc[:, 1] * inv_z
    m = 3 if prob.baseline > 0 else 2
    n = len(pc)
    r = np.zeros((n, m))
    r[:, 0] = fx * xz + cx - prob.obs_px[:, 0]
    r[:, 1] = fy * yz + cy - prob.obs_px[:, 1]
    # d(pixel)/d(pc): row u = (ax, 0, -ax x'), row v = (0, ay, -ay y')
    ax, ay = fx * inv_z, fy * inv_z
    Jc = np.zeros((n, m, 6))
    Jc[:, 0, 0] = ax
    Jc[:, 0, 2] = -ax * xz
    Jc[:, 0, 3] = -fx * xz * yz
    Jc[:, 0, 4] = fx * (1.0 + xz * xz)
    Jc[:, 0, 5] = -fx * yz
    Jc[:, 1, 1] = ay
    Jc[:, 1, 2] = -ay * yz
    Jc[:, 1, 3] = -fy * (1.0 + yz * yz)
    Jc[:, 1, 4] = fy * xz * yz
    Jc[:, 1, 5] = fy * xz
    Jp = np.empty((n, m, 3))
    Jp[:, 0] = ax[:, None] * (R[:, 0] - xz[:, None] * R[:, 2])
    Jp[:, 1] = ay[:, None] * (R[:, 1] - yz[:, None] * R[:, 2])
    if m == 3:
        # right x = u - fx b / z: its pc-derivative adds fx b / z^2 to the z entry of row u
        stereo = np.isfinite(prob.obs_right_x)
        kb = fx * prob.baseline * inv_z * inv_z
        ur = fx * xz + cx - fx * prob.baseline * inv_z
        r[:, 2] = np.where(stereo, ur - np.nan_to_num(prob.obs_right_x), 0.0)
        Jc[:, 2] = Jc[:, 0]
        Jc[:, 2, 2] += kb
        Jc[:, 2, 3] += kb * pc[:, 1]
        Jc[:, 2, 4] -= kb * pc[:, 0]
        Jp[:, 2] = Jp[:, 0] + kb[:, None] * R[:, 2]
        Jc[~stereo, 2] = 0.0
        Jp[~stereo, 2] = 0.0
    if prob.obs_whiten is not None:
        L = prob.obs_whiten
        if m == 3:
            # The right x is the left keypoint's x minus a disparity measured on its own
            # (stereo_refine), so it carries the left keypoint's error: the third residual
            # becomes the disparity's, u - u_right, which does not, at unit weight.
            r[:, 2] = np.where(stereo, r[:, 0] - r[:, 2], 0.0)
            Jc[:, 2] = np.where(stereo[:, None], Jc[:, 0] - Jc[:, 2], 0.0)
            Jp[:, 2] = np.where(stereo[:, None], Jp[:, 0] - Jp[:, 2], 0.0)
        r[:, :2] = apply_2x2(L, r[:, :2])
        Jc[:, :2] = apply_2x2(L, Jc[:, :2])
        Jp[:, :2] = apply_2x2(L, Jp[:, :2])
    return r, Jc, Jp, pc[:, 2]


def _inv_3x3(A: np.ndarray) -> np.ndarray:
    """(P, 3, 3) inverses by the adjugate (numpy's batched inv costs ~10x more on 3x3 blocks);
    raises LinAlgError when a block is singular."""
    a, b, c = A[:, 0, 0], A[:, 0, 1], A[:, 0, 2]
    d, e, f = A[:, 1, 0], A[:, 1, 1], A[:, 1, 2]
    g, h, i = A[:, 2, 0], A[:, 2, 1], A[:, 2, 2]
    adj = np.empty_like(A)
    adj[:, 0, 0], adj[:, 0, 1], adj[:, 0, 2] = e * i - f * h, c * h - b * i, b * f - c * e
    adj[:, 1, 0], adj[:, 1, 1], adj[:, 1, 2] = f * g - d * i, a * i - c * g, c * d - a * f
    adj[:, 2, 0], adj[:, 2, 1], adj[:, 2, 2] = d * h - e * g, b * g - a * h, a * e - b * d
    det = a * adj[:, 0, 0] + b * adj[:, 1, 0] + c * adj[:, 2, 0]
    if not np.all(np.isfinite(det)) or np.any(det == 0.0):
        raise np.linalg.LinAlgError("singular 3x3 block")
    return adj / det[:, None, None]


def _robust_cost(r: np.ndarray, depth: np.ndarray, huber: float):
    """Huber cost of each observation's error norm, and the IRLS weights."""
    e = np.linalg.norm(r, axis=1)
    cost = np.where(e <= huber, 0.5 * e**2, huber * (e - 0.5 * huber))
    cost = np.where(depth > 0, cost, 1e3 * huber**2)
    w = np.where(e <= huber, 1.0, huber / np.maximum(e, 1e-12))
    return float(cost.sum()), w


def _apply(poses, points, dx_pose, dx_point, free_idx):
    poses = poses.copy()
    for k, c in enumerate(free_idx):
        d = dx_pose[6 * k : 6 * k + 6]
        poses[c] = make_T(so3_exp(d[3:]), d[:3]) @ poses[c]
    return poses, points + dx_point.reshape(-1, 3)


def _summation(index: np.ndarray, n: int) -> sp.csr_matrix:
    """(n, len(index)) 0/1 matrix: row i sums the entries whose index is i."""
    m = len(index)
    return sp.csr_matrix((np.ones(m), (index, np.arange(m))), shape=(n, m))


def bundle_adjust(
    prob: BaProblem,
    huber_px: float = 2.0,
    max_iterations: int = 10,
    min_rel_decrease: float = 1e-2,
) -> BaResult:
    """Refine free poses and all points; fixed poses anchor the gauge (one for stereo, two for
    monocular so the scale is fixed too). Stops when an accepted step lowers the cost by less
    than `min_rel_decrease` of it: on KITTI 06 (seeds 0-7, TPR/ORB/SIFT, mono and stereo)
    1e-2 gave the same ATE as 1e-6 at about half the iterations."""
    C, P = len(prob.poses_cw), len(prob.points_w)
    free_idx = np.flatnonzero(~prob.fixed)
    cam_to_free = -np.ones(C, np.int64)
    cam_to_free[free_idx] = np.arange(len(free_idx))
    F = len(free_idx)
    poses, points = prob.poses_cw.copy(), prob.points_w.copy()
    r, Jc, Jp, depth = _linearize(poses, points, prob)
    cost, w = _robust_cost(r, depth, huber_px)
    init_rms = float(np.sqrt(np.mean(r**2)))
    lam = 1e-4
    it = 0
    oc = cam_to_free[prob.obs_cam]
    free_obs = oc >= 0
    sum_by_point = _summation(prob.obs_pt, P)  # (P, O): per-observation terms -> per point
    sum_by_camera = _summation(oc[free_obs], F)  # (F, O_free)
    free_cam, free_pt = oc[free_obs], prob.obs_pt[free_obs]
    for it in range(1, max_iterations + 1):  # noqa: B007 (reported)
        # Point blocks V (P, 3, 3), pose blocks U (F, 6, 6), cross blocks W per observation.
        JpT_w = Jp.transpose(0, 2, 1) * w[:, None, None]  # (O, 3, m)
        V = (sum_by_point @ (JpT_w @ Jp).reshape(-1, 9)).reshape(P, 3, 3)
        g_l = sum_by_point @ (JpT_w @ r[:, :, None])[:, :, 0]
        U = np.zeros((F, 6, 6))
        g_c = np.zeros((F, 6))
        JcT_w = Jc.transpose(0, 2, 1) * w[:, None, None]  # (O, 6, m)
        Wo = JcT_w @ Jp  # (O, 6, 3)
        if F:
            Jc_free = JcT_w[free_obs]
            U = (sum_by_camera @ (Jc_free @ Jc[free_obs]).reshape(-1, 36)).reshape(F, 6, 6)
            g_c = sum_by_camera @ (Jc_free @ r[free_obs, :, None])[:, :, 0]
            # Cross blocks W as one (6F, 3P) matrix, zero where a camera misses a point.
            W_free = Wo[free_obs]
            W4 = np.zeros((F, 6, P, 3))
            W4[free_cam, :, free_pt, :] = W_free
            W_mat = W4.reshape(6 * F, 3 * P)
        improved = False
        for _ in range(6):
            V_d = V + lam * (np.einsum("pii->pi", V)[:, :, None] * np.eye(3) + 1e-9 * np.eye(3))
            try:
                Vinv = _inv_3x3(V_d)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            if F:
                # Reduced camera system S dx_c = b, with Y = W V^-1 laid out like W_mat, so
                # the sum over points is one matrix product.
                Y4 = np.zeros((F, 6, P, 3))
                Y4[free_cam, :, free_pt, :] = W_free @ Vinv[free_pt]
                Y_mat = Y4.reshape(6 * F, 3 * P)
                S = -(Y_mat @ W_mat.T)
                for a in range(F):
                    blk = slice(6 * a, 6 * a + 6)
                    S[blk, blk] += U[a] + lam * np.diag(np.diag(U[a]) + 1e-9)
                b = -g_c.ravel() + Y_mat @ g_l.ravel()
                try:
                    dx_c = np.linalg.solve(S, b)
                except np.linalg.LinAlgError:
                    lam *= 10
                    continue
                rhs = -g_l - (W_mat.T @ dx_c).reshape(P, 3)
            else:
                dx_c = np.zeros(0)
                rhs = -g_l
            dx_l = (Vinv @ rhs[:, :, None])[:, :, 0]
            new_poses, new_points = _apply(poses, points, dx_c, dx_l.ravel(), free_idx)
            # A point step that crosses behind an observing camera is not a valid solution:
            # keep those points where they were (their blocks are nearly singular along depth).
            pc_z = (
                np.einsum("oj,oj->o", new_poses[prob.obs_cam, 2, :3], new_points[prob.obs_pt])
                + new_poses[prob.obs_cam, 2, 3]
            )
            behind = np.unique(prob.obs_pt[pc_z <= 1e-3])
            if len(behind):
                new_points[behind] = points[behind]
            if not (np.all(np.isfinite(new_poses)) and np.all(np.isfinite(new_points))):
                lam *= 10
                continue
            r_new, Jc_new, Jp_new, depth_new = _linearize(new_poses, new_points, prob)
            new_cost, w_new = _robust_cost(r_new, depth_new, huber_px)
            if new_cost < cost:
                step = float(np.abs(dx_c).max(initial=0.0))
                poses, points, r, Jc, Jp, depth = (
                    new_poses,
                    new_points,
                    r_new,
                    Jc_new,
                    Jp_new,
                    depth_new,
                )
                rel = (cost - new_cost) / max(cost, 1e-12)
                cost, w = new_cost, w_new
                lam = max(lam * 0.3, 1e-8)
                improved = True
                break
            lam *= 10
        if not improved or rel < min_rel_decrease or (F and step < 1e-10):
            break
    for c in range(C):
        poses[c, :3, :3] = orthonormalize(poses[c, :3, :3])
    err = np.linalg.norm(r[:, :2], axis=1)
    inlier = (err < 3 * huber_px) & (depth > 0)
    return BaResult(poses, points, init_rms, float(np.sqrt(np.mean(r**2))), inlier, it)


def least_squares_ba(prob: BaProblem, huber_px: float = 2.0, max_nfev: int = 50) -> BaResult:
    """The same problem through scipy.optimize.least_squares (TRF, sparse Jacobian, Huber)."""
    C = len(prob.poses_cw)
    free_idx = np.flatnonzero(~prob.fixed)
    F = len(free_idx)
    cam_to_free = -np.ones(C, np.int64)
    cam_to_free[free_idx] = np.arange(F)

    def unpack(x):
        dx_point = x[6 * F :] - prob.points_w.ravel()
        return _apply(prob.poses_cw, prob.points_w, x[: 6 * F], dx_point, free_idx)

    def fun(x):
        poses, points = unpack(x)
        return _linearize(poses, points, prob)[0].ravel()

    def jac(x):
        poses, points = unpack(x)
        r, Jc, Jp, _ = _linearize(poses, points, prob)
        O, m = r.shape
        row0 = np.arange(O)[:, None] * m + np.arange(m)[None, :]
        rows, cols, vals = [], [], []
        fo = np.flatnonzero(cam_to_free[prob.obs_cam] >= 0)
        c0 = cam_to_free[prob.obs_cam[fo]] * 6
        rows.append(np.repeat(row0[fo][:, :, None], 6, axis=2).ravel())
        cols.append(np.broadcast_to(c0[:, None, None] + np.arange(6), (len(fo), m, 6)).ravel())
        vals.append(Jc[fo].ravel())
        p0 = 6 * F + prob.obs_pt * 3
        rows.append(np.repeat(row0[:, :, None], 3, axis=2).ravel())
        cols.append(np.broadcast_to(p0[:, None, None] + np.arange(3), (O, m, 3)).ravel())
        vals.append(Jp.ravel())
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(O * m, len(x)),
        )

    x0 = np.concatenate([np.zeros(6 * F), prob.points_w.ravel()])
    r0 = fun(x0)
    sol = least_squares(
        fun,
        x0,
        jac=jac,
        loss="huber",
        f_scale=huber_px,
        method="trf",
        tr_solver="lsmr",
        max_nfev=max_nfev,
        x_scale="jac",
    )
    poses, points = unpack(sol.x)
    r = sol.fun.reshape(len(prob.obs_cam), -1)
    err = np.linalg.norm(r[:, :2], axis=1)
    return BaResult(
        poses,
        points,
        float(np.sqrt(np.mean(r0**2))),
        float(np.sqrt(np.mean(r**2))),
        err < 3 * huber_px,
        int(sol.nfev),
    )
