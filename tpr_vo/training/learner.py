"""Online and target branches of TPR and the per-batch loss, as one module (so DDP wraps it).

online: TPRNet encoder -> projector g_o -> predictor q       (trained)
target: EMA copy of encoder + projector -> g_t  (theta_t <- tau theta_t + (1 - tau) theta_o)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf
from torch import nn

from tpr_vo.features.model import TPRNet
from tpr_vo.training import tpr_loss


def mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """Projector / predictor on descriptor vectors (rows)."""
    return nn.Sequential(
        nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
        nn.Linear(hidden, dim_out),
    )  # fmt: skip


@dataclass(frozen=True)
class LossSettings:
    labels: str = "soft"  # soft | hard
    label_temperature: float = 0.5  # lambda
    det_weight: float = 1.0  # repeatability
    peaky_weight: float = 1.0  # peakiness
    # A cell's detection score s_c in the D2 weight: "max" (D2-Net) sends the whole gradient to
    # one pixel per cell, and the shared head then learns to fire at one fixed in-cell position
    # (measured: 988 of 1594 keypoints of the session-4 model on one of the 64 positions);
    # "mean" spreads it over the cell and leaves in-cell placement to the detector terms.
    cell_pool: str = "mean"
    keypoint_weight: float = 0.0  # > 0: keypoint distillation of the score map during TPR
    keypoint_teacher: str = "sift"  # the classical detector it distils (warmstart.teacher_heatmap)
    keypoint_pos_weight: float = 10.0  # cap of the BCE positive weight of that term
    polish_peak_weight: float = 0.0  # > 0: the polish adds warmstart.peak_loss (localisation)
    # > 0: the teacher's keypoints of view a count only when it finds them again in view b
    # within this many pixels (warmstart.repeatable_keypoints)
    teacher_repeat_px: float = 0.0
    teacher_subpixel_warps: int = 0  # warmstart.teacher_maps' sub-pixel teacher
    infonce_weight: float = 0.0  # 0 = pure TPR
    infonce_temperature: float = 0.07


def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """theta_t <- tau * theta_t + (1 - tau) * theta_o for parameters; buffers (BN statistics)
    are copied."""
    with torch.no_grad():
        for p_t, p_o in zip(target.parameters(), online.parameters()):
            p_t.mul_(tau).add_(p_o.detach(), alpha=1.0 - tau)
        for b_t, b_o in zip(target.buffers(), online.buffers()):
            b_t.copy_(b_o)


def tau_schedule(step: int, total: int, tau_base: float, kind: str = "cosine") -> float:
    """BYOL: tau = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2, or constant."""
    if kind == "constant" or total <= 0:
        return tau_base
    frac = min(max(step / total, 0.0), 1.0)
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * frac) + 1.0) / 2.0


class TPRLearner(nn.Module):
    def __init__(self, net: TPRNet, hidden: int = 256, sift_dim: int = 128) -> None:
        super().__init__()
        dim = net.descriptor_dim
        self.online = net
        self.projector = mlp(dim, hidden, dim)
        self.predictor = mlp(dim, hidden, dim)
        self.target = copy.deepcopy(net)
        self.target_projector = copy.deepcopy(self.projector)
        for p in list(self.target.parameters()) + list(self.target_projector.parameters()):
            p.requires_grad_(False)
        self.sift_head = nn.Linear(dim, sift_dim)  # classical warm start only

    def update_target(self, tau: float) -> None:
        ema_update(self.target, self.online, tau)
        ema_update(self.target_projector, self.projector, tau)

    def forward(
        self,
        image_a: torch.Tensor,
        image_b: torch.Tensor,
        H_b_a: torch.Tensor,
        alpha: float,
        settings: LossSettings,
        warm: bool = False,
        polish: bool = False,
        heat_a: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Losses for one batch of pairs; image_*: (B, 1, H, W), H_b_a: (B, 3, 3).
        `warm`: the classical warm-start losses on view a instead; `polish`: only the keypoint
        teacher's loss on view a, through the detector heads (features frozen). Same module
        either way, so DDP syncs. `heat_a`: the keypoint teacher's (B, 1, H, W) maps of view a
        when drawn with the batch (`batches.draw_step`); else computed here."""
        repeat = {"image_b": image_b, "H_b_a": H_b_a, "repeat_px": settings.teacher_repeat_px}
        repeat["subpixel_warps"] = settings.teacher_subpixel_warps
        if warm:
            from tpr_vo.training.warmstart import warm_start_loss

            return warm_start_loss(self, image_a, settings.keypoint_teacher, heat_a, **repeat)
        if polish:
            from tpr_vo.training.warmstart import keypoint_loss, peak_loss, teacher_heatmap

            self.online.eval()  # frozen features: BN statistics stay as TPR left them
            for head in self.online.detector_heads():
                head.train(self.training)
            logits, _ = self.online.forward_raw(image_a, detach_features=True)
            self.online.train(self.training)
            heat = teacher_heatmap(image_a, settings.keypoint_teacher, drawn=heat_a, **repeat)
            out = {"polish_kp": keypoint_loss(logits, heat, settings.keypoint_pos_weight)}
            out["total"] = out["polish_kp"]
            if settings.polish_peak_weight > 0:
                out["polish_peak"] = peak_loss(logits, heat)
                out["total"] = out["total"] + settings.polish_peak_weight * out["polish_peak"]
            return out
        B, _, H, W = image_a.shape
        logits_a, raw_a = self.online.forward_raw(image_a)
        scores_a = torch.sigmoid(logits_a)
        y_a = nnf.normalize(raw_a, dim=1)
        with torch.no_grad():
            logits_b, raw_b = self.target.forward_raw(image_b)
            scores_b = torch.sigmoid(logits_b)
            y_b = nnf.normalize(raw_b, dim=1)
        _, D, h, w = y_a.shape
        stride = H // h
        centers = tpr_loss.cell_centers_px(h, w, stride, device=image_a.device)
        pts_b = tpr_loss.warp_points(H_b_a.to(torch.float64), centers.double()).float()
        vis = tpr_loss.visible(pts_b, H, W)
        y_a_c = y_a.flatten(2)  # (B, D, N)
        y_b_c = nnf.normalize(tpr_loss.sample_at(y_b, pts_b, (H, W)), dim=1)
        pool = nnf.max_pool2d if settings.cell_pool == "max" else nnf.avg_pool2d
        cell_a = pool(scores_a, stride).flatten(1)
        cell_b = tpr_loss.sample_at(pool(scores_b, stride), pts_b, (H, W))[:, 0]
        weights = tpr_loss.score_weights(cell_a, cell_b, vis)

        rows_a = y_a_c.permute(0, 2, 1).reshape(-1, D)
        rows_b = y_b_c.permute(0, 2, 1).reshape(-1, D)
        pred = self.predictor(self.projector(rows_a)).reshape(B, -1, D).permute(0, 2, 1)
        with torch.no_grad():
            proj = self.target_projector(rows_b).reshape(B, -1, D).permute(0, 2, 1)
        if settings.labels == "hard":
            labels = torch.ones_like(weights)
        else:
            labels = tpr_loss.soft_labels(y_a_c, y_b_c, alpha, settings.label_temperature)
        out = {"pred": tpr_loss.prediction_loss(pred, proj, weights, labels)}

        if settings.det_weight > 0 or settings.peaky_weight > 0:
            full = tpr_loss.cell_centers_px(H, W, 1, device=image_a.device)
            pix_b = tpr_loss.warp_points(H_b_a.to(torch.float64), full.double()).float()
            mask = tpr_loss.visible(pix_b, H, W).to(scores_a.dtype).reshape(B, 1, H, W)
            back = tpr_loss.sample_at(scores_b, pix_b, (H, W)).reshape(B, 1, H, W)
            out["rep"] = tpr_loss.repeatability_loss(scores_a, back, mask)
            out["peaky"] = tpr_loss.peakiness_loss(scores_a)
        if settings.infonce_weight > 0:
            out["nce"] = tpr_loss.info_nce_loss(y_a_c, y_b_c, vis, settings.infonce_temperature)
        total = out["pred"]
        if "rep" in out:
            total = total + settings.det_weight * out["rep"] + settings.peaky_weight * out["peaky"]
        if settings.keypoint_weight > 0:
            from tpr_vo.training.warmstart import keypoint_loss, teacher_heatmap

            heat = teacher_heatmap(image_a, settings.keypoint_teacher, drawn=heat_a, **repeat)
            out["kp"] = keypoint_loss(logits_a, heat, settings.keypoint_pos_weight)
            total = total + settings.keypoint_weight * out["kp"]
        if "nce" in out:
            total = total + settings.infonce_weight * out["nce"]
        out["total"] = total
        out["label_mean"] = (labels * vis).sum() / vis.sum().clamp_min(1)
        out["visible_frac"] = vis.float().mean()
        out["desc_std"] = y_a_c.detach().std(dim=2).mean()  # ~0 means collapse
        return out
