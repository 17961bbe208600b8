"""grasp_detector in-process with real rclpy and a tiny untrained GG-CNN exported to ONNX with its sidecar."""

from __future__ import annotations

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

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.grasp_pipeline import GraspPipeline
from dcl_arc_ros.core.grasps import GraspDecodeParams
from dcl_arc_ros.core.image_codec import image_to_array
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.export import export_checkpoint
from dcl_arc_ros.learning.grasp.ggcnn import GGCNN_PRESETS
from dcl_arc_ros.learning.grasp.trainer import GraspDataConfig, GraspTask, GraspTrainConfig
from dcl_arc_ros.ros import model_loading
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
HEADER = Header(stamp=Time(sec=42, nanosec=7), frame_id="camera_depth_optical_frame")


@pytest.fixture(scope="session")
def grasp_models(tmp_path_factory: pytest.TempPathFactory, affine_model: Callable[[int, int], Path]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("grasp_models")
    torch.manual_seed(0)
    cfg = GraspTrainConfig(ggcnn=GGCNN_PRESETS["tiny"], data=GraspDataConfig(input_size=NET, crop_size=NET))
    task = GraspTask(cfg)
    with torch.no_grad():  # a quality head well above the threshold, varying with the depth: peaks to find
        task.net.heads.quality.bias.fill_(0.5)
    ckpt = save_checkpoint(folder / "ggcnn.pt", step=1, networks=task.networks(), run_config=cfg, primary="ggcnn")
    ggcnn = export_checkpoint(ckpt, folder / "ggcnn.onnx", height=NET, width=NET).onnx_path
    return {"ggcnn": ggcnn, "affine": affine_model(NET, NET), "missing": folder / "missing.onnx"}


OUTPUTS: dict[str, tuple[type, str]] = {
    "grasps": (PoseArray, "/dcl_arc/grasps"),
    "info": (Float32MultiArray, "/dcl_arc/grasps/info"),
    "markers": (MarkerArray, "/dcl_arc/grasps/markers"),
    "quality": (Image, "/dcl_arc/grasps/quality"),
}


def depth_and_info(depth: np.ndarray, header: Header = HEADER, encoding: str = "32FC1") -> Mapping[str, Any]:
    """What ``driver.send`` publishes: the CameraInfo, then the depth, with the same header."""
    return {"camera_info": camera_info_from_intrinsics(K, header), "depth": depth_to_msg(depth, header, encoding)}


@pytest.fixture
def driver_for(node_driver: Callable[..., Any]) -> Callable[..., Any]:
    """``driver_for(node)``: publishes depth + CameraInfo to ``node`` and collects its grasp outputs."""

    def make(node: GraspDetectorNode, depth_topic: str = "/camera/depth/image_rect_raw") -> Any:
        inputs = {"depth": (Image, depth_topic), "camera_info": (CameraInfo, "/camera/depth/camera_info")}
        return node_driver(
            node,
            name="grasp_test_driver",
            inputs=inputs,
            outputs=OUTPUTS,
            compose=depth_and_info,
            awaited=("grasps", "info", "markers"),
        )

    return make


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


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_grasps_are_the_pipelines_ranked_with_the_input_header(
    context: Context,
    grasp_models: dict[str, Path],
    encoding: str,
    wait_for: Callable[..., None],
    same_header: Callable[[Header, Header], bool],
    driver_for: Callable[..., Any],
) -> None:
    driver = driver_for(make_node(context, grasp_models["ggcnn"], "-p", "publish_quality_map:=true"))
    try:
        depth = scene_depth()
        driver.send(depth, encoding=encoding)
        driver.wait_for_outputs()
        wait_for(lambda: driver.received["quality"], "the quality map")
        poses, info, marker_array, quality = (
            driver.received["grasps"][0],
            driver.received["info"][0],
            driver.received["markers"][0],
            driver.received["quality"][0],
        )

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
        assert all(same_header(m.header, HEADER) for m in marker_array.markers)
        assert same_header(poses.header, HEADER) and same_header(quality.header, HEADER)

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
    context: Context,
    grasp_models: dict[str, Path],
    encoding: str,
    same_header: Callable[[Header, Header], bool],
    driver_for: Callable[..., Any],
) -> None:
    driver = driver_for(make_node(context, grasp_models["ggcnn"]))
    try:
        driver.send(np.full((H, W), np.nan, np.float32), encoding=encoding)
        driver.wait_for_outputs()
        assert driver.received["grasps"][0].poses == [] and same_header(driver.received["grasps"][0].header, HEADER)
        assert table_from_info(driver.received["info"][0])[1].shape == (0, 2)
        assert [m.action for m in driver.received["markers"][0].markers] == [Marker.DELETEALL]
        assert "no valid pixel" in driver.node.last_problem and encoding in driver.node.last_problem
        # The node keeps running: the next good frame gives grasps.
        later = Header(stamp=Time(sec=43, nanosec=0), frame_id=HEADER.frame_id)
        driver.send(scene_depth(), later)
        driver.wait_for_outputs(2)
        assert len(driver.received["grasps"][1].poses) > 0 and driver.received["grasps"][1].header.stamp.sec == 43
    finally:
        driver.close()


