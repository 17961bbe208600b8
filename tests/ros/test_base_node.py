"""PerceptionNode in-process with real rclpy: parameters from the schema, newest-frame policy, sync, bad input,
diagnostics and the no-input warning. One rclpy context per module; each test spins its own executor."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pytest
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Log
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dcl_arc_ros.ros.base_node import Frame, InputSpec, PerceptionNode
from dcl_arc_ros.ros.conversions import depth_from_msg, depth_to_msg
from dcl_arc_ros.ros.errors import ParameterError
from dcl_arc_ros.ros.params import COMMON_PARAMS, NodeSchema

NodeT = TypeVar("NodeT", bound=Node)
SCHEMA = NodeSchema("recording_node", COMMON_PARAMS)
TIMEOUT_S = 20.0


class RecordingNode(PerceptionNode):
    """Records every frame it processes; can be held inside ``process`` to play a slow model."""

    def __init__(self, inputs: list[InputSpec], *, hold: bool = False, **kwargs: Any) -> None:
        super().__init__("recording_node", SCHEMA, **kwargs)
        self.processed: list[Frame] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.start_inputs(inputs)

    def process(self, frame: Frame) -> None:
        self.entered.set()
        self.release.wait(TIMEOUT_S)
        depth_from_msg(frame.msgs["depth"])  # raises BadInputError for bad frames
        self.processed.append(frame)


class Harness:
    """A driver node (publishers, /diagnostics and /rosout listeners) and an executor spinning in a thread."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.driver = Node("test_driver", context=context)
        self.executor.add_node(self.driver)
        self.nodes: list[Node] = [self.driver]
        self.diagnostics: list[DiagnosticStatus] = []
        self.logs: list[str] = []
        self.driver.create_subscription(
            DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.extend(m.status), 50
        )
        self.driver.create_subscription(Log, "/rosout", lambda m: self.logs.append(m.msg), 200)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def add(self, node: NodeT) -> NodeT:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def publisher(self, msg_type: type, topic: str) -> Any:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        return self.driver.create_publisher(msg_type, topic, qos)

    def close(self) -> None:
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()


@pytest.fixture
def harness(context: Context) -> Iterator[Harness]:
    h = Harness(context)
    yield h
    h.close()


def _received(node: RecordingNode, count: int) -> bool:
    return node.stats_snapshot().received == count


def depth_msg(sec: int, value: float = 1.0, encoding: str = "32FC1") -> Image:
    header = Header(stamp=Time(sec=sec, nanosec=0), frame_id="cam")
    return depth_to_msg(np.full((4, 6), value, dtype=np.float32), header, encoding)


def info_msg(sec: int, nanosec: int = 0) -> CameraInfo:
    return CameraInfo(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="cam"), width=6, height=4)


def test_parameters_are_declared_from_the_schema_with_overrides(harness: Harness) -> None:
    node = harness.add(
        RecordingNode(
            [InputSpec("depth", "/p/depth", Image)],
            context=harness.context,
            cli_args=["--ros-args", "-p", "sync_slop_s:=0.05", "-p", "no_input_warn_s:=3"],
        )
    )
    assert node.params["sync_slop_s"] == pytest.approx(0.05)
    assert node.params["no_input_warn_s"] == pytest.approx(3.0)  # an int on the command line is fine for a float
    (descriptor,) = node.describe_parameters(["sync_slop_s"])
    assert "stamp difference" in descriptor.description
    assert descriptor.floating_point_range[0].to_value == pytest.approx(1.0)
    assert descriptor.read_only


