"""`tpr-vo train`: self-supervised TPR training of the detector/descriptor network."""

from __future__ import annotations

import argparse
import dataclasses

from tpr_vo.cli.common import command_parser

EPILOG = """examples:
  # the shipped default (models/MODEL_CARD.md): one command, 4,000 steps, ~1 CPU-hour
  tpr-vo train --out runs/default --steps 4000 --fine-width 64 --half-width 8 --skimage \\
      --synthetic 300 --warm-start-steps 300 --infonce 0.5 --peaky-weight 0 \\
      --keypoint-distill 2.0 --cell-pool mean --keypoint-teacher fast \\
      --eval-set ../shared/data/homography/v_graf --eval-every 500 --threads 1 --seed 0
  # one CUDA GPU: larger batches, drawn by 3 worker processes so the GPU is not kept waiting
  tpr-vo train --out runs/gpu --steps 2700 --batch 32 --device cuda --data-workers 3 \\
      --fine-width 64 --half-width 8 --skimage --synthetic 300 --warm-start-steps 100 \\
      --infonce 0.5 --peaky-weight 0 --keypoint-distill 2.0 --cell-pool mean \\
      --keypoint-teacher fast
  # pure TPR, hard labels, no curriculum (ablations)
  tpr-vo train --out runs/hard --steps 400 --labels hard --no-curriculum
  # continue a run in chunks (optimizer, EMA target, step, RNG restored)
  tpr-vo train --out runs/default --steps 5000 --resume --max-minutes 30
  # several GPUs (or CPU processes with gloo): DistributedDataParallel
  torchrun --nproc_per_node 4 -m tpr_vo train --ddp --out runs/ddp --batch 16

Never point --images at the evaluation sets (v_graf, KITTI 06): they are refused.
"""


def add_parser(subparsers) -> None:
    p = command_parser(
        subparsers,
        "train",
        "train a TPR model (self-supervised, homography pairs)",
        EPILOG,
        description="Self-supervised TPR training: online encoder/projector/predictor vs an "
        "EMA target, transformation-prediction loss at corresponding locations weighted by "
        "detection scores, soft labels with a curriculum.",
    )
    from tpr_vo.training.config import KEYPOINT_TEACHERS  # torch-free

    d = _defaults()
    p.add_argument("--out", default=d.out_dir, help="run folder (checkpoints, logs, plots)")
    p.add_argument("--steps", type=int, default=d.steps, help="total steps of the run")
    p.add_argument("--batch", type=int, default=d.batch_size, help="pairs per step per process")
    p.add_argument(
        "--crop",
        type=int,
        nargs=2,
        default=[d.crop_height, d.crop_width],
        metavar=("H", "W"),
        help="crop size, multiples of 32",
    )
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-schedule", choices=("cosine", "constant"), default=d.lr_schedule)
    p.add_argument("--width", type=int, default=d.width, help="channels at 1/4 resolution")
    p.add_argument("--depth", type=int, default=d.depth, help="extra 3x3 convs at 1/8")
    p.add_argument("--descriptor-dim", type=int, default=d.descriptor_dim)
    p.add_argument(
        "--fine-width",
        type=int,
        default=d.fine_width,
        help="channels of the fine detector branch on each 8x8 cell's pixels (0 = none)",
    )
    p.add_argument(
        "--half-width",
        type=int,
        default=d.half_width,
        help="channels of the half-resolution detector branch (0 = none)",
    )
    p.add_argument(
        "--half-depth",
        type=int,
        default=d.half_depth,
        help="conv3x3 layers of the half-resolution detector branch (with --half-width)",
    )
    p.add_argument(
        "--half-pixels",
        action="store_true",
        help="the half-resolution detector branch also sees the image's 2x2 pixels",
    )
    p.add_argument(
        "--trunk-dilation",
        type=int,
        default=d.trunk_dilation,
        help="dilation of the 1/8-resolution trunk convolutions (1 = none; 2 widens the "
        "receptive field at no extra cost)",
    )
    p.add_argument("--descriptor-stride", type=int, choices=(4, 8), default=d.descriptor_stride)
    p.add_argument("--ema", type=float, default=d.ema_base, help="EMA tau at step 0")
    p.add_argument("--ema-schedule", choices=("cosine", "constant"), default=d.ema_schedule)
    p.add_argument(
        "--labels",
        choices=("soft", "hard"),
        default=d.labels,
        help="soft: continuous labels from inverse-warped similarity; hard: all 1",
    )
    p.add_argument(
        "--no-curriculum",
        action="store_true",
        help="full transformation strength and alpha from step 0",
    )
    p.add_argument("--alpha", type=float, default=d.alpha_max, help="alpha at full strength")
    p.add_argument("--label-temperature", type=float, default=d.label_temperature)
    p.add_argument(
        "--det-weight",
        type=float,
        default=d.det_weight,
        help="weight of the repeatability + peakiness detector terms",
    )
    p.add_argument(
        "--peaky-weight",
        type=float,
        default=d.peaky_weight,
        help="weight of the peakiness detector term",
    )
    p.add_argument(
        "--cell-pool",
        choices=("mean", "max"),
        default=d.cell_pool,
        help="a descriptor cell's detection score in the D2 weight: the mean of its scores, "
        "or their max (D2-Net; it grid-locked keypoints to one in-cell position)",
    )
    p.add_argument(
        "--keypoint-distill",
        type=float,
        default=d.keypoint_weight,
        help="weight of keypoint distillation of the score map during TPR",
    )
    p.add_argument(
        "--max-perspective",
        type=float,
        default=d.max_perspective,
        help="training homographies: largest corner displacement, as a fraction of the crop, at "
        "full curriculum strength (viewpoint change)",
    )
    p.add_argument(
        "--max-log2-scale",
        type=float,
        default=d.max_log2_scale,
        help="training homographies: zoom in [2^-S, 2^S] at full curriculum strength (scale "
        "change)",
    )
    p.add_argument(
        "--keypoint-teacher",
        choices=KEYPOINT_TEACHERS,
        default=d.keypoint_teacher,
        help="classical detector the score map distils (with --keypoint-distill and in the warm "
        "start): SIFT blobs, or Harris / FAST corners",
    )
    p.add_argument(
        "--teacher-repeat-px",
        type=float,
        default=d.teacher_repeat_px,
        metavar="PX",
        help="distil only the teacher's keypoints that it finds again in the pair's other view "
        "within PX pixels (0 = all keypoints; harris / fast teachers)",
    )
    p.add_argument(
        "--teacher-subpixel-warps",
        type=int,
        default=d.teacher_subpixel_warps,
        metavar="K",
        help="sub-pixel teacher: each harris / fast corner moves to its mean position over K "
        "fixed small warps of the crop and is spread over its four nearest pixels in the "
        "teacher's map (0 = integer pixels)",
    )
    p.add_argument(
        "--infonce",
        type=float,
        default=d.infonce_weight,
        help="weight of an InfoNCE term with negatives added to TPR (0 = pure TPR)",
    )
    p.add_argument(
        "--warm-start-steps",
        type=int,
        default=d.warm_start_steps,
        help="steps of SIFT descriptor/keypoint distillation before TPR",
    )
    p.add_argument(
        "--polish-steps",
        type=int,
        default=d.polish_steps,
        help="after --steps: steps that train only the detector heads on the keypoint teacher "
        "(features frozen, constant --lr)",
    )
    p.add_argument(
        "--polish-peak",
        type=float,
        default=d.polish_peak_weight,
        metavar="W",
        help="weight of the polish's localisation term (softmax over the 7x7 score logits "
        "around each teacher keypoint; 0 = off)",
    )
    p.add_argument(
        "--images",
        action="append",
        default=[],
        metavar="DIR",
        help="training image folder (repeatable)",
    )
    p.add_argument(
        "--skimage",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use scikit-image's bundled photographs",
    )
    p.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="render a synthetic drive of N frames and train on every 5th",
    )
    p.add_argument(
        "--dead-leaves",
        type=int,
        default=d.dead_leaves,
        metavar="N",
        help="add N procedural dead-leaves images (random shapes at all scales) to the training "
        "images",
    )
    p.add_argument("--eval-set", default="", help="HPatches folder for MMA@3 in the log")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument(
        "--ddp",
        action="store_true",
        help="DistributedDataParallel; launch with torchrun --nproc_per_node N",
    )
    p.add_argument(
        "--data-workers",
        type=int,
        default=0,
        metavar="N",
        help="draw each step's batch in N worker processes, seeded by (seed, step), so a GPU "
        "is not kept waiting (0 = in the training process)",
    )
    p.add_argument("--max-minutes", type=float, default=0.0, help="end this chunk after N min")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.set_defaults(func=run)


