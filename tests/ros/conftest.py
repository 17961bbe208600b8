"""In-process node-test harness shared by the node tests of this folder.

pytest imports test modules with ``--import-mode=importlib``, so nothing here is imported: the tests ask for fixtures.

- ``context``: one rclpy context per test module;
- ``wait_for``: poll a predicate until it holds (``AssertionError`` naming what was awaited after ``TIMEOUT_S``);
- ``same_header``: whether two headers carry the same stamp and frame;
- ``node_driver``: a factory of :class:`NodeDriver`, which publishes a node's inputs and collects its outputs and
  ``/diagnostics``, spinning both nodes in a background thread; every driver is closed at the end of the test;
- ``affine_model``: a factory of tiny affine depth-to-depth ONNX models (a model of the wrong task for a node).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

TIMEOUT_S = 20.0

Topics = Mapping[str, tuple[type, str]]  # key -> (message type, topic)
Compose = Callable[..., Mapping[str, Any]]  # send(...) arguments -> {input key: message}, published in that order


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def headers_match(header: Header, expected: Header) -> bool:
    return (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (
        expected.stamp.sec,
        expected.stamp.nanosec,
        expected.frame_id,
    )


class NodeDriver:
    """Publishes ``inputs`` and collects every message on ``outputs`` (in ``received[key]``) and ``/diagnostics``.

    ``send(...)`` publishes the messages ``compose(...)`` returns, in their order; ``wait_for_outputs`` waits for the
    ``awaited`` outputs (default: all). The constructor returns once the node subscribes to every input.
    """

    def __init__(
        self,
        context: Context,
        node: Node,
        *,
        name: str,
        inputs: Topics,
        outputs: Topics,
        compose: Compose,
        awaited: tuple[str, ...] | None = None,
    ) -> None:
        self.executor = SingleThreadedExecutor(context=context)
        self.node = node
        self.driver = Node(name, context=context)
        self._compose = compose
        self.awaited = tuple(outputs) if awaited is None else awaited
        self._closed = False
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers: dict[str, Publisher] = {
            key: self.driver.create_publisher(msg_type, topic, qos) for key, (msg_type, topic) in inputs.items()
        }
        self.received: dict[str, list[Any]] = {key: [] for key in outputs}
        self.diagnostics: list[DiagnosticStatus] = []
        for key, (msg_type, topic) in outputs.items():
            self.driver.create_subscription(msg_type, topic, self.received[key].append, qos)
        self.driver.create_subscription(
            DiagnosticArray, "/diagnostics", lambda msg: self.diagnostics.extend(msg.status), 10
        )
        for n in (self.driver, node):
            self.executor.add_node(n)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        wait_until(
            lambda: all(pub.get_subscription_count() > 0 for pub in self.publishers.values()), "the node to subscribe"
        )

    def send(self, *args: Any, **kwargs: Any) -> None:
        for key, msg in self._compose(*args, **kwargs).items():
            self.publishers[key].publish(msg)

    def wait_for_outputs(self, count: int = 1, names: tuple[str, ...] | None = None) -> None:
        names = self.awaited if names is None else names
        wait_until(lambda: all(len(self.received[n]) >= count for n in names), f"{count} set(s) of {names}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.executor.shutdown()
        self.node.destroy_node()
        self.driver.destroy_node()


@pytest.fixture(scope="module")
def context() -> Iterator[Context]:
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., None]:
    return wait_until


@pytest.fixture(scope="session")
def same_header() -> Callable[[Header, Header], bool]:
    return headers_match


@pytest.fixture
def node_driver(context: Context) -> Iterator[Callable[..., NodeDriver]]:
    drivers: list[NodeDriver] = []

    def make(node: Node, **options: Any) -> NodeDriver:
        driver = NodeDriver(context, node, **options)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()


@pytest.fixture(scope="session")
def affine_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int, int], Path]:
    """``affine_model(height, width)``: the path of a tiny depth-to-depth model named "affine" of that size."""
    from dcl_arc_ros.inference.reference_models import write_affine_depth_model

    def write(height: int, width: int) -> Path:
        path = tmp_path_factory.mktemp("affine") / "affine.onnx"
        write_affine_depth_model(path, height=height, width=width, name="affine")
        return path

    return write
