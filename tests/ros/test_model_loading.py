"""Start-up helpers shared by the model-driven nodes (no rclpy node is created here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dcl_arc_ros.core.grasps import GraspDecodeParams
from dcl_arc_ros.paths import models_dir
from dcl_arc_ros.ros.errors import NodeStartupError
from dcl_arc_ros.ros.model_loading import dataclass_from_params, load_model_file, resolve_model_path
from dcl_arc_ros.ros.params import GRASP_DETECTOR


def test_empty_model_parameter_means_the_shipped_default() -> None:
    assert resolve_model_path("", "grasp.onnx") == models_dir() / "grasp.onnx"
    assert resolve_model_path("~/m.onnx", "grasp.onnx") == Path("~/m.onnx").expanduser()
    with pytest.raises(NodeStartupError, match="no shipped default"):
        resolve_model_path("", None)


@pytest.mark.parametrize(
    ("value", "role", "expected"),
    [
        ("", "", r"the model file .*missing\.onnx does not exist \(the shipped default is used because n\.model"),
        ("x.onnx", "synthesis", r"the synthesis model file .*missing\.onnx does not exist \(check n\.model\)"),
    ],
)
def test_missing_model_file_names_the_file_and_the_parameter(
    tmp_path: Path, value: str, role: str, expected: str
) -> None:
    params = {"model": value, "backend": "onnxruntime", "device": "cpu"}
    with pytest.raises(NodeStartupError, match=expected):
        load_model_file(tmp_path / "missing.onnx", params, node="n", role=role)


def test_corrupt_model_file_is_a_startup_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"not an onnx file")
    params = {"model": str(path), "backend": "onnxruntime", "device": "cpu"}
    with pytest.raises(NodeStartupError, match=r"cannot load the model .*corrupt\.onnx"):
        load_model_file(path, params, node="n")


def test_dataclass_from_params_takes_named_parameters_and_keeps_other_defaults() -> None:
    params = GRASP_DETECTOR.defaults() | {"threshold": 0.45, "max_grasps": 3, "angle_smoothing": "vector"}
    decoded = dataclass_from_params(GraspDecodeParams, params)
    assert (decoded.threshold, decoded.max_grasps, decoded.angle_smoothing) == (0.45, 3, "vector")
    assert decoded.width_scale_px == GraspDecodeParams().width_scale_px  # not a node parameter


def test_dataclass_from_params_ignores_unrelated_parameters() -> None:
    @dataclass(frozen=True)
    class Small:
        a: int = 1
        b: str = "x"

    assert dataclass_from_params(Small, {"a": 7, "unrelated": 3.0}) == Small(a=7, b="x")
    with pytest.raises(TypeError, match="needs a dataclass"):
        dataclass_from_params(dict, {})
