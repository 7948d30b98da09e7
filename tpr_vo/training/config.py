"""Training options (plain dataclass, no torch import, so `tpr-vo train --help` is instant)."""

from __future__ import annotations

from dataclasses import dataclass

from tpr_vo.errors import ConfigError

KEYPOINT_TEACHERS = ("sift", "harris", "fast")  # classical detectors `--keypoint-teacher` takes


@dataclass(frozen=True)
class TrainConfig:
    out_dir: str = "runs/tpr"
    steps: int = 2000  # total steps of the run (all chunks); schedules follow it
    batch_size: int = 8  # per process
    crop_height: int = 192
    crop_width: int = 256
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # cosine | constant (after linear warm-up)
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    width: int = 24
    descriptor_dim: int = 64
    descriptor_stride: int = 8
    depth: int = 2
    fine_width: int = 0  # > 0: fine detector branch on the 8x8 cell pixels (TPRNet)
    half_width: int = 0  # > 0: half-resolution detector branch (TPRNet)
    half_depth: int = 1  # its conv3x3 layers before the output conv (TPRNet)
    half_pixels: bool = False  # it also sees the image's 2x2 pixels (TPRNet)
    trunk_dilation: int = 1  # dilation of the 1/8 trunk's 3x3 convs (receptive field)
    ema_base: float = 0.99  # tau at step 0
    ema_schedule: str = "cosine"  # cosine (tau -> 1) | constant
    labels: str = "soft"  # soft | hard
    curriculum: bool = True  # transformation strength (and alpha) rise over the first half
    min_strength: float = 0.25
    max_perspective: float = 0.25  # homography corner displacement at full strength (of the crop)
    max_log2_scale: float = 0.6  # homography zoom in [2^-s, 2^s] at full strength
    alpha_max: float = 1.0
    label_temperature: float = 0.5
    det_weight: float = 1.0  # repeatability
    peaky_weight: float = 1.0  # peakiness
    cell_pool: str = "mean"  # D2 weight of a descriptor cell from its scores: mean | max
    keypoint_weight: float = 0.0  # keypoint distillation of the score map during TPR
    keypoint_teacher: str = "sift"  # detector distilled: sift | harris | fast
    # > 0: distil only the teacher's keypoints that it finds again in the pair's other view
    # within this many pixels (harris / fast teachers)
    teacher_repeat_px: float = 0.0
    # > 0: the harris / fast teacher's corners averaged over this many small warps of the image
    # (sub-pixel) and spread over their four nearest pixels in the teacher's maps
    teacher_subpixel_warps: int = 0
    infonce_weight: float = 0.0  # > 0: TPR + InfoNCE variant
    infonce_temperature: float = 0.07
    warm_start_steps: int = 0  # SIFT distillation steps before TPR
    # Detector polish: steps after `steps` that train only the score heads on the keypoint
    # teacher (stem, trunk and descriptor frozen), at the constant rate `lr`.
    polish_steps: int = 0
    polish_peak_weight: float = 0.0  # > 0: the polish adds the teacher's localisation term
    image_dirs: tuple[str, ...] = ()
    use_skimage: bool = True
    synthetic_frames: int = 0  # render a synthetic drive of this many frames for training
    dead_leaves: int = 0  # add this many procedural dead-leaves images (training/procedural.py)
    eval_set: str = ""  # HPatches-layout folder for MMA@3 during training (evaluation only)
    eval_every: int = 0  # 0 = only at the end of each chunk
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0 = torch's default
    ddp: bool = False  # under torchrun: DistributedDataParallel (gloo on CPU, nccl on CUDA)
    data_workers: int = 0  # > 0: draw batches in this many processes (batches.py), for GPUs
    max_minutes: float = 0.0  # end this chunk after this many minutes (0 = run to `steps`)
    resume: bool = False

    def validate(self) -> None:
        choices = {
            "labels": ("soft", "hard"),
            "cell_pool": ("mean", "max"),
            "keypoint_teacher": KEYPOINT_TEACHERS,
            "lr_schedule": ("cosine", "constant"),
            "ema_schedule": ("cosine", "constant"),
            "device": ("auto", "cpu", "cuda"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"train: '{key}' must be one of {allowed}")
        if self.crop_height % 32 or self.crop_width % 32:
            raise ConfigError("train: crop_height and crop_width must be multiples of 32")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("train: steps and batch_size must be >= 1")
        if not 0.0 <= self.max_perspective < 1.0:
            raise ConfigError("train: max_perspective must be in [0, 1)")
        if not 0.0 <= self.max_log2_scale <= 2.0:
            raise ConfigError("train: max_log2_scale must be in [0, 2] (zoom 1/4 .. 4)")
        if self.teacher_repeat_px < 0:
            raise ConfigError("train: teacher_repeat_px must be >= 0 (0 = off)")
        if self.teacher_repeat_px > 0 and self.keypoint_teacher == "sift":
            raise ConfigError("train: teacher_repeat_px needs keypoint_teacher harris or fast")
        if self.teacher_subpixel_warps < 0:
            raise ConfigError("train: teacher_subpixel_warps must be >= 0 (0 = off)")
        if self.teacher_subpixel_warps > 0 and self.keypoint_teacher == "sift":
            raise ConfigError(
                "train: teacher_subpixel_warps needs keypoint_teacher harris or fast"
            )
        if self.dead_leaves < 0:
            raise ConfigError("train: dead_leaves must be >= 0")
        if self.data_workers < 0:
            raise ConfigError("train: data_workers must be >= 0")
        if self.half_depth < 1:
            raise ConfigError("train: half_depth must be >= 1")
        if (self.half_depth != 1 or self.half_pixels) and self.half_width < 1:
            raise ConfigError("train: half_depth / half_pixels need half_width > 0")
        if self.polish_peak_weight < 0:
            raise ConfigError("train: polish_peak_weight must be >= 0")
        if self.polish_steps < 0:
            raise ConfigError("train: polish_steps must be >= 0")
        if not 0.0 <= self.ema_base <= 1.0:
            raise ConfigError("train: ema_base must be in [0, 1]")
