"""The launch files, without a ROS install: they compile, and evaluated against tiny stand-ins
for `launch`/`launch_ros` they declare the documented arguments and start the right nodes with
parameter names that exist in VoConfig and KittiPlayer, and matching remappings."""

from __future__ import annotations

import importlib.util
import py_compile
import sys
import types
from pathlib import Path

import pytest

from tpr_vo.config import _CHOICES, VoConfig, to_flat_dict

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(_Recorded):
    @property
    def name(self) -> str:
        return self.args[0]


class DeclareLaunchArgument(_Recorded):
    @property
    def name(self) -> str:
        return self.args[0]


class LaunchDescription(_Recorded):
    @property
    def entities(self) -> list:
        return self.args[0]


class Node(_Recorded):
    pass


def _fake_modules() -> dict[str, types.ModuleType]:
    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    return {
        "launch": module("launch", LaunchDescription=LaunchDescription),
        "launch.actions": module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument),
        "launch.substitutions": module(
            "launch.substitutions",
            LaunchConfiguration=LaunchConfiguration,
            PathJoinSubstitution=type("PathJoinSubstitution", (_Recorded,), {}),
        ),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=Node),
        "launch_ros.parameter_descriptions": module(
            "launch_ros.parameter_descriptions",
            ParameterValue=type("ParameterValue", (_Recorded,), {}),
        ),
        "launch_ros.substitutions": module(
            "launch_ros.substitutions",
            FindPackageShare=type("FindPackageShare", (_Recorded,), {}),
        ),
    }


def load_description(name: str, monkeypatch) -> LaunchDescription:
    for module_name, module in _fake_modules().items():
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    return launch_file.generate_launch_description()


def arguments(description) -> dict[str, DeclareLaunchArgument]:
    return {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}


def nodes(description) -> dict[str, Node]:
    return {e.kwargs["executable"]: e for e in description.entities if isinstance(e, Node)}


def config_refs(value) -> list[str]:
    """Names of every LaunchConfiguration inside a (nested) value."""
    if isinstance(value, LaunchConfiguration):
        return [value.name]
    if isinstance(value, dict):
        return [n for v in value.values() for n in config_refs(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in config_refs(v)]
    if isinstance(value, _Recorded):
        return config_refs(list(value.args) + list(value.kwargs.values()))
    return []


def show_args(description) -> str:
    """The argument listing in the style of `ros2 launch ... --show-args`."""
    lines = ["Arguments (pass arguments as '<name>:=<value>'):", ""]
    for arg in arguments(description).values():
        lines.append(f"    '{arg.name}':")
        text = arg.kwargs.get("description", "no description given")
        if arg.kwargs.get("choices"):
            text += f". Valid choices are: {arg.kwargs['choices']}"
        lines.append(f"        {text}")
        default = arg.kwargs.get("default_value")
        if default is None:
            lines.append("        (required)")
        elif isinstance(default, str):
            lines.append(f"        (default: '{default}')")
        else:
            parts = [
                f"FindPackageShare(pkg='{a.args[0]}')" if isinstance(a, _Recorded) else f"'{a}'"
                for a in default.args[0]
            ]
            lines.append(f"        (default: {' + '.join(parts)} joined by '/')")
        lines.append("")
    return "\n".join(lines)


@pytest.mark.parametrize("name", ["kitti.launch.py", "vo.launch.py"])
def test_launch_files_compile(name, tmp_path):
    py_compile.compile(str(LAUNCH / name), cfile=str(tmp_path / "x.pyc"), doraise=True)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("kitti.launch.py", {"sequence", "mode", "features", "backend", "rate", "config"}),
        (
            "vo.launch.py",
            {"image", "camera_info", "right_image", "right_camera_info", "mode", "features"}
            | {"backend", "config"},
        ),
    ],
)
def test_launch_arguments_and_vo_node(name, expected, monkeypatch):
    description = load_description(name, monkeypatch)
    args = arguments(description)
    assert set(args) == expected
    assert tuple(args["mode"].kwargs["choices"]) == _CHOICES["frontend.mode"]
    assert tuple(args["features"].kwargs["choices"]) == _CHOICES["features.kind"]
    assert tuple(args["backend"].kwargs["choices"]) == _CHOICES["features.backend"]
    default_config = args["config"].kwargs["default_value"]
    share, *rest = default_config.args[0]
    assert share.args == ("tpr_vo",) and rest == ["config", "kitti.yaml"]
    assert (ROOT / "config" / "kitti.yaml").is_file()

    vo = nodes(description)["vo_node"].kwargs
    assert (vo["package"], vo["name"], vo["namespace"]) == ("tpr_vo", "tpr_vo", "tpr_vo")
    config_file, overrides = vo["parameters"]
    assert isinstance(config_file, LaunchConfiguration) and config_file.name == "config"
    assert set(overrides) <= set(to_flat_dict(VoConfig()))  # real config keys only
    assert {name for name, _ in vo["remappings"]} == {
        "image",
        "camera_info",
        "right/image",
        "right/camera_info",
    }
    for node in nodes(description).values():  # every substitution refers to a declared argument
        assert set(config_refs(node.kwargs)) <= set(args)


def test_kitti_launch_wires_player_to_node(monkeypatch):
    description = load_description("kitti.launch.py", monkeypatch)
    by_exe = nodes(description)
    player, vo = by_exe["kitti_player"].kwargs, by_exe["vo_node"].kwargs
    assert player["namespace"] == vo["namespace"] == "tpr_vo"  # so /tpr_vo/odometry and reset
    assert dict(player["remappings"]) == dict(vo["remappings"])  # same topics on both sides
    (player_params,) = player["parameters"]
    assert set(player_params) == {"sequence", "mode", "rate"}
    assert player_params["rate"].kwargs["value_type"] is float  # `rate:=0` stays a double
    assert "default_value" not in arguments(description)["sequence"].kwargs


def test_setup_installs_launch_and_config():
    setup_text = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup_text
    assert 'glob("config/*.yaml")' in setup_text
    assert '"vo_node = tpr_vo.ros.node:main"' in setup_text
    assert '"kitti_player = tpr_vo.ros.kitti_player:main"' in setup_text


if __name__ == "__main__":  # print the README listing: python test/test_ros_launch.py
    mp = pytest.MonkeyPatch()
    for launch_name in ("kitti.launch.py", "vo.launch.py"):
        print(f"$ ros2 launch tpr_vo {launch_name} --show-args")
        print(show_args(load_description(launch_name, mp)))
    mp.undo()
