"""Arrows point down: the import rules of docs/architecture.md.

Two checks, because each alone can be fooled: importing the modules in a fresh interpreter shows what they really
pull in at import time, and an AST scan of every ``import`` statement (including ones inside functions) catches lazy
imports that an import-time check cannot see.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dcl_arc_ros

PACKAGE_DIR = Path(dcl_arc_ros.__file__).resolve().parent
ROS_MESSAGE_PACKAGES = (
    "sensor_msgs",
    "geometry_msgs",
    "std_msgs",
    "visualization_msgs",
    "diagnostic_msgs",
    "builtin_interfaces",
    "rosidl_runtime_py",
    "launch",
    "launch_ros",
    "message_filters",
    "cv_bridge",
)
ROS = ("rclpy", *ROS_MESSAGE_PACKAGES)
TORCH = ("torch", "torchvision")
# Modules allowed to talk to ROS: the node layer, the runner and the bag player.
ROS_ALLOWED = ("ros", "runner.py", "bag_player.py", "demo.py")


def modules_under(relative: str) -> list[Path]:
    root = PACKAGE_DIR / relative
    return sorted(root.rglob("*.py")) if root.is_dir() else [root] if root.is_file() else []


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: str | None = None) -> Iterator[tuple[int, str]]:
    """Every absolute module name an ``import`` in ``path`` names (anywhere in the file, including inside
    functions), with relative imports resolved against ``package`` (by default the file's own package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield node.lineno, ".".join([*base, node.module] if node.module else base)
            elif node.module:
                yield node.lineno, node.module


def top(name: str) -> str:
    return name.split(".")[0]


def reaches_above(name: str, allowed_ours: tuple[str, ...] | None) -> bool:
    """True when ``name`` is one of our modules outside ``allowed_ours`` (None = no restriction)."""
    if allowed_ours is None or top(name) != "dcl_arc_ros" or name == "dcl_arc_ros":
        return False
    return not any(name == a or name.startswith(a + ".") for a in allowed_ours)


def violations(paths: list[Path], forbidden_roots: tuple[str, ...], allowed_ours: tuple[str, ...] | None) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{line} imports {name}"
        for path in paths
        for line, name in imported_modules(path)
        if top(name) in forbidden_roots or reaches_above(name, allowed_ours)
    ]


def test_core_imports_no_ros_no_torch_and_nothing_above_it() -> None:
    paths = modules_under("core")
    assert len(paths) >= 7, "the core package should not be empty"
    forbidden = (*ROS, *TORCH, "onnxruntime", "tensorrt")
    assert violations(paths, forbidden, ("dcl_arc_ros.core",)) == []


def test_inference_imports_no_ros_no_torch_and_only_core() -> None:
    paths = modules_under("inference")
    assert violations(paths, (*ROS, *TORCH), ("dcl_arc_ros.core", "dcl_arc_ros.inference")) == []


def test_only_the_node_layer_talks_to_ros() -> None:
    allowed = {p for entry in ROS_ALLOWED for p in modules_under(entry)}
    others = [p for p in PACKAGE_DIR.rglob("*.py") if p not in allowed]
    assert violations(others, ("rclpy", *ROS_MESSAGE_PACKAGES), None) == []


def test_deploy_side_never_imports_torch() -> None:
    paths = [
        p
        for entry in (
            "core",
            "inference",
            "ros",
            "graph.py",
            "runner.py",
            "dds.py",
            "data/bags.py",
            "data/frame.py",
            "paths.py",
            "bag_player.py",
            "demo.py",
        )
        for p in modules_under(entry)
    ]
    assert violations(paths, TORCH, None) == []


def test_training_never_imports_nodes() -> None:
    paths = modules_under("learning")
    found = []
    for path in paths:
        for line, name in imported_modules(path):
            if name.startswith(("dcl_arc_ros.ros", "dcl_arc_ros.runner", "dcl_arc_ros.bag_player")) or top(name) in ROS:
                found.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line} imports {name}")
    assert found == []


def test_ast_scan_sees_lazy_imports(tmp_path: Path) -> None:
    """The scanner itself: an import hidden inside a function is still reported."""
    fake = tmp_path / "lazy.py"
    fake.write_text(
        "def f():\n    import torch.nn as nn\n    from rclpy.node import Node\n    from ..ros import base_node\n",
        encoding="utf-8",
    )
    names = [name for _, name in imported_modules(fake, package="dcl_arc_ros.core")]
    assert names == ["torch.nn", "rclpy.node", "dcl_arc_ros.ros"]


@pytest.mark.parametrize("subpackage", ["core", "inference"])
def test_importing_every_module_loads_neither_rclpy_nor_torch(subpackage: str) -> None:
    names = [module_name(p) for p in modules_under(subpackage)]
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {(*ROS, *TORCH)!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