def test_without_camera_info_nothing_is_published_and_the_silent_topic_is_reported(
    context: Context, grasp_models: dict[str, Path], wait_for: Callable[..., None], driver_for: Callable[..., Any]
) -> None:
    node = make_node(context, grasp_models["ggcnn"], "-p", "no_input_warn_s:=0.5", "-p", "diagnostics_period_s:=0.2")
    driver = driver_for(node)
    try:

        def warned() -> bool:
            driver.publishers["depth"].publish(depth_to_msg(scene_depth(), HEADER))
            return any(
                s.level == DiagnosticStatus.WARN and "camera_info" in s.message and "image_rect_raw" not in s.message
                for s in list(driver.diagnostics)
            )

        wait_for(warned, "a diagnostics warning naming the CameraInfo topic")
        assert driver.received["grasps"] == [] and driver.received["info"] == [] and driver.received["markers"] == []
        assert driver.node.stats_snapshot().bad_inputs == 0
        # Once a CameraInfo with the depth's stamp arrives, grasps follow.
        driver.send(scene_depth(), Header(stamp=Time(sec=44, nanosec=0), frame_id=HEADER.frame_id))
        driver.wait_for_outputs()
        assert driver.received["grasps"][0].header.stamp.sec == 44
    finally:
        driver.close()


def test_a_camera_info_of_another_size_is_rejected(
    context: Context, grasp_models: dict[str, Path], wait_for: Callable[..., None], driver_for: Callable[..., Any]
) -> None:
    driver = driver_for(make_node(context, grasp_models["ggcnn"]))
    try:
        info = camera_info_from_intrinsics(K, HEADER)
        info.width = W * 2
        driver.publishers["camera_info"].publish(info)
        driver.publishers["depth"].publish(depth_to_msg(scene_depth(), HEADER))
        wait_for(lambda: driver.node.stats_snapshot().bad_inputs == 1, "the mismatch to be rejected")
        assert f"{W}x{H}" in driver.node.last_problem and f"{2 * W}x{H}" in driver.node.last_problem
        assert driver.received["grasps"] == []
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
    monkeypatch.setattr(model_loading, "models_dir", lambda: tmp_path)
    with pytest.raises(NodeStartupError, match=r"grasp_detector\.onnx does not exist .*grasp_detector\.model is empty"):
        GraspDetectorNode(context=context, cli_args=["--ros-args", "-p", "model:=''"])


def test_the_cleaned_depth_is_used_when_the_input_is_remapped(
    context: Context,
    grasp_models: dict[str, Path],
    same_header: Callable[[Header, Header], bool],
    driver_for: Callable[..., Any],
) -> None:
    node = make_node(context, grasp_models["ggcnn"], "-r", "/camera/depth/image_rect_raw:=/dcl_arc/depth/cleaned")
    assert node.input_topic("depth") == "/dcl_arc/depth/cleaned"
    driver = driver_for(node, depth_topic="/dcl_arc/depth/cleaned")
    try:
        driver.send(scene_depth())
        driver.wait_for_outputs()
        assert len(driver.received["grasps"][0].poses) > 0 and same_header(driver.received["grasps"][0].header, HEADER)
        assert driver.node.last_problem == ""
    finally:
        driver.close()
