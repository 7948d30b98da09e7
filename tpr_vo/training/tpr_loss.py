"""The TPR objective on dense maps, as small pure functions of tensors.

Views: a (online branch) and b (target branch), related by H_b_a (view-a pixels -> view-b
pixels). Correspondences are the descriptor-cell centres c of view a and their images H_b_a(c) in
view b, visible when they land inside view b.

- Transformation-prediction loss (BYOL-style, no negatives):
      L_pred = sum_c w_c * l_c * (1 - <q(g_o(y_c)), g_t(y'_c)>)    (unit vectors)
  with detection weights w_c = s_c s'_c / sum_n s_n s'_n over visible c (D2-Net style: this
  trains the detector jointly: scores rise where descriptors predict well; s_c is the mean or
  the max of the cell's scores, `LossSettings.cell_pool`) and labels l_c = 1
  ("hard" positives) or the soft labels l_c = exp(-alpha (1 - <y_c, y'_c>) / lambda) computed
  from the encoder features of view b warped back to view a (stop-gradient).
- Detector regulariser (R2D2-style): repeatability = 1 - mean local cosine similarity between
  view a's score map and view b's score map warped back to a, over 16x16 windows; peakiness =
  1 - mean(max_16 - mean_16) of the score map. The D2 weighting alone only ranks whole cells and
  is satisfied by a flat map; these two make the map peaky inside cells and make the peaks land
  on the same scene points in both views.
- InfoNCE (optional variant added on top): online descriptors vs target descriptors at the
  correspondences, other correspondences of the same image as negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf


def cell_centers_px(height: int, width: int, stride: int, device=None) -> torch.Tensor:
    """(height*width, 2) float32 (x, y) image-pixel centres of the cells of a stride-s map,
    in row-major cell order."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    offset = (stride - 1) / 2.0
    return torch.stack([xs * stride + offset, ys * stride + offset], dim=-1).reshape(-1, 2)


def warp_points(H: torch.Tensor, points_px: torch.Tensor) -> torch.Tensor:
    """H: (B, 3, 3), points_px: (N, 2) or (B, N, 2) -> (B, N, 2) in the other view's pixels."""
    if points_px.dim() == 2:
        points_px = points_px.unsqueeze(0).expand(H.shape[0], -1, -1)
    homog = torch.cat([points_px, torch.ones_like(points_px[..., :1])], dim=-1)
    mapped = homog @ H.transpose(1, 2).to(points_px.dtype)
    z = mapped[..., 2:3]
    z = torch.where(z.abs() < 1e-8, torch.full_like(z, 1e-8), z)
    return mapped[..., :2] / z


def visible(points_px: torch.Tensor, height: int, width: int, margin_px: float = 0.0):
    """(B, N) bool: points inside [margin, size - 1 - margin] of an image of the given size."""
    x, y = points_px[..., 0], points_px[..., 1]
    return (
        (x >= margin_px)
        & (y >= margin_px)
        & (x <= width - 1 - margin_px)
        & (y <= height - 1 - margin_px)
        & torch.isfinite(x)
        & torch.isfinite(y)
    )


def sample_at(fmap: torch.Tensor, points_px: torch.Tensor, image_hw: tuple[int, int]):
    """Bilinear sample of a (B, C, h, w) map of an (H, W) image at (B, N, 2) image pixels
    -> (B, C, N). Works for any stride: cell centres of a stride-s map sit at s*j + (s-1)/2."""
    H, W = image_hw
    gx = (points_px[..., 0] + 0.5) / W * 2.0 - 1.0
    gy = (points_px[..., 1] + 0.5) / H * 2.0 - 1.0
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(1).to(fmap.dtype)
    out = nnf.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0, :]


def score_weights(cell_a: torch.Tensor, cell_b: torch.Tensor, mask: torch.Tensor):
    """(B, N) detection weights s_c s'_c / sum_n s_n s'_n over visible cells (rows sum to 1;
    a row with no visible cell is all zero)."""
    prod = cell_a * cell_b * mask.to(cell_a.dtype)
    return prod / prod.sum(dim=1, keepdim=True).clamp_min(1e-12)


def soft_labels(y_a: torch.Tensor, y_b_back: torch.Tensor, alpha: float, lam: float):
    """(B, N) labels exp(-alpha (1 - <y_a, y_b_back>) / lam) in (0, 1], from unit (B, D, N)
    encoder features of view a and of view b warped back to a. No gradient."""
    with torch.no_grad():
        cos = (y_a * y_b_back).sum(dim=1).clamp(-1.0, 1.0)
        return torch.exp(-alpha * (1.0 - cos) / lam)


def prediction_loss(
    pred_a: torch.Tensor, proj_b: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch of sum_c w_c l_c (1 - <pred_c, proj_c>); inputs (B, P, N) any norm,
    weights and labels (B, N). Zero for identical unit predictions and hard labels."""
    cos = (nnf.normalize(pred_a, dim=1) * nnf.normalize(proj_b.detach(), dim=1)).sum(dim=1)
    return (weights * labels * (1.0 - cos)).sum(dim=1).mean()


def _window_sums(x: torch.Tensor, window: int) -> torch.Tensor:
    return nnf.avg_pool2d(x, window, stride=window // 2) * (window * window)


def repeatability_loss(
    scores_a: torch.Tensor, scores_b_back: torch.Tensor, mask: torch.Tensor, window: int = 16
):
    """1 - mean cosine similarity of (B, 1, H, W) score maps over window x window patches
    (stride window/2) that are at least 90 % visible; `mask` (B, 1, H, W) float."""
    a = scores_a * mask
    b = scores_b_back.detach() * mask
    dot = _window_sums(a * b, window)
    norm = (_window_sums(a * a, window) * _window_sums(b * b, window)).clamp_min(1e-12).sqrt()
    valid = (nnf.avg_pool2d(mask, window, stride=window // 2) > 0.9).to(a.dtype)
    cos = dot / norm
    return 1.0 - (cos * valid).sum() / valid.sum().clamp_min(1.0)


def peakiness_loss(scores: torch.Tensor, window: int = 16) -> torch.Tensor:
    """1 - mean(local max - local mean) of a (B, 1, H, W) score map in [0, 1]."""
    pad = window // 2
    local_max = nnf.max_pool2d(scores, window + 1, stride=1, padding=pad)
    local_mean = nnf.avg_pool2d(scores, window + 1, stride=1, padding=pad, count_include_pad=False)
    return 1.0 - (local_max - local_mean).mean()


def info_nce_loss(
    query: torch.Tensor,
    keys: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 0.07,
    max_points: int = 256,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """InfoNCE over up to `max_points` visible correspondences per image: query (B, D, N)
    online unit descriptors, keys (B, D, N) target unit descriptors (no gradient)."""
    losses = []
    for b in range(query.shape[0]):
        idx = torch.nonzero(mask[b], as_tuple=False)[:, 0]
        if idx.numel() < 2:
            continue
        perm = torch.randperm(idx.numel(), generator=generator)[:max_points].to(idx.device)
        idx = idx[perm]
        q = query[b][:, idx]
        k = keys[b][:, idx].detach()
        logits = (q.t() @ k) / temperature
        target = torch.arange(idx.numel(), device=logits.device)
        losses.append(nnf.cross_entropy(logits, target))
    if not losses:
        return query.sum() * 0.0
    return torch.stack(losses).mean()
