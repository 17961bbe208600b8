"""Start-up helpers shared by the model-driven nodes: where the model file is, loading it, parameters as dataclasses.

Every node that runs a network resolves its ``model`` parameter the same way (empty means the shipped default in the
models directory), loads it through ``inference.backends.load_model`` with the node's backend parameters, and turns
every failure into a ``NodeStartupError`` that names the file and the parameter to fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.inference.backends import Model, load_model
from dcl_arc_ros.inference.errors import InferenceError
from dcl_arc_ros.paths import models_dir
from dcl_arc_ros.ros.errors import NodeStartupError
from dcl_arc_ros.ros.params import NodeSchema, backend_options

DataclassT = TypeVar("DataclassT")


def resolve_model_path(value: str, default_file: str | None) -> Path:
    """The ``model`` parameter as a path; empty means the shipped default in the models directory."""
    if value:
        return Path(value).expanduser()
    if default_file is None:
        raise NodeStartupError("the model parameter is empty and this node has no shipped default model")
    return models_dir() / default_file


def load_model_file(
    path: Path, params: Mapping[str, Any], *, node: str, parameter: str = "model", role: str = ""
) -> Model:
    """Load ``path`` with the node's ``backend``/``device``/backend options.

    ``parameter`` is the node parameter the path came from and ``role`` an optional word for the model (e.g.
    ``"synthesis"``); both only shape the error message, which says whether the shipped default was used.
    """
    what = f"{role} model" if role else "model"
    if not path.is_file():
        hint = (
            f"the shipped default is used because {node}.{parameter} is empty; set {node}.{parameter} to a model file"
            if not params[parameter]
            else f"check {node}.{parameter}"
        )
        raise NodeStartupError(f"the {what} file {path} does not exist ({hint})")
    try:
        return load_model(path, params["backend"], device=params["device"], **backend_options(params))
    except (InferenceError, CoreError, OSError, ValueError) as exc:
        raise NodeStartupError(f"cannot load the {what} {path}: {exc}") from exc


def load_node_model(schema: NodeSchema, params: Mapping[str, Any], node: str) -> tuple[Path, Model]:
    """The model named by ``params["model"]`` (empty: the schema's shipped default), loaded as the node runs it."""
    path = resolve_model_path(params["model"], schema.default_model_file)
    return path, load_model_file(path, params, node=node)


def dataclass_from_params(cls: type[DataclassT], params: Mapping[str, Any]) -> DataclassT:
    """An instance of the dataclass ``cls`` whose fields named like a node parameter take that parameter's value.

    Fields without a parameter keep their defaults, so a core dataclass can carry options a node does not expose.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"dataclass_from_params needs a dataclass type, got {cls!r}")
    values = {field.name: params[field.name] for field in dataclasses.fields(cls) if field.name in params}
    return cls(**values)
