"""The TPR network: a small fully convolutional detector + descriptor, and its checkpoint I/O.

`TPRNet.forward(image)` is the exported graph: pure tensors in, pure tensors out, no
data-dependent control flow, only conv / BN / ReLU / pixel-shuffle / sigmoid / L2-normalise, so
ONNX Runtime and TensorRT run it as is. Keypoint extraction (NMS, top-k, sub-pixel refinement,
descriptor sampling) lives in `tpr_vo.features.postprocess`, shared by every backend.

Layout (default width=24, descriptor_dim=64, descriptor_stride=8):

    image (B,1,H,W) -> conv3x3/2 (8ch, 1/2) -> conv3x3/2 (w, 1/4) -> conv3x3/2 (2w, 1/8)
        -> `depth` x conv3x3 (2w, 1/8) = trunk
    trunk -> conv3x3 -> conv1x1 (64 = 8*8) -> pixel-shuffle(8) -> sigmoid  = scores (B,1,H,W)
    trunk -> conv3x3 -> conv1x1 (D)                                      = descriptors at 1/8
          (descriptor_stride=4: conv1x1 (4D) -> pixel-shuffle(2), plus a 1/4 skip)

Optional fine detector (`fine_width` > 0, XFeat-style): the image's 8x8 cells as 64 channels at
1/8 (pixel-unshuffle, each cell's mean removed and its contrast normalised), concatenated with
the trunk, go through 1x1 convs whose 64 outputs are added to the score logits before the
pixel-shuffle. The coarse head alone places keypoints within a cell from 1/8 features; this
branch sees the cell's pixels. Its last conv starts at zero, so a checkpoint without it loads
and behaves as before.

Optional half-resolution detector (`half_width` > 0): `half_depth` x conv3x3 (half_width) ->
conv3x3 (4) on the stem's 1/2-resolution features, pixel-shuffled (2) and added to the
full-resolution score logits. Unlike the fine branch it sees across cell borders (a 7x7-pixel
window per output with one conv), for keypoints placed to the pixel; it also starts at zero.
`half_pixels`: its input also holds the image's 2x2 pixels at 1/2 (pixel-unshuffle, mean
removed), the exact pixel values the stride-2 stem blurs; with `half_depth` 2 (an 11x11-pixel
window) this head can follow a corner teacher to the pixel (model card, "Session 13").

Full-resolution convolutions dominate CPU time (a 16-channel full-resolution stem cost ~140 ms
per KITTI frame in a prototype), so the first conv already has stride 2 and the score map gets
its full resolution back from pixel-shuffle.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import nn

from tpr_vo.atomic import atomic_path
from tpr_vo.errors import BackendUnavailableError, DataError

log = logging.getLogger(__name__)

INPUT_MULTIPLE = 32  # H and W of the network input must be multiples of this


def _conv_bn_relu(
    c_in: int, c_out: int, stride: int = 1, kernel: int = 3, dilation: int = 1
) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TPRNet(nn.Module):
    """Detector + descriptor network.

    Args (plain numbers only, so a checkpoint's `arch` dict rebuilds the network):
        width: channels at 1/4 resolution; the 1/8 trunk has 2*width.
        descriptor_dim: D, length of each descriptor.
        descriptor_stride: 8 (descriptors at 1/8) or 4 (1/4).
        depth: number of extra 3x3 convs in the 1/8 trunk.
        stem_width: channels at 1/2 resolution.
        fine_width: channels of the fine detector branch (0 = none).
        half_width: channels of the half-resolution detector branch (0 = none).
        half_depth: conv3x3-BN-ReLU layers of that branch before its output conv.
        half_pixels: 1 = that branch also sees the image's 2x2 pixels (pixel-unshuffle).
    """

    def __init__(
        self,
        width: int = 24,
        descriptor_dim: int = 64,
        descriptor_stride: int = 8,
        depth: int = 2,
        stem_width: int = 8,
        fine_width: int = 0,
        half_width: int = 0,
        trunk_dilation: int = 1,
        half_depth: int = 1,
        half_pixels: int = 0,
    ) -> None:
        super().__init__()
        if descriptor_stride not in (4, 8):
            raise ValueError(f"descriptor_stride must be 4 or 8, got {descriptor_stride}")
        self.arch: dict[str, int] = {
            "width": int(width),
            "descriptor_dim": int(descriptor_dim),
            "descriptor_stride": int(descriptor_stride),
            "depth": int(depth),
            "stem_width": int(stem_width),
        }
        if fine_width:
            self.arch["fine_width"] = int(fine_width)
        if half_width:
            self.arch["half_width"] = int(half_width)
        if trunk_dilation != 1:
            self.arch["trunk_dilation"] = int(trunk_dilation)
        if half_width and half_depth != 1:
            self.arch["half_depth"] = int(half_depth)
        if half_width and half_pixels:
            self.arch["half_pixels"] = 1
        if half_width and half_depth < 1:
            raise ValueError(f"half_depth must be >= 1, got {half_depth}")
        w2 = 2 * width
        self.stem = nn.Sequential(
            _conv_bn_relu(1, stem_width, stride=2),
            _conv_bn_relu(stem_width, width, stride=2),
        )
        self.down = _conv_bn_relu(width, w2, stride=2)
        self.trunk = nn.Sequential(
            *[_conv_bn_relu(w2, w2, dilation=trunk_dilation) for _ in range(depth)]
        )
        self.score_head = nn.Sequential(_conv_bn_relu(w2, w2), nn.Conv2d(w2, 64, 1))
        self.desc_body = _conv_bn_relu(w2, w2)
        if descriptor_stride == 8:
            self.desc_out = nn.Conv2d(w2, descriptor_dim, 1)
            self.desc_skip = None
        else:
            self.desc_out = nn.Sequential(nn.Conv2d(w2, 4 * descriptor_dim, 1), nn.PixelShuffle(2))
            self.desc_skip = nn.Conv2d(width, descriptor_dim, 1)
        self.fine_head = None
        if fine_width:
            last = nn.Conv2d(fine_width, 64, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.fine_head = nn.Sequential(
                _conv_bn_relu(64 + w2, fine_width, kernel=1),
                _conv_bn_relu(fine_width, fine_width, kernel=1),
                last,
            )
        self.half_head = None
        if half_width:
            last = nn.Conv2d(half_width, 4, 3, padding=1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            half_in = stem_width + (4 if half_pixels else 0)
            layers = [_conv_bn_relu(half_in, half_width)]
            layers += [_conv_bn_relu(half_width, half_width) for _ in range(half_depth - 1)]
            self.half_head = nn.Sequential(*layers, last)

    @property
    def descriptor_dim(self) -> int:
        return self.arch["descriptor_dim"]

    @property
    def descriptor_stride(self) -> int:
        return self.arch["descriptor_stride"]

    def detector_heads(self) -> list[nn.Module]:
        """The modules that turn features into score logits (what a detector polish trains)."""
        heads = [self.score_head, self.fine_head, self.half_head]
        return [h for h in heads if h is not None]

    def forward_raw(
        self, image: torch.Tensor, detach_features: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training view: (score logits (B,1,H,W), unnormalised descriptors (B,D,H/s,W/s)).
        `detach_features`: the stem and trunk get no gradient (only the heads train)."""
        half = self.stem[0](image)
        quarter = self.stem[1](half)
        trunk = self.trunk(self.down(quarter))
        if detach_features:
            half, quarter, trunk = half.detach(), quarter.detach(), trunk.detach()
        cells = self.score_head(trunk)
        if self.fine_head is not None:
            cells = cells + self.fine_head(torch.cat([_cell_pixels(image), trunk], dim=1))
        logits = nnf.pixel_shuffle(cells, 8)
        if self.half_head is not None:
            if self.arch.get("half_pixels"):
                half = torch.cat([half, _pair_pixels(image)], dim=1)
            logits = logits + nnf.pixel_shuffle(self.half_head(half), 2)
        desc = self.desc_out(self.desc_body(trunk))
        if self.desc_skip is not None:
            desc = desc + self.desc_skip(quarter)
        return logits, desc

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image: (B, 1, H, W) float32 in [0, 1], H and W multiples of 32.

        Returns scores (B, 1, H, W) float32 in [0, 1] and descriptors (B, D, H/s, W/s) float32
        with unit L2 norm over D (s = descriptor_stride).
        """
        logits, desc = self.forward_raw(image)
        return torch.sigmoid(logits), nnf.normalize(desc, p=2.0, dim=1, eps=1e-6)


def _cell_pixels(image: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) -> (B,64,H/8,W/8): each 8x8 cell's pixels, mean removed, unit contrast.

    The pixel-unshuffle is written as a stride-8 convolution with one-hot kernels (the same
    values, exactly: each output is one pixel times 1): exported, it is one Conv instead of
    Reshape-Transpose-Reshape, which cost ONNX Runtime ~1-2 ms more per KITTI frame."""
    cells = _unshuffle(image, 8)
    cells = cells - cells.mean(dim=1, keepdim=True)
    return cells / (cells.abs().mean(dim=1, keepdim=True) + 0.01)


def _pair_pixels(image: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) -> (B,4,H/2,W/2): each 2x2 block's pixels, its mean removed, times 4 (about unit
    scale for the contrast of a textured image in [0, 1]), through `_unshuffle`."""
    pixels = _unshuffle(image, 2)
    return 4.0 * (pixels - pixels.mean(dim=1, keepdim=True))


def _unshuffle(image: torch.Tensor, factor: int) -> torch.Tensor:
    """(B,1,H,W) -> (B,factor^2,H/factor,W/factor) pixel-unshuffle as a stride-`factor`
    convolution with one-hot kernels (each output is one pixel times 1)."""
    n = factor * factor
    one_hot = torch.eye(n, dtype=image.dtype, device=image.device).reshape(n, 1, factor, factor)
    return nnf.conv2d(image, one_hot, stride=factor)


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def save_checkpoint(path: str | os.PathLike, model: TPRNet, meta: dict[str, Any]) -> None:
    """Write {"arch", "state_dict", "meta"} atomically (temp file + rename)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"arch": dict(model.arch), "state_dict": state, "meta": dict(meta)}, tmp)


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> TPRNet:
    """Rebuild a TPRNet from a checkpoint written by `save_checkpoint` (or a training
    checkpoint holding the same keys); returns it in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise BackendUnavailableError(f"{path}: TPR model file not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise DataError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or "arch" not in ckpt or "state_dict" not in ckpt:
        raise DataError(f"{path}: expected a checkpoint with 'arch' and 'state_dict' keys")
    try:
        model = TPRNet(**ckpt["arch"])
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: checkpoint does not match TPRNet ({exc})") from exc
    model.to(map_location)
    model.eval()
    return model


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The `meta` dict of a checkpoint (training command, step, data), without building a net."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    return dict(ckpt.get("meta", {}))
