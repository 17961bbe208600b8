"""``dcl-arc-perception``: run the perception graph from config/perception.yaml without ``ros2 launch``.

    dcl-arc-perception [--config FILE] [--only NODE,...] [--single-process] [--param NODE.NAME=VALUE ...]
                       [--models-dir DIR] [--list-params] [--dry-run]

- By default each node runs in its own process (``python -m dcl_arc_ros.ros.<executable> --ros-args ...``), each in
  its own process group. ``--single-process`` runs them all in this process on a MultiThreadedExecutor.
- With no ``--only``, every enabled node whose module is installed and whose model file exists is started; the
  others are skipped with the reason. ``--only`` starts exactly the named nodes (and fails loudly if one cannot).
- The shipped Fast DDS profile is applied (children inherit it) unless the user set one.
- Ctrl-C / SIGTERM: children get SIGINT, then SIGTERM, then SIGKILL after ``--stop-timeout`` seconds each; on Linux
  they also get SIGTERM if this process dies without cleaning up, so no orphan is left behind.
- If one node exits, the others are stopped and the runner exits with that node's status (non-zero on failure).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dcl_arc_ros.dds import apply_dds_profile, dds_environment, describe_dds_environment
from dcl_arc_ros.graph import GraphError, NodeSpec, parse_override, read_config, select_nodes
from dcl_arc_ros.ros.params import NODE_SCHEMAS

PROG = "dcl-arc-perception"
EXIT_CONFIG_ERROR = 2
EXIT_NOTHING_TO_RUN = 3


def _log(text: str) -> None:
    print(f"[{PROG}] {text}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="graph config (default: the shipped perception.yaml)")
    parser.add_argument("--only", default=None, help="comma-separated node names to run, e.g. depth_cleaner")
    parser.add_argument(
        "--single-process", action="store_true", help="run every node in this process on a MultiThreadedExecutor"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NODE.NAME=VALUE",
        help="override one parameter (YAML value), e.g. depth_cleaner.fill_holes=false; repeatable",
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="where empty model parameters point")
    parser.add_argument("--stop-timeout", type=float, default=5.0, help="seconds per stop signal before escalating")
    parser.add_argument("--list-params", action="store_true", help="print every node's parameters and exit")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the command of every node that would start, and exit"
    )
    return parser


def _default_config() -> Path:
    from dcl_arc_ros.paths import config_file

    return config_file("perception.yaml")


def _list_params() -> str:
    return "\n\n".join(f"{name}:\n{schema.table()}" for name, schema in NODE_SCHEMAS.items())


def nodes_to_start(args: argparse.Namespace) -> list[NodeSpec]:
    """The specs to start; raises GraphError for bad config/overrides and SystemExit when nothing can run."""
    config = args.config if args.config is not None else _default_config()
    overrides = {}
    for text in args.param:
        node, name, value = parse_override(text)
        overrides[f"{node}.{name}"] = value
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    switches: Mapping[str, bool | None] | None = None
    if only:  # exactly these: every other node off (a name not in the config is reported by select_nodes)
        switches = {name: False for name in read_config(config)} | {name: True for name in only}
    selection = select_nodes(
        config, switches=switches, overrides=overrides, models_dir=args.models_dir, strict_switches=True
    )
    runnable = selection.nodes
    for reason in selection.skipped:
        _log(f"skipping {reason}")
    if not runnable:
        _log(f"nothing to run from {config}: no enabled node has its module and model available")
        raise SystemExit(EXIT_NOTHING_TO_RUN)
    return runnable


# --- one process per node ------------------------------------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when the runner dies, even by SIGKILL (Linux prctl PDEATHSIG)."""

    def arm() -> None:
        if not sys.platform.startswith("linux"):
            return
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # the runner died between fork and prctl: nobody will signal us
            os._exit(1)

    return arm


def node_command(spec: NodeSpec) -> list[str]:
    return [sys.executable, "-m", spec.module, *spec.ros_arguments()]


class ProcessGroup:
    """The node processes, each in its own session/process group, stopped in escalating steps."""

    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, spec: NodeSpec, env: dict[str, str]) -> None:
        command = node_command(spec)
        self.children[spec.name] = subprocess.Popen(
            command, env=env, start_new_session=True, preexec_fn=_die_with_parent(os.getpid())
        )
        _log(f"started {spec.name} (pid {self.children[spec.name].pid}): {' '.join(command[1:4])} ...")

    def first_exit(self) -> tuple[str, int] | None:
        for name, proc in self.children.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def _signal_all(self, sig: int) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    def _wait_all(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for proc in self.children.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            self._signal_all(sig)
            if self._wait_all(self.stop_timeout):
                return
            alive = [n for n, p in self.children.items() if p.poll() is None]
            _log(f"{', '.join(alive)} still running after {signal.Signals(sig).name}; escalating")


def run_multi_process(specs: Sequence[NodeSpec], stop_timeout: float) -> int:
    env = dds_environment(os.environ)
    _log(describe_dds_environment(env))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    group = ProcessGroup(stop_timeout)
    status = 0
    try:
        for spec in specs:
            group.start(spec, env)
        while not stop.wait(0.2):
            exited = group.first_exit()
            if exited is not None:
                name, status = exited
                _log(f"node {name} exited with status {status}; stopping the others")
                break
    finally:
        group.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


# --- one process for all -------------------------------------------------------------------------------------------


def run_single_process(specs: Sequence[NodeSpec]) -> int:
    applied = apply_dds_profile()
    _log(describe_dds_environment(os.environ) + (" (applied by the runner)" if applied else ""))
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from dcl_arc_ros.ros.errors import NodeStartupError, ParameterError

    rclpy.init(args=[])
    nodes = []
    executor = MultiThreadedExecutor()
    try:
        for spec in specs:
            module = importlib.import_module(spec.module)
            try:
                node = module.create_node(node_name=spec.name, cli_args=spec.ros_arguments())
            except (NodeStartupError, ParameterError) as exc:
                _log(f"error: node {spec.name}: {exc}")
                return EXIT_CONFIG_ERROR
            nodes.append(node)
            executor.add_node(node)
            _log(f"started {spec.name} in-process")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_params:
        print(_list_params())
        return 0
    try:
        specs = nodes_to_start(args)
    except GraphError as exc:
        _log(f"error: {exc}")
        return EXIT_CONFIG_ERROR
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.dry_run:
        print("\n".join(shlex.join(node_command(spec)) for spec in specs))
        return 0
    _log("running " + ", ".join(s.name for s in specs) + (" in one process" if args.single_process else ""))
    if args.single_process:
        return run_single_process(specs)
    return run_multi_process(specs, args.stop_timeout)


if __name__ == "__main__":
    sys.exit(main())
