"""The perception graph as data: ``config/perception.yaml`` -> a list of ``NodeSpec``.

The launch file and ``dcl-arc-perception`` both build their node list here, so they start the same graph.

The config is a plain ROS 2 parameter file (it can also be passed to a node with ``--params-file``)::

    depth_cleaner:                  # node name == executable name
      ros__parameters:
        enabled: true               # start it (launch file and runner); the node itself ignores it
        model: ""                   # empty = the shipped models/depth_cleaner.onnx
        remappings: ["/camera/depth/image_rect_raw:=/my_camera/depth"]   # optional

Which nodes run is the per-node ``enabled`` parameter (a valid ROS parameter, declared in every node's schema), so
the file stays loadable by ``ros2 run ... --params-file``. Parameters are checked against the node's schema from
``dcl_arc_ros.ros.params`` (that module does not import rclpy), so a typo fails here, before any process starts.

This module is pure: no rclpy, no launch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dcl_arc_ros.ros.errors import ParameterError
from dcl_arc_ros.ros.params import NODE_SCHEMAS

#: Node executables: the console-script name -> the module whose ``main()`` runs it (``python -m`` works too).
EXECUTABLES: dict[str, str] = {
    "depth_cleaner": "dcl_arc_ros.ros.depth_cleaner",
    "arc_depth": "dcl_arc_ros.ros.arc_depth",
    "grasp_detector": "dcl_arc_ros.ros.grasp_detector",
    "pose_estimator": "dcl_arc_ros.ros.pose_estimator",
}

#: Parameters that hold a model path, per executable (checked by ``unavailable_reason``).
MODEL_PARAMETERS: tuple[str, ...] = ("model",)

#: Parameters the launch file and the runner consume; they are not passed to the node.
LAUNCH_ONLY_PARAMETERS: tuple[str, ...] = ("enabled", "remappings")


class GraphError(ValueError):
    """The graph config is unreadable or inconsistent; the message names the file and the node or parameter."""


@dataclass(frozen=True)
class NodeSpec:
    """One node to start: its name, executable, parameters (as passed to the node) and topic remappings."""

    name: str
    executable: str
    parameters: dict[str, Any]
    remappings: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def module(self) -> str:
        return EXECUTABLES[self.executable]

    def ros_arguments(self) -> list[str]:
        """``--ros-args`` for this node: its name, every parameter and every remapping (values in YAML form)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={_yaml_scalar(value)}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args


