"""One small Protocol for running a model, and the explicit registry of backends that provide it.

``load_model(path, backend=...)`` reads the model's sidecar, checks the file's hash when the sidecar records one,
and hands over to the backend factory, which checks the artefact's signature against the sidecar. Every failure is
a :class:`ModelLoadError` naming the file. Tests and plug-ins add backends by inserting into :data:`BACKENDS`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dcl_arc_ros.core.errors import SidecarError
from dcl_arc_ros.core.sidecar import ModelSidecar, read_sidecar, sha256_file, sidecar_path_for
from dcl_arc_ros.inference.errors import ModelLoadError, UnknownBackendError
from dcl_arc_ros.inference.onnxruntime_backend import load_onnxruntime_model
from dcl_arc_ros.inference.tensorrt_backend import load_tensorrt_model

_LOG = logging.getLogger(__name__)


@runtime_checkable
class Model(Protocol):
    """A loaded model: its sidecar, what actually executes it, and one call per inference."""

    sidecar: ModelSidecar
    provider: str  # what actually runs it, e.g. "CPUExecutionProvider" or "TensorRT 10.x on <GPU name>"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; ``inputs`` and the result are keyed by the tensor names in the sidecar."""
        ...


class BackendFactory(Protocol):
    """Builds a :class:`Model` from an artefact whose sidecar has already been read and validated."""

    def __call__(self, model_path: Path, sidecar: ModelSidecar, *, device: str, **options: Any) -> Model: ...


BACKENDS: dict[str, BackendFactory] = {
    "onnxruntime": load_onnxruntime_model,
    "tensorrt": load_tensorrt_model,
}


def load_model(path: str | Path, backend: str = "onnxruntime", *, device: str = "cpu", **options: Any) -> Model:
    """Load ``path`` (``.onnx`` or ``.engine``, with its sidecar next to it) with a registered backend.

    ``device`` and ``options`` go to the backend factory (e.g. ``intra_op_num_threads`` for ONNX Runtime).
    Raises :class:`UnknownBackendError` listing :data:`BACKENDS` for an unknown backend, and
    :class:`ModelLoadError` naming the file for a missing, corrupt or mismatched model.
    """
    factory = BACKENDS.get(backend)
    if factory is None:
        raise UnknownBackendError(f"unknown inference backend {backend!r}; registered backends: {sorted(BACKENDS)}")
    model_path = Path(path).expanduser()
    if not model_path.is_file():
        raise ModelLoadError(f"{model_path}: model file not found")
    sidecar_path = sidecar_path_for(model_path)
    try:
        sidecar = read_sidecar(sidecar_path)
    except SidecarError as exc:
        raise ModelLoadError(f"{model_path}: unusable sidecar: {exc}") from exc
    if sidecar.model_sha256:
        actual = sha256_file(model_path)
        if actual != sidecar.model_sha256:
            raise ModelLoadError(
                f"{model_path}: file sha256 {actual} does not match model_sha256 {sidecar.model_sha256} in"
                f" {sidecar_path} (corrupt or replaced file)"
            )
    model = factory(model_path, sidecar, device=device, **options)
    _LOG.info(
        "loaded model %s (%s %s) with backend %s on %s",
        model_path,
        sidecar.name,
        sidecar.model_version,
        backend,
        model.provider,
    )
    return model
