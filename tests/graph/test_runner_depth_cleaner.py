"""dcl-arc-perception across processes over real DDS: the runner starts depth_cleaner with a tiny affine ONNX model
(out = 2 * depth + 0.5) and this test process publishes 640x480 depth with real rclpy and checks what comes back.

Publishers republish until the answer arrives; timeouts are generous because the machine is shared.

The node runs with ``input_qos:=reliable`` here. Fast DDS reads its XML profile once per process, so whether this
test process has the large shared-memory profile depends on which test created the first participant; with
best-effort QoS and Fast DDS defaults almost every 1.2 MB frame is lost (FACTS section 4), which would make these
tests about DDS rather than about the node. The default best-effort path with the profile on both sides is what
``benchmarks/depth_cleaner_graph.py`` measures.
"""

from __future__ import annotations

import array
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dcl_arc_ros.dds import dds_environment
from dcl_arc_ros.inference.reference_models import write_affine_depth_model
from dcl_arc_ros.ros.conversions import depth_from_msg, depth_to_msg

pytestmark = pytest.mark.graph

H, W = 480, 640
SCALE, OFFSET = 2.0, 0.5
START_TIMEOUT_S = 90.0
ANSWER_TIMEOUT_S = 60.0
FRAME_ID = "camera_depth_optical_frame"


RELIABLE_INPUT = ("--param", "depth_cleaner.input_qos=reliable")


def runner_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dcl_arc_ros.runner", *args]


