"""TPR training: loss math on hand-made tensors, exact correspondences, EMA, data guards."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as nnf  # noqa: E402

from tpr_vo.errors import DataError  # noqa: E402
from tpr_vo.geometry.triangulation import warp_points  # noqa: E402
from tpr_vo.training import tpr_loss  # noqa: E402
from tpr_vo.training.data import PairSampler, folder_images, skimage_images  # noqa: E402
from tpr_vo.training.homography import random_homography  # noqa: E402
from tpr_vo.training.learner import ema_update, tau_schedule  # noqa: E402


def _unit(x, dim=1):
    return nnf.normalize(x, dim=dim)


def test_identical_views_give_zero_hard_label_loss():
    torch.manual_seed(0)
    pred = torch.randn(2, 16, 50)
    proj = pred * 3.0  # same directions, any length
    weights = tpr_loss.score_weights(torch.rand(2, 50), torch.rand(2, 50), torch.ones(2, 50))
    loss = tpr_loss.prediction_loss(pred, proj, weights, torch.ones(2, 50))
    assert abs(float(loss)) < 1e-6
    # Opposite predictions: 1 - (-1) = 2 at every location, weights sum to 1 -> loss 2.
    loss = tpr_loss.prediction_loss(pred, -proj, weights, torch.ones(2, 50))
    assert float(loss) == pytest.approx(2.0, abs=1e-5)


def test_score_weights_sum_to_one_over_visible_cells_only():
    s_a, s_b = torch.rand(3, 40) + 0.01, torch.rand(3, 40) + 0.01
    mask = torch.rand(3, 40) > 0.3
    mask[2] = False  # an image with nothing visible
    w = tpr_loss.score_weights(s_a, s_b, mask)
    assert torch.allclose(w[:2].sum(dim=1), torch.ones(2), atol=1e-6)
    assert float(w[2].abs().sum()) == 0.0
    assert float(w[~mask].abs().sum()) == 0.0
    expected = s_a[0] * s_b[0] * mask[0] / (s_a[0] * s_b[0] * mask[0]).sum()
    assert torch.allclose(w[0], expected)


def test_soft_labels_are_in_unit_interval_and_one_for_identical_features():
    torch.manual_seed(1)
    y = _unit(torch.randn(2, 8, 30))
    other = _unit(torch.randn(2, 8, 30))
    same = tpr_loss.soft_labels(y, y, alpha=1.0, lam=0.5)
    assert torch.allclose(same, torch.ones_like(same), atol=1e-5)
    labels = tpr_loss.soft_labels(y, other, alpha=1.0, lam=0.5)
    assert float(labels.min()) > 0.0 and float(labels.max()) <= 1.0
    # Known value: cosine 0 -> exp(-alpha / lambda).
    a = torch.tensor([[[1.0], [0.0]]])
    b = torch.tensor([[[0.0], [1.0]]])
    assert float(tpr_loss.soft_labels(a, b, 1.0, 0.5)) == pytest.approx(np.exp(-2.0))
    # Larger alpha (stronger curriculum stage) softens more.
    assert float(tpr_loss.soft_labels(y, other, 2.0, 0.5).mean()) < float(labels.mean())


def test_ema_update_follows_the_formula_and_copies_buffers():
    online, target = torch.nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    with torch.no_grad():
        online.weight.fill_(2.0)
        target.weight.fill_(1.0)
        online.running_mean.fill_(5.0)
    ema_update(target, online, tau=0.9)
    assert torch.allclose(target.weight, torch.full((4,), 0.9 * 1.0 + 0.1 * 2.0))
    assert torch.equal(target.running_mean, online.running_mean)
    assert tau_schedule(0, 100, 0.99) == pytest.approx(0.99)
    assert tau_schedule(100, 100, 0.99) == pytest.approx(1.0)
    assert tau_schedule(50, 100, 0.99, "constant") == 0.99


def test_warp_points_matches_numpy_and_identity_at_zero_strength():
    rng = np.random.default_rng(3)
    H = random_homography(256, 192, 1.0, rng)
    assert np.allclose(random_homography(256, 192, 0.0, rng), np.eye(3), atol=1e-9)
    pts = rng.uniform(0, 200, (20, 2))
    got = tpr_loss.warp_points(torch.from_numpy(H)[None], torch.from_numpy(pts))[0].numpy()
    assert np.allclose(got, warp_points(H, pts), atol=1e-9)
    # Inverse homography maps back exactly.
    back = warp_points(np.linalg.inv(H), warp_points(H, pts))
    assert np.allclose(back, pts, atol=1e-8)


@pytest.mark.parametrize("stride", [1, 4, 8])
def test_sample_at_uses_the_cell_centre_convention(stride):
    H_img, W_img = 64, 96
    centers = tpr_loss.cell_centers_px(H_img // stride, W_img // stride, stride)
    xmap = centers[:, 0].reshape(1, 1, H_img // stride, W_img // stride)
    ymap = centers[:, 1].reshape(1, 1, H_img // stride, W_img // stride)
    fmap = torch.cat([xmap, ymap], dim=1)  # the map stores its own pixel coordinates
    lo = (stride - 1) / 2
    pts = torch.tensor([[[lo + 3.3, lo + 7.9], [W_img - 1 - lo - 0.5, lo + 0.25]]])
    got = tpr_loss.sample_at(fmap, pts, (H_img, W_img))[0].t()
    assert torch.allclose(got, pts[0], atol=1e-4)  # bilinear is exact on a linear map


def test_pair_sampler_views_correspond_through_the_homography():
    rng = np.random.default_rng(4)
    x = np.linspace(0, 6 * np.pi, 400)
    smooth = (127 + 100 * np.sin(x)[None, :] * np.cos(0.7 * x)[:, None]).astype(np.uint8)
    sampler = PairSampler([smooth], (96, 128), rng)
    view_a, view_b, H = sampler.pair(strength=1.0, photometric_change=False)
    ys, xs = np.mgrid[10:86:5, 10:118:5]
    pts_a = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    pts_b = warp_points(H, pts_a)
    inside = (pts_b[:, 0] > 1) & (pts_b[:, 1] > 1) & (pts_b[:, 0] < 126) & (pts_b[:, 1] < 94)
    assert inside.sum() > 50
    grid = torch.from_numpy(pts_b[inside]).float()[None]
    vals_b = tpr_loss.sample_at(torch.from_numpy(view_b)[None, None], grid, (96, 128))[0, 0]
    vals_a = view_a[pts_a[inside, 1].astype(int), pts_a[inside, 0].astype(int)]
    assert np.abs(vals_b.numpy() - vals_a).mean() < 0.01  # grey levels in [0, 1]


def test_repeatability_and_peakiness_losses():
    torch.manual_seed(5)
    scores = torch.rand(1, 1, 64, 64)
    mask = torch.ones(1, 1, 64, 64)
    assert float(tpr_loss.repeatability_loss(scores, scores, mask)) == pytest.approx(0, abs=1e-6)
    shifted = torch.roll(scores, 5, dims=3)
    assert float(tpr_loss.repeatability_loss(scores, shifted, mask)) > 0.05
    flat = torch.full((1, 1, 64, 64), 0.5)
    peaky = torch.zeros(1, 1, 64, 64)
    peaky[0, 0, 4::8, 4::8] = 1.0
    assert float(tpr_loss.peakiness_loss(flat)) == pytest.approx(1.0)
    assert float(tpr_loss.peakiness_loss(peaky)) < 0.1


def test_info_nce_prefers_correct_correspondences():
    torch.manual_seed(6)
    q = _unit(torch.randn(1, 32, 64))
    mask = torch.ones(1, 64, dtype=torch.bool)
    right = float(tpr_loss.info_nce_loss(q, q, mask, temperature=0.07))
    wrong = float(tpr_loss.info_nce_loss(q, torch.roll(q, 1, dims=2), mask, temperature=0.07))
    assert right < 0.5 < np.log(64) < wrong


def test_training_images_refuse_evaluation_sets(graffiti, tmp_path):
    with pytest.raises(DataError, match="evaluation set"):
        folder_images(graffiti)
    with pytest.raises(DataError, match="not found"):
        folder_images(tmp_path / "nope")
    images = skimage_images()
    assert len(images) >= 10 and all(im.dtype == np.uint8 and im.ndim == 2 for im in images)


@pytest.mark.parametrize("cell_pool, per_cell", [("max", 1), ("mean", 64)])
def test_cell_pool_sets_how_many_pixels_of_a_cell_the_d2_weight_trains(cell_pool, per_cell):
    """The prediction loss reaches the score map only through the D2 weight. With "max" one
    pixel per 8x8 cell gets gradient (the in-cell grid-lock of the session-4 model); with
    "mean" every pixel does."""
    from tpr_vo.features.model import TPRNet
    from tpr_vo.training.learner import LossSettings, TPRLearner

    torch.manual_seed(0)
    learner = TPRLearner(TPRNet(width=8, descriptor_dim=16))
    B, H, W = 2, 64, 64
    logits = torch.randn(B, 1, H, W, requires_grad=True)
    desc = torch.randn(B, 16, H // 8, W // 8, requires_grad=True)
    learner.online.forward_raw = lambda image: (logits, desc)
    learner.target.forward_raw = lambda image: (logits.detach(), desc.detach() + 0.1)
    settings = LossSettings(det_weight=0.0, peaky_weight=0.0, cell_pool=cell_pool)
    image = torch.rand(B, 1, H, W)
    out = learner(image, image, torch.eye(3).expand(B, 3, 3), alpha=1.0, settings=settings)
    out["pred"].backward()
    cells = nnf.pixel_unshuffle(logits.grad.abs() > 0, 8)  # (B, 64, H/8, W/8)
    assert (cells.sum(dim=1) == per_cell).all()


@pytest.mark.parametrize("teacher", ["harris", "fast"])
def test_corner_teachers_fire_at_the_corners_of_a_square(teacher):
    """A bright 40x40 square on black, blurred like a photograph (FAST's non-max suppression
    drops the tied responses of a perfectly sharp one): a corner teacher's keypoints lie within
    2 px of its four corners, each corner is found, and the heat map marks exactly those
    pixels."""
    import cv2

    from tpr_vo.training.warmstart import teacher_heatmap, teacher_keypoints

    image = np.zeros((96, 128), np.float32)
    image[30:70, 40:80] = 1.0
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    corners = np.array([[40, 30], [79, 30], [79, 69], [40, 69]], np.float32)
    pts = teacher_keypoints(image, teacher)
    dist = np.linalg.norm(pts[:, None] - corners[None], axis=2)
    assert len(pts) >= 4
    assert (dist.min(axis=1) <= 2.0).all()  # nothing off the corners
    assert (dist.min(axis=0) <= 2.0).all()  # every corner found
    heat = teacher_heatmap(torch.from_numpy(image)[None, None], teacher)
    assert heat.sum() == len(pts) and heat[0, 0, 48, 60] == 0


def test_keypoint_teacher_is_validated_and_reaches_the_loss():
    from tpr_vo.errors import ConfigError
    from tpr_vo.training.config import TrainConfig
    from tpr_vo.training.warmstart import teacher_keypoints

    with pytest.raises(ConfigError, match="keypoint_teacher"):
        TrainConfig(keypoint_teacher="orb").validate()
    with pytest.raises(ValueError, match="orb"):
        teacher_keypoints(np.zeros((8, 8), np.float32), "orb")


def test_max_perspective_sets_the_viewpoint_change_of_training_pairs():
    """`max_perspective` reaches the sampler's homographies: 0 leaves them affine (no
    perspective row), a larger limit gives larger projective terms; bad values are refused by
    name."""
    from tpr_vo.cli import build_parser
    from tpr_vo.errors import ConfigError
    from tpr_vo.training.config import TrainConfig
    from tpr_vo.training.homography import HomographyRange

    img = np.random.default_rng(0).integers(0, 255, (300, 400)).astype(np.uint8)

    def perspective_terms(limit):
        limits = HomographyRange(max_perspective=limit)
        sampler = PairSampler([img], (96, 128), np.random.default_rng(1), limits)
        hs = [sampler.pair(strength=1.0, photometric_change=False)[2] for _ in range(30)]
        return np.array([np.abs(h[2, :2] / h[2, 2]).max() for h in hs])

    assert perspective_terms(0.0).max() < 1e-7  # float32 corners in OpenCV; 0.25 gives ~1e-3
    assert np.median(perspective_terms(0.4)) > 1.3 * np.median(perspective_terms(0.25))
    with pytest.raises(ConfigError, match="max_perspective"):
        TrainConfig(max_perspective=1.5).validate()
    args = build_parser().parse_args(["train", "--out", "x", "--max-perspective", "0.4"])
    assert args.max_perspective == 0.4


def test_max_log2_scale_sets_the_zoom_range_of_training_pairs():
    """`max_log2_scale` reaches the sampler: the spread of log2 |det(A)| / 2 over pairs (the
    zoom of the affine part) grows with it; 0 gives no zoom beyond the perspective jitter."""
    from tpr_vo.cli import build_parser
    from tpr_vo.errors import ConfigError
    from tpr_vo.training.config import TrainConfig
    from tpr_vo.training.homography import HomographyRange

    img = np.random.default_rng(0).integers(0, 255, (300, 400)).astype(np.uint8)

    def zooms(limit):
        limits = HomographyRange(max_log2_scale=limit, max_perspective=0.0)
        sampler = PairSampler([img], (96, 128), np.random.default_rng(2), limits)
        hs = [sampler.pair(strength=1.0, photometric_change=False)[2] for _ in range(40)]
        return np.array([0.5 * np.log2(abs(np.linalg.det(h[:2, :2] / h[2, 2]))) for h in hs])

    assert np.abs(zooms(0.0)).max() < 1e-4
    assert np.abs(zooms(1.0)).max() <= 1.0 + 1e-4
    assert np.abs(zooms(1.0)).mean() > 1.5 * np.abs(zooms(0.6)).mean()
    with pytest.raises(ConfigError, match="max_log2_scale"):
        TrainConfig(max_log2_scale=3.0).validate()
    args = build_parser().parse_args(["train", "--out", "x", "--max-log2-scale", "1.0"])
    assert args.max_log2_scale == 1.0


def test_repeatable_teacher_keeps_the_corners_found_again_in_the_other_view():
    """`--teacher-repeat-px`: with the same image as partner every corner is kept (the plain
    teacher's, strongest first); where the partner lost a square, that square's corners are
    dropped and the other square's kept; corners mapped outside the partner cannot be checked
    and are kept. The heat map marks exactly the kept pixels, and the option is validated."""
    import cv2

    from tpr_vo.cli import build_parser
    from tpr_vo.errors import ConfigError
    from tpr_vo.training.config import TrainConfig
    from tpr_vo.training.warmstart import repeatable_keypoints, teacher_heatmap, teacher_keypoints

    def squares(left: bool, right: bool) -> np.ndarray:
        image = np.zeros((96, 160), np.float32)
        if left:
            image[30:70, 20:60] = 1.0
        if right:
            image[30:70, 100:140] = 0.8
        return cv2.GaussianBlur(image, (0, 0), 1.0)

    both, left_only = squares(True, True), squares(True, False)
    eye = np.eye(3)
    plain = teacher_keypoints(both, "fast")
    assert len(plain) >= 8
    np.testing.assert_array_equal(repeatable_keypoints(both, both, eye, "fast", 1.5), plain)
    kept = repeatable_keypoints(both, left_only, eye, "fast", 1.5)
    assert len(kept) >= 4 and (kept[:, 0] < 80).all()  # the left square's corners only
    assert (plain[:, 0] > 80).sum() >= 4  # which the filter removed
    shifted = np.array([[1.0, 0, 500], [0, 1, 0], [0, 0, 1]])  # everything leaves the partner
    outside = repeatable_keypoints(both, left_only, shifted, "fast", 1.5)
    np.testing.assert_array_equal(outside, plain)
    to_t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    heat = teacher_heatmap(
        to_t(both), "fast", image_b=to_t(left_only), H_b_a=torch.from_numpy(eye)[None],
        repeat_px=1.5,
    )  # fmt: skip
    assert heat.sum() == len(kept) and heat[0, 0, 30:70, 80:].sum() == 0

    with pytest.raises(ConfigError, match="teacher_repeat_px"):
        TrainConfig(teacher_repeat_px=-1.0).validate()
    with pytest.raises(ConfigError, match="harris or fast"):
        TrainConfig(teacher_repeat_px=1.5, keypoint_teacher="sift").validate()
    args = build_parser().parse_args(["train", "--out", "x", "--teacher-repeat-px", "1.5"])
    assert args.teacher_repeat_px == 1.5


def test_dead_leaves_images_are_reproducible_covered_and_cornered():
    """`--dead-leaves N`: N uint8 images, the same for the same seed and different for
    another; shapes cover the image (the back grey shows in under 2 % of it), many grey levels
    and FAST corners appear, and the trainer's image list takes exactly N of them."""
    import cv2

    from tpr_vo.cli import build_parser
    from tpr_vo.errors import ConfigError
    from tpr_vo.training.config import TrainConfig
    from tpr_vo.training.procedural import dead_leaves_images
    from tpr_vo.training.trainer import load_images

    first, again = dead_leaves_images(2, seed=4), dead_leaves_images(2, seed=4)
    other = dead_leaves_images(1, seed=5)
    assert len(first) == 2 and first[0].shape == (480, 640) and first[0].dtype == np.uint8
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0]) and not np.array_equal(first[0], first[1])
    for image in first:
        counts = np.bincount(image.ravel(), minlength=256)
        assert counts.max() < 0.05 * image.size  # no flat background dominates
        assert (counts > 0).sum() > 100
        corners = cv2.FastFeatureDetector_create(threshold=20).detect(image)
        assert len(corners) > 500
    cfg = TrainConfig(use_skimage=False, dead_leaves=3)
    assert len(load_images(cfg)) == 3
    with pytest.raises(ConfigError, match="dead_leaves"):
        TrainConfig(dead_leaves=-1).validate()
    args = build_parser().parse_args(["train", "--out", "x", "--dead-leaves", "7"])
    assert args.dead_leaves == 7


