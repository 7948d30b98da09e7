"""One typed configuration with four faces.

1. Frozen dataclass defaults (this file).
2. One YAML in ROS-params shape (`/**: ros__parameters: {...}`), e.g. config/kitti.yaml; the loader
   unwraps `ros__parameters`, accepts nested or dotted keys and rejects unknown keys by name.
3. ROS parameters with the same dotted names (`frontend.ransac_threshold_px`): `to_flat_dict`.
4. A dump of the effective config next to results: `dump_config`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from tpr_vo.atomic import write_text_atomic
from tpr_vo.errors import ConfigError


@dataclass(frozen=True)
class FeaturesConfig:
    kind: str = "tpr"  # tpr | orb | sift
    backend: str = "auto"  # auto | tensorrt | onnxruntime | torch (tpr only)
    max_keypoints: int = 2000
    model_path: str = ""  # "" = the model shipped in models/
    nms_radius_px: int = 4  # 4: ~1,510 keypoints per KITTI frame (tpr_large; 5: ~1,180)
    refine_radius_px: int = 3  # sub-pixel soft-argmax window: (2r+1)^2 score pixels; 0 = off
    # Image scales the network runs at (TPR only); keypoints of all of them are merged by score.
    # [1.0] = single scale (VO); e.g. [1.41, 1.0, 0.71] for matching across viewpoint changes,
    # at ~3.5x the network time (models/MODEL_CARD.md, "Session 10").
    scales: list[float] = field(default_factory=lambda: [1.0])
    score_threshold: float = 0.005
    border_px: int = 8
    onnx_threads: int = 0  # 0 = auto: ONNX Runtime's default; cores - 1 in a prefetch thread
    # ONNX Runtime on the CPU runs the model's `<name>_int8.onnx` (tpr-vo export --int8) when it
    # lies beside the float one: 2.3x faster for tpr_large at the same MMA (model card).
    onnx_int8: bool = True
    engine_cache_dir: str = "~/.cache/tpr_vo/engines"
    fp16: bool = True


@dataclass(frozen=True)
class MatchingConfig:
    ratio: float = 0.9  # Lowe ratio test; 1.0 disables it
    mutual: bool = True
    max_hamming: int = 80  # binary descriptors only
    guided_radius_px: float = 40.0  # search radius around predicted projections


@dataclass(frozen=True)
class FrontendConfig:
    kind: str = "map"  # map (local map + PnP) | f2f (frame-to-frame essential matrix chain)
    mode: str = "mono"  # mono | stereo
    scale: str = "none"  # none | gt | height (mono only)
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.999
    # PnP / local BA / triangulation inlier threshold and Huber scale (px of a typical keypoint,
    # after the covariance whitening). 1.0 since session 20, chosen on rendered drives (2.0
    # before); cameras with rougher calibration may need more.
    pnp_threshold_px: float = 1.0
    min_inliers: int = 20
    min_parallax_deg: float = 1.0
    keyframe_parallax_deg: float = 2.0  # mono: a new keyframe beyond this parallax
    stereo_keyframe_parallax_deg: float = 3.0  # stereo: the same (stereo points need fewer)
    keyframe_tracked_ratio: float = 0.6
    max_map_points: int = 4000
    local_ba: bool = True
    essential_check: bool = True  # mono map: cross-check weak PnP poses with a two-view E
    epipolar_refine: bool = True  # map: pose refinement adds 2D-2D matches to the last frame
    # map: PnP, local BA and the epipolar term weigh each keypoint by its position covariance
    # (TPR: the spread of the sub-pixel soft-argmax; ORB, SIFT: the image's structure tensor)
    keypoint_covariance: bool = True
    stereo_subpixel: bool = True  # stereo: disparity refined by patch correlation on the row
    road_scale: bool = True  # mono height: step lengths from the road's homography (else: a
    # plane fitted to map points, which needs features on the road)
    ba_window: int = 5
    lost_frames_before_reinit: int = 3
    camera_height_m: float = 1.65
    max_depth_m: float = 100.0
    stationary_px: float = 0.5  # median flow below this = stationary frame
    # numpy/scipy BLAS threads, process-wide, set when a VisualOdometry is built (0 = leave the
    # library default). The frontend's matrices are tiny, and idle BLAS threads spin on the cores
    # ONNX Runtime needs (benchmarks/README.md).
    blas_threads: int = 1

    @property
    def uses_keypoint_covariance(self) -> bool:
        """Whether tracking reads `Features.keypoint_cov_px2` (only the map frontend does)."""
        return self.kind == "map" and self.keypoint_covariance


@dataclass(frozen=True)
class CameraConfig:
    """Intrinsics override (0 = take them from the dataset or camera_info) and the extrinsic."""

    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    baseline_m: float = 0.0
    # base_link -> camera optical frame (REP-103): translation and quaternion (x, y, z, w).
    base_to_camera_xyz_m: list[float] = field(default_factory=lambda: [0.0, 0.0, 1.65])
    base_to_camera_quat_xyzw: list[float] = field(default_factory=lambda: [-0.5, 0.5, -0.5, 0.5])


@dataclass(frozen=True)
class RosConfig:
    publish_tf: bool = True
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    path_max_length: int = 2000
    queue_size: int = 2
    image_qos: str = "sensor_data"  # sensor_data (best effort: any camera) | reliable
    pipeline: bool = True  # extract frame i+1 in a second thread while frame i is tracked
    publish_map_points: bool = True  # `map_points` (PointCloud2 in odom), only while subscribed


@dataclass(frozen=True)
class VoConfig:
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    ros: RosConfig = field(default_factory=RosConfig)
    seed: int = 0


_CHOICES = {
    "features.kind": ("tpr", "orb", "sift"),
    "features.backend": ("auto", "tensorrt", "onnxruntime", "torch"),
    "frontend.kind": ("map", "f2f"),
    "frontend.mode": ("mono", "stereo"),
    "frontend.scale": ("none", "gt", "height"),
    "ros.image_qos": ("sensor_data", "reliable"),
}
_POSITIVE = (
    "features.max_keypoints",
    "matching.guided_radius_px",
    "frontend.ransac_threshold_px",
    "frontend.pnp_threshold_px",
    "frontend.min_inliers",
    "frontend.max_map_points",
    "frontend.ba_window",
    "frontend.lost_frames_before_reinit",
    "frontend.camera_height_m",
    "frontend.max_depth_m",
    "ros.path_max_length",
    "ros.queue_size",
)
_VARIABLE_LISTS = ("features.scales",)  # lists of any length (1..MAX_SCALES numbers)
MAX_SCALES = 8
SCALE_RANGE = (0.25, 4.0)
_UNIT_INTERVAL = (
    "matching.ratio",
    "frontend.ransac_confidence",
    "frontend.keyframe_tracked_ratio",
)


def to_flat_dict(cfg: VoConfig) -> dict[str, Any]:
    """`{"frontend.ransac_threshold_px": 1.0, ..., "seed": 0}`: the ROS parameter names."""
    flat: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            for sub in fields(value):
                flat[f"{f.name}.{sub.name}"] = getattr(value, sub.name)
        else:
            flat[f.name] = value
    return flat


def to_nested_dict(cfg: VoConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _flatten(tree: dict[str, Any], prefix: str, source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise ConfigError(f"{source}: key {key!r} is not a string")
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + ".", source))
        else:
            flat[name] = value
    return flat


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    expected = type(default)
    if expected is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{name}' expects true or false, got {value!r}")
    if expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{name}' expects an integer, got {value!r}")
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{source}: '{name}' expects a number, got {value!r}")
    if expected is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: '{name}' expects a string, got {value!r}")
    if expected is list:
        if isinstance(value, (list, tuple)) and (
            name in _VARIABLE_LISTS or len(value) == len(default)
        ):
            try:
                return [float(v) for v in value]
            except (TypeError, ValueError):
                pass
        count = "numbers" if name in _VARIABLE_LISTS else f"{len(default)} numbers"
        raise ConfigError(f"{source}: '{name}' expects a list of {count}, got {value!r}")
    raise ConfigError(f"{source}: '{name}' has an unsupported type")  # pragma: no cover


def _validate(flat: dict[str, Any], source: str) -> None:
    for name, choices in _CHOICES.items():
        if flat[name] not in choices:
            raise ConfigError(f"{source}: '{name}' must be one of {choices}, got {flat[name]!r}")
    for name in _POSITIVE:
        if not flat[name] > 0:
            raise ConfigError(f"{source}: '{name}' must be > 0, got {flat[name]!r}")
    for name in _UNIT_INTERVAL:
        if not 0.0 < flat[name] <= 1.0:
            raise ConfigError(f"{source}: '{name}' must be in (0, 1], got {flat[name]!r}")
    if not 0 <= flat["features.refine_radius_px"] <= 8:
        raise ConfigError(
            f"{source}: 'features.refine_radius_px' must be in 0..8 (0 = no sub-pixel "
            f"refinement), got {flat['features.refine_radius_px']!r}"
        )
    if flat["features.nms_radius_px"] < 0:
        raise ConfigError(
            f"{source}: 'features.nms_radius_px' must be >= 0 (0 = no suppression), "
            f"got {flat['features.nms_radius_px']!r}"
        )
    scales = flat["features.scales"]
    lo, hi = SCALE_RANGE
    if not 1 <= len(scales) <= MAX_SCALES or not all(lo <= x <= hi for x in scales):
        raise ConfigError(
            f"{source}: 'features.scales' must be 1..{MAX_SCALES} image scales in [{lo}, {hi}], "
            f"got {scales!r}"
        )
    if len(set(scales)) != len(scales):
        raise ConfigError(f"{source}: 'features.scales' lists a scale twice: {scales!r}")
    if flat["frontend.blas_threads"] < 0:
        raise ConfigError(f"{source}: 'frontend.blas_threads' must be >= 0 (0 = library default)")
    quat = flat["camera.base_to_camera_quat_xyzw"]
    if abs(sum(q * q for q in quat) - 1.0) > 1e-3:
        raise ConfigError(f"{source}: 'camera.base_to_camera_quat_xyzw' must be a unit quaternion")
    if flat["frontend.mode"] == "stereo" and flat["frontend.scale"] != "none":
        raise ConfigError(
            f"{source}: 'frontend.scale' applies to mono only; stereo is metric (use 'none')"
        )


def from_flat_dict(flat_in: dict[str, Any], source: str = "config") -> VoConfig:
    """Build a validated config from dotted keys; unknown keys raise ConfigError naming them."""
    defaults = to_flat_dict(VoConfig())
    unknown = sorted(set(flat_in) - set(defaults))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
    flat = dict(defaults)
    for name, value in flat_in.items():
        flat[name] = _coerce(name, value, defaults[name], source)
    _validate(flat, source)
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name, value in flat.items():
        if "." in name:
            section, key = name.split(".", 1)
            sections.setdefault(section, {})[key] = value
        else:
            top[name] = value
    section_types = {f.name: type(getattr(VoConfig(), f.name)) for f in fields(VoConfig)}
    for section, values in sections.items():
        top[section] = section_types[section](**values)
    return VoConfig(**top)


def _unwrap_ros_params(doc: Any, source: str) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    # ROS-params shape: {node_name_or_/**: {ros__parameters: {...}}}; also accept a bare mapping.
    if len(doc) == 1:
        (only,) = doc.values()
        if isinstance(only, dict) and "ros__parameters" in only:
            return only["ros__parameters"] or {}
    if "ros__parameters" in doc:
        return doc["ros__parameters"] or {}
    return doc


def parse_set_overrides(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items (dotted key, YAML value) as `load_config` overrides."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (dotted key, YAML value)")
        overrides[key] = yaml.safe_load(value)
    return overrides


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None):
    """Defaults, then the YAML file (if any), then dotted `overrides` (CLI flags)."""
    flat: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file ({exc.strerror})") from exc
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML ({exc})") from exc
        flat.update(_flatten(_unwrap_ros_params(doc, source), "", source))
    if overrides:
        flat.update(overrides)
    return from_flat_dict(flat, source)


def replace(cfg: VoConfig, **dotted: Any) -> VoConfig:
    """A copy with dotted keys changed: `replace(cfg, **{"frontend.mode": "stereo"})`."""
    flat = to_flat_dict(cfg)
    flat.update(dotted)
    return from_flat_dict(flat, "override")


def dump_config(cfg: VoConfig, path: str | os.PathLike) -> None:
    """Write the effective config in ROS-params shape, atomically (temp file + rename)."""
    doc = {"/**": {"ros__parameters": to_nested_dict(cfg)}}
    write_text_atomic(path, yaml.safe_dump(doc, sort_keys=False))
