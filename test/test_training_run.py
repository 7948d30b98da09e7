"""The trainer end to end on tiny crops: files, log across chunks, exact resume, CLI, DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tpr_vo.cli import main  # noqa: E402
from tpr_vo.features.model import load_model  # noqa: E402
from tpr_vo.training.config import TrainConfig  # noqa: E402
from tpr_vo.training.trainer import train  # noqa: E402

TINY = TrainConfig(
    steps=4, batch_size=2, crop_height=64, crop_width=64, width=8, descriptor_dim=16,
    depth=1, warmup_steps=1, checkpoint_every=2, log_every=1, threads=1, infonce_weight=0.5,
    warm_start_steps=1, use_skimage=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory):
    """Three small textured images (fast to load, unlike the skimage photographs)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        noise = cv2.GaussianBlur(rng.random((240, 240)).astype(np.float32), (0, 0), 2.0)
        image = cv2.normalize(noise, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i}.png"), image)
    return folder


def _tiny(images_dir, **changes):
    return dataclasses.replace(TINY, image_dirs=(str(images_dir),), **changes)


def _params(path):
    return load_model(path).state_dict()


def test_train_writes_checkpoint_log_and_plot(tmp_path, images_dir):
    result = train(_tiny(images_dir, out_dir=str(tmp_path / "run")))
    out = tmp_path / "run"
    assert result.step == 4
    for name in ("last.pt", "model.pt", "log.csv", "log.json", "loss.png"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "log.json").read_text())["rows"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["warm"] == 1 and rows[1]["warm"] == 0  # SIFT warm start, then TPR
    assert all(r["total"] == r["total"] for r in rows)  # finite (not NaN)
    assert {"pred", "rep", "peaky", "nce"} <= set(rows[-1])
    state = torch.load(out / "last.pt", weights_only=False)["train"]
    assert state["step"] == 4 and state["optimizer"]["state"]
    assert load_model(out / "model.pt").arch["width"] == 8


def test_resume_in_chunks_equals_one_uninterrupted_run(tmp_path, images_dir):
    straight = tmp_path / "straight"
    train(_tiny(images_dir, out_dir=str(straight)))
    chunked = tmp_path / "chunked"
    first = train(_tiny(images_dir, out_dir=str(chunked), max_minutes=1e-9))
    assert first.step == 1  # the time limit ends the chunk after one step
    second = train(_tiny(images_dir, out_dir=str(chunked), resume=True))
    assert second.step == 4
    a, b = _params(straight / "model.pt"), _params(chunked / "model.pt")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    rows = json.loads((chunked / "log.json").read_text())["rows"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one log across both chunks


def test_cli_train_runs_and_reports(tmp_path, capsys, images_dir):
    out = tmp_path / "cli"
    code = main([
        "train", "--out", str(out), "--steps", "2", "--batch", "1", "--crop", "64", "64",
        "--width", "8", "--descriptor-dim", "16", "--depth", "1", "--labels", "hard",
        "--no-curriculum", "--threads", "1", "--no-skimage", "--images", str(images_dir),
    ])  # fmt: skip
    assert code == 0
    assert "step 2" in capsys.readouterr().out
    meta = torch.load(out / "model.pt", weights_only=True)["meta"]
    assert meta["train_config"]["labels"] == "hard"
    assert meta["train_config"]["curriculum"] is False
    assert main(["train", "--out", str(out), "--crop", "60", "64"]) == 1  # not a multiple of 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir, images_dir):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )  # fmt: skip
    import gc

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    destroy = dist.destroy_process_group

    def destroy_after_ddp_is_freed(*args, **kwargs):
        # The DDP wrapper (and its reducer, which holds the group) must be gone before the
        # group is destroyed, so gloo's threads end here and not at interpreter exit.
        alive = [o for o in gc.get_objects() if isinstance(o, DistributedDataParallel)]
        assert not alive, f"rank {rank}: {len(alive)} DDP wrapper(s) alive at teardown"
        return destroy(*args, **kwargs)

    dist.destroy_process_group = destroy_after_ddp_is_freed
    train(_tiny(images_dir, out_dir=out_dir, steps=2, ddp=True, device="cpu"))


def test_ddp_on_cpu_with_gloo_two_processes(tmp_path, images_dir):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out), str(images_dir)), nprocs=2, join=True)
    rows = json.loads((out / "log.json").read_text())["rows"]
    assert rows[-1]["step"] == 2
    assert load_model(out / "model.pt").arch["width"] == 8


def test_polish_steps_train_only_the_detector_heads(tmp_path, images_dir):
    """--polish-steps continue a finished run: the score heads change, and every other weight
    and BN statistic of the network stays as TPR left it."""
    out = tmp_path / "run"
    cfg = _tiny(images_dir, out_dir=str(out), fine_width=8, half_width=4, keypoint_weight=0.5)
    train(cfg)
    before = _params(out / "model.pt")
    result = train(dataclasses.replace(cfg, polish_steps=2, keypoint_teacher="fast", resume=True))
    assert result.step == 6 and set(result.last_losses) == {"polish_kp", "total"}
    after = _params(out / "model.pt")
    heads = ("score_head.", "fine_head.", "half_head.")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(heads) for k in changed), sorted(changed)
    assert any(k.startswith("half_head.") for k in changed)
    rows = json.loads((out / "log.json").read_text())["rows"]
    assert [r["polish"] for r in rows] == [0, 0, 0, 0, 1, 1]