def test_every_gpu_sweep_recipe_is_a_valid_training_command():
    """benchmarks/sweeps/*.txt are run on a lent GPU, where a typo costs a whole call: each
    line must parse with `tpr-vo train`'s parser and validate as a TrainConfig, names must be
    unique, and a file holds at most 8 runs (a device call returns at most 8 files)."""
    import shlex
    from pathlib import Path

    from tpr_vo.cli import build_parser
    from tpr_vo.cli.train import config_from_args

    sweeps = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "sweeps").glob("*.txt"))
    assert sweeps, "no sweep files found"
    for path in sweeps:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and ln[0] != "#"]
        names = [ln.split()[0] for ln in lines]
        assert 0 < len(names) <= 8 and len(set(names)) == len(names), path.name
        for line in lines:
            name, *args = shlex.split(line)
            parsed = build_parser().parse_args(["train", "--out", f"runs/{name}", *args])
            config_from_args(parsed).validate()


def test_peak_loss_is_lowest_when_the_teacher_pixel_is_the_local_maximum():
    """Uniform logits: log of the window size (49, or 16 in a corner where the padding never
    wins); a peak at the teacher pixel: ~0; the same peak one pixel off: ~its height."""
    from tpr_vo.training.warmstart import peak_loss

    logits = torch.zeros(1, 1, 20, 20)
    heat = torch.zeros_like(logits)
    heat[0, 0, 10, 10] = 1.0
    assert float(peak_loss(logits, heat)) == pytest.approx(np.log(49.0), rel=1e-5)
    peaked = logits.clone()
    peaked[0, 0, 10, 10] = 20.0
    assert float(peak_loss(peaked, heat)) < 1e-6
    off = logits.clone()
    off[0, 0, 10, 11] = 20.0
    assert float(peak_loss(off, heat)) == pytest.approx(20.0, abs=1e-3)
    corner = torch.zeros_like(heat)
    corner[0, 0, 0, 0] = 1.0
    assert float(peak_loss(logits, corner)) == pytest.approx(np.log(16.0), rel=1e-5)
    assert float(peak_loss(logits, torch.zeros_like(heat))) == 0.0
    grad_logits = logits.clone().requires_grad_(True)
    peak_loss(grad_logits, heat).backward()
    assert grad_logits.grad[0, 0, 10, 10] < 0  # raising the teacher pixel lowers the loss


