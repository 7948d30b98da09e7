"""Import layering (DESIGN.md section 2), checked by parsing every module under tpr_vo/ with ast:

- ROS (rclpy, *_msgs, cv_bridge, tf2_ros, ...) only in tpr_vo/ros/;
- torch only in features/model.py, features/torch_backend.py, training/ and export/;
- tensorrt / pycuda / cuda only in the TensorRT backend and exporter.

Imports anywhere in a file count, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tpr_vo"

ROS_ROOTS = {"rclpy", "cv_bridge", "tf2_ros", "message_filters", "rosidl_runtime_py"}
TORCH_ROOTS = {"torch", "torchvision"}
GPU_ROOTS = {"tensorrt", "pycuda", "cuda"}

TORCH_ALLOWED = ("features/model.py", "features/torch_backend.py", "training/", "export/")
GPU_ALLOWED = ("features/tensorrt_backend.py", "export/tensorrt.py")


def imported_roots(source: str, filename: str) -> set[str]:
    """Top-level names of every absolute import in `source`."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def is_ros(root: str) -> bool:
    return root in ROS_ROOTS or root.endswith("_msgs")


def violations(relative: str, roots: set[str]) -> list[str]:
    found = []
    if not relative.startswith("ros/"):
        found += [f"{relative} imports ROS module {r}" for r in sorted(roots) if is_ros(r)]
    if not relative.startswith(TORCH_ALLOWED):
        found += [f"{relative} imports {r}" for r in sorted(roots & TORCH_ROOTS)]
    if not relative.startswith(GPU_ALLOWED):
        found += [f"{relative} imports {r}" for r in sorted(roots & GPU_ROOTS)]
    return found


def test_layering_rules_hold_for_every_module():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    found = []
    for path in files:
        relative = path.relative_to(PACKAGE).as_posix()
        found += violations(relative, imported_roots(path.read_text(), str(path)))
    assert not found, "import layering violated:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "relative, source, bad",
    [
        ("frontend.py", "import rclpy", True),
        ("pipeline.py", "def f():\n    from sensor_msgs.msg import Image", True),
        ("ros/node.py", "import rclpy\nfrom nav_msgs.msg import Odometry", False),
        ("features/onnx_backend.py", "import torch.nn as nn", True),
        ("features/model.py", "import torch", False),
        ("training/train.py", "from torch import nn", False),
        ("export/onnx.py", "import torch", False),
        ("features/tensorrt_backend.py", "import tensorrt as trt\nfrom cuda import cudart", False),
        ("export/tensorrt.py", "import tensorrt", False),
        ("features/torch_backend.py", "import tensorrt", True),
        ("eval/metrics.py", "from cuda.bindings import runtime", True),
        ("features/postprocess.py", "from . import torch_backend\nimport numpy", False),
    ],
)
def test_rule_checker_catches_known_cases(relative, source, bad):
    assert bool(violations(relative, imported_roots(source, relative))) == bad
