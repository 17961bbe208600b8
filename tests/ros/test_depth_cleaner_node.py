"""depth_cleaner in-process with real rclpy and a tiny affine ONNX model (out = 2 * depth + 0.5)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dcl_arc_ros.inference.backends import BACKENDS
from dcl_arc_ros.inference.reference_models import write_affine_depth_model
from dcl_arc_ros.ros import model_loading
from dcl_arc_ros.ros.conversions import depth_from_msg, depth_to_msg
from dcl_arc_ros.ros.depth_cleaner import DepthCleanerNode
from dcl_arc_ros.ros.errors import NodeStartupError
from dcl_arc_ros.ros.params import THREAD_OPTIONS

H, W = 24, 32
SCALE, OFFSET = 2.0, 0.5
TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    affine = folder / "affine.onnx"
    write_affine_depth_model(affine, scale=SCALE, offset=OFFSET, height=H, width=W)
    synth = folder / "synth.onnx"
    write_affine_depth_model(synth, scale=1.0, offset=0.25, height=H, width=W, name="synth")
    corrupt = folder / "corrupt.onnx"
    write_affine_depth_model(corrupt, height=H, width=W, name="corrupt")
    corrupt.write_bytes(b"this is not an onnx file")
    return {"affine": affine, "synth": synth, "corrupt": corrupt, "missing": folder / "missing.onnx"}


class Driver:
    """Publishes raw depth and collects whatever the node publishes, spinning both in a background thread."""

    def __init__(self, context: Context, node: DepthCleanerNode) -> None:
        self.executor = SingleThreadedExecutor(context=context)
        self.node = node
        self.driver = Node("depth_test_driver", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = self.driver.create_publisher(Image, "/camera/depth/image_rect_raw", qos)
        self.info_pub = self.driver.create_publisher(CameraInfo, "/camera/depth/camera_info", qos)
        self.cleaned: list[Image] = []
        self.synthesized: list[Image] = []
        self.driver.create_subscription(Image, "/dcl_arc/depth/cleaned", self.cleaned.append, qos)
        self.driver.create_subscription(Image, "/dcl_arc/depth/synthesized", self.synthesized.append, qos)
        for n in (self.driver, node):
            self.executor.add_node(n)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        wait_for(lambda: self.depth_pub.get_subscription_count() > 0, "the node to subscribe")

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.driver.destroy_node()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def make_node(context: Context, model: Path, *extra: str) -> DepthCleanerNode:
    args = ["--ros-args", "-p", f"model:={model}", "-p", "input_qos:=reliable", *extra]
    return DepthCleanerNode(context=context, cli_args=args)


def scene_depth() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (0.5 + 0.01 * xx + 0.02 * yy).astype(np.float32)


HEADER = Header(stamp=Time(sec=42, nanosec=7), frame_id="camera_depth_optical_frame")


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_cleaned_depth_is_the_models_function_with_the_input_header(
    context: Context, models: dict[str, Path], encoding: str
) -> None:
    driver = Driver(context, make_node(context, models["affine"]))
    try:
        depth = scene_depth()
        driver.depth_pub.publish(depth_to_msg(depth, HEADER, encoding))
        wait_for(lambda: driver.cleaned, "the cleaned depth")
        out = driver.cleaned[0]
        assert out.encoding == "32FC1"
        assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (42, 7, HEADER.frame_id)
        sent = depth_from_msg(depth_to_msg(depth, HEADER, encoding)).depth_m  # 16UC1 rounds to millimetres
        np.testing.assert_allclose(depth_from_msg(out).depth_m, SCALE * sent + OFFSET, rtol=1e-6)
        assert driver.node.provider == "CPUExecutionProvider"
    finally:
        driver.close()


def test_max_fill_px_leaves_the_unseen_band_unknown(context: Context, models: dict[str, Path]) -> None:
    driver = Driver(context, make_node(context, models["affine"], "-p", "max_fill_px:=4.0"))
    try:
        depth = scene_depth()
        depth[:, :12] = np.nan  # no reading in the first 12 columns
        driver.depth_pub.publish(depth_to_msg(depth, HEADER, "32FC1"))
        wait_for(lambda: driver.cleaned, "the cleaned depth")
        out = depth_from_msg(driver.cleaned[0]).depth_m
        assert np.isnan(out[:, :8]).all()  # more than 4 px from column 12
        assert np.isfinite(out[:, 8:]).all()  # filled within 4 px, and measured
    finally:
        driver.close()


def test_thread_count_reaches_the_backend(
    context: Context, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    def recording(model_path: Path, sidecar: Any, *, device: str, **options: Any) -> Any:
        seen.append(options)
        return BACKENDS["onnxruntime"](model_path, sidecar, device=device, **options)

    monkeypatch.setitem(BACKENDS, "recording", recording)
    monkeypatch.setitem(THREAD_OPTIONS, "recording", "intra_op_num_threads")
    node = make_node(context, models["affine"], "-p", "backend:=recording", "-p", "threads:=1")
    try:
        assert seen == [{"intra_op_num_threads": 1}]
        assert node.provider == "CPUExecutionProvider"
    finally:
        node.destroy_node()


def test_synthesized_depth_is_published_when_asked(context: Context, models: dict[str, Path]) -> None:
    node = make_node(
        context, models["affine"], "-p", "publish_synthesized:=true", "-p", f"synthesis_model:={models['synth']}"
    )
    driver = Driver(context, node)
    try:
        depth = scene_depth()
        driver.depth_pub.publish(depth_to_msg(depth, HEADER))
        wait_for(lambda: driver.cleaned and driver.synthesized, "both outputs")
        np.testing.assert_allclose(depth_from_msg(driver.synthesized[0]).depth_m, depth + 0.25, rtol=1e-6)
    finally:
        driver.close()


def test_camera_info_size_mismatch_is_reported_and_the_node_recovers(context: Context, models: dict[str, Path]) -> None:
    driver = Driver(context, make_node(context, models["affine"], "-p", "use_camera_info:=true"))
    try:
        wait_for(lambda: driver.info_pub.get_subscription_count() > 0, "the CameraInfo subscription")
        driver.info_pub.publish(CameraInfo(header=HEADER, width=W + 1, height=H))
        driver.depth_pub.publish(depth_to_msg(scene_depth(), HEADER))
        wait_for(lambda: driver.node.stats_snapshot().bad_inputs == 1, "the mismatch to be rejected")
        assert f"{W}x{H}" in driver.node.last_problem and f"{W + 1}x{H}" in driver.node.last_problem
        later = Header(stamp=Time(sec=43, nanosec=0), frame_id=HEADER.frame_id)
        driver.info_pub.publish(CameraInfo(header=later, width=W, height=H))
        driver.depth_pub.publish(depth_to_msg(scene_depth(), later))
        wait_for(lambda: driver.cleaned, "a cleaned frame after the bad one")
        assert driver.cleaned[0].header.stamp.sec == 43
    finally:
        driver.close()


def test_infinite_pixels_are_reported_but_the_frame_is_cleaned(context: Context, models: dict[str, Path]) -> None:
    driver = Driver(context, make_node(context, models["affine"]))
    try:
        depth = scene_depth()
        depth[3, 4] = np.inf
        driver.depth_pub.publish(depth_to_msg(depth, HEADER))
        wait_for(lambda: driver.cleaned, "the cleaned depth")
        assert "+-inf" in driver.node.last_problem
        assert np.isfinite(depth_from_msg(driver.cleaned[0]).depth_m[3, 4])  # filled, not propagated
    finally:
        driver.close()


@pytest.mark.parametrize(
    ("model_key", "extra", "message"),
    [
        ("missing", (), "missing.onnx does not exist"),
        ("corrupt", (), "corrupt.onnx"),
        ("affine", ("-p", "publish_synthesized:=true"), "synthesis_model is empty"),
        ("affine", ("-p", "backend:=no_such_backend"), "no_such_backend"),
    ],
)
def test_start_up_failures_name_the_file_or_parameter(
    context: Context, models: dict[str, Path], model_key: str, extra: tuple[str, ...], message: str
) -> None:
    with pytest.raises(NodeStartupError, match=message):
        make_node(context, models[model_key], *extra)


def test_an_empty_model_parameter_means_the_shipped_default(
    context: Context, models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_loading, "models_dir", lambda: tmp_path)
    with pytest.raises(NodeStartupError, match=r"depth_cleaner\.onnx does not exist .*depth_cleaner\.model is empty"):
        DepthCleanerNode(context=context, cli_args=["--ros-args", "-p", "model:=''"])
    write_affine_depth_model(tmp_path / "depth_cleaner.onnx", scale=SCALE, offset=OFFSET, height=H, width=W)
    node = DepthCleanerNode(context=context, cli_args=["--ros-args", "-p", "model:=''"])
    try:
        assert node.model_path == tmp_path / "depth_cleaner.onnx"
    finally:
        node.destroy_node()
