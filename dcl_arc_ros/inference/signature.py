"""Compare a model artefact's input/output signature with its sidecar, and check run-time inputs.

Shared by every backend: a backend describes what its artefact declares as :class:`TensorSignature` objects and
:func:`check_signature` reports every difference at once. A dimension of ``-1`` (on either side) is dynamic and
matches any size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcl_arc_ros.core.sidecar import ModelSidecar, TensorSpec
from dcl_arc_ros.inference.errors import InferenceRunError, ModelLoadError


@dataclass(frozen=True)
class TensorSignature:
    """A tensor as the artefact declares it: name, shape (-1 = dynamic) and numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def _dims_match(declared: tuple[int, ...], actual: tuple[int, ...]) -> bool:
    if len(declared) != len(actual):
        return False
    return all(d == a or d == -1 or a == -1 for d, a in zip(declared, actual, strict=True))


def _compare(kind: str, specs: tuple[TensorSpec, ...], actual: Sequence[TensorSignature]) -> list[str]:
    problems: list[str] = []
    declared = {spec.name: spec for spec in specs}
    found = {sig.name: sig for sig in actual}
    missing = [name for name in declared if name not in found]
    unexpected = [name for name in found if name not in declared]
    if missing or unexpected:
        problems.append(
            f"{kind} names differ: sidecar declares {list(declared)}, model has {list(found)}"
            f" (missing in model: {missing}, not in sidecar: {unexpected})"
        )
    for name, spec in declared.items():
        sig = found.get(name)
        if sig is None:
            continue
        if sig.dtype != spec.dtype:
            problems.append(f"{kind} {name!r}: sidecar dtype {spec.dtype}, model dtype {sig.dtype}")
        if not _dims_match(spec.shape, sig.shape):
            problems.append(f"{kind} {name!r}: sidecar shape {list(spec.shape)}, model shape {list(sig.shape)}")
    return problems


def check_signature(
    sidecar: ModelSidecar,
    inputs: Sequence[TensorSignature],
    outputs: Sequence[TensorSignature],
    model_path: str | Path,
) -> None:
    """Raise :class:`ModelLoadError` naming the model file and listing every mismatch with the sidecar."""
    problems = _compare("input", sidecar.inputs, inputs) + _compare("output", sidecar.outputs, outputs)
    if problems:
        raise ModelLoadError(f"{model_path}: model does not match its sidecar: " + "; ".join(problems))


def prepare_inputs(
    inputs: Mapping[str, np.ndarray], specs: tuple[TensorSpec, ...], model_path: str | Path
) -> dict[str, np.ndarray]:
    """Check run-time inputs against the sidecar and return C-contiguous arrays of the declared dtypes.

    Arrays of another dtype of the same kind are cast (float64 -> float32; never int -> float, which usually
    hides a unit bug such as millimetres fed to a metres input); anything else, a missing or extra
    name, or a wrong shape raises :class:`InferenceRunError` naming the model file.
    """
    names = [spec.name for spec in specs]
    missing = [name for name in names if name not in inputs]
    unexpected = [name for name in inputs if name not in names]
    if missing or unexpected:
        raise InferenceRunError(
            f"{model_path}: inputs {sorted(inputs)} do not match the model's {names}"
            f" (missing: {missing}, unexpected: {unexpected})"
        )
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        value = np.asarray(inputs[spec.name])
        dtype = np.dtype(spec.dtype)
        same_kind = value.dtype.kind == dtype.kind and np.can_cast(value.dtype, dtype, casting="same_kind")
        if value.dtype != dtype and not same_kind:
            raise InferenceRunError(f"{model_path}: input {spec.name!r} has dtype {value.dtype}, expected {dtype}")
        if not _dims_match(spec.shape, tuple(value.shape)):
            raise InferenceRunError(
                f"{model_path}: input {spec.name!r} has shape {list(value.shape)}, expected {list(spec.shape)}"
            )
        feed[spec.name] = np.ascontiguousarray(value, dtype=dtype)
    return feed
