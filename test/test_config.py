"""The typed config: defaults, YAML override, ROS-params unwrap, unknown keys, ranges, dump."""

from pathlib import Path

import pytest
import yaml

from tpr_vo.config import (
    VoConfig,
    dump_config,
    from_flat_dict,
    load_config,
    replace,
    to_flat_dict,
)
from tpr_vo.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_typed_and_frozen():
    cfg = VoConfig()
    assert cfg.features.kind == "tpr"
    assert cfg.frontend.ransac_threshold_px == 1.0
    with pytest.raises(AttributeError):
        cfg.seed = 3  # frozen


def test_shipped_yaml_loads_and_matches_ros_param_names():
    cfg = load_config(ROOT / "config" / "kitti.yaml")
    assert cfg.frontend.camera_height_m == 1.65
    flat = to_flat_dict(cfg)
    assert "frontend.ransac_threshold_px" in flat and "seed" in flat
    assert from_flat_dict(flat) == cfg


def test_yaml_override_nested_and_dotted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    frontend:\n      mode: stereo\n"
        "    features.max_keypoints: 500\n    seed: 7\n"
    )
    cfg = load_config(path)
    assert (cfg.frontend.mode, cfg.features.max_keypoints, cfg.seed) == ("stereo", 500, 7)


def test_bare_mapping_and_node_name_unwrap(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("frontend:\n  scale: gt\n")
    assert load_config(bare).frontend.scale == "gt"
    named = tmp_path / "named.yaml"
    named.write_text("tpr_vo:\n  ros__parameters:\n    matching:\n      ratio: 0.8\n")
    assert load_config(named).matching.ratio == 0.8


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("frontend:\n  ransac_treshold_px: 2.0\n")
    with pytest.raises(ConfigError, match="frontend.ransac_treshold_px"):
        load_config(path)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("frontend.mode", "trinocular", "must be one of"),
        ("features.max_keypoints", 0, "must be > 0"),
        ("matching.ratio", 1.5, r"\(0, 1\]"),
        ("frontend.min_inliers", "ten", "expects an integer"),
        ("frontend.local_ba", 1, "expects true or false"),
        ("camera.base_to_camera_quat_xyzw", [0, 0, 0, 2], "unit quaternion"),
        ("frontend.blas_threads", -1, ">= 0"),
        ("features.refine_radius_px", -1, r"0\.\.8"),
        ("features.refine_radius_px", 9, r"0\.\.8"),
        ("features.nms_radius_px", -1, ">= 0"),
        ("features.scales", [], r"1\.\.8 image scales"),
        ("features.scales", [1.0, 0.0], r"in \[0\.25, 4\.0\]"),
        ("features.scales", [1.0] + [0.5 + 0.1 * i for i in range(8)], r"1\.\.8 image scales"),
        ("features.scales", [1.0, 1.0], "twice"),
        ("features.scales", "1.0", "expects a list of numbers"),
        ("features.scales", [1.0, "big"], "expects a list of numbers"),
    ],
)
def test_bad_values_name_the_field(key, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, {key: value})
    assert key in str(info.value)


def test_scales_take_a_list_of_any_length(tmp_path):
    assert load_config(None).features.scales == [1.0]
    path = tmp_path / "ms.yaml"
    path.write_text("features:\n  scales: [1.41, 1, 0.71]\n")
    assert load_config(path).features.scales == [1.41, 1.0, 0.71]


def test_stereo_rejects_mono_scale():
    with pytest.raises(ConfigError, match="frontend.scale"):
        load_config(None, {"frontend.mode": "stereo", "frontend.scale": "gt"})


def test_dump_roundtrip_is_ros_params_shape(tmp_path):
    cfg = replace(VoConfig(), **{"frontend.mode": "stereo", "seed": 4})
    out = tmp_path / "sub" / "config.yaml"
    dump_config(cfg, out)
    doc = yaml.safe_load(out.read_text())
    assert doc["/**"]["ros__parameters"]["frontend"]["mode"] == "stereo"
    assert load_config(out) == cfg
    assert [p.name for p in out.parent.iterdir()] == ["config.yaml"]  # no temp file left


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_set_overrides_parse_dotted_keys_and_yaml_values():
    """The benchmarks' `--set KEY=VALUE`: YAML values (numbers, lists, strings), the last of a
    repeated key wins, and an item without "=" is refused by name."""
    from tpr_vo.config import parse_set_overrides

    got = parse_set_overrides(
        ["features.max_keypoints=1000", "features.scales=[1.0, 0.71]", "seed=1", "seed=2",
         "features.model_path=runs/x/model.onnx"]
    )  # fmt: skip
    assert got == {
        "features.max_keypoints": 1000,
        "features.scales": [1.0, 0.71],
        "seed": 2,
        "features.model_path": "runs/x/model.onnx",
    }
    assert load_config(None, got).features.max_keypoints == 1000
    with pytest.raises(ConfigError, match="features.nms_radius_px"):
        parse_set_overrides(["features.nms_radius_px"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_overrides(["=3"])
