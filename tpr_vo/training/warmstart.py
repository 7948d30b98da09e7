"""Classical warm start: distil OpenCV detectors and SIFT into the network before (or while)
TPR trains.

Descriptor: the network's descriptor at each SIFT keypoint, through a linear head (D -> 128),
should point the same way as the RootSIFT descriptor (1 - cosine). Detector: the score map
should fire at the keypoint pixels of a classical "teacher" (balanced binary cross-entropy):
SIFT's DoG blobs, or Harris / FAST corners. Measured on v_graf with the session-5 model's
descriptors sampled at each detector's 1,000-2,000 points: SIFT points MMA@3 0.231 (repeatability
@3 px 0.33), Harris 0.295 (0.38), FAST 0.311 (0.45), the model's own 0.129 (0.20). This gives the
negative-free TPR objective a non-trivial starting point; the head is dropped afterwards.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as nnf
from scipy.spatial import cKDTree

from tpr_vo.geometry.triangulation import warp_points
from tpr_vo.training import tpr_loss
from tpr_vo.training.config import KEYPOINT_TEACHERS

_SIFT = None


def sift_targets(image01: np.ndarray, max_keypoints: int = 300):
    """(N, 2) float32 keypoints (x, y) and (N, 128) float32 unit RootSIFT descriptors of a
    (H, W) float image in [0, 1]."""
    global _SIFT
    if _SIFT is None:
        _SIFT = cv2.SIFT_create(nfeatures=max_keypoints)
    gray = np.clip(image01 * 255.0, 0, 255).astype(np.uint8)
    kps, desc = _SIFT.detectAndCompute(gray, None)
    if desc is None or len(kps) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    pts = np.array([k.pt for k in kps], np.float32) - 0.5  # OpenCV SIFT: corner origin
    desc = desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-6)
    desc = np.sqrt(desc)
    return pts, (desc / np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-6)).astype(
        np.float32
    )


def keypoint_loss(
    logits: torch.Tensor, heat: torch.Tensor, max_pos_weight: float = 200.0
) -> torch.Tensor:
    """Balanced BCE of (B, 1, H, W) score logits against a 0/1 keypoint map. A large positive
    weight spreads the response into blobs; a small one keeps it peaked at the keypoints."""
    pos = heat.sum().clamp_min(1.0)
    pos_weight = ((heat.numel() - pos) / pos).clamp(max=max_pos_weight)
    return nnf.binary_cross_entropy_with_logits(logits, heat, pos_weight=pos_weight)


def peak_loss(logits: torch.Tensor, heat: torch.Tensor, radius_px: int = 3) -> torch.Tensor:
    """Localisation term of a keypoint teacher: at each keypoint pixel of the 0/1 map `heat`
    (B, 1, H, W), cross-entropy of a softmax over the (2r+1)^2 score logits around it, with the
    keypoint pixel as the class. It makes the logit at the teacher's pixel the local maximum, so
    non-maximum suppression lands on it; the balanced BCE alone is satisfied by a blob around it.
    Outside the image the window holds -30 (never the maximum). Zero keypoints: 0."""
    k = 2 * radius_px + 1
    r = radius_px
    windows = nnf.unfold(nnf.pad(logits, (r, r, r, r), value=-30.0), k)  # (B, k*k, H*W)
    where = heat.flatten(1).nonzero(as_tuple=False)  # (M, 2): batch index, pixel index
    if len(where) == 0:
        return logits.sum() * 0.0
    rows = windows[where[:, 0], :, where[:, 1]]  # (M, k*k)
    centre = torch.full((len(where),), k * k // 2, dtype=torch.long, device=logits.device)
    return nnf.cross_entropy(rows, centre)


# Keypoints per 192x256 training crop. FAST at threshold 20 fires everywhere on texture, so it is
# capped near the density of a 1,000-keypoint 800x640 image; Harris stops at its quality level.
TEACHER_MAX_KEYPOINTS = {"sift": 300, "harris": 300, "fast": 150}


def teacher_keypoints(
    image01: np.ndarray, teacher: str, max_keypoints: int = 0, subpixel_warps: int = 0
) -> np.ndarray:
    """(N, 2) float32 (x, y) pixel-centre keypoints of a classical detector on a (H, W) image in
    [0, 1]: "sift" (DoG blobs), "harris" (Harris corners, quality 1 % of the best, 4 px apart),
    "fast" (FAST-9 corners, threshold 20, non-max suppressed, strongest first). At most
    `max_keypoints` (0 = `TEACHER_MAX_KEYPOINTS`). `subpixel_warps` > 0: Harris / FAST corners
    moved to their mean position over that many fixed small warps of the image
    (`average_over_warps`)."""
    if teacher not in KEYPOINT_TEACHERS:
        raise ValueError(f"keypoint teacher must be one of {KEYPOINT_TEACHERS}, got {teacher!r}")
    max_keypoints = max_keypoints or TEACHER_MAX_KEYPOINTS[teacher]
    if teacher == "sift":
        return sift_targets(image01, max_keypoints)[0]
    gray = np.clip(image01 * 255.0, 0, 255).astype(np.uint8)
    pts = _corners(gray, teacher, max_keypoints)
    if subpixel_warps > 0 and len(pts):
        pts = average_over_warps(gray, pts, teacher, subpixel_warps)
    return pts


_FAST = cv2.FastFeatureDetector_create(threshold=20, nonmaxSuppression=True)  # the FAST teacher


def _corners(gray: np.ndarray, teacher: str, max_keypoints: int) -> np.ndarray:
    if teacher == "harris":
        pts = cv2.goodFeaturesToTrack(
            gray, max_keypoints, qualityLevel=0.01, minDistance=4, useHarrisDetector=True
        )
        return (
            np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2).astype(np.float32)
        )
    kps = _FAST.detect(gray)
    kps = sorted(kps, key=lambda k: -k.response)[:max_keypoints]
    return np.array([k.pt for k in kps], np.float32).reshape(-1, 2)  # FAST: pixel centres


# Warps of `average_over_warps`: rotation within +-15 degrees, scale within +-10 %, shifts of up to
# half a pixel, about the image centre; drawn once, so every image sees the same warps.
_WARP_LIMITS = (15.0, 0.10, 0.5)


def _fixed_warps(count: int) -> np.ndarray:
    """(count, 3) rotation (deg), log2 scale, and a shift fraction seed, reproducible."""
    rng = np.random.default_rng(20261128)
    rot, scale, _ = _WARP_LIMITS
    return np.stack(
        [
            rng.uniform(-rot, rot, count),
            rng.uniform(np.log2(1 - scale), np.log2(1 + scale), count),
            rng.uniform(0.0, 1.0, count),
        ],
        axis=1,
    )


def average_over_warps(
    gray: np.ndarray, pts: np.ndarray, teacher: str, count: int, radius_px: float = 1.0
) -> np.ndarray:
    """Sub-pixel positions for integer-pixel corners `pts` ((N, 2) float32) of `gray`: the
    detector runs again on `count` fixed small warps of the image (`_WARP_LIMITS`), each
    detection is mapped back, and every corner moves to the mean of itself and the detections
    that land within `radius_px` of it. Measured on 60 scikit-image training pairs (Session 17),
    the distance between a corner and the same corner found in the pair's other view fell from
    0.48 / 0.54 px (FAST) to 0.27 / 0.42 px with 16 warps (transformation strength 0.3 / 1.0)."""
    h, w = gray.shape
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    _, _, max_shift = _WARP_LIMITS
    sums, counts = pts.astype(np.float64).copy(), np.ones(len(pts))
    for angle, log2_scale, phase in _fixed_warps(count):
        A = cv2.getRotationMatrix2D(centre, float(angle), float(2.0**log2_scale))
        A[:, 2] += max_shift * np.array([np.cos(2 * np.pi * phase), np.sin(2 * np.pi * phase)])
        warped = cv2.warpAffine(gray, A, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)  # fmt: skip
        if teacher == "fast":  # every corner of the warp, unsorted: only positions are needed
            kps = _FAST.detect(warped)
            found = cv2.KeyPoint_convert(kps) if kps else np.zeros((0, 2), np.float32)
        else:
            found = _corners(warped, teacher, 4 * len(pts))
        if len(found) == 0:
            continue
        back = (found.astype(np.float64) - A[:, 2]) @ np.linalg.inv(A[:, :2]).T
        gap, nearest = cKDTree(back).query(pts, distance_upper_bound=radius_px)
        near = np.isfinite(gap)
        sums[near] += back[nearest[near]]
        counts[near] += 1
    return (sums / counts[:, None]).astype(np.float32)


def repeatable_keypoints(
    image01: np.ndarray,
    partner01: np.ndarray,
    H_partner: np.ndarray,
    teacher: str,
    radius_px: float,
    max_keypoints: int = 0,
    subpixel_warps: int = 0,
) -> np.ndarray:
    """The teacher's keypoints of `image01` ((N, 2) float32, strongest first) that it finds
    again in `partner01`, the other view of the pair: a keypoint is kept when H_partner
    ((3, 3), image -> partner pixels) maps it within `radius_px` of a partner keypoint, or
    outside the partner (unverifiable: kept, as without the filter). Both views are searched
    with a larger budget (2x and 4x `max_keypoints`) and the best `max_keypoints` survivors kept.
    Measured on skimage training pairs at full strength: 36 % of FAST's 150 corners per crop are
    found again within 1.5 px."""
    cap = max_keypoints or TEACHER_MAX_KEYPOINTS[teacher]
    pts = teacher_keypoints(image01, teacher, 2 * cap, subpixel_warps)
    other = teacher_keypoints(partner01, teacher, 4 * cap, subpixel_warps)
    if len(pts) == 0:
        return pts
    warped = warp_points(np.asarray(H_partner, np.float64), pts)
    H, W = partner01.shape[-2:]
    inside = (warped[:, 0] >= 0) & (warped[:, 0] <= W - 1)
    inside &= (warped[:, 1] >= 0) & (warped[:, 1] <= H - 1)
    if len(other):
        gap2 = ((warped[:, None, :] - other[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        found = gap2 <= radius_px**2
    else:
        found = np.zeros(len(pts), bool)
    return pts[found | ~inside][:cap]


def teacher_maps(
    images01: np.ndarray,
    teacher: str,
    max_keypoints: int = 0,
    partners01: np.ndarray | None = None,
    H_partners: np.ndarray | None = None,
    repeat_px: float = 0.0,
    subpixel_warps: int = 0,
) -> np.ndarray:
    """(B, 1, H, W) float32 0/1 maps of a classical detector's keypoint pixels on a (B, 1, H, W)
    [0, 1] batch (`teacher_keypoints`). With `repeat_px` > 0, only the keypoints the teacher finds
    again in the other view of each pair (`partners01` (B, 1, H, W), `H_partners` (B, 3, 3)
    image -> partner pixels; `repeatable_keypoints`). With `subpixel_warps` > 0 the keypoints
    are sub-pixel (`average_over_warps`) and spread over their four nearest pixels
    (`splat_pixels`), so the maps carry where between the pixels each keypoint lies."""
    heat = np.zeros(images01.shape, np.float32)
    for b in range(len(images01)):
        if repeat_px > 0:
            pts = repeatable_keypoints(
                images01[b, 0], partners01[b, 0], H_partners[b], teacher, repeat_px,
                max_keypoints, subpixel_warps,
            )  # fmt: skip
        else:
            pts = teacher_keypoints(images01[b, 0], teacher, max_keypoints, subpixel_warps)
        if subpixel_warps > 0:
            splat_pixels(heat[b, 0], pts)
        else:
            mark_pixels(heat[b, 0], pts)
    return heat


def teacher_heatmap(
    image_a: torch.Tensor,
    teacher: str = "sift",
    max_keypoints: int = 0,
    drawn: torch.Tensor | None = None,
    image_b: torch.Tensor | None = None,
    H_b_a: torch.Tensor | None = None,
    repeat_px: float = 0.0,
    subpixel_warps: int = 0,
) -> torch.Tensor:
    """`teacher_maps` of a (B, 1, H, W) tensor batch, as a tensor like it; `drawn`: the maps
    when already drawn with the batch (`batches.draw_step`), returned as they are. `image_b`,
    `H_b_a`, `repeat_px`: the other views, for the repeatable-keypoint filter;
    `subpixel_warps`: `teacher_maps`'."""
    if drawn is not None:
        return drawn
    partners = H = None
    if repeat_px > 0:
        partners = image_b.detach().cpu().numpy()
        H = H_b_a.detach().cpu().numpy()
    heat = teacher_maps(
        image_a.detach().cpu().numpy(), teacher, max_keypoints, partners, H, repeat_px,
        subpixel_warps,
    )  # fmt: skip
    return torch.from_numpy(heat).to(image_a.device, image_a.dtype)