def test_polish_peak_adds_the_localisation_term_and_keeps_the_keypoint_density(
    tmp_path, images_dir
):
    """--polish-peak: the polish logs and minimises the teacher's localisation term too, on the
    half-pixels network the config names; and the polish ends with the network finding as many
    keypoints per calibration crop as before it (a shift of the score logits)."""
    from tpr_vo.training.data import PairSampler
    from tpr_vo.training.trainer import _density, load_images

    out = tmp_path / "run"
    cfg = _tiny(images_dir, out_dir=str(out), half_width=4, half_depth=2, half_pixels=True,
                keypoint_weight=0.5, keypoint_teacher="fast")  # fmt: skip
    train(cfg)
    sampler = PairSampler(load_images(cfg), (64, 64), np.random.default_rng(0))
    before = _density(load_model(out / "model.pt"), sampler, cfg)[0]
    polished = dataclasses.replace(cfg, polish_steps=3, polish_peak_weight=1.0, lr=0.05)
    train(dataclasses.replace(polished, resume=True))
    rows = json.loads((out / "log.json").read_text())["rows"]
    last = rows[-1]
    assert last["polish"] == 1
    assert last["total"] == pytest.approx(last["polish_kp"] + last["polish_peak"], rel=1e-5)
    net = load_model(out / "model.pt")
    assert net.arch["half_pixels"] == 1 and net.arch["half_depth"] == 2
    # Near-equal logits of this tiny net can swap at the cut by float rounding: 2 %.
    assert _density(net, sampler, cfg)[0] == pytest.approx(before, rel=0.02)
    shift = torch.load(out / "model.pt", weights_only=True)["meta"]["polish_logit_shift"]
    assert np.isfinite(shift)
    # This tiny net's local maxima all pass the threshold, so its polish moved no count. A
    # polish that had lowered every score: _keep_density raises them back.
    from tpr_vo.training.calibrate import shift_score_logits
    from tpr_vo.training.trainer import _keep_density

    shift_score_logits(net, -8.0)
    assert _density(net, sampler, cfg)[0] < 0.8 * before
    assert _keep_density(net, sampler, cfg, before) > 0
    assert _density(net, sampler, cfg)[0] == pytest.approx(before, rel=0.02)


def test_batch_workers_draw_each_step_from_its_own_seed(images_dir):
    """A step's batch is a function of (seed, step): the same from a worker pool started
    anywhere as drawn directly, different for another step; the teacher maps mark the FAST
    corners of the online view."""
    from tpr_vo.training.batches import BatchPrefetcher, DrawSpec, draw_step
    from tpr_vo.training.data import folder_images
    from tpr_vo.training.homography import HomographyRange
    from tpr_vo.training.warmstart import teacher_maps

    spec = DrawSpec(folder_images(images_dir), (64, 96), HomographyRange(), 3, "fast")
    direct = draw_step(spec, 5, 2, 0.5)
    with BatchPrefetcher(spec, 4, 7, lambda step: (2, 0.5), workers=2) as prefetcher:
        prefetcher.get(4)
        pooled = prefetcher.get(5)
        with pytest.raises(IndexError, match="in order"):
            prefetcher.get(5)
    np.testing.assert_array_equal(direct.pairs.image_b, pooled.pairs.image_b)
    np.testing.assert_array_equal(direct.heat_online, pooled.heat_online)
    assert direct.swap == pooled.swap
    other = draw_step(spec, 6, 2, 0.5)
    assert not np.array_equal(direct.pairs.image_a, other.pairs.image_a)
    heat = direct.heat_online
    assert direct.pairs.image_a.shape == (2, 1, 64, 96) and heat.shape == (2, 1, 64, 96)
    online = direct.pairs.image_b if direct.swap else direct.pairs.image_a
    np.testing.assert_array_equal(heat, teacher_maps(online, "fast"))
    assert 0 < heat.sum() < heat.size / 10  # sparse corners, not empty
    assert set(np.unique(heat)) <= {0.0, 1.0}
    # --teacher-repeat-px: the online view's corners found again in the other view, through
    # the homography of the roles as drawn
    spec_rep = dataclasses.replace(spec, teacher_repeat_px=1.5)
    rep = draw_step(spec_rep, 5, 2, 0.5)
    other_view = direct.pairs.image_a if direct.swap else direct.pairs.image_b
    H_other = np.linalg.inv(direct.pairs.H_b_a) if direct.swap else direct.pairs.H_b_a
    expected = teacher_maps(online, "fast", 0, other_view, H_other, 1.5)
    np.testing.assert_array_equal(rep.heat_online, expected)
    assert 0 < rep.heat_online.sum() <= heat.sum()


def test_train_with_batch_workers_resumes_exactly(tmp_path, images_dir):
    """--data-workers: the run trains (FAST teacher maps drawn by the workers) and a chunked
    run equals an uninterrupted one, since batches depend on the step alone."""
    tiny = _tiny(images_dir, data_workers=1, keypoint_weight=1.0, keypoint_teacher="fast")
    straight = train(dataclasses.replace(tiny, out_dir=str(tmp_path / "straight")))
    assert straight.step == 4 and "kp" in straight.last_losses
    chunked = tmp_path / "chunked"
    train(dataclasses.replace(tiny, out_dir=str(chunked), max_minutes=1e-9))
    train(dataclasses.replace(tiny, out_dir=str(chunked), resume=True))
    a, b = _params(tmp_path / "straight" / "model.pt"), _params(chunked / "model.pt")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
