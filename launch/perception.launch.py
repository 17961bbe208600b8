"""Launch the dcl_arc_ros perception graph: ``ros2 launch dcl_arc_ros perception.launch.py``.

This file only wires. The node list and every node's parameters come from the config file through
``dcl_arc_ros.graph.load_graph`` (the same helper ``dcl-arc-perception`` uses), and the Fast DDS profile from
``dcl_arc_ros.dds``. Arguments (``ros2 launch dcl_arc_ros perception.launch.py --show-args``):

- ``config``: the graph config (default: the shipped config/perception.yaml);
- ``backend``: inference backend for every node ("" = as in the config);
- ``models_dir``: where empty ``model`` parameters point ("" = the shipped models/);
- ``depth_cleaner``, ``arc_depth``, ``grasp_detector``, ``pose_estimator``: true/false to force a node on or off
  ("" = the config's ``enabled``);
- ``use_sim_time``: use /clock (bag replay, simulation).
"""

from __future__ import annotations

import os
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dcl_arc_ros.dds import PROFILE_ENV_VARS, dds_environment
from dcl_arc_ros.graph import EXECUTABLES, read_config, select_nodes
from dcl_arc_ros.paths import config_file

PACKAGE = "dcl_arc_ros"
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def _declare_arguments() -> list[DeclareLaunchArgument]:
    arguments = [
        DeclareLaunchArgument(
            "config",
            default_value=str(config_file("perception.yaml")),
            description="Graph config: a ROS 2 parameter file naming the nodes (enabled) and their parameters",
        ),
        DeclareLaunchArgument(
            "backend",
            default_value="",
            description="Inference backend for every node: onnxruntime or tensorrt ('' = as in the config)",
        ),
        DeclareLaunchArgument(
            "models_dir",
            default_value="",
            description="Folder of *.onnx + *.json sidecars that empty 'model' parameters point to "
            "('' = the shipped models/)",
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="Use simulated time from /clock (bags, simulation)"
        ),
    ]
    for executable in EXECUTABLES:
        arguments.append(
            DeclareLaunchArgument(
                executable,
                default_value="",
                description=f"Run the {executable} node: true or false ('' = the config's {executable}.enabled)",
            )
        )
    return arguments


def _dds_actions() -> list[SetEnvironmentVariable]:
    """Set the shipped Fast DDS profile for the nodes, unless the user already chose one."""
    wanted = dds_environment(os.environ)
    return [
        SetEnvironmentVariable(name, wanted[name])
        for name in PROFILE_ENV_VARS
        if name in wanted and os.environ.get(name) != wanted[name]
    ]


def _switch(value: str, name: str) -> bool | None:
    word = value.strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"launch argument {name}:={value!r} must be true, false or empty")


def _nodes(context: object) -> list[Node | LogInfo]:
    config = Path(LaunchConfiguration("config").perform(context))
    backend = LaunchConfiguration("backend").perform(context).strip()
    models_text = LaunchConfiguration("models_dir").perform(context).strip()
    models_dir = Path(models_text) if models_text else None
    use_sim_time = _switch(LaunchConfiguration("use_sim_time").perform(context), "use_sim_time") or False

    switches = {
        name: _switch(LaunchConfiguration(name).perform(context), name)
        for name in read_config(config)
        if name in EXECUTABLES
    }
    # The rule shared with dcl-arc-perception: an enabled node that cannot run here (executable not installed, model
    # missing) is skipped with the reason; a node forced on with <name>:=true is started and fails loudly instead.
    selection = select_nodes(config, switches=switches, models_dir=models_dir)
    actions: list[Node | LogInfo] = [LogInfo(msg=f"[dcl_arc_ros] skipping {reason}") for reason in selection.skipped]
    for spec in selection.nodes:
        parameters = dict(spec.parameters)
        if backend and "backend" in parameters:
            parameters["backend"] = backend
        parameters["use_sim_time"] = use_sim_time
        actions.append(
            Node(
                package=PACKAGE,
                executable=spec.executable,
                name=spec.name,
                parameters=[parameters],
                remappings=list(spec.remappings),
                output="screen",
                emulate_tty=True,
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*_declare_arguments(), *_dds_actions(), OpaqueFunction(function=_nodes)])