def splat_pixels(heat_hw: np.ndarray, pts: np.ndarray) -> None:
    """Raise a (H, W) float map at the four pixels around each (N, 2) sub-pixel (x, y) point to
    the point's bilinear weight there (at least; overlapping points keep the larger weight). A
    point on a pixel centre marks that pixel with 1, as `mark_pixels` does."""
    H, W = heat_hw.shape[-2:]
    pts = np.clip(np.asarray(pts, np.float64), 0, [W - 1, H - 1])
    x0, y0 = np.floor(pts[:, 0]).astype(int), np.floor(pts[:, 1]).astype(int)
    fx, fy = pts[:, 0] - x0, pts[:, 1] - y0
    for dx, dy, weight in (
        (0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)
    ):  # fmt: skip
        x, y = np.minimum(x0 + dx, W - 1), np.minimum(y0 + dy, H - 1)
        np.maximum.at(heat_hw, (y, x), weight.astype(np.float32))


def mark_pixels(heat_hw, pts: np.ndarray) -> None:
    """Set a (H, W) map (numpy array or tensor view) to 1 at the pixels nearest to the (N, 2)
    (x, y) points."""
    H, W = heat_hw.shape[-2:]
    ij = np.clip(np.round(pts).astype(int), 0, [W - 1, H - 1])
    heat_hw[ij[:, 1], ij[:, 0]] = 1.0


