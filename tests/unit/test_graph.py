"""graph.load_graph (config -> NodeSpec list) and the launch file built on it (with stand-in launch modules)."""

from __future__ import annotations

import importlib.util
import py_compile
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from dcl_arc_ros.dds import PROFILE_ENV_VARS, profile_path
from dcl_arc_ros.graph import EXECUTABLES, GraphError, available_nodes, load_graph, parse_override, select_nodes
from dcl_arc_ros.ros.params import DEPTH_CLEANER

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "config" / "perception.yaml"
LAUNCH_FILE = REPO / "launch" / "perception.launch.py"
GHOST = "ghost_detector"  # an executable registered by the tests whose module does not exist


@pytest.fixture
def ghost_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXECUTABLES, GHOST, "dcl_arc_ros.ros.ghost_detector_not_installed")


def write_config(path: Path, nodes: dict[str, dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({name: {"ros__parameters": params} for name, params in nodes.items()}))
    return path


def test_shipped_config_is_a_ros_parameter_file_with_valid_depth_cleaner_parameters() -> None:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text())
    assert all(set(body) == {"ros__parameters"} for body in data.values())
    DEPTH_CLEANER.validate(data["depth_cleaner"]["ros__parameters"])  # raises on a typo or a bad value
    assert set(data) <= set(EXECUTABLES)


def test_enabled_nodes_in_config_order_with_defaults_and_resolved_model(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "g.yaml",
        {"depth_cleaner": {"enabled": True, "fill_holes": False}, "arc_depth": {"enabled": False}},
    )
    specs = load_graph(config, models_dir=tmp_path / "models")
    assert [s.name for s in specs] == ["depth_cleaner"]
    params = specs[0].parameters
    assert params["fill_holes"] is False
    assert params["sync_slop_s"] == DEPTH_CLEANER.spec("sync_slop_s").default
    assert params["model"] == str((tmp_path / "models" / "depth_cleaner.onnx").resolve())
    assert "enabled" not in params and "remappings" not in params


def test_only_selects_nodes_even_when_disabled(tmp_path: Path) -> None:
    config = write_config(tmp_path / "g.yaml", {"depth_cleaner": {"enabled": False}})
    assert [s.name for s in load_graph(config, only=["depth_cleaner"])] == ["depth_cleaner"]
    with pytest.raises(GraphError, match="grasp_detector"):
        load_graph(config, only=["grasp_detector"])


def test_overrides_are_typed_validated_and_applied(tmp_path: Path) -> None:
    config = write_config(tmp_path / "g.yaml", {"depth_cleaner": {"model": "/m.onnx"}})
    node, name, value = parse_override("depth_cleaner.sync_slop_s=0.05")
    specs = load_graph(config, overrides={f"{node}.{name}": value})
    assert specs[0].parameters["sync_slop_s"] == pytest.approx(0.05)
    with pytest.raises(GraphError, match=r"sync_slop_s = 7\.0 is out of range"):
        load_graph(config, overrides={"depth_cleaner.sync_slop_s": 7.0})
    with pytest.raises(GraphError, match="no parameter 'fil_holes'"):
        load_graph(config, overrides={"depth_cleaner.fil_holes": True})
    with pytest.raises(GraphError, match="no node 'cleaner'"):
        load_graph(config, overrides={"cleaner.fill_holes": True})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("depth_cleaner.fill_holes=false", ("depth_cleaner", "fill_holes", False)),
        ("depth_cleaner.model=", ("depth_cleaner", "model", "")),
        ("depth_cleaner.remappings=[a:=b]", ("depth_cleaner", "remappings", ["a:=b"])),
    ],
)
def test_parse_override(text: str, expected: tuple[str, str, Any]) -> None:
    assert parse_override(text) == expected


def test_parse_override_rejects_malformed_text() -> None:
    with pytest.raises(GraphError, match=r"NODE\.NAME=VALUE"):
        parse_override("fill_holes=false")