def test_half_branch_options_are_validated():
    from tpr_vo.errors import ConfigError
    from tpr_vo.training.config import TrainConfig

    for bad in (
        {"half_depth": 0, "half_width": 8},
        {"half_pixels": True},
        {"half_depth": 2},
        {"polish_peak_weight": -1.0},
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**bad).validate()
    TrainConfig(half_width=8, half_depth=2, half_pixels=True, polish_peak_weight=1.0).validate()
    from tpr_vo.cli import build_parser
    from tpr_vo.cli.train import config_from_args

    argv = ["train", "--out", "x", "--half-width", "32", "--half-depth", "2", "--half-pixels"]
    cfg = config_from_args(build_parser().parse_args(argv + ["--polish-peak", "1.0"]))
    assert (cfg.half_width, cfg.half_depth, cfg.half_pixels) == (32, 2, True)
    assert cfg.polish_peak_weight == 1.0


def test_density_shift_brings_the_keypoint_count_to_the_target():
    """A constant logit shift only moves the threshold: the count of local maxima passing it
    becomes the target exactly (mean per crop), up or down; the shift lands on the network."""
    from tpr_vo.features.model import TPRNet
    from tpr_vo.features.postprocess import PostprocessParams
    from tpr_vo.training.calibrate import (
        density_shift,
        keypoint_count,
        local_max_logits,
        shift_score_logits,
    )

    rng = np.random.default_rng(3)
    logits = [rng.normal(size=50) for _ in range(4)]
    for target in (3.0, 10.25, 40.0):
        shift = density_shift(logits, 0.005, target)
        assert keypoint_count(logits, 0.005, shift) == pytest.approx(target)
    torch.manual_seed(0)
    net = TPRNet(width=8, descriptor_dim=16, depth=1).eval()
    crops = rng.random((3, 1, 64, 96)).astype(np.float32)
    params = PostprocessParams(border_px=4)
    maxima = local_max_logits(net, crops, params)
    shift = density_shift(maxima, params.score_threshold, 5.0)
    shift_score_logits(net, shift)
    after = local_max_logits(net, crops, params)
    assert keypoint_count(after, params.score_threshold) == pytest.approx(5.0, abs=1 / 3)
    assert np.allclose(np.concatenate(after), np.concatenate(maxima) + shift, atol=1e-4)


