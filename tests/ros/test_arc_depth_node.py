"""arc_depth in-process with real rclpy and a tiny untrained ARC (T -> A -> I -> D) exported to ONNX + sidecar."""

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
from rclpy.context import Context
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dcl_arc_ros.core.arc_pipeline import ARCDepthPipeline
from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.image_codec import array_to_image, image_to_array
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.learning.arc.config import config_from_mapping
from dcl_arc_ros.learning.arc.export import export_arc
from dcl_arc_ros.learning.arc.model import ARCInference
from dcl_arc_ros.learning.arc.stages import build_system
from dcl_arc_ros.learning.arc.variants import get_variant
from dcl_arc_ros.ros import model_loading
from dcl_arc_ros.ros.arc_depth import ARCDepthNode
from dcl_arc_ros.ros.conversions import camera_info_from_intrinsics, fields_from_image_msg, image_msg_from_fields
from dcl_arc_ros.ros.errors import NodeStartupError

pytestmark = pytest.mark.slow  # one ARC export (~15-25 s on a shared 2-core machine) per test session

NET_H, NET_W = 32, 48  # the network's (deploy) resolution: the outputs' size
H, W = 64, 96  # the camera's: the node downsizes by 2
K = Intrinsics(fx=80.0, fy=80.0, cx=47.5, cy=31.5, width=W, height=H)
DISTORTION = [0.1, -0.05, 0.001, 0.002, 0.0]
DEPTH_MAX_M = 6.0
HEADER = Header(stamp=Time(sec=42, nanosec=7), frame_id="camera_color_optical_frame")
OUTPUT_TOPICS: dict[str, tuple[type, str]] = {
    name: (msg_type, f"/dcl_arc/arc/{name}")
    for name, msg_type in (("depth", Image), ("mask", Image), ("camera_info", CameraInfo), ("decluttered", Image))
}
OUTPUTS = tuple(OUTPUT_TOPICS)


@pytest.fixture(scope="session")
def arc_models(tmp_path_factory: pytest.TempPathFactory, affine_model: Callable[[int, int], Path]) -> dict[str, Path]:
    """arc_full with random weights, its attention logits spread around 0 so that about half the pixels are removed."""
    folder = tmp_path_factory.mktemp("arc_models")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = config_from_mapping({
        "model": {"height": NET_H, "width": NET_W, "ngf": 8, "ndf": 8, "translator_blocks": 1,
                  "inpainting_blocks": 1, "attention_ngf": 4, "attention_blocks": 1, "depth_ngf": 8,
                  "depth_levels": 3, "disc_layers": 2, "depth_max_m": DEPTH_MAX_M},
    })  # fmt: skip
    system = build_system(config, get_variant("arc_full"))
    assert system.attention is not None
    head = system.attention.net.head[-1]
    torch.nn.init.normal_(head.weight, std=1.0)
    torch.nn.init.zeros_(head.bias)
    arc = export_arc(ARCInference.from_system(system), config, get_variant("arc_full"), folder / "arc.onnx").onnx_path
    return {"arc": arc, "affine": affine_model(NET_H, NET_W), "missing": folder / "missing.onnx"}


def camera_info(header: Header = HEADER) -> CameraInfo:
    info = camera_info_from_intrinsics(K, header)
    info.d = list(DISTORTION)
    return info


