"""Make an HPatches-layout viewpoint set from one photo, to check matching choices on images
that neither training nor tuning has seen (v_graf is the only real homography set we have).

Image 1 is the photo; images 2..6 show it as a plane seen by a camera orbiting the plane's
centre about the vertical axis by 20, 30, 40, 50 and 60 degrees (v_graf's range), each with a
mild random brightness / contrast / gamma change and pixel noise; H_1_k maps image-1 pixels to
image k. Pixels that leave the view are black, as in a re-photographed scene they would be
missing.

    SEQ=../shared/data/kitti/dataset/sequences/06
    python benchmarks/make_viewpoint_set.py $SEQ/image_0/000000.png /tmp/vp0
    tpr-vo mma /tmp/vp0 --features tpr orb sift
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ANGLES_DEG = (20.0, 30.0, 40.0, 50.0, 60.0)


def orbit_homography(width_px: int, height_px: int, angle_deg: float) -> np.ndarray:
    """H (3x3) from the frontal view of a plane filling the image (pinhole, focal = width,
    plane at depth 1) to the view of a camera that orbits the plane's centre by `angle_deg`
    about the vertical axis and keeps looking at it."""
    K = np.array([[width_px, 0, width_px / 2], [0, width_px, height_px / 2], [0, 0, 1]], float)
    a = np.radians(angle_deg)
    R_world_cam = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    center = np.array([0.0, 0.0, 1.0]) - R_world_cam @ np.array([0.0, 0.0, 1.0])
    corners = np.array([[0, 0], [width_px, 0], [width_px, height_px], [0, height_px]], float)
    plane = np.linalg.inv(K) @ np.vstack([corners.T, np.ones(4)])  # depth 1
    cam = R_world_cam.T @ (plane - center[:, None])
    seen = (K @ cam)[:2] / cam[2]
    return cv2.getPerspectiveTransform(corners.astype(np.float32), seen.T.astype(np.float32))


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(0.8, 1.2) + rng.uniform(-0.08, 0.08), 0.0, 1.0)
    x = x ** rng.uniform(0.8, 1.25)
    x = x * 255.0 + rng.normal(0.0, 2.0, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_set(source: Path, out: Path, seed: int = 0) -> None:
    image = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"{source}: not a readable image")
    h, w = image.shape
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "1.png"), image)
    for k, angle in enumerate(ANGLES_DEG, start=2):
        H = orbit_homography(w, h, angle)
        warped = cv2.warpPerspective(image, H, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        cv2.imwrite(str(out / f"{k}.png"), photometric(warped, rng))
        np.savetxt(out / f"H_1_{k}", H)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path, help="the photo (grey or colour; read as grey)")
    parser.add_argument("out", type=Path, help="folder to write 1.png..6.png and H_1_2..H_1_6")
    parser.add_argument("--seed", type=int, default=0, help="photometric changes")
    args = parser.parse_args(argv)
    make_set(args.image, args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