@pytest.mark.parametrize(
    ("override", "message"),
    [("input_qos:=fastest", "input_qos = 'fastest'"), ("diagnostics_period_s:=0.0", "diagnostics_period_s")],
)
def test_a_bad_parameter_names_the_parameter_and_value(harness: Harness, override: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        RecordingNode(
            [InputSpec("depth", "/p/depth", Image)], context=harness.context, cli_args=["--ros-args", "-p", override]
        )


def test_slow_processing_drops_stale_frames_and_keeps_the_newest(
    harness: Harness, wait_for: Callable[..., None]
) -> None:
    node = harness.add(
        RecordingNode(
            [InputSpec("depth", "/newest/depth", Image)],
            hold=True,
            context=harness.context,
            cli_args=["--ros-args", "-p", "input_qos:=reliable"],
        )
    )
    pub = harness.publisher(Image, "/newest/depth")
    wait_for(lambda: pub.get_subscription_count() > 0, "the node's subscription")
    pub.publish(depth_msg(1))
    wait_for(node.entered.is_set, "the worker to start on frame 1")
    for sec in range(2, 7):
        pub.publish(depth_msg(sec))
    wait_for(lambda: node.stats_snapshot().received == 6, "all six frames to be received")
    node.release.set()
    wait_for(lambda: len(node.processed) == 2, "the newest frame to be processed")
    time.sleep(0.3)  # nothing else may follow
    assert [f.msgs["depth"].header.stamp.sec for f in node.processed] == [1, 6]
    snapshot = node.stats_snapshot()
    assert snapshot.dropped_stale == 4
    assert snapshot.published == 2


def test_a_larger_mailbox_keeps_the_newest_few_frames_in_order(harness: Harness, wait_for: Callable[..., None]) -> None:
    node = harness.add(
        RecordingNode(
            [InputSpec("depth", "/mailbox/depth", Image)],
            hold=True,
            context=harness.context,
            cli_args=["--ros-args", "-p", "input_qos:=reliable", "-p", "max_pending_frames:=3"],
        )
    )
    pub = harness.publisher(Image, "/mailbox/depth")
    wait_for(lambda: pub.get_subscription_count() > 0, "the node's subscription")
    pub.publish(depth_msg(1))
    wait_for(node.entered.is_set, "the worker to start on frame 1")
    for sec in range(2, 8):  # one at a time: the subscription's own history keeps only 5
        pub.publish(depth_msg(sec))
        wait_for(partial(_received, node, sec), f"frame {sec} to be received")
    node.release.set()
    wait_for(lambda: len(node.processed) == 4, "the three newest frames to be processed")
    time.sleep(0.3)
    assert [f.msgs["depth"].header.stamp.sec for f in node.processed] == [1, 5, 6, 7]
    assert node.stats_snapshot().dropped_stale == 3


def test_image_and_camera_info_are_matched_by_stamp_within_the_slop(
    harness: Harness, wait_for: Callable[..., None]
) -> None:
    node = harness.add(
        RecordingNode(
            [InputSpec("depth", "/sync/depth", Image), InputSpec("camera_info", "/sync/info", CameraInfo)],
            context=harness.context,
            cli_args=["--ros-args", "-p", "input_qos:=reliable", "-p", "sync_slop_s:=0.01"],
        )
    )
    depth_pub = harness.publisher(Image, "/sync/depth")
    info_pub = harness.publisher(CameraInfo, "/sync/info")
    wait_for(lambda: depth_pub.get_subscription_count() and info_pub.get_subscription_count(), "subscriptions")
    info_pub.publish(info_msg(10, 5_000_000))  # 5 ms after the depth: matched
    depth_pub.publish(depth_msg(10))
    wait_for(lambda: len(node.processed) == 1, "the matched pair")
    assert node.processed[0].msgs["camera_info"].header.stamp.nanosec == 5_000_000
    info_pub.publish(info_msg(20, 500_000_000))  # 0.5 s apart: never matched
    depth_pub.publish(depth_msg(20))
    wait_for(lambda: node.stats_snapshot().received == 2, "the second depth frame")
    time.sleep(0.3)
    assert len(node.processed) == 1


def test_bad_input_is_reported_and_the_node_keeps_working(harness: Harness, wait_for: Callable[..., None]) -> None:
    node = harness.add(
        RecordingNode(
            [InputSpec("depth", "/bad/depth", Image)],
            context=harness.context,
            cli_args=["--ros-args", "-p", "input_qos:=reliable", "-p", "diagnostics_period_s:=0.2"],
        )
    )
    pub = harness.publisher(Image, "/bad/depth")
    wait_for(lambda: pub.get_subscription_count() > 0, "the node's subscription")
    pub.publish(depth_msg(1, encoding="16UC1"))
    wait_for(lambda: len(node.processed) == 1, "the first good frame")  # else the newest-frame policy may drop it
    wrong = depth_msg(2)
    wrong.encoding = "rgb8"
    pub.publish(wrong)
    wait_for(lambda: node.stats_snapshot().bad_inputs == 1, "the bad frame to be rejected")
    pub.publish(depth_msg(3))
    wait_for(lambda: len(node.processed) == 2, "the good frame after the bad one")
    assert "'rgb8'" in node.last_problem and "/bad/depth" in node.last_problem
    wait_for(lambda: any("'rgb8'" in text for text in harness.logs), "the warning in /rosout")
    wait_for(
        lambda: any(
            s.name.startswith("recording_node") and any(v.key == "last problem" and "rgb8" in v.value for v in s.values)
            for s in harness.diagnostics
        ),
        "the problem in /diagnostics",
    )


def test_silence_gives_a_loud_warning_naming_the_topic_and_qos(harness: Harness, wait_for: Callable[..., None]) -> None:
    harness.add(
        RecordingNode(
            [InputSpec("depth", "/silent/depth", Image)],
            context=harness.context,
            cli_args=["--ros-args", "-p", "no_input_warn_s:=1.0", "-p", "diagnostics_period_s:=0.2"],
        )
    )
    wait_for(lambda: any("NO INPUT on /silent/depth" in text for text in harness.logs), "the no-input warning")
    warning = next(text for text in harness.logs if "NO INPUT on /silent/depth" in text)
    assert "best effort" in warning and "No publisher" in warning
    wait_for(
        lambda: any(s.level == DiagnosticStatus.WARN and "/silent/depth" in s.message for s in harness.diagnostics),
        "a WARN diagnostic",
    )


def test_silence_with_a_best_effort_publisher_hints_at_the_dds_profile(
    harness: Harness, wait_for: Callable[..., None]
) -> None:
    node = harness.add(
        RecordingNode(
            [InputSpec("depth", "/quiet/depth", Image)],
            context=harness.context,
            cli_args=["--ros-args", "-p", "no_input_warn_s:=1.0", "-p", "input_qos:=reliable"],
        )
    )
    harness.driver.create_publisher(
        Image, "/quiet/depth", QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    )
    wait_for(lambda: any("NO INPUT on /quiet/depth" in t and "Publisher" in t for t in harness.logs), "the warning")
    warning = next(t for t in harness.logs if "NO INPUT on /quiet/depth" in t and "Publisher" in t)
    assert "best effort but this subscription is reliable" in warning
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in warning
    assert node.stats_snapshot().received == 0


class PublishingNode(RecordingNode):
    """Publishes one image per processed frame, so that a shutdown in the middle of ``process`` makes publish fail."""

    def __init__(self, inputs: list[InputSpec], **kwargs: Any) -> None:
        super().__init__(inputs, **kwargs)
        self.output = self.create_publisher(Image, "/in_flight/out", 10)
        self.left = threading.Event()

    def process(self, frame: Frame) -> None:
        try:
            super().process(frame)
            self.output.publish(frame.msgs["depth"])
        finally:
            self.left.set()


def test_a_frame_in_flight_at_shutdown_is_dropped_without_an_error(wait_for: Callable[..., None]) -> None:
    context = Context()  # its own: the test shuts it down, as Ctrl-C does
    rclpy.init(context=context)
    node = PublishingNode(
        [InputSpec("depth", "/in_flight/depth", Image)],
        hold=True,
        context=context,
        cli_args=["--ros-args", "-p", "input_qos:=reliable"],
    )
    driver = Node("in_flight_driver", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):  # how spin ends when the context is shut down
            executor.spin()

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        pub = driver.create_publisher(
            Image, "/in_flight/depth", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        )
        wait_for(lambda: pub.get_subscription_count() > 0, "the node's subscription")
        pub.publish(depth_msg(1))
        wait_for(node.entered.is_set, "the worker to start on the frame")
        rclpy.shutdown(context=context)
        node.release.set()
        wait_for(node.left.is_set, "the worker to leave process()")
        time.sleep(0.2)  # the base class's handling of the failed publish runs after process() returns
        snapshot = node.stats_snapshot()
        assert len(node.processed) == 1  # process() got as far as the publish, which the shutdown made fail
        assert (snapshot.errors, snapshot.bad_inputs, snapshot.published) == (0, 0, 0)
        assert node.last_problem == ""
    finally:
        executor.shutdown()
        node.destroy_node()
        driver.destroy_node()
        rclpy.try_shutdown(context=context)