def colour_msg(rgb: np.ndarray, header: Header = HEADER, encoding: str = "rgb8") -> Image:
    """The same picture in ``encoding``: rgb8 as given, bgr8/bgra8 channels swapped (+ opaque alpha), mono8 grey."""
    if encoding == "mono8":
        pixels = rgb.mean(axis=2).astype(np.uint8)
    elif encoding == "bgra8":
        pixels = np.concatenate([rgb[..., ::-1], np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    else:
        pixels = np.ascontiguousarray(rgb[..., ::-1]) if encoding == "bgr8" else rgb
    return image_msg_from_fields(array_to_image(np.ascontiguousarray(pixels), encoding), header)


def scene_rgb(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[20:40, 30:60] = (200, 40, 40)  # a flat "object" on textured clutter
    return rgb


def colour_and_info(image: Image, info: CameraInfo | None = None) -> Mapping[str, Any]:
    """What ``driver.send`` publishes: the CameraInfo (default: ``camera_info`` with the image's header), the image."""
    return {"camera_info": info if info is not None else camera_info(image.header), "rgb": image}


@pytest.fixture
def driver_for(node_driver: Callable[..., Any]) -> Callable[[ARCDepthNode], Any]:
    """``driver_for(node)``: publishes RGB + CameraInfo to ``node`` and collects its four outputs."""

    def make(node: ARCDepthNode) -> Any:
        return node_driver(
            node,
            name="arc_test_driver",
            inputs={
                "rgb": (Image, "/camera/color/image_raw"),
                "camera_info": (CameraInfo, "/camera/color/camera_info"),
            },
            outputs=OUTPUT_TOPICS,
            compose=colour_and_info,
            awaited=("depth", "mask", "camera_info"),
        )

    return make


def make_node(context: Context, model: Path, *extra: str) -> ARCDepthNode:
    args = ["--ros-args", "-p", f"model:={model}", "-p", "input_qos:=reliable", "-p", "threads:=1", *extra]
    return ARCDepthNode(context=context, cli_args=args)


def pixels(msg: Image) -> np.ndarray:
    return image_to_array(fields_from_image_msg(msg))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "bgra8", "mono8"])
def test_outputs_are_the_pipelines_with_the_input_header(
    context: Context,
    arc_models: dict[str, Path],
    encoding: str,
    same_header: Callable[[Header, Header], bool],
    driver_for: Callable[..., Any],
) -> None:
    driver = driver_for(make_node(context, arc_models["arc"], "-p", "publish_decluttered:=true"))
    try:
        rgb = scene_rgb()
        if encoding == "mono8":  # what the network gets is the grey picture in all three channels
            rgb = np.repeat(rgb.mean(axis=2).astype(np.uint8)[..., None], 3, axis=2)
        driver.send(colour_msg(rgb, encoding=encoding))
        driver.wait_for_outputs(names=OUTPUTS)
        depth_msg, mask_msg, info_msg, image_msg = (driver.received[n][0] for n in OUTPUTS)

        # What the pure pipeline gives on the same picture, through the same backend with the same thread count.
        expected = ARCDepthPipeline(load_model(arc_models["arc"], intra_op_num_threads=1))(rgb, K)

        assert (depth_msg.encoding, mask_msg.encoding, image_msg.encoding) == ("32FC1", "mono8", "rgb8")
        depth = pixels(depth_msg)
        assert depth.shape == (NET_H, NET_W) and depth.dtype == np.float32
        np.testing.assert_array_equal(depth, expected.depth_m)  # NaN where the pipeline has NaN
        assert np.isfinite(depth).any() and np.nanmax(depth) <= DEPTH_MAX_M

        mask = pixels(mask_msg)
        np.testing.assert_array_equal(mask, expected.mask)
        assert set(np.unique(mask).tolist()) == {0, 255}  # binary, and the attention module removes something

        np.testing.assert_array_equal(pixels(image_msg), expected.decluttered)

        assert expected.intrinsics is not None
        assert (info_msg.width, info_msg.height) == (NET_W, NET_H)
        np.testing.assert_allclose(info_msg.k, expected.intrinsics.k_matrix().reshape(-1), rtol=1e-12)
        assert info_msg.k[0] == pytest.approx(K.fx * NET_W / W)  # halved with the image
        assert list(info_msg.d) == DISTORTION and info_msg.distortion_model == "plumb_bob"

        assert all(same_header(m.header, HEADER) for m in (depth_msg, mask_msg, info_msg, image_msg))
        assert driver.node.provider == "CPUExecutionProvider"
        assert driver.node.stats_snapshot().bad_inputs == 0 and driver.node.last_problem == ""
    finally:
        driver.close()


def test_the_decluttered_image_is_off_by_default(
    context: Context, arc_models: dict[str, Path], driver_for: Callable[..., Any]
) -> None:
    driver = driver_for(make_node(context, arc_models["arc"]))
    try:
        assert driver.driver.get_publishers_info_by_topic("/dcl_arc/arc/decluttered") == []
        driver.send(colour_msg(scene_rgb()))
        driver.wait_for_outputs()
        time.sleep(0.3)  # the decluttered image would be published right after the CameraInfo
        assert driver.received["decluttered"] == []
    finally:
        driver.close()


def test_bad_inputs_are_reported_and_the_node_keeps_running(
    context: Context, arc_models: dict[str, Path], wait_for: Callable[..., None], driver_for: Callable[..., Any]
) -> None:
    driver = driver_for(make_node(context, arc_models["arc"]))
    node = driver.node
    try:

        def header(sec: int) -> Header:
            return Header(stamp=Time(sec=sec, nanosec=0), frame_id=HEADER.frame_id)

        # A depth encoding on the colour topic.
        depth_like = image_msg_from_fields(array_to_image(np.ones((H, W), np.uint16), "16UC1"), header(1))
        driver.send(depth_like)
        wait_for(lambda: node.stats_snapshot().bad_inputs == 1, "the wrong encoding to be rejected")
        assert "16UC1" in node.last_problem

        # An image whose size disagrees with its CameraInfo.
        info = camera_info(header(2))
        info.width, info.height = 2 * W, 2 * H
        driver.send(colour_msg(scene_rgb(), header(2)), info)
        wait_for(lambda: node.stats_snapshot().bad_inputs == 2, "the size mismatch to be rejected")
        assert f"{W}x{H}" in node.last_problem and f"{2 * W}x{2 * H}" in node.last_problem

        # An empty image (with a CameraInfo of the same, empty, size).
        empty = Image(header=header(3), height=0, width=0, encoding="rgb8", step=0)
        empty_info = camera_info(header(3))
        empty_info.width = empty_info.height = 0
        driver.send(empty, empty_info)
        wait_for(lambda: node.stats_snapshot().bad_inputs == 3, "the empty image to be rejected")
        assert "empty colour image" in node.last_problem

        assert all(driver.received[n] == [] for n in OUTPUTS)
        driver.send(colour_msg(scene_rgb(), header(4)))
        driver.wait_for_outputs()
        assert driver.received["depth"][0].header.stamp.sec == 4
        assert node.stats_snapshot().errors == 0
    finally:
        driver.close()


def test_without_camera_info_nothing_is_published_and_the_silent_topic_is_reported(
    context: Context, arc_models: dict[str, Path], wait_for: Callable[..., None], driver_for: Callable[..., Any]
) -> None:
    node = make_node(context, arc_models["arc"], "-p", "no_input_warn_s:=0.5", "-p", "diagnostics_period_s:=0.2")
    driver = driver_for(node)
    try:

        def warned() -> bool:
            driver.publishers["rgb"].publish(colour_msg(scene_rgb()))
            return any(
                s.level == DiagnosticStatus.WARN and "camera_info" in s.message and "image_raw" not in s.message
                for s in list(driver.diagnostics)
            )

        wait_for(warned, "a diagnostics warning naming the CameraInfo topic")
        assert all(driver.received[n] == [] for n in OUTPUTS)
        assert node.stats_snapshot().bad_inputs == 0
        later = Header(stamp=Time(sec=44, nanosec=0), frame_id=HEADER.frame_id)
        driver.send(colour_msg(scene_rgb(), later))
        driver.wait_for_outputs()
        assert driver.received["depth"][0].header.stamp.sec == 44
    finally:
        driver.close()


@pytest.mark.parametrize(
    ("model_key", "message"),
    [
        ("missing", r"missing\.onnx does not exist \(check arc_depth\.model\)"),
        ("affine", r"affine\.onnx cannot drive the ARC pipeline"),
    ],
)
def test_start_up_failures_name_the_file(
    context: Context, arc_models: dict[str, Path], model_key: str, message: str
) -> None:
    with pytest.raises(NodeStartupError, match=message):
        make_node(context, arc_models[model_key])


def test_an_empty_model_parameter_means_the_shipped_default(
    context: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_loading, "models_dir", lambda: tmp_path)
    with pytest.raises(NodeStartupError, match=r"arc_depth\.onnx does not exist .*arc_depth\.model is empty"):
        ARCDepthNode(context=context, cli_args=["--ros-args", "-p", "model:=''"])