def start_runner(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """The runner in its own process group, stdout+stderr (its own and its nodes') into ``log``."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            runner_command(*args), stdout=sink, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(
    predicate: Callable[[], Any],
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace") if log else ""
            raise AssertionError(f"the runner exited with {proc.returncode} while waiting for {what}:\n{text}")
        time.sleep(0.05)
    text = log.read_text(errors="replace")[-4000:] if log else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{text}")


class Client:
    """This test process's DDS side: a reliable depth publisher and result listeners."""

    def __init__(self, context: Context) -> None:
        self.node = Node("graph_test_client", context=context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = self.node.create_publisher(Image, "/camera/depth/image_rect_raw", reliable)
        self.cleaned: dict[tuple[int, int], Image] = {}
        self.statuses: list[DiagnosticStatus] = []
        self.lock = threading.Lock()
        self.node.create_subscription(Image, "/dcl_arc/depth/cleaned", self._on_cleaned, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self._next_sec = 1000

    def _on_cleaned(self, msg: Image) -> None:
        with self.lock:
            self.cleaned[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        with self.lock:
            self.statuses.extend(s for s in msg.status if s.name.startswith("depth_cleaner"))

    def header(self) -> Header:
        self._next_sec += 1
        return Header(stamp=Time(sec=self._next_sec, nanosec=123), frame_id=FRAME_ID)

    def round_trip(self, make: Callable[[Header], Image], proc: subprocess.Popen[bytes], log: Path) -> Image:
        """Publish (republishing every 0.2 s) until the cleaned image with the same stamp comes back."""
        header = self.header()
        msg = make(header)
        key = (header.stamp.sec, header.stamp.nanosec)
        last = 0.0

        def answered() -> Image | None:
            nonlocal last
            with self.lock:
                if key in self.cleaned:
                    return self.cleaned[key]
            if time.monotonic() - last > 0.2:
                self.depth_pub.publish(msg)
                last = time.monotonic()
            return None

        return wait_for(answered, f"the cleaned frame stamped {key}", ANSWER_TIMEOUT_S, proc, log)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("graph_models") / "affine.onnx"
    write_affine_depth_model(path, scale=SCALE, offset=OFFSET, height=H, width=W)
    return path


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    # Fast DDS reads the profile when rmw creates the participant, i.e. with the context's first node: keep the
    # variables set until the client node exists, like a camera driver started with the profile.
    saved = dict(os.environ)
    os.environ.update(dds_environment(os.environ))
    try:
        context = Context()
        rclpy.init(context=context)
        c = Client(context)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield c
    c.close()
    rclpy.shutdown(context=context)


@pytest.fixture(scope="module")
def runner(model: Path, tmp_path_factory: pytest.TempPathFactory, client: Client) -> Iterator[tuple[Any, Path]]:
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    proc = start_runner(
        log,
        "--only", "depth_cleaner",
        "--param", f"depth_cleaner.model={model}",
        "--param", "depth_cleaner.diagnostics_period_s=0.5",
        *RELIABLE_INPUT,
    )  # fmt: skip
    subscribed = lambda: client.node.count_subscribers("/camera/depth/image_rect_raw") > 0  # noqa: E731
    wait_for(subscribed, "depth_cleaner to subscribe", START_TIMEOUT_S, proc, log)
    yield proc, log
    stop(proc)


def scene(h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (0.4 + 0.002 * xx + 0.003 * yy).astype(np.float32)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_cleaned_depth_matches_the_model_with_the_input_header(
    runner: tuple[Any, Path], client: Client, encoding: str
) -> None:
    proc, log = runner
    depth = scene()
    out = client.round_trip(lambda header: depth_to_msg(depth, header, encoding), proc, log)
    assert out.encoding == "32FC1"
    assert (out.height, out.width) == (H, W)
    assert out.header.frame_id == FRAME_ID and out.header.stamp.nanosec == 123
    sent = depth_from_msg(depth_to_msg(depth, Header(), encoding)).depth_m  # 16UC1 carries whole millimetres
    np.testing.assert_allclose(depth_from_msg(out).depth_m, SCALE * sent + OFFSET, rtol=1e-6)


def _wrong_encoding(header: Header) -> Image:
    msg = depth_to_msg(scene(), header)
    msg.encoding = "rgb8"
    return msg


def _wrong_size(header: Header) -> Image:
    msg = depth_to_msg(scene(), header)
    msg.data = array.array("B", bytes(msg.data)[: -W * 4 * 10])  # ten rows short of step * height
    return msg


def _all_nan(header: Header) -> Image:
    return depth_to_msg(np.full((H, W), np.nan, np.float32), header)


def _with_inf(header: Header) -> Image:
    depth = scene()
    depth[::7, ::5] = np.inf
    return depth_to_msg(depth, header)


def _empty(header: Header) -> Image:
    return Image(header=header, height=0, width=0, encoding="32FC1", step=0)


@pytest.mark.parametrize(
    ("make_bad", "reported"),
    [
        (_wrong_encoding, "'rgb8' is not supported"),
        (_wrong_size, "bytes but step * height"),
        (_all_nan, "has no valid pixel"),
        (_with_inf, "pixels are +-inf"),
        (_empty, "empty depth image"),
    ],
    ids=["wrong-encoding", "wrong-size", "all-nan", "inf", "empty"],
)
def test_bad_input_is_reported_and_the_node_keeps_answering(
    runner: tuple[Any, Path], client: Client, make_bad: Callable[[Header], Image], reported: str
) -> None:
    proc, log = runner
    bad = make_bad(client.header())
    for _ in range(3):
        client.depth_pub.publish(bad)
        time.sleep(0.1)
    wait_for(lambda: reported in log.read_text(errors="replace"), f"the report {reported!r} in the log", 30, proc, log)
    # Still alive and still correct.
    depth = scene()
    out = client.round_trip(lambda header: depth_to_msg(depth, header), proc, log)
    np.testing.assert_allclose(depth_from_msg(out).depth_m, SCALE * depth + OFFSET, rtol=1e-6)


def test_diagnostics_count_the_bad_inputs(runner: tuple[Any, Path], client: Client) -> None:
    proc, log = runner
    client.depth_pub.publish(_wrong_encoding(client.header()))

    def counted() -> bool:
        with client.lock:
            for status in client.statuses:
                values = {v.key: v.value for v in status.values}
                if int(values.get("bad inputs", "0")) > 0 and values.get("last problem"):
                    return values["provider"] == "CPUExecutionProvider"
        return False

    wait_for(counted, "a diagnostics status counting bad inputs", 30, proc, log)


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_a_bad_model_fails_at_start_up_naming_the_file(tmp_path: Path, model: Path, kind: str) -> None:
    path = tmp_path / f"{kind}_model.onnx"
    if kind == "corrupt":
        write_affine_depth_model(path, height=8, width=8)
        path.write_bytes(b"\x08\x01 not a protobuf")
    result = subprocess.run(
        runner_command("--only", "depth_cleaner", "--param", f"depth_cleaner.model={path}"),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        env=dict(os.environ),
    )
    assert result.returncode != 0
    assert str(path) in result.stderr


def test_sigterm_stops_every_node_process(model: Path, tmp_path: Path, client: Client) -> None:
    log = tmp_path / "runner.log"
    proc = start_runner(log, "--only", "depth_cleaner", "--param", f"depth_cleaner.model={model}")
    try:
        children = wait_for(lambda: child_pids(proc.pid), "the node process", START_TIMEOUT_S, proc, log)
        started = lambda: "listening on" in log.read_text(errors="replace")  # noqa: E731
        wait_for(started, "the node to start", START_TIMEOUT_S, proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not [pid for pid in children if alive(pid)]
    finally:
        stop(proc)


def test_a_killed_runner_leaves_no_orphan(model: Path, tmp_path: Path) -> None:
    log = tmp_path / "runner.log"
    proc = start_runner(log, "--only", "depth_cleaner", "--param", f"depth_cleaner.model={model}")
    children: list[int] = []
    try:
        children = wait_for(lambda: child_pids(proc.pid), "the node process", START_TIMEOUT_S, proc, log)
        proc.kill()  # no chance to clean up: the children must still go (parent-death signal)
        proc.wait(timeout=10)
        wait_for(lambda: not [pid for pid in children if alive(pid)], "the orphaned node to exit", 30)
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_single_process_mode_cleans_depth(model: Path, tmp_path: Path, client: Client) -> None:
    log = tmp_path / "runner.log"
    proc = start_runner(
        log, "--single-process", "--only", "depth_cleaner", "--param", f"depth_cleaner.model={model}", *RELIABLE_INPUT
    )
    try:
        started = lambda: "started depth_cleaner in-process" in log.read_text(errors="replace")  # noqa: E731
        wait_for(started, "the in-process node", START_TIMEOUT_S, proc, log)
        depth = scene()
        out = client.round_trip(lambda header: depth_to_msg(depth, header), proc, log)
        np.testing.assert_allclose(depth_from_msg(out).depth_m, SCALE * depth + OFFSET, rtol=1e-6)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        stop(proc)