def test_splat_pixels_spreads_a_point_over_its_four_pixels():
    from tpr_vo.training.warmstart import mark_pixels, splat_pixels

    heat = np.zeros((8, 10), np.float32)
    splat_pixels(heat, np.array([[3.25, 5.5]]))
    expected = {(5, 3): 0.375, (5, 4): 0.125, (6, 3): 0.375, (6, 4): 0.125}
    for (y, x), w in expected.items():
        assert heat[y, x] == pytest.approx(w)
    assert heat.sum() == pytest.approx(1.0)
    splat_pixels(heat, np.array([[3.0, 5.0]]))  # overlapping: the larger weight stays
    assert heat[5, 3] == 1.0 and heat[5, 4] == pytest.approx(0.125)
    on_centres = np.array([[1.0, 2.0], [9.0, 7.0]])  # the last one on the border
    a, b = np.zeros((8, 10), np.float32), np.zeros((8, 10), np.float32)
    splat_pixels(a, on_centres)
    mark_pixels(b, on_centres)
    np.testing.assert_array_equal(a, b)


def test_subpixel_teacher_follows_a_subpixel_shift_of_the_image():
    """`--teacher-subpixel-warps`: FAST's corners are whole pixels, so after the image moves by
    (0.4, 0.3) px they move by 0 or 1; averaged over 16 small warps they follow the shift far
    more closely. Its maps spread each corner over four pixels, one unit of mass per corner."""
    import cv2

    from tpr_vo.cli import build_parser
    from tpr_vo.errors import ConfigError
    from tpr_vo.training.config import TrainConfig
    from tpr_vo.training.warmstart import teacher_keypoints, teacher_maps

    image = cv2.resize(skimage_images()[0], (256, 192), interpolation=cv2.INTER_AREA)
    shift = np.array([0.4, 0.3])
    A = np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]])
    moved = cv2.warpAffine(image, A, (256, 192), flags=cv2.INTER_LINEAR)
    a01, b01 = image.astype(np.float32) / 255, moved.astype(np.float32) / 255
    errors = {}
    for warps in (0, 16):
        pa, pb = (
            teacher_keypoints(a01, "fast", 0, warps),
            teacher_keypoints(b01, "fast", 600, warps),
        )
        gap = np.linalg.norm((pa + shift)[:, None, :] - pb[None, :, :], axis=2)
        nearest = gap.min(axis=1)
        errors[warps] = float(np.median(nearest[nearest < 1.0]))
        assert (nearest < 1.0).sum() > 50
    assert errors[16] < 0.6 * errors[0], errors
    heat = teacher_maps(a01[None, None], "fast", 0, subpixel_warps=16)
    n = len(teacher_keypoints(a01, "fast", 0, 16))
    assert heat.max() <= 1.0 and 0.9 * n < heat.sum() <= n + 1e-3
    assert ((heat > 0) & (heat < 0.99)).sum() > n  # fractional weights, not whole pixels

    with pytest.raises(ConfigError, match="teacher_subpixel_warps"):
        TrainConfig(teacher_subpixel_warps=-1).validate()
    with pytest.raises(ConfigError, match="harris or fast"):
        TrainConfig(teacher_subpixel_warps=8, keypoint_teacher="sift").validate()
    args = build_parser().parse_args(["train", "--out", "x", "--teacher-subpixel-warps", "16"])
    assert args.teacher_subpixel_warps == 16
