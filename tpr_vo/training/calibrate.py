"""Keep a detector's keypoint density through the detector polish.

The polish (`--polish-steps`) retrains the score heads on a keypoint teacher with a balanced BCE,
which also moves the scores' overall level: measured in session 13, a polished `tpr_large`
passed the default threshold (`features.score_threshold`) at ~1,800-2,000 local maxima per
v_graf image instead of ~1,100, and its extra, weaker keypoints lowered MMA@3 (0.256 at 2,000
against 0.306 at the best 1,000). So the polish ends by adding one constant to the score logits
(the bias of the coarse score head's output conv) that brings the mean keypoint count on fixed
training crops back to what the network found there before the polish.

A constant shift of the logits keeps every local maximum where it is and only moves the
threshold, so the shift follows exactly from the sorted logits of the local maxima.

On session 13's `tpr_large` (model card, "Session 13"), 800 polish steps raised the count from
161.6 to 232.1 keypoints per calibration crop, and a shift of -4.49 restored it. The shifted
model's v_graf MMA@3 (0.332) matched that of the unpolished model cut to as many keypoints, so
no shipped model uses the polish.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tpr_vo.features.model import TPRNet
from tpr_vo.features.postprocess import PostprocessParams, detect_keypoints
from tpr_vo.training.data import PairSampler


def calibration_crops(sampler: PairSampler, count: int, seed: int) -> np.ndarray:
    """(count, 1, h, w) float32 training crops in [0, 1] (view a, no photometric change), drawn
    from the sampler's images with their own RNG, so the same seed gives the same crops."""
    own = PairSampler(
        sampler.images, (sampler.crop_h, sampler.crop_w), np.random.default_rng(seed),
        sampler.limits,
    )  # fmt: skip
    return np.stack([own.pair(0.0, photometric_change=False)[0] for _ in range(count)])[:, None]


def local_max_logits(
    net: TPRNet, crops: np.ndarray, params: PostprocessParams, batch: int = 8
) -> list[np.ndarray]:
    """Per crop, the score logits of its NMS local maxima away from the border (any score)."""
    everything = PostprocessParams(
        nms_radius_px=params.nms_radius_px, score_threshold=-np.inf, border_px=params.border_px,
        max_keypoints=10**9, refine_radius_px=0,
    )  # fmt: skip
    out = []
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            logits, _ = net.forward_raw(torch.from_numpy(crops[i : i + batch]).to(device))
            for logit_map in logits[:, 0].float().cpu().numpy():
                # NMS on the logits picks the same maxima as on the (monotone) sigmoid scores.
                out.append(detect_keypoints(logit_map, everything)[1].astype(np.float64))
    net.train(was_training)
    return out


def keypoint_count(logits_per_crop: list[np.ndarray], threshold: float, shift: float = 0.0):
    """Mean keypoints per crop whose score sigmoid(logit + shift) passes `threshold`."""
    cut = _logit(threshold) - shift
    return float(np.mean([np.count_nonzero(v > cut) for v in logits_per_crop]))


def density_shift(logits_per_crop: list[np.ndarray], threshold: float, target: float) -> float:
    """The logit shift that makes `keypoint_count` equal `target` (mean per crop): the cut
    lands halfway between the n-th and (n+1)-th largest local-maximum logit of all crops,
    n = round(target * crops)."""
    values = np.sort(np.concatenate(logits_per_crop))[::-1]
    n = int(round(target * len(logits_per_crop)))
    if values.size == 0 or n <= 0:
        return 0.0
    if n >= values.size:
        cut = values[-1] - 1.0
    else:
        cut = 0.5 * (values[n - 1] + values[n])
    return float(_logit(threshold) - cut)


def _logit(probability: float) -> float:
    """The score logit whose sigmoid is `probability`."""
    return math.log(probability / (1.0 - probability))


def shift_score_logits(net: TPRNet, shift: float) -> None:
    """Add `shift` to every score logit (the coarse score head's output bias; the fine and
    half branches add to the same logits before the sigmoid)."""
    with torch.no_grad():
        net.score_head[-1].bias.add_(shift)