def warm_start_loss(
    learner,
    image_a: torch.Tensor,
    teacher: str = "sift",
    heat_a: torch.Tensor | None = None,
    **repeat,
) -> dict[str, torch.Tensor]:
    """SIFT descriptor + `teacher` keypoint distillation losses for a (B, 1, H, W) batch
    through `learner.online`; `heat_a`: the teacher's maps when already drawn; `repeat`:
    `teacher_heatmap`'s image_b / H_b_a / repeat_px."""
    B, _, H, W = image_a.shape
    logits, raw = learner.online.forward_raw(image_a)
    y = nnf.normalize(raw, dim=1)
    images = image_a.detach().cpu().numpy()[:, 0]
    # SIFT as the teacher reuses the keypoints found for the descriptor targets below.
    sift_teacher = teacher == "sift"
    if sift_teacher:
        heat = torch.zeros_like(logits)
    else:
        heat = teacher_heatmap(image_a, teacher, drawn=heat_a, **repeat)
    desc_losses = []
    for b in range(B):
        pts, sift = sift_targets(images[b])
        if len(pts) == 0:
            continue
        pts_t = torch.from_numpy(pts).to(image_a.device)
        feat = tpr_loss.sample_at(y[b : b + 1], pts_t[None], (H, W))[0].t()  # (N, D)
        pred = nnf.normalize(learner.sift_head(feat), dim=1)
        target = torch.from_numpy(sift).to(image_a.device)
        desc_losses.append((1.0 - (pred * target).sum(dim=1)).mean())
        if sift_teacher:
            mark_pixels(heat[b, 0], pts)
    det = keypoint_loss(logits, heat)
    desc = torch.stack(desc_losses).mean() if desc_losses else logits.sum() * 0.0
    return {"warm_desc": desc, "warm_det": det, "total": desc + 0.1 * det}