def _yaml_scalar(value: Any) -> str:
    """A parameter value as ROS's command-line parser reads it (YAML flow style), e.g. ``''`` or ``[a, b]``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text.removesuffix("\n...").strip()


def read_config(config_path: Path) -> dict[str, dict[str, Any]]:
    """The file as {node name: {parameter: value}}; ``GraphError`` names the file for anything malformed."""
    path = Path(config_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphError(f"cannot read the graph config {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GraphError(f"the graph config {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise GraphError(f"the graph config {path} must map node names to {{ros__parameters: {{...}}}}, got {data!r}")
    nodes: dict[str, dict[str, Any]] = {}
    for name, body in data.items():
        if (
            not isinstance(body, dict)
            or set(body) != {"ros__parameters"}
            or not isinstance(body["ros__parameters"], dict)
        ):
            raise GraphError(f"{path}: node {name!r} must contain exactly one key 'ros__parameters' with a mapping")
        nodes[str(name)] = dict(body["ros__parameters"])
    return nodes


def parse_override(text: str) -> tuple[str, str, Any]:
    """``NODE.NAME=VALUE`` -> (node, name, value); the value is read as YAML (``true``, ``0.5``, ``''``, ``[a]``)."""
    key, sep, raw = text.partition("=")
    node, dot, name = key.partition(".")
    if not sep or not dot or not node or not name:
        raise GraphError(
            f"parameter override {text!r} must look like NODE.NAME=VALUE, e.g. depth_cleaner.fill_holes=false"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise GraphError(f"parameter override {text!r}: the value is not valid YAML: {exc}") from exc
    return node.strip(), name.strip(), value


def _parse_remappings(path: Path, node: str, entries: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for entry in entries:
        source, sep, target = str(entry).partition(":=")
        if not sep or not source or not target:
            raise GraphError(f"{path}: node {node!r} remapping {entry!r} must look like 'from:=to'")
        pairs.append((source, target))
    return tuple(pairs)


def load_graph(
    config_path: Path,
    *,
    only: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    models_dir: Path | None = None,
) -> list[NodeSpec]:
    """The nodes to start, in config order.

    - ``only``: run exactly these nodes (names from the config), whatever their ``enabled`` says;
      otherwise the nodes with ``enabled: true``.
    - ``overrides``: ``{"NODE.NAME": value}`` (as from ``--param NODE.NAME=VALUE``), applied after the file.
    - ``models_dir``: where an empty ``model`` parameter points (default: the shipped models directory); the
      resolved absolute path is passed to the node.
    """
    path = Path(config_path)
    config = read_config(path)
    for name in config:
        if name not in EXECUTABLES:
            raise GraphError(f"{path}: unknown node {name!r}; known executables: {', '.join(EXECUTABLES)}")
    for key, value in (overrides or {}).items():
        node, dot, param = key.partition(".")
        if not dot or node not in config:
            raise GraphError(
                f"override {key}={value!r}: no node {node!r} in {path} (nodes: {', '.join(config)}); use NODE.NAME"
            )
        config[node][param] = value
    if only is not None:
        unknown = [n for n in only if n not in config]
        if unknown:
            raise GraphError(
                f"--only {','.join(only)}: {', '.join(unknown)} not in {path} (nodes: {', '.join(config)})"
            )
    selected = list(only) if only is not None else list(config)

    specs = []
    for name in selected:
        schema = NODE_SCHEMAS.get(name)
        values = dict(config[name])
        if schema is not None:
            try:
                values = {**schema.defaults(), **schema.validate(values, node=name)}
            except ParameterError as exc:
                raise GraphError(f"{path}: {exc}") from exc
        if only is None and not values.get("enabled", True):
            continue
        if schema is not None and "model" in values and not values["model"] and schema.default_model_file:
            base = models_dir if models_dir is not None else _shipped_models_dir()
            values["model"] = str((Path(base) / schema.default_model_file).resolve())
        remappings = _parse_remappings(path, name, values.get("remappings") or [])
        parameters = {k: v for k, v in values.items() if k not in LAUNCH_ONLY_PARAMETERS}
        specs.append(NodeSpec(name=name, executable=name, parameters=parameters, remappings=remappings))
    return specs


def _shipped_models_dir() -> Path:
    from dcl_arc_ros.paths import models_dir

    return models_dir()


def unavailable_reason(spec: NodeSpec) -> str | None:
    """Why ``spec`` cannot run here (its module is not installed, or a model file is missing), or None."""
    if importlib.util.find_spec(spec.module) is None:
        return f"node {spec.name}: its executable {spec.executable} ({spec.module}) is not part of this install yet"
    for param in MODEL_PARAMETERS:
        value = spec.parameters.get(param)
        if isinstance(value, str) and value and not Path(value).expanduser().is_file():
            return f"node {spec.name}: model file {value} does not exist (parameter {spec.name}.{param})"
    return None


def available_nodes(specs: Sequence[NodeSpec]) -> tuple[list[NodeSpec], list[str]]:
    """Split ``specs`` into the runnable ones and the reasons the others are skipped."""
    runnable, skipped = [], []
    for spec in specs:
        reason = unavailable_reason(spec)
        if reason is None:
            runnable.append(spec)
        else:
            skipped.append(reason)
    return runnable, skipped


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select_nodes`."""

    nodes: list[NodeSpec]  # to start, in config order
    skipped: list[str]  # why each node that is on only through the config cannot run here


def select_nodes(
    config_path: Path,
    *,
    switches: Mapping[str, bool | None] | None = None,
    overrides: Mapping[str, Any] | None = None,
    models_dir: Path | None = None,
    strict_switches: bool = False,
) -> Selection:
    """Which nodes start: the one rule the launch file, ``dcl-arc-perception`` and the demo share.

    - ``switches``: node name -> True (run it), False (do not), None or absent (as the config's ``enabled`` says).
    - A node that is on only through the config is skipped, with the reason, when its executable or model is not
      available here. A node switched on explicitly is started anyway, so it fails loudly naming the file; with
      ``strict_switches`` it is refused here instead (GraphError listing the reasons).
    """
    switches = dict(switches or {})
    names = list(read_config(Path(config_path)))
    unknown = [name for name in switches if name not in names]
    if unknown:
        raise GraphError(f"{config_path}: no node {', '.join(unknown)} (nodes: {', '.join(names)})")
    enabled = {spec.name for spec in load_graph(config_path, overrides=overrides, models_dir=models_dir)}
    chosen = [n for n in names if switches.get(n) is True or (switches.get(n) is None and n in enabled)]
    specs = load_graph(config_path, only=chosen, overrides=overrides, models_dir=models_dir) if chosen else []
    forced = {name for name, on in switches.items() if on}
    runnable, skipped = available_nodes([spec for spec in specs if spec.name not in forced])
    if strict_switches:
        _, refused = available_nodes([spec for spec in specs if spec.name in forced])
        if refused:
            raise GraphError("cannot start the requested nodes: " + "; ".join(refused))
    return Selection([spec for spec in specs if spec.name in forced or spec in runnable], skipped)