def test_bad_config_files_name_the_file(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("depth_cleaner: [unclosed")
    with pytest.raises(GraphError, match=r"bad\.yaml"):
        load_graph(bad_yaml)
    no_params = write_config(tmp_path / "flat.yaml", {})
    no_params.write_text("depth_cleaner:\n  model: x\n")
    with pytest.raises(GraphError, match="ros__parameters"):
        load_graph(no_params)
    unknown = write_config(tmp_path / "unknown.yaml", {"teleporter": {}})
    with pytest.raises(GraphError, match="unknown node 'teleporter'"):
        load_graph(unknown)
    bad_value = write_config(tmp_path / "value.yaml", {"depth_cleaner": {"input_qos": "fast"}})
    with pytest.raises(GraphError, match=r"value.yaml.*input_qos = 'fast'"):
        load_graph(bad_value)
    with pytest.raises(GraphError, match=r"missing\.yaml"):
        load_graph(tmp_path / "missing.yaml")


def test_remappings_and_ros_arguments(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "g.yaml",
        {"depth_cleaner": {"model": "/models/x.onnx", "remappings": ["/camera/depth/image_rect_raw:=/cam/depth"]}},
    )
    (spec,) = load_graph(config)
    assert spec.remappings == (("/camera/depth/image_rect_raw", "/cam/depth"),)
    args = spec.ros_arguments()
    assert args[:3] == ["--ros-args", "-r", "__node:=depth_cleaner"]
    assert "model:=/models/x.onnx" in args
    assert "fill_holes:=true" in args
    assert "/camera/depth/image_rect_raw:=/cam/depth" in args
    bad = write_config(tmp_path / "b.yaml", {"depth_cleaner": {"remappings": ["/a=/b"]}})
    with pytest.raises(GraphError, match="from:=to"):
        load_graph(bad)


def test_empty_string_parameter_survives_the_command_line_form(tmp_path: Path) -> None:
    config = write_config(tmp_path / "g.yaml", {"depth_cleaner": {"model": "/m.onnx", "synthesis_model": ""}})
    (spec,) = load_graph(config)
    assert "synthesis_model:=''" in spec.ros_arguments()


def test_select_nodes_switches_config_and_availability(tmp_path: Path, ghost_executable: None) -> None:
    present = tmp_path / "present.onnx"
    present.write_bytes(b"x")
    config = write_config(
        tmp_path / "g.yaml",
        {"depth_cleaner": {"model": str(present)}, GHOST: {"model": str(present)}},
    )
    selection = select_nodes(config)  # enabled by the config; the ghost cannot run here: skipped with the reason
    assert [s.name for s in selection.nodes] == ["depth_cleaner"] and GHOST in selection.skipped[0]
    assert select_nodes(config, switches={"depth_cleaner": False}).nodes == []
    # Switched on explicitly: started anyway (it will fail loudly), unless strict, where it is refused here.
    assert [s.name for s in select_nodes(config, switches={GHOST: True, "depth_cleaner": False}).nodes] == [GHOST]
    with pytest.raises(GraphError, match=f"cannot start the requested nodes: node {GHOST}"):
        select_nodes(config, switches={GHOST: True}, strict_switches=True)
    with pytest.raises(GraphError, match="no node nonexistent"):
        select_nodes(config, switches={"nonexistent": True})
    overridden = select_nodes(config, overrides={"depth_cleaner.enabled": False})
    assert overridden.nodes == []


def test_unavailable_nodes_are_skipped_with_a_reason(tmp_path: Path, ghost_executable: None) -> None:
    present = tmp_path / "present.onnx"
    present.write_bytes(b"x")
    config = write_config(
        tmp_path / "g.yaml",
        {"depth_cleaner": {"model": str(present)}, GHOST: {"model": str(present)}},
    )
    runnable, skipped = available_nodes(load_graph(config))
    assert [s.name for s in runnable] == ["depth_cleaner"]
    assert len(skipped) == 1 and GHOST in skipped[0] and "not part of this install" in skipped[0]

    missing = write_config(tmp_path / "m.yaml", {"depth_cleaner": {"model": str(tmp_path / "nope.onnx")}})
    runnable, skipped = available_nodes(load_graph(missing))
    assert runnable == [] and "nope.onnx" in skipped[0]


# --- the launch file, loaded with stand-in `launch` / `launch_ros` modules -----------------------------------------


class _Action:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


class _LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: Any) -> str:
        return context.launch_configurations[self.name]


def _fake_launch_modules() -> dict[str, types.ModuleType]:
    launch = types.ModuleType("launch")
    actions = types.ModuleType("launch.actions")
    substitutions = types.ModuleType("launch.substitutions")
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    launch.LaunchDescription = type("LaunchDescription", (_Action,), {})  # type: ignore[attr-defined]
    for name in ("DeclareLaunchArgument", "SetEnvironmentVariable", "OpaqueFunction", "LogInfo"):
        setattr(actions, name, type(name, (_Action,), {}))
    substitutions.LaunchConfiguration = _LaunchConfiguration  # type: ignore[attr-defined]
    ros_actions.Node = type("Node", (_Action,), {})  # type: ignore[attr-defined]
    launch.actions = actions  # type: ignore[attr-defined]
    launch.substitutions = substitutions  # type: ignore[attr-defined]
    launch_ros.actions = ros_actions  # type: ignore[attr-defined]
    return {
        "launch": launch,
        "launch.actions": actions,
        "launch.substitutions": substitutions,
        "launch_ros": launch_ros,
        "launch_ros.actions": ros_actions,
    }