def _defaults():
    from tpr_vo.training.config import TrainConfig

    return TrainConfig()


def config_from_args(args):
    from tpr_vo.training.config import TrainConfig

    return dataclasses.replace(
        TrainConfig(),
        out_dir=args.out,
        steps=args.steps,
        batch_size=args.batch,
        crop_height=args.crop[0],
        crop_width=args.crop[1],
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        width=args.width,
        depth=args.depth,
        descriptor_dim=args.descriptor_dim,
        descriptor_stride=args.descriptor_stride,
        fine_width=args.fine_width,
        half_width=args.half_width,
        half_depth=args.half_depth,
        half_pixels=args.half_pixels,
        trunk_dilation=args.trunk_dilation,
        ema_base=args.ema,
        ema_schedule=args.ema_schedule,
        labels=args.labels,
        curriculum=not args.no_curriculum,
        alpha_max=args.alpha,
        label_temperature=args.label_temperature,
        det_weight=args.det_weight,
        peaky_weight=args.peaky_weight,
        cell_pool=args.cell_pool,
        keypoint_weight=args.keypoint_distill,
        keypoint_teacher=args.keypoint_teacher,
        teacher_repeat_px=args.teacher_repeat_px,
        teacher_subpixel_warps=args.teacher_subpixel_warps,
        max_perspective=args.max_perspective,
        max_log2_scale=args.max_log2_scale,
        infonce_weight=args.infonce,
        warm_start_steps=args.warm_start_steps,
        polish_steps=args.polish_steps,
        polish_peak_weight=args.polish_peak,
        image_dirs=tuple(args.images),
        use_skimage=args.skimage,
        synthetic_frames=args.synthetic,
        dead_leaves=args.dead_leaves,
        eval_set=args.eval_set,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        ddp=args.ddp,
        data_workers=args.data_workers,
        max_minutes=args.max_minutes,
        resume=args.resume,
    )


def run(args) -> int:
    from tpr_vo.training.trainer import command_line, train

    result = train(config_from_args(args), command=command_line())
    mma = "n/a" if result.mma3 is None else f"{result.mma3:.3f}"
    print(
        f"step {result.step}  {result.elapsed_s / 60:.1f} min  MMA@3 {mma}  "
        f"model {result.out_dir / 'model.pt'}  log {result.out_dir / 'log.csv'}"
    )
    return 0
