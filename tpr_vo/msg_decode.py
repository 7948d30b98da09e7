"""ROS message payloads as numpy, without ROS: sensor_msgs/Image buffers and CameraInfo matrices.

Shared by the ROS node (tpr_vo/ros/conversions.py, real rclpy messages) and the rosbag2 reader
(tpr_vo/datasets/rosbag.py, rosbags messages), which carry the same fields.
"""

from __future__ import annotations

import numpy as np

from tpr_vo.errors import DataError
from tpr_vo.types import CameraIntrinsics

# encoding -> (channels, numpy dtype); the encodings the node accepts (DESIGN.md §5).
ENCODINGS: dict[str, tuple[int, type]] = {
    "mono8": (1, np.uint8),
    "bgr8": (3, np.uint8),
    "rgb8": (3, np.uint8),
    "mono16": (1, np.uint16),
}


def decode_image(
    encoding: str, height: int, width: int, step: int, data, is_bigendian: bool = False
) -> np.ndarray:
    """The image buffer as an array: (H, W) for mono, (H, W, 3) for colour, in the message's
    channel order and dtype. Raises DataError on an unsupported encoding or a size mismatch."""
    if encoding not in ENCODINGS:
        raise DataError(
            f"image encoding {encoding!r} is not supported (expected one of {sorted(ENCODINGS)})"
        )
    channels, dtype = ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if height <= 0 or width <= 0:
        raise DataError(f"image is empty ({width}x{height} px)")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise DataError(f"image data is empty for a {width}x{height} {encoding} image")
    if step < row_bytes:
        raise DataError(f"image step {step} B is smaller than width*channels ({row_bytes} B)")
    if buffer.size != step * height:
        raise DataError(
            f"image data has {buffer.size} B, expected step*height = {step}*{height} = "
            f"{step * height} B for {width}x{height} {encoding}"
        )
    rows = buffer.reshape(height, step)[:, :row_bytes]
    big = ">" if is_bigendian else "<"
    pixels = np.ascontiguousarray(rows).view(np.dtype(dtype).newbyteorder(big))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape).astype(dtype, copy=False)


def to_gray_u8(image: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) uint8 grayscale from a decoded image. mono16 is scaled by 255/65535 as cv_bridge
    does; colour uses the ITU-R 601 luma weights (OpenCV's cvtColor)."""
    if encoding == "mono8":
        return image
    if encoding == "mono16":
        return np.rint(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    import cv2

    code = cv2.COLOR_BGR2GRAY if encoding == "bgr8" else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(np.ascontiguousarray(image), code)


def encode_image(
    image: np.ndarray, encoding: str | None = None
) -> tuple[str, int, int, int, bytes]:
    """(encoding, height, width, step, data) for an array: (H, W) uint8 -> mono8, (H, W) uint16
    -> mono16, (H, W, 3) uint8 -> bgr8 (or `encoding`="rgb8" when the channels are RGB)."""
    if image.ndim == 2 and image.dtype == np.uint8:
        default = "mono8"
    elif image.ndim == 2 and image.dtype == np.uint16:
        default = "mono16"
    elif image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        default = "bgr8"
    else:
        raise DataError(f"cannot encode an image of shape {image.shape} and dtype {image.dtype}")
    encoding = encoding or default
    if encoding != default and {encoding, default} != {"bgr8", "rgb8"}:
        raise DataError(f"encoding {encoding!r} does not fit an image of shape {image.shape}")
    pixels = np.ascontiguousarray(image)
    if pixels.dtype.byteorder == ">":
        pixels = pixels.astype(pixels.dtype.newbyteorder("<"))
    height, width = image.shape[:2]
    step = width * (1 if image.ndim == 2 else 3) * pixels.dtype.itemsize
    return encoding, height, width, step, pixels.tobytes()


def intrinsics_from_camera_info(
    k_3x3: np.ndarray,
    p_3x4: np.ndarray,
    width_px: int,
    height_px: int,
    right_p_3x4: np.ndarray | None = None,
) -> CameraIntrinsics:
    """Pinhole intrinsics of the (rectified) image. The projection matrix P describes the
    rectified image the node receives; K is used only when P is unset (all zero). With the right
    camera's P (P[0, 3] = -fx * baseline), the stereo baseline is set too."""
    k = np.asarray(k_3x3, dtype=np.float64).reshape(3, 3)
    p = np.asarray(p_3x4, dtype=np.float64).reshape(3, 4)
    if p[0, 0] > 0 and p[1, 1] > 0:
        fx, fy, cx, cy = p[0, 0], p[1, 1], p[0, 2], p[1, 2]
    elif k[0, 0] > 0 and k[1, 1] > 0:
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    else:
        raise DataError("camera_info has neither P nor K set (focal lengths are 0)")
    baseline_m = None
    if right_p_3x4 is not None:
        pr = np.asarray(right_p_3x4, dtype=np.float64).reshape(3, 4)
        if pr[0, 0] <= 0 or not -pr[0, 3] / pr[0, 0] > 0:
            raise DataError(
                "right camera_info P[0,3] must be -fx*baseline < 0 (rectified stereo), "
                f"got P[0,3]={pr[0, 3]} and fx={pr[0, 0]}"
            )
        baseline_m = float(-pr[0, 3] / pr[0, 0])
    if width_px <= 0 or height_px <= 0:
        raise DataError(f"camera_info image size is {width_px}x{height_px} px (expected > 0)")
    return CameraIntrinsics(
        float(fx), float(fy), float(cx), float(cy), int(width_px), int(height_px), baseline_m
    )


def camera_info_matrices(
    intrinsics: CameraIntrinsics, right: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(K (3,3), P (3,4)) of a rectified camera; `right` puts -fx*baseline in P[0,3]."""
    K = intrinsics.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    if right:
        if not intrinsics.baseline_m:
            raise DataError("a right camera_info needs intrinsics.baseline_m > 0")
        P[0, 3] = -intrinsics.fx * intrinsics.baseline_m
    return K, P
