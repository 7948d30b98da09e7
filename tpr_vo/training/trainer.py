"""`train(cfg)`: TPR training on CPU or CUDA, in resumable chunks, optionally under torchrun/DDP.

One run lives in `cfg.out_dir`: last.pt (full training state, written atomically every
`checkpoint_every` steps and at the end of a chunk), model.pt (the network only, for
`load_model`), log.csv / log.json / loss.png (across chunks). `--resume` continues from last.pt
with the optimizer, EMA target, step, elapsed time and RNG states restored.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tpr_vo.atomic import atomic_path
from tpr_vo.errors import ConfigError, DataError
from tpr_vo.features.model import TPRNet, count_parameters, save_checkpoint
from tpr_vo.progress import progress
from tpr_vo.training.batches import BatchPrefetcher, DrawSpec
from tpr_vo.training.config import TrainConfig
from tpr_vo.training.data import PairSampler, folder_images, skimage_images, synthetic_images
from tpr_vo.training.homography import HomographyRange
from tpr_vo.training.learner import LossSettings, TPRLearner, tau_schedule
from tpr_vo.training.train_log import TrainLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    step: int
    elapsed_s: float
    last_losses: dict[str, float]
    mma3: float | None


def curriculum(cfg: TrainConfig, step: int) -> tuple[float, float]:
    """(transformation strength in [0, 1], alpha) at `step`."""
    if not cfg.curriculum:
        return 1.0, cfg.alpha_max
    ramp = max(1, (cfg.steps - cfg.warm_start_steps) // 2)
    frac = min(1.0, max(0, step - cfg.warm_start_steps) / ramp)
    strength = cfg.min_strength + (1.0 - cfg.min_strength) * frac
    return strength, cfg.alpha_max * strength


def learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def load_images(cfg: TrainConfig) -> list[np.ndarray]:
    images: list[np.ndarray] = []
    for folder in cfg.image_dirs:
        images += folder_images(folder)
    if cfg.use_skimage:
        images += skimage_images()
    if cfg.synthetic_frames > 0:
        images += synthetic_images(cfg.synthetic_frames, seed=cfg.seed + 1000)
    if cfg.dead_leaves > 0:
        from tpr_vo.training.procedural import dead_leaves_images

        images += dead_leaves_images(cfg.dead_leaves, seed=cfg.seed)
    if not images:
        raise DataError(
            "train: no training images (use --images DIR, --skimage, --synthetic N, "
            "--dead-leaves N)"
        )
    return images


def evaluate_mma3(net: TPRNet, eval_set: str) -> float | None:
    """MMA@3 on an HPatches-layout folder with the shared post-processing (None if unavailable)."""
    try:
        from tpr_vo.config import FeaturesConfig
        from tpr_vo.eval.mma import evaluate_mma
        from tpr_vo.features.torch_backend import TorchBackend
    except ImportError as exc:  # another part of the package not installed
        log.warning("MMA evaluation unavailable (%s)", exc)
        return None
    model = copy.deepcopy(net).cpu().eval()
    backend = TorchBackend(FeaturesConfig(max_keypoints=1000), device="cpu", model=model)
    return float(evaluate_mma([eval_set], backend).at(3))


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}


def _setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    if cfg.ddp:
        import torch.distributed as dist

        if "RANK" not in os.environ:
            raise ConfigError("train --ddp: start it with torchrun (RANK/WORLD_SIZE not set)")
        use_cuda = torch.cuda.is_available() and cfg.device != "cpu"
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        return rank, world, device
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return 0, 1, torch.device("cuda")
    return 0, 1, torch.device("cpu")


def train(cfg: TrainConfig, command: str = "") -> TrainResult:
    """Run (or continue) a training run; returns where it stopped."""
    cfg.validate()
    if cfg.threads > 0:
        import cv2

        torch.set_num_threads(cfg.threads)
        cv2.setNumThreads(cfg.threads)
    rank, world, device = _setup_distributed(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = TPRNet(
        width=cfg.width, descriptor_dim=cfg.descriptor_dim,
        descriptor_stride=cfg.descriptor_stride, depth=cfg.depth, fine_width=cfg.fine_width,
        half_width=cfg.half_width, trunk_dilation=cfg.trunk_dilation,
        half_depth=cfg.half_depth, half_pixels=int(cfg.half_pixels),
    )  # fmt: skip
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size
    learner = TPRLearner(net).to(device)
    trainable = [p for p in learner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed + 7919 * rank)
    step, elapsed_s = 0, 0.0
    polish_target: float | None = None  # keypoints per calibration crop before the polish
    train_log = TrainLog(out)
    last_path = out / "last.pt"
    if cfg.resume and last_path.is_file():
        state = torch.load(last_path, map_location=device, weights_only=False)
        learner.load_state_dict(state["train"]["learner"])
        optimizer.load_state_dict(state["train"]["optimizer"])
        step, elapsed_s = int(state["train"]["step"]), float(state["train"]["elapsed_s"])
        rng.bit_generator.state = state["train"]["rng"]["numpy"]
        torch.set_rng_state(state["train"]["rng"]["torch"])
        polish_target = state["train"].get("polish_target")
        train_log.truncate(step)
        log.info("resumed %s at step %d (%.1f min trained)", last_path, step, elapsed_s / 60)
    elif cfg.resume:
        log.info("no checkpoint at %s; starting from scratch", last_path)
    else:
        train_log.rows = []
    model_for_step = learner
    if cfg.ddp:
        from torch.nn.parallel import DistributedDataParallel

        model_for_step = DistributedDataParallel(learner, find_unused_parameters=True)
    limits = HomographyRange(
        max_perspective=cfg.max_perspective, max_log2_scale=cfg.max_log2_scale
    )
    sampler = PairSampler(load_images(cfg), (cfg.crop_height, cfg.crop_width), rng, limits)
    settings = LossSettings(
        labels=cfg.labels, label_temperature=cfg.label_temperature, det_weight=cfg.det_weight,
        peaky_weight=cfg.peaky_weight, cell_pool=cfg.cell_pool,
        keypoint_weight=cfg.keypoint_weight, keypoint_teacher=cfg.keypoint_teacher,
        teacher_repeat_px=cfg.teacher_repeat_px, polish_peak_weight=cfg.polish_peak_weight,
        teacher_subpixel_warps=cfg.teacher_subpixel_warps,
        infonce_weight=cfg.infonce_weight, infonce_temperature=cfg.infonce_temperature,
    )  # fmt: skip
    if rank == 0:
        log.info(
            "training TPRNet %s (%d parameters) on %s x%d, %d images, steps %d..%d",
            net.arch,
            count_parameters(net),
            device,
            world,
            len(sampler.images),
            step,
            cfg.steps,
        )
    meta_base = {"command": command, "train_config": dataclasses.asdict(cfg)}
    sums: dict[str, float] = {}
    count, mma3 = 0, None
    chunk_start = time.perf_counter()
    last_losses: dict[str, float] = {}

    def checkpoint() -> None:
        if rank != 0:
            return
        meta = dict(meta_base, step=step, elapsed_s=elapsed_s, mma3=mma3)
        save_checkpoint(out / "model.pt", net, meta)
        state = {
            "arch": dict(net.arch),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "meta": meta,
            "train": {
                "learner": learner.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "elapsed_s": elapsed_s,
                "rng": _rng_state(rng),
                "polish_target": polish_target,
            },
        }
        with atomic_path(last_path) as tmp:
            torch.save(state, tmp)
        train_log.write()

    end = cfg.steps + cfg.polish_steps
    prefetcher = _prefetcher(cfg, sampler, rank, step, end)
    steps_iter = progress(range(step, end), desc="train", total=end - step)
    learner.train()
    for step_i in steps_iter:
        t0 = time.perf_counter()
        strength, alpha = curriculum(cfg, step_i)
        warm = step_i < cfg.warm_start_steps
        polish = step_i >= cfg.steps
        if polish and polish_target is None:
            polish_target = _density(net, sampler, cfg)[0]
            log.info("polish: %.1f keypoints per calibration crop before it", polish_target)
        lr = cfg.lr if polish else learning_rate(cfg, step_i)
        for group in optimizer.param_groups:
            group["lr"] = lr
        heat = None
        if prefetcher is None:
            batch = sampler.batch(cfg.batch_size, strength)
            swap = rng.random() < 0.5  # both views take the online role, half the time each
        else:
            drawn = prefetcher.get(step_i)
            batch, swap = drawn.pairs, drawn.swap
            heat = drawn.heat_online
        image_a = torch.from_numpy(batch.image_b if swap else batch.image_a).to(device)
        image_b = torch.from_numpy(batch.image_a if swap else batch.image_b).to(device)
        H = np.linalg.inv(batch.H_b_a) if swap else batch.H_b_a
        heat_a = None if heat is None else torch.from_numpy(heat).to(device)
        losses = model_for_step(image_a, image_b, torch.from_numpy(H).to(device), alpha,
                                settings, warm=warm, polish=polish, heat_a=heat_a)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
        optimizer.step()
        tau = (
            0.0
            if step_i + 1 == cfg.warm_start_steps
            else tau_schedule(step_i, cfg.steps, cfg.ema_base, cfg.ema_schedule)
        )
        if not polish:
            learner.update_target(tau)
        step = step_i + 1
        if polish and step == end:
            meta_base["polish_logit_shift"] = _keep_density(net, sampler, cfg, polish_target)
        elapsed_s += time.perf_counter() - t0
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        count += 1
        stop = cfg.max_minutes > 0 and time.perf_counter() - chunk_start > cfg.max_minutes * 60
        if rank == 0 and (step % cfg.log_every == 0 or step in (cfg.steps, end) or stop):
            last_losses = {k: v / count for k, v in sums.items()}
            row: dict[str, Any] = {"step": step, "time_s": round(elapsed_s, 2)}
            row.update({"lr": lr, "tau": tau, "strength": strength, "alpha": alpha})
            row.update({"warm": int(warm), "polish": int(polish), **last_losses})
            evaluate = cfg.eval_set and cfg.eval_every > 0 and step % cfg.eval_every == 0
            if cfg.eval_set and (evaluate or step in (cfg.steps, end) or stop):
                mma3 = evaluate_mma3(net, cfg.eval_set)
                row["mma3"] = mma3
                learner.train()
            train_log.append(row)
            sums, count = {}, 0
            log.debug("step %d %s", step, row)
        if step % cfg.checkpoint_every == 0 or step in (cfg.steps, end) or stop:
            checkpoint()
        if stop:
            log.info("chunk time limit reached at step %d; resume with --resume", step)
            break
    if prefetcher is not None:
        prefetcher.close()
    if cfg.ddp:
        import torch.distributed as dist

        dist.barrier()
        # Free the DDP wrapper (its reducer holds the process group; gc for any reference
        # cycles) while the group still exists, so gloo's threads are joined here and not
        # during interpreter teardown. One CI run saw a rank abort at exit
        # ("terminate called without an active exception") after both ranks had finished.
        del model_for_step
        gc.collect()
        dist.destroy_process_group()
    if rank == 0:
        log.info("stopped at step %d after %.1f min; %s", step, elapsed_s / 60, last_losses)
    return TrainResult(out, step, elapsed_s, last_losses, mma3)


def _density(net: TPRNet, sampler: PairSampler, cfg: TrainConfig):
    """(mean keypoints per calibration crop at the default post-processing, the crops'
    local-maximum logits) of `net` (training/calibrate.py)."""
    from tpr_vo.features.postprocess import PostprocessParams
    from tpr_vo.training.calibrate import calibration_crops, keypoint_count, local_max_logits

    params = PostprocessParams()
    crops = calibration_crops(sampler, CALIBRATION_CROPS, cfg.seed + 4242)
    logits = local_max_logits(net, crops, params)
    return keypoint_count(logits, params.score_threshold), logits


def _keep_density(net: TPRNet, sampler: PairSampler, cfg: TrainConfig, target: float) -> float:
    """End of the polish: shift the score logits so the network finds `target` keypoints per
    calibration crop again (calibrate.py says why); returns the shift."""
    from tpr_vo.features.postprocess import PostprocessParams
    from tpr_vo.training.calibrate import density_shift, keypoint_count, shift_score_logits

    before, logits = _density(net, sampler, cfg)
    threshold = PostprocessParams().score_threshold
    shift = density_shift(logits, threshold, target)
    shift_score_logits(net, shift)
    # The shift moves every logit by the same amount, so the new count follows from `logits`
    # without running the network over the crops again.
    log.info(
        "polish: %.1f keypoints per calibration crop after it; score logits shifted by %+.3f "
        "to keep %.1f (now %.1f)", before, shift, target, keypoint_count(logits, threshold, shift),
    )  # fmt: skip
    return shift


CALIBRATION_CROPS = 64


def _prefetcher(
    cfg: TrainConfig, sampler: PairSampler, rank: int, first: int, end: int
) -> BatchPrefetcher | None:
    """Batch workers for `--data-workers N` (None: draw in this process)."""
    if cfg.data_workers == 0 or first >= end:
        return None
    uses_teacher = cfg.keypoint_weight > 0 or cfg.warm_start_steps > 0 or cfg.polish_steps > 0
    teacher = cfg.keypoint_teacher if uses_teacher and cfg.keypoint_teacher != "sift" else ""
    spec = DrawSpec(
        sampler.images, (cfg.crop_height, cfg.crop_width), sampler.limits,
        cfg.seed + 7919 * rank, teacher, cfg.teacher_repeat_px, cfg.teacher_subpixel_warps,
    )  # fmt: skip

    def plan(step_i: int) -> tuple[int, float]:
        return cfg.batch_size, curriculum(cfg, step_i)[0]

    log.info("drawing batches in %d worker processes", cfg.data_workers)
    return BatchPrefetcher(spec, first, end, plan, cfg.data_workers)


def command_line() -> str:
    return " ".join(["tpr-vo"] + sys.argv[1:]) if sys.argv else ""
