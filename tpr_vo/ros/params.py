"""Every VoConfig key as a ROS parameter with the same dotted name, e.g. `frontend.min_inliers`.

Defaults come from the parameter file `config_file` (a node parameter; "" = the package's
config/kitti.yaml) over the dataclass defaults; values set by launch, a parameter file or
`--ros-args -p` override them. The values are read back through `tpr_vo.config.from_flat_dict`,
so type and range errors name the parameter. Parameters are dynamically typed so `-p x:=2`
works for a float; they are read once at start-up (changing one later is refused, by name).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node

from tpr_vo.config import VoConfig, from_flat_dict, load_config, to_flat_dict

log = logging.getLogger(__name__)

CONFIG_FILE_PARAM = "config_file"


def default_config_file() -> Path | None:
    """config/kitti.yaml of the installed package (ament index), else of the source tree."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            path = Path(get_package_share_directory("tpr_vo")) / "config" / "kitti.yaml"
            if path.is_file():
                return path
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH (no ROS env)
            pass
    except ImportError:
        pass
    path = Path(__file__).resolve().parents[2] / "config" / "kitti.yaml"
    return path if path.is_file() else None


def declare_config_parameters(node: Node) -> VoConfig:
    """Declare `config_file` and every config key on `node`; return the effective VoConfig.
    Raises ConfigError naming the parameter on a bad value."""
    config_file = node.declare_parameter(CONFIG_FILE_PARAM, "").value
    path = Path(config_file).expanduser() if config_file else default_config_file()
    base = load_config(path) if path is not None else VoConfig()
    flat: dict[str, Any] = {}
    for name, default in to_flat_dict(base).items():
        descriptor = ParameterDescriptor(
            name=name, dynamic_typing=True, description=f"tpr_vo config key (default {default!r})"
        )
        value = node.declare_parameter(name, default, descriptor).value
        flat[name] = list(value) if isinstance(value, (list, tuple)) else value
    source = f"ROS parameters of node '{node.get_name()}' (config_file {path})"
    cfg = from_flat_dict(flat, source)
    names = set(flat) | {CONFIG_FILE_PARAM}

    def refuse_changes(params) -> SetParametersResult:
        changed = sorted(p.name for p in params if p.name in names)
        if changed:
            return SetParametersResult(
                successful=False,
                reason=f"{', '.join(changed)}: read at start-up only; restart the node",
            )
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(refuse_changes)
    return cfg
