"""Tiny reference ONNX models built with ``onnx.helper`` (no torch), each written with its sidecar.

They have known closed-form functions, so tests and benchmarks can check a whole pipeline's numbers exactly:
:func:`write_affine_depth_model` with ``scale=1, offset=0`` is the "identity model" of the node tests and the
latency benchmarks. ``onnx`` is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from dcl_arc_ros.core.sidecar import (
    ModelSidecar,
    TensorSpec,
    atomic_write_bytes,
    config_sha256,
    sha256_file,
    sidecar_path_for,
    write_sidecar,
)

#: Opset and IR version every reference model is saved with (supported by ONNX Runtime >= 1.17 and TensorRT 10).
OPSET: Final = 17
IR_VERSION: Final = 8

DEFAULT_DEPTH_NORMALISATION: Final[dict[str, Any]] = {"depth": {"kind": "metres"}}


def write_onnx_with_sidecar(
    model: Any,
    path: str | Path,
    *,
    name: str,
    task: str,
    semantics: Mapping[str, str],
    deploy_resolution: tuple[int, int],
    normalisation: Mapping[str, Any],
    units: Mapping[str, str] | None = None,
    model_version: str = "0.1.0",
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ModelSidecar:
    """Check and save an ``onnx.ModelProto`` at ``path`` and write its sidecar next to it.

    Tensor names, shapes (``-1`` for symbolic dims) and dtypes are read from the graph; ``semantics`` and
    ``units`` give each tensor's meaning by name. ``config`` (hashed into ``training_config_sha256``) defaults to
    the builder arguments. Returns the sidecar that was written.
    """
    import onnx
    from onnx import helper

    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    atomic_write_bytes(path, model.SerializeToString())

    def spec(value_info: Any) -> TensorSpec:
        tensor_type = value_info.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor_type.shape.dim)
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        if value_info.name not in semantics:
            raise KeyError(f"no semantic given for tensor {value_info.name!r}; semantics: {dict(semantics)}")
        unit = (units or {}).get(value_info.name, "")
        return TensorSpec(value_info.name, shape, dtype, semantics[value_info.name], unit)

    sidecar = ModelSidecar(
        name=name,
        task=task,
        model_version=model_version,
        inputs=tuple(spec(v) for v in model.graph.input),
        outputs=tuple(spec(v) for v in model.graph.output),
        deploy_resolution=(int(deploy_resolution[0]), int(deploy_resolution[1])),
        normalisation={key: dict(value) for key, value in normalisation.items()},
        training_config_sha256=config_sha256(
            dict(config) if config is not None else {"builder": name, "normalisation": dict(normalisation)}
        ),
        model_sha256=sha256_file(path),
        extra=dict(extra or {}),
    )
    write_sidecar(sidecar, sidecar_path_for(path))
    return sidecar


def write_affine_depth_model(
    path: str | Path,
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    height: int,
    width: int,
    normalisation: Mapping[str, Any] | None = None,
    with_valid_mask: bool = False,
    name: str = "affine_depth",
) -> ModelSidecar:
    """A ``depth_to_depth`` model computing ``depth_out = depth * scale + offset`` on (1, 1, height, width) float32.

    The function applies in the network's space: with a ``range`` normalisation, ``scale``/``offset`` act on the
    normalised [-1, 1] values. ``with_valid_mask`` adds a second input ``valid_mask`` (semantic ``valid_mask``, 1 =
    valid) and multiplies the output by it. ``normalisation`` defaults to metres pass-through.
    """
    from onnx import TensorProto, helper

    norm = dict(normalisation) if normalisation is not None else dict(DEFAULT_DEPTH_NORMALISATION)
    shape = [1, 1, int(height), int(width)]
    inputs = [helper.make_tensor_value_info("depth", TensorProto.FLOAT, shape)]
    nodes = [
        helper.make_node("Mul", ["depth", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["affine" if with_valid_mask else "depth_out"]),
    ]
    initialisers = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [float(scale)]),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [float(offset)]),
    ]
    if with_valid_mask:
        inputs.append(helper.make_tensor_value_info("valid_mask", TensorProto.FLOAT, shape))
        nodes.append(helper.make_node("Mul", ["affine", "valid_mask"], ["depth_out"]))
    graph = helper.make_graph(
        nodes, name, inputs, [helper.make_tensor_value_info("depth_out", TensorProto.FLOAT, shape)], initialisers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dcl_arc_ros")
    model.ir_version = IR_VERSION
    depth_kind = norm.get("depth", {}).get("kind", "metres")
    depth_units = "normalised" if depth_kind == "range" else "m"
    return write_onnx_with_sidecar(
        model,
        path,
        name=name,
        task="depth_to_depth",
        semantics={"depth": "depth", "valid_mask": "valid_mask", "depth_out": "depth"},
        units={"depth": depth_units, "valid_mask": "1", "depth_out": depth_units},
        deploy_resolution=(int(height), int(width)),
        normalisation=norm,
        config={
            "builder": "write_affine_depth_model",
            "scale": float(scale),
            "offset": float(offset),
            "height": int(height),
            "width": int(width),
            "normalisation": norm,
            "with_valid_mask": with_valid_mask,
        },
        extra={
            "function": f"depth_out = depth * {scale!r} + {offset!r}"
            + (" (times valid_mask)" if with_valid_mask else "")
        },
    )
