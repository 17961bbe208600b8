"""The backend registry and the ONNX Runtime backend, on tiny ONNX graphs built in the test."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from dcl_arc_ros.core.sidecar import ModelSidecar, TensorSpec, read_sidecar, sidecar_path_for, write_sidecar
from dcl_arc_ros.inference.backends import BACKENDS, Model, load_model
from dcl_arc_ros.inference.errors import InferenceRunError, ModelLoadError, UnknownBackendError
from dcl_arc_ros.inference.onnxruntime_backend import SPINNING_CONFIG_KEYS, choose_providers
from dcl_arc_ros.inference.reference_models import OPSET, write_affine_depth_model, write_onnx_with_sidecar

W_MATRIX = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], dtype=np.float32)  # (2, 3)
BIAS = np.array([0.1, -0.2, 0.3], dtype=np.float32)


def write_relu_linear(path: Path) -> ModelSidecar:
    """y = relu(x @ W + b) for x (-1, 2) float32, plus a second output s = sum(x, axis=1) of shape (-1,)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["pre"]),
            helper.make_node("Relu", ["pre"], ["y"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
        ],
        "relu_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch"]),
        ],
        [
            helper.make_tensor("W", TensorProto.FLOAT, [2, 3], W_MATRIX.reshape(-1).tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [3], BIAS.tolist()),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return write_onnx_with_sidecar(
        model,
        path,
        name="relu_linear",
        task="pose",
        semantics={"x": "features", "y": "scores", "s": "sum"},
        deploy_resolution=(1, 2),
        normalisation={},
    )


def test_tiny_graph_matches_numpy(tmp_path: Path) -> None:
    path = tmp_path / "relu_linear.onnx"
    sidecar = write_relu_linear(path)
    assert sidecar.inputs[0].shape == (-1, 2)
    model = load_model(path, intra_op_num_threads=1)
    assert isinstance(model, Model)
    assert model.provider == "CPUExecutionProvider"
    x = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    out = model.run({"x": x})
    assert set(out) == {"y", "s"}
    np.testing.assert_allclose(out["y"], np.maximum(x @ W_MATRIX + BIAS, 0.0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["s"], x.sum(axis=1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("scale", "offset"), [(1.0, 0.0), (0.5, 0.25)])
def test_affine_reference_model(tmp_path: Path, scale: float, offset: float) -> None:
    path = tmp_path / "affine.onnx"
    sidecar = write_affine_depth_model(path, scale=scale, offset=offset, height=6, width=8)
    assert read_sidecar(sidecar_path_for(path)) == sidecar
    assert sidecar.task == "depth_to_depth" and sidecar.deploy_resolution == (6, 8)
    model = load_model(path, device="cpu", intra_op_num_threads=1)
    depth = np.random.default_rng(1).uniform(0.2, 3.0, (1, 1, 6, 8)).astype(np.float32)
    out = model.run({"depth": depth})["depth_out"]
    np.testing.assert_allclose(out, depth * np.float32(scale) + np.float32(offset), rtol=1e-6)


def test_affine_reference_model_with_mask(tmp_path: Path) -> None:
    path = tmp_path / "masked.onnx"
    sidecar = write_affine_depth_model(path, scale=2.0, height=2, width=3, with_valid_mask=True)
    assert [s.semantic for s in sidecar.inputs] == ["depth", "valid_mask"]
    mask = np.array([[[[1, 0, 1], [0, 1, 1]]]], dtype=np.float32)
    depth = np.full((1, 1, 2, 3), 1.5, dtype=np.float32)
    out = load_model(path).run({"depth": depth, "valid_mask": mask})["depth_out"]
    np.testing.assert_array_equal(out, 3.0 * mask)


def test_inputs_are_checked_and_cast(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, scale=1.0, height=2, width=2)
    model = load_model(path)
    out = model.run({"depth": np.ones((1, 1, 2, 2), dtype=np.float64)})["depth_out"]
    assert out.dtype == np.float32
    with pytest.raises(InferenceRunError, match=r"affine.onnx.*missing: \['depth'\]"):
        model.run({"image": np.ones((1, 1, 2, 2), np.float32)})
    with pytest.raises(InferenceRunError, match=r"shape \[1, 1, 3, 2\], expected \[1, 1, 2, 2\]"):
        model.run({"depth": np.ones((1, 1, 3, 2), np.float32)})
    with pytest.raises(InferenceRunError, match="dtype int64"):
        model.run({"depth": np.ones((1, 1, 2, 2), np.int64)})


def test_missing_gpu_provider_warns_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA: there is no fallback to observe")
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, height=2, width=2)
    with caplog.at_level(logging.WARNING):
        model = load_model(path, device="cuda")
    assert model.provider == "CPUExecutionProvider"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("CUDAExecutionProvider" in m and "CPUExecutionProvider" in m and "NOT available" in m for m in warnings)


def test_choose_providers_orders_and_filters() -> None:
    assert choose_providers(
        "tensorrt", ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    ) == ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
    assert choose_providers("tensorrt", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == (
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    )
    with pytest.raises(ValueError, match="'npu'"):
        choose_providers("npu", ["CPUExecutionProvider"])


def test_unknown_device_is_a_load_error(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, height=2, width=2)
    with pytest.raises(ModelLoadError, match=r"affine.onnx.*'npu'"):
        load_model(path, device="npu")


def test_unknown_backend_lists_the_registry(tmp_path: Path) -> None:
    with pytest.raises(UnknownBackendError, match=r"'openvino'.*\['onnxruntime', 'tensorrt'\]"):
        load_model(tmp_path / "x.onnx", backend="openvino")


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    with pytest.raises(ModelLoadError, match=re.escape(f"{path}: model file not found")):
        load_model(path)


def test_missing_sidecar_is_named(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, height=2, width=2)
    sidecar_path_for(path).unlink()
    pattern = f"{re.escape(str(path))}.*{re.escape(str(sidecar_path_for(path)))}.*not found"
    with pytest.raises(ModelLoadError, match=pattern):
        load_model(path)


def test_corrupt_model_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    sidecar = write_affine_depth_model(path, height=2, width=2)
    path.write_bytes(b"\x08\x07garbage, not a protobuf")
    # With the recorded hash the corruption is caught before ONNX Runtime sees the file ...
    with pytest.raises(ModelLoadError, match=re.escape(f"{path}: file sha256 ") + ".* does not match"):
        load_model(path)
    # ... and without one, ONNX Runtime's own failure is reported with the file name.
    write_sidecar(dataclasses.replace(sidecar, model_sha256=""), sidecar_path_for(path))
    with pytest.raises(ModelLoadError, match=re.escape(f"{path}: onnxruntime cannot load")):
        load_model(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inputs": (TensorSpec("image", (1, 1, 4, 4), "float32", "depth"),)}, r"input names differ.*'image'"),
        ({"inputs": (TensorSpec("depth", (1, 1, 4, 5), "float32", "depth"),)}, r"sidecar shape \[1, 1, 4, 5\]"),
        ({"inputs": (TensorSpec("depth", (1, 1, 4, 4), "float16", "depth"),)}, "sidecar dtype float16"),
        ({"outputs": (TensorSpec("depth_out", (1, 4, 4), "float32", "depth"),)}, r"output 'depth_out'.*shape"),
    ],
)
def test_sidecar_mismatch_is_a_load_error(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    path = tmp_path / "affine.onnx"
    sidecar = write_affine_depth_model(path, height=4, width=4)
    write_sidecar(dataclasses.replace(sidecar, **change), sidecar_path_for(path))
    with pytest.raises(ModelLoadError, match=re.escape(f"{path}: model does not match its sidecar: ") + f".*{message}"):
        load_model(path)


def test_dynamic_sidecar_dims_match_static_graph(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    sidecar = write_affine_depth_model(path, height=4, width=4)
    dynamic = (TensorSpec("depth", (-1, 1, 4, 4), "float32", "depth", "m"),)
    write_sidecar(dataclasses.replace(sidecar, inputs=dynamic), sidecar_path_for(path))
    assert load_model(path).sidecar.inputs == dynamic


class FakeModel:
    def __init__(self, sidecar: ModelSidecar, device: str) -> None:
        self.sidecar = sidecar
        self.provider = f"fake:{device}"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"depth_out": np.asarray(inputs["depth"]) * 10.0}


def test_fake_backend_through_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, str, dict[str, Any]]] = []

    def fake_factory(model_path: Path, sidecar: ModelSidecar, *, device: str, **options: Any) -> FakeModel:
        calls.append((model_path, device, options))
        return FakeModel(sidecar, device)

    monkeypatch.setitem(BACKENDS, "fake", fake_factory)
    path = tmp_path / "affine.onnx"
    sidecar = write_affine_depth_model(path, height=2, width=2)
    model = load_model(path, backend="fake", device="gpu7", flavour="x")
    assert calls == [(path, "gpu7", {"flavour": "x"})]
    assert model.sidecar == sidecar and model.provider == "fake:gpu7"
    np.testing.assert_array_equal(model.run({"depth": np.ones(2)})["depth_out"], [10.0, 10.0])


def test_reference_model_is_a_valid_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, height=3, width=5)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert [i.name for i in loaded.graph.input] == ["depth"]


def test_thread_options_reach_the_session(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, height=2, width=2)
    model = load_model(path, intra_op_num_threads=1, inter_op_num_threads=1)
    options = model._session.get_session_options()  # type: ignore[attr-defined]
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)


@pytest.mark.parametrize(("options", "expected"), [({}, "0"), ({"allow_spinning": True}, "1")])
def test_pool_spinning_is_off_unless_asked_for(tmp_path: Path, options: dict[str, Any], expected: str) -> None:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, height=2, width=2)
    model = load_model(path, intra_op_num_threads=2, **options)
    session_options = model._session.get_session_options()  # type: ignore[attr-defined]
    for key in SPINNING_CONFIG_KEYS:
        assert session_options.get_session_config_entry(key) == expected
    depth = np.full((1, 1, 2, 2), 0.5, np.float32)
    np.testing.assert_allclose(model.run({"depth": depth})["depth_out"], depth)  # still runs with the setting


def test_unknown_backend_option_is_named(tmp_path: Path) -> None:
    path = tmp_path / "affine.onnx"
    write_affine_depth_model(path, height=2, width=2)
    with pytest.raises(ModelLoadError, match=r"unknown onnxruntime backend options \['threads'\].*intra_op"):
        load_model(path, threads=2)
