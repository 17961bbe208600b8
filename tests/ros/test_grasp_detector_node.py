"""grasp_detector in-process with real rclpy and a tiny untrained GG-CNN exported to ONNX with its sidecar."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

import rclpy
import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, Header
from visualization_msgs.msg import Marker, MarkerArray

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.grasp_pipeline import GraspPipeline
from dcl_arc_ros.core.grasps import GraspDecodeParams
from dcl_arc_ros.core.image_codec import image_to_array
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.inference.reference_models import write_affine_depth_model
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.export import export_checkpoint
from dcl_arc_ros.learning.grasp.ggcnn import GGCNN_PRESETS
from dcl_arc_ros.learning.grasp.trainer import GraspDataConfig, GraspTask, GraspTrainConfig
from dcl_arc_ros.ros import depth_cleaner
from dcl_arc_ros.ros.conversions import (
    camera_info_from_intrinsics,
    depth_from_msg,
    depth_to_msg,
    fields_from_image_msg,
)
from dcl_arc_ros.ros.errors import NodeStartupError
from dcl_arc_ros.ros.grasp_detector import GraspDetectorNode
from dcl_arc_ros.ros.markers import table_from_info

torch.set_num_threads(1)
NET = 48  # network input side = crop side: the quality map is not resized
H, W = 60, 80
K = Intrinsics(fx=100.0, fy=100.0, cx=39.5, cy=29.5, width=W, height=H)
DECODE = {"min_distance": 3, "threshold": 0.1, "max_grasps": 5}
TIMEOUT_S = 20.0
HEADER = Header(stamp=Time(sec=42, nanosec=7), frame_id="camera_depth_optical_frame")


@pytest.fixture(scope="module")
def context() -> Iterator[Context]:
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture(scope="session")
def grasp_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("grasp_models")
    torch.manual_seed(0)
    cfg = GraspTrainConfig(ggcnn=GGCNN_PRESETS["tiny"], data=GraspDataConfig(input_size=NET, crop_size=NET))
    task = GraspTask(cfg)
    with torch.no_grad():  # a quality head well above the threshold, varying with the depth: peaks to find
        task.net.heads.quality.bias.fill_(0.5)
    ckpt = save_checkpoint(folder / "ggcnn.pt", step=1, networks=task.networks(), run_config=cfg, primary="ggcnn")
    ggcnn = export_checkpoint(ckpt, folder / "ggcnn.onnx", height=NET, width=NET).onnx_path
    affine = folder / "affine.onnx"
    write_affine_depth_model(affine, height=NET, width=NET, name="affine")
    return {"ggcnn": ggcnn, "affine": affine, "missing": folder / "missing.onnx"}


class Driver:
    """Publishes depth + CameraInfo and collects every output of the node, spinning both in a background thread."""

    def __init__(
        self, context: Context, node: GraspDetectorNode, depth_topic: str = "/camera/depth/image_rect_raw"
    ) -> None:
        self.executor = SingleThreadedExecutor(context=context)
        self.node = node
        self.driver = Node("grasp_test_driver", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.depth_pub = self.driver.create_publisher(Image, depth_topic, qos)
        self.info_pub = self.driver.create_publisher(CameraInfo, "/camera/depth/camera_info", qos)
        self.grasps: list[PoseArray] = []
        self.info: list[Float32MultiArray] = []
        self.markers: list[MarkerArray] = []
        self.quality: list[Image] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.driver.create_subscription(PoseArray, "/dcl_arc/grasps", self.grasps.append, qos)
        self.driver.create_subscription(Float32MultiArray, "/dcl_arc/grasps/info", self.info.append, qos)
        self.driver.create_subscription(MarkerArray, "/dcl_arc/grasps/markers", self.markers.append, qos)
        self.driver.create_subscription(Image, "/dcl_arc/grasps/quality", self.quality.append, qos)
        self.driver.create_subscription(
            DiagnosticArray, "/diagnostics", lambda msg: self.diagnostics.extend(msg.status), 10
        )
        for n in (self.driver, node):
            self.executor.add_node(n)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        wait_for(
            lambda: self.depth_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0,
            "the node to subscribe",
        )

    def send(self, depth: np.ndarray, header: Header = HEADER, encoding: str = "32FC1") -> None:
        self.info_pub.publish(camera_info_from_intrinsics(K, header))
        self.depth_pub.publish(depth_to_msg(depth, header, encoding))

    def wait_for_outputs(self, count: int = 1) -> None:
        wait_for(
            lambda: len(self.grasps) >= count and len(self.info) >= count and len(self.markers) >= count,
            f"{count} set(s) of grasp outputs",
        )

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


def make_node(context: Context, model: Path, *extra: str) -> GraspDetectorNode:
    args = ["--ros-args", "-p", f"model:={model}", "-p", "input_qos:=reliable", "-p", f"crop_size:={NET}"]
    for name, value in DECODE.items():
        args += ["-p", f"{name}:={value}"]
    return GraspDetectorNode(context=context, cli_args=[*args, *extra])


def scene_depth() -> np.ndarray:
    rng = np.random.default_rng(0)
    depth = (0.8 + 0.02 * rng.standard_normal((H, W))).astype(np.float32)
    depth[20:35, 30:50] = 0.7
    depth[rng.random(depth.shape) < 0.05] = np.nan
    return depth


def same_header(header: Header, expected: Header = HEADER) -> bool:
    return (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (
        expected.stamp.sec,
        expected.stamp.nanosec,
        expected.frame_id,
    )


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_grasps_are_the_pipelines_ranked_with_the_input_header(
    context: Context, grasp_models: dict[str, Path], encoding: str
) -> None:
    driver = Driver(context, make_node(context, grasp_models["ggcnn"], "-p", "publish_quality_map:=true"))
    try:
        depth = scene_depth()
        driver.send(depth, encoding=encoding)
        driver.wait_for_outputs()
        wait_for(lambda: driver.quality, "the quality map")
        poses, info, marker_array, quality = driver.grasps[0], driver.info[0], driver.markers[0], driver.quality[0]

        # What the pure pipeline gives on the same (decoded) depth with the same parameters.
        sent = depth_from_msg(depth_to_msg(depth, HEADER, encoding)).depth_m  # 16UC1 rounds to millimetres
        pipeline = GraspPipeline(load_model(grasp_models["ggcnn"]), crop_size=NET, decode=GraspDecodeParams(**DECODE))
        expected = pipeline(sent, K)
        assert len(expected) > 0
        assert len(poses.poses) == len(expected)
        for pose, g in zip(poses.poses, expected, strict=True):
            np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], g.position, rtol=1e-5)
            o = pose.orientation
            np.testing.assert_allclose([o.x, o.y, o.z, o.w], g.quaternion, atol=1e-6)

        columns, rows = table_from_info(info)
        assert columns == ("quality", "width_m")
        np.testing.assert_allclose(rows, [[g.quality, g.width_m] for g in expected], rtol=1e-5)
        assert np.all(np.diff(rows[:, 0]) <= 0) and np.all(rows[:, 0] >= DECODE["threshold"])

        assert marker_array.markers[0].action == Marker.DELETEALL
        assert [m.id for m in marker_array.markers[1:]] == list(range(len(expected)))
        assert all(same_header(m.header) for m in marker_array.markers)
        assert same_header(poses.header) and same_header(quality.header)

        # The quality map covers the centred crop, and at each grasp pixel it is that grasp's quality.
        qmap = image_to_array(fields_from_image_msg(quality))
        assert qmap.shape == (H, W)
        y0, x0 = (H - NET) // 2, (W - NET) // 2
        assert np.isfinite(qmap[y0 : y0 + NET, x0 : x0 + NET]).all() and np.isnan(qmap[:, :x0]).all()
        for g in expected:
            assert qmap[round(g.rect.cy), round(g.rect.cx)] == pytest.approx(g.quality, rel=1e-5)
        assert driver.node.provider == "CPUExecutionProvider"
    finally:
        driver.close()


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_all_invalid_depth_publishes_an_empty_result_and_a_warning(
    context: Context, grasp_models: dict[str, Path], encoding: str
) -> None:
    driver = Driver(context, make_node(context, grasp_models["ggcnn"]))
    try:
        driver.send(np.full((H, W), np.nan, np.float32), encoding=encoding)
        driver.wait_for_outputs()
        assert driver.grasps[0].poses == [] and same_header(driver.grasps[0].header)
        assert table_from_info(driver.info[0])[1].shape == (0, 2)
        assert [m.action for m in driver.markers[0].markers] == [Marker.DELETEALL]
        assert "no valid pixel" in driver.node.last_problem and encoding in driver.node.last_problem
        # The node keeps running: the next good frame gives grasps.
        later = Header(stamp=Time(sec=43, nanosec=0), frame_id=HEADER.frame_id)
        driver.send(scene_depth(), later)
        driver.wait_for_outputs(2)
        assert len(driver.grasps[1].poses) > 0 and driver.grasps[1].header.stamp.sec == 43
    finally:
        driver.close()


def test_without_camera_info_nothing_is_published_and_the_silent_topic_is_reported(
    context: Context, grasp_models: dict[str, Path]
) -> None:
    node = make_node(
        context, grasp_models["ggcnn"], "-p", "no_input_warn_s:=0.5", "-p", "diagnostics_period_s:=0.2"
    )
    driver = Driver(context, node)
    try:

        def warned() -> bool:
            driver.depth_pub.publish(depth_to_msg(scene_depth(), HEADER))
            return any(
                s.level == DiagnosticStatus.WARN and "camera_info" in s.message and "image_rect_raw" not in s.message
                for s in list(driver.diagnostics)
            )

        wait_for(warned, "a diagnostics warning naming the CameraInfo topic")
        assert driver.grasps == [] and driver.info == [] and driver.markers == []
        assert driver.node.stats_snapshot().bad_inputs == 0
        # Once a CameraInfo with the depth's stamp arrives, grasps follow.
        driver.send(scene_depth(), Header(stamp=Time(sec=44, nanosec=0), frame_id=HEADER.frame_id))
        driver.wait_for_outputs()
        assert driver.grasps[0].header.stamp.sec == 44
    finally:
        driver.close()


def test_a_camera_info_of_another_size_is_rejected(context: Context, grasp_models: dict[str, Path]) -> None:
    driver = Driver(context, make_node(context, grasp_models["ggcnn"]))
    try:
        info = camera_info_from_intrinsics(K, HEADER)
        info.width = W * 2
        driver.info_pub.publish(info)
        driver.depth_pub.publish(depth_to_msg(scene_depth(), HEADER))
        wait_for(lambda: driver.node.stats_snapshot().bad_inputs == 1, "the mismatch to be rejected")
        assert f"{W}x{H}" in driver.node.last_problem and f"{2 * W}x{H}" in driver.node.last_problem
        assert driver.grasps == []
    finally:
        driver.close()


@pytest.mark.parametrize(
    ("model_key", "extra", "message"),
    [
        ("missing", (), r"missing\.onnx does not exist \(check grasp_detector\.model\)"),
        ("affine", (), r"affine\.onnx cannot drive the grasp pipeline.*'grasp_maps'"),
    ],
)
def test_start_up_failures_name_the_file(
    context: Context, grasp_models: dict[str, Path], model_key: str, extra: tuple[str, ...], message: str
) -> None:
    with pytest.raises(NodeStartupError, match=message):
        make_node(context, grasp_models[model_key], *extra)


def test_an_empty_model_parameter_means_the_shipped_default(
    context: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(depth_cleaner, "models_dir", lambda: tmp_path)
    with pytest.raises(NodeStartupError, match=r"grasp_detector\.onnx does not exist .*grasp_detector\.model is empty"):
        GraspDetectorNode(context=context, cli_args=["--ros-args", "-p", "model:=''"])


def test_the_cleaned_depth_is_used_when_the_input_is_remapped(context: Context, grasp_models: dict[str, Path]) -> None:
    node = make_node(context, grasp_models["ggcnn"], "-r", "/camera/depth/image_rect_raw:=/dcl_arc/depth/cleaned")
    assert node.input_topic("depth") == "/dcl_arc/depth/cleaned"
    driver = Driver(context, node, depth_topic="/dcl_arc/depth/cleaned")
    try:
        driver.send(scene_depth())
        driver.wait_for_outputs()
        assert len(driver.grasps[0].poses) > 0 and same_header(driver.grasps[0].header)
        assert driver.node.last_problem == ""
    finally:
        driver.close()
