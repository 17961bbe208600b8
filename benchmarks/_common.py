"""Shared pieces of the end-to-end node benchmarks (``grasp_node``, ``pose_node``, ``arc_node``).

Each of them builds the real node in its own rclpy context with the shipped Fast DDS profile, gives every output a
matched subscription (so publishing serialises), calls ``node.process`` on prepared frames and times each call: wall
time, CPU time of the whole process, and the share of both spent in the model (through ``TimedModel``). The numbers
go to a JSON file in the results folder together with the machine and the load average.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.node_overhead import TimedModel, summarise

LoadAverage = tuple[float, float, float]


@dataclass(frozen=True)
class FrameTimes:
    """Statistics (``summarise``: median, p95, mean in milliseconds) of the timed frames of one run."""

    frame_ms: dict[str, float]
    frame_cpu_ms: dict[str, float]
    model_ms: dict[str, float]
    model_cpu_ms: dict[str, float]

    def summary(self, target_fps: float) -> dict[str, Any]:
        """The four statistics, the frame rates their medians imply and whether the wall-time one meets the target."""
        fps = 1000.0 / self.frame_ms["median"]
        return {
            "frame_ms": self.frame_ms,
            "frame_cpu_ms": self.frame_cpu_ms,
            "model_ms": self.model_ms,
            "model_cpu_ms": self.model_cpu_ms,
            "fps_from_median": round(fps, 1),
            "fps_from_median_cpu": round(1000.0 / self.frame_cpu_ms["median"], 1),
            "meets_target": fps >= target_fps,
        }

    def describe(self) -> str:
        """One line for the console: median (and FPS), p95, CPU median, model median and its CPU median."""
        return (
            f"median {self.frame_ms['median']:.1f} ms ({round(1000.0 / self.frame_ms['median'], 1)} FPS), "
            f"p95 {self.frame_ms['p95']:.1f} ms, CPU median {self.frame_cpu_ms['median']:.1f} ms, model median "
            f"{self.model_ms['median']:.1f} ms (CPU {self.model_cpu_ms['median']:.1f} ms)"
        )


def time_frames(
    node: Any, timed: TimedModel, make_frame: Callable[[int], Any], *, frames: int, warmup: int, desc: str
) -> FrameTimes:
    """Call ``node.process(make_frame(i))`` for ``warmup + frames`` frames and time the last ``frames`` of them."""
    wall: list[float] = []
    cpu: list[float] = []
    model: list[float] = []
    model_cpu: list[float] = []
    for index in tqdm(range(warmup + frames), desc=desc, unit="frame"):
        frame = make_frame(index)
        timed.seconds = timed.cpu_seconds = 0.0
        c0, t0 = time.process_time(), time.perf_counter()
        node.process(frame)
        t1, c1 = time.perf_counter(), time.process_time()
        if index >= warmup:
            wall.append(t1 - t0)
            cpu.append(c1 - c0)
            model.append(timed.seconds)
            model_cpu.append(timed.cpu_seconds)
    return FrameTimes(summarise(wall), summarise(cpu), summarise(model), summarise(model_cpu))


def round_robin_frames(msgs: Sequence[Any], info: Any, topics: Mapping[str, str], *, key: str) -> Callable[[int], Any]:
    """Frame ``i`` as the node's synchroniser hands it over: ``msgs[i % len(msgs)]`` under ``key`` with ``info``."""
    from dcl_arc_ros.ros.base_node import Frame

    def make(index: int) -> Any:
        return Frame(
            msgs={key: msgs[index % len(msgs)], "camera_info": info},
            stamp_ns=index,
            received_at=time.monotonic(),
            topics=dict(topics),
        )

    return make


class NodeSession:
    """An rclpy context for one benchmark; the nodes handed to :meth:`keep` are destroyed last-first at the end."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self._nodes: list[Any] = []

    def keep(self, node: Any) -> Any:
        self._nodes.append(node)
        return node

    def time_model(self, node: Any) -> TimedModel:
        """Put a ``TimedModel`` around ``node.pipeline.model`` and return it."""
        timed = TimedModel(node.pipeline.model)
        node.pipeline.model = timed
        return timed

    def listen(self, node: Any, outputs: Sequence[tuple[type, str]], *, timeout_s: float = 10.0) -> None:
        """One reliable subscription per ``(type, topic)`` of ``node``; wait (up to ``timeout_s``) until matched."""
        from rclpy.node import Node

        from dcl_arc_ros.ros.qos import qos_profile

        listener = self.keep(Node("bench_listener", context=self.context))
        for msg_type, topic in outputs:
            listener.create_subscription(msg_type, topic, lambda _msg: None, qos_profile("reliable"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(node.count_subscribers(t) < 1 for _, t in outputs):
            time.sleep(0.01)


@contextmanager
def node_session() -> Iterator[NodeSession]:
    """A fresh rclpy context with the shipped DDS profile applied to this process's environment."""
    import rclpy
    from rclpy.context import Context

    from dcl_arc_ros.dds import dds_environment

    os.environ.update(dds_environment(os.environ))  # this process only: the shipped profile, as the node has it
    context = Context()
    rclpy.init(context=context)
    session = NodeSession(context)
    try:
        yield session
    finally:
        for node in reversed(session._nodes):
            node.destroy_node()
        rclpy.shutdown(context=context)


def node_args(model_path: Path, threads: int | None, **params: str) -> list[str]:
    """The node's command-line parameters: the model, ``params``, and the thread count when one is asked for."""
    args = ["--ros-args", "-p", f"model:={model_path}"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return [*args, "-p", f"threads:={threads}"] if threads is not None else args


def load_average() -> LoadAverage:
    """The 1, 5 and 15 minute load averages, the numbers ``uptime`` prints."""
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def rounded(load: Sequence[float]) -> list[float]:
    return [round(v, 2) for v in load]


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def machine_settings() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def node_settings(width: int, height: int, args: Any, schema: Any, **extra: Any) -> dict[str, Any]:
    """The ``settings`` of a node benchmark's result: frame size, ``args.encoding``/``frames``, ``extra``, the node's
    thread count (``args.threads`` or the default of its parameter ``schema``) and the machine."""
    threads = args.threads if args.threads is not None else schema.spec("threads").default
    return {
        "width": width,
        "height": height,
        "encoding": args.encoding,
        "frames": args.frames,
        **extra,
        "threads": threads,
        **machine_settings(),
    }


def result_record(benchmark: str, target: str, settings: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The JSON record every benchmark writes: its name, when, its target and settings, then its own ``fields``."""
    return {"benchmark": benchmark, "created_utc": utc_now(), "target": target, "settings": settings, **fields}


def write_result(out: Path, file_name: str, result: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / file_name
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path


def shipped_model(name: str) -> Path | None:
    """The shipped ``models/<name>.onnx`` when it and its sidecar are installed, else None (the node benchmarks then
    time a freshly exported, untrained network of the deploy size)."""
    from dcl_arc_ros.paths import models_dir

    path = models_dir() / f"{name}.onnx"
    return path if path.is_file() and path.with_suffix(".json").is_file() else None


def describe_model(given: Path | None, shipped: Path | None, fresh: str) -> str:
    """What the benchmark timed, for its settings: the ``--model`` file, else the shipped model with its version
    (``shipped models/<file> v<version>``), else ``fresh`` (a description of the untrained export)."""
    from dcl_arc_ros.core.sidecar import read_sidecar

    if given is not None:
        return str(given)
    if shipped is not None:
        version = read_sidecar(shipped.with_suffix(".json")).model_version
        return f"shipped {shipped.parent.name}/{shipped.name} v{version}"
    return fresh
