"""pose_estimator in-process with real rclpy and a tiny untrained PoseNet exported to ONNX with its sidecar."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

import torch
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseArray
from rclpy.context import Context
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float32MultiArray, Header
from visualization_msgs.msg import Marker, MarkerArray

from dcl_arc_ros.core.pose_pipeline import PosePipeline
from dcl_arc_ros.core.proposals import ProposalParams
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.pose import POSENET_PRESETS
from dcl_arc_ros.learning.pose.export import export_pose_checkpoint
from dcl_arc_ros.learning.pose.toy_data import TOY_INTRINSICS, ToyPoseFrames
from dcl_arc_ros.learning.pose.trainer import PoseDataConfig, PoseTask, PoseTrainConfig
from dcl_arc_ros.ros.conversions import camera_info_from_intrinsics, depth_from_msg, depth_to_msg
from dcl_arc_ros.ros.errors import NodeStartupError
from dcl_arc_ros.ros.markers import POSE_AXES_NAMESPACE, POSE_BOX_NAMESPACE, POSE_LABEL_NAMESPACE, table_from_info
from dcl_arc_ros.ros.pose_estimator import PoseEstimatorNode

torch.set_num_threads(1)
K = TOY_INTRINSICS
H, W = K.height, K.width
HEADER = Header(stamp=Time(sec=42, nanosec=7), frame_id="camera_depth_optical_frame")


@pytest.fixture(scope="session")
def pose_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pose_models")
    torch.manual_seed(0)
    net_cfg = POSENET_PRESETS["tiny"]
    cfg = PoseTrainConfig(network=net_cfg, data=PoseDataConfig(crop_size=net_cfg.crop_size, depth_scale_m=0.1))
    task = PoseTask(cfg)
    with torch.no_grad():  # a rotation head that depends on the input
        task.net.rotation_head.weight.normal_(0.0, 0.5)
    task.net.eval()
    ckpt = save_checkpoint(folder / "pose.pt", step=1, networks=task.networks(), run_config=cfg, primary="posenet")
    return export_pose_checkpoint(ckpt, folder / "pose.onnx").onnx_path


OUTPUTS: dict[str, tuple[type, str]] = {
    "poses": (PoseArray, "/dcl_arc/poses"),
    "info": (Float32MultiArray, "/dcl_arc/poses/info"),
    "markers": (MarkerArray, "/dcl_arc/poses/markers"),
}


def depth_and_info(depth: np.ndarray, header: Header = HEADER, encoding: str = "32FC1") -> Mapping[str, Any]:
    """What ``driver.send`` publishes: the CameraInfo, then the depth, with the same header."""
    return {"camera_info": camera_info_from_intrinsics(K, header), "depth": depth_to_msg(depth, header, encoding)}


@pytest.fixture
def driver_for(node_driver: Callable[..., Any]) -> Callable[[PoseEstimatorNode], Any]:
    """``driver_for(node)``: publishes depth + CameraInfo to ``node`` and collects its pose outputs."""

    def make(node: PoseEstimatorNode) -> Any:
        inputs = {
            "depth": (Image, "/camera/depth/image_rect_raw"),
            "camera_info": (CameraInfo, "/camera/depth/camera_info"),
        }
        return node_driver(node, name="pose_test_driver", inputs=inputs, outputs=OUTPUTS, compose=depth_and_info)

    return make


def make_node(context: Context, model: Path, *extra: str) -> PoseEstimatorNode:
    args = ["--ros-args", "-p", f"model:={model}", "-p", "input_qos:=reliable", "-p", "min_pixels:=30"]
    return PoseEstimatorNode(context=context, cli_args=[*args, *extra])


def table_depth() -> np.ndarray:
    """A slightly tilted empty table."""
    yy, _ = np.mgrid[0:H, 0:W]
    return (0.8 + 0.0005 * yy).astype(np.float32)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_poses_are_the_pipelines_with_the_input_header(
    context: Context,
    pose_model: Path,
    encoding: str,
    same_header: Callable[[Header, Header], bool],
    driver_for: Callable[..., Any],
) -> None:
    driver = driver_for(make_node(context, pose_model))
    try:
        depth = ToyPoseFrames(1)[0].depth
        driver.send(depth, encoding=encoding)
        driver.wait_for_outputs()
        poses, info, marker_array = (
            driver.received["poses"][0],
            driver.received["info"][0],
            driver.received["markers"][0],
        )

        sent = depth_from_msg(depth_to_msg(depth, HEADER, encoding)).depth_m  # 16UC1 rounds to millimetres
        expected = PosePipeline(load_model(pose_model), proposals=ProposalParams(min_pixels=30))(sent, K)
        assert len(expected) == 2  # the two toy objects
        assert same_header(poses.header, HEADER) and len(poses.poses) == 2
        for pose, p in zip(poses.poses, expected, strict=True):
            np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], p.translation, rtol=1e-6)
            o = pose.orientation
            np.testing.assert_allclose([o.x, o.y, o.z, o.w], p.quaternion(), atol=1e-5)
        columns, rows = table_from_info(info)
        assert columns == ("class_id", "confidence")
        np.testing.assert_allclose(rows, [[p.class_id, p.confidence] for p in expected], rtol=1e-5)
        assert np.all((rows[:, 1] > 0) & (rows[:, 1] <= 1))

        assert marker_array.markers[0].action == Marker.DELETEALL
        namespaces = sorted((m.ns, m.id) for m in marker_array.markers[1:])
        assert namespaces == sorted(
            (ns, i) for ns in (POSE_AXES_NAMESPACE, POSE_BOX_NAMESPACE, POSE_LABEL_NAMESPACE) for i in range(2)
        )
        assert all(same_header(m.header, HEADER) for m in marker_array.markers)
    finally:
        driver.close()


def test_max_objects_limits_the_result(
    context: Context, pose_model: Path, wait_for: Callable[..., None], driver_for: Callable[..., Any]
) -> None:
    driver = driver_for(make_node(context, pose_model, "-p", "max_objects:=1", "-p", "publish_markers:=false"))
    try:
        driver.publishers["camera_info"].publish(camera_info_from_intrinsics(K, HEADER))
        driver.publishers["depth"].publish(depth_to_msg(ToyPoseFrames(1)[0].depth, HEADER))
        wait_for(lambda: driver.received["poses"] and driver.received["info"], "the poses")
        poses, info = driver.received["poses"][0], driver.received["info"][0]
        assert len(poses.poses) == 1 and table_from_info(info)[1].shape == (1, 2)
        time.sleep(0.2)
        assert driver.received["markers"] == []
    finally:
        driver.close()


def test_an_empty_table_is_an_empty_pose_array_not_an_error(
    context: Context, pose_model: Path, same_header: Callable[[Header, Header], bool], driver_for: Callable[..., Any]
) -> None:
    driver = driver_for(make_node(context, pose_model))
    try:
        driver.send(table_depth())
        driver.wait_for_outputs()
        assert driver.received["poses"][0].poses == [] and same_header(driver.received["poses"][0].header, HEADER)
        assert table_from_info(driver.received["info"][0])[1].shape == (0, 2)
        assert [m.action for m in driver.received["markers"][0].markers] == [Marker.DELETEALL]
        snapshot = driver.node.stats_snapshot()
        assert snapshot.bad_inputs == 0 and snapshot.errors == 0 and driver.node.last_problem == ""
    finally:
        driver.close()


@pytest.mark.parametrize(
    ("valid_pixels", "problem"),
    [(0, "no valid pixel"), (2, "at least 3 valid points")],
)
def test_unusable_depth_publishes_an_empty_result_and_a_warning(
    context: Context,
    pose_model: Path,
    valid_pixels: int,
    problem: str,
    same_header: Callable[[Header, Header], bool],
    driver_for: Callable[..., Any],
) -> None:
    driver = driver_for(make_node(context, pose_model))
    try:
        depth = np.full((H, W), np.nan, np.float32)
        depth[0, :valid_pixels] = 0.8
        driver.send(depth)
        driver.wait_for_outputs()
        assert driver.received["poses"][0].poses == [] and same_header(driver.received["poses"][0].header, HEADER)
        assert table_from_info(driver.received["info"][0])[1].shape == (0, 2)
        assert [m.action for m in driver.received["markers"][0].markers] == [Marker.DELETEALL]
        assert problem in driver.node.last_problem
        # Still running: the next frame with objects gives poses.
        driver.send(ToyPoseFrames(1)[0].depth, Header(stamp=Time(sec=43, nanosec=0), frame_id=HEADER.frame_id))
        driver.wait_for_outputs(2)
        assert len(driver.received["poses"][1].poses) == 2
    finally:
        driver.close()


def test_without_camera_info_nothing_is_published_and_the_silent_topic_is_reported(
    context: Context, pose_model: Path, wait_for: Callable[..., None], driver_for: Callable[..., Any]
) -> None:
    node = make_node(context, pose_model, "-p", "no_input_warn_s:=0.5", "-p", "diagnostics_period_s:=0.2")
    driver = driver_for(node)
    try:

        def warned() -> bool:
            driver.publishers["depth"].publish(depth_to_msg(table_depth(), HEADER))
            return any(
                s.level == DiagnosticStatus.WARN and "camera_info" in s.message and "image_rect_raw" not in s.message
                for s in list(driver.diagnostics)
            )

        wait_for(warned, "a diagnostics warning naming the CameraInfo topic")
        assert driver.received["poses"] == [] and driver.received["info"] == [] and driver.received["markers"] == []
    finally:
        driver.close()


def test_inconsistent_size_filters_stop_the_start_with_the_values(context: Context, pose_model: Path) -> None:
    with pytest.raises(NodeStartupError, match=r"min_pixels <= max_pixels, got 500, 100"):
        make_node(context, pose_model, "-p", "min_pixels:=500", "-p", "max_pixels:=100")