@pytest.fixture
def launch_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    for name, module in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    for var in PROFILE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    spec = importlib.util.spec_from_file_location("perception_launch_under_test", LAUNCH_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _by_type(actions: list[Any], type_name: str) -> list[Any]:
    return [a for a in actions if type(a).__name__ == type_name]


def _run_opaque(description: Any, **arguments: str) -> list[Any]:
    declared = {a.args[0]: a.kwargs["default_value"] for a in _by_type(description.args[0], "DeclareLaunchArgument")}
    unknown = set(arguments) - set(declared)
    assert not unknown, f"not declared: {unknown}"
    context = types.SimpleNamespace(launch_configurations={**declared, **arguments})
    (opaque,) = _by_type(description.args[0], "OpaqueFunction")
    return opaque.kwargs["function"](context)


def test_launch_file_compiles() -> None:
    py_compile.compile(str(LAUNCH_FILE), doraise=True)


def test_launch_declares_every_argument_with_a_description(launch_module: types.ModuleType) -> None:
    description = launch_module.generate_launch_description()
    arguments = {a.args[0]: a.kwargs for a in _by_type(description.args[0], "DeclareLaunchArgument")}
    assert {"config", "backend", "models_dir", "use_sim_time", *EXECUTABLES} <= set(arguments)
    assert all(kwargs["description"].strip() for kwargs in arguments.values())
    assert Path(arguments["config"]["default_value"]).name == "perception.yaml"


def test_launch_sets_the_dds_profile_only_when_the_user_has_none(
    launch_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in PROFILE_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    for distro, expected_vars in (("humble", PROFILE_ENV_VARS), ("jazzy", PROFILE_ENV_VARS[:1])):
        monkeypatch.setenv("ROS_DISTRO", distro)
        description = launch_module.generate_launch_description()
        env_actions = {a.args[0]: a.args[1] for a in _by_type(description.args[0], "SetEnvironmentVariable")}
        assert env_actions == {var: str(profile_path()) for var in expected_vars}, distro
        assert "FASTDDS_BUILTIN_TRANSPORTS" not in env_actions

    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/user/profile.xml")
    description = launch_module.generate_launch_description()
    assert _by_type(description.args[0], "SetEnvironmentVariable") == []


def test_launch_nodes_come_from_the_graph(
    launch_module: types.ModuleType, tmp_path: Path, ghost_executable: None
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "depth_cleaner.onnx").write_bytes(b"x")
    config = write_config(
        tmp_path / "g.yaml",
        {
            "depth_cleaner": {"fill_holes": False, "remappings": ["/camera/depth/image_rect_raw:=/cam/depth"]},
            GHOST: {"enabled": True},
        },
    )
    description = launch_module.generate_launch_description()
    actions = _run_opaque(
        description, config=str(config), models_dir=str(models), backend="tensorrt", use_sim_time="true"
    )
    (node,) = _by_type(actions, "Node")
    assert node.kwargs["package"] == "dcl_arc_ros"
    assert node.kwargs["executable"] == node.kwargs["name"] == "depth_cleaner"
    (parameters,) = node.kwargs["parameters"]
    assert parameters["fill_holes"] is False
    assert parameters["backend"] == "tensorrt"
    assert parameters["use_sim_time"] is True
    assert parameters["model"] == str((models / "depth_cleaner.onnx").resolve())
    assert node.kwargs["remappings"] == [("/camera/depth/image_rect_raw", "/cam/depth")]
    (skipped,) = _by_type(actions, "LogInfo")
    assert GHOST in skipped.kwargs["msg"]


def test_launch_node_switches_override_the_config(launch_module: types.ModuleType, tmp_path: Path) -> None:
    config = write_config(tmp_path / "g.yaml", {"depth_cleaner": {"model": "/m.onnx"}})
    description = launch_module.generate_launch_description()
    assert _by_type(_run_opaque(description, config=str(config), depth_cleaner="false"), "Node") == []
    # Forced on: started even though its model is missing (the node then fails loudly, naming the file).
    (node,) = _by_type(_run_opaque(description, config=str(config), depth_cleaner="true"), "Node")
    assert node.kwargs["parameters"][0]["model"] == "/m.onnx"
    with pytest.raises(ValueError, match="depth_cleaner:='maybe'"):
        _run_opaque(description, config=str(config), depth_cleaner="maybe")
