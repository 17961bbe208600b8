"""Model sidecar: the small JSON file next to every ``.onnx`` / ``.engine``.

It records what a deployment needs and cannot read from the graph: the meaning and units of each tensor, the
normalisation, the deploy resolution, the model version and the hash of the training config. ``model.onnx`` has
its sidecar in ``model.json``. Example::

    {
      "format_version": 1,
      "name": "depth_cleaner",
      "task": "depth_to_depth",
      "model_version": "1.0.0",
      "inputs":  [{"name": "depth", "shape": [1, 1, 240, 320], "dtype": "float32", "semantic": "depth",
                   "units": "normalised"}],
      "outputs": [{"name": "depth_out", "shape": [1, 1, 240, 320], "dtype": "float32", "semantic": "depth",
                   "units": "normalised"}],
      "deploy_resolution": [240, 320],
      "normalisation": {"depth": {"kind": "range", "min_m": 0.0, "max_m": 4.0}},
      "training_config_sha256": "<64 hex digits>",
      "model_sha256": "<64 hex digits, or empty>",
      "extra": {}
    }

``format_version`` defaults to 1 when absent; ``extra`` is optional. Shapes use ``-1`` for a dynamic dimension.
Normalisation entries are keyed by tensor name or semantic; their ``kind`` must be one of
:data:`NORMALISATION_KINDS`, which lists the numeric parameters each kind requires.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from dcl_arc_ros.core.errors import SidecarError
from dcl_arc_ros.core.files import atomic_write_bytes

FORMAT_VERSION: Final = 1
SIDECAR_SUFFIX: Final = ".json"

KNOWN_TASKS: Final[tuple[str, ...]] = ("depth_to_depth", "rgb_to_depth", "grasp_maps", "pose")
KNOWN_DTYPES: Final[tuple[str, ...]] = (
    "float32",
    "float16",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "int64",
    "bool",
)

#: Normalisation kinds and the numeric parameters each requires (optional ones are checked when present).
#: ``range``: metres in [min_m, max_m] <-> [-1, 1]. ``metres``: pass-through (optional valid range min_m/max_m).
#: ``affine``: x * scale + offset (e.g. RGB uint8 -> [-1, 1] with scale 2/255, offset -1).
#: ``mean_std``: (x - mean) / std. ``mean_subtract_clip``: x minus the image's own mean, clipped to [-clip, clip]
#: (GG-CNN's depth input). Other keys in an entry are kept and ignored by the validator.
NORMALISATION_KINDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "range": (("min_m", "max_m"), ()),
    "metres": ((), ("min_m", "max_m")),
    "affine": (("scale", "offset"), ()),
    "mean_std": (("mean", "std"), ()),
    "mean_subtract_clip": (("clip",), ()),
}

_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_HASH_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class TensorSpec:
    """One network input or output as the sidecar declares it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    semantic: str
    units: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "semantic": self.semantic,
            "units": self.units,
        }


@dataclass(frozen=True)
class ModelSidecar:
    """Metadata of one model artefact (see the module doc for the JSON form)."""

    name: str
    task: str
    model_version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    deploy_resolution: tuple[int, int]  # (height, width) the network runs at
    normalisation: dict[str, Any]
    training_config_sha256: str
    model_sha256: str = ""
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def input(self, name: str) -> TensorSpec:
        """The input called ``name``; :class:`KeyError` listing the declared inputs otherwise."""
        return _find(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        """The output called ``name``; :class:`KeyError` listing the declared outputs otherwise."""
        return _find(self.outputs, name, "output")

    def inputs_with_semantic(self, semantic: str) -> tuple[TensorSpec, ...]:
        return tuple(spec for spec in self.inputs if spec.semantic == semantic)

    def outputs_with_semantic(self, semantic: str) -> tuple[TensorSpec, ...]:
        return tuple(spec for spec in self.outputs if spec.semantic == semantic)

    def normalisation_for(self, spec: TensorSpec) -> dict[str, Any] | None:
        """The normalisation entry for a tensor: keyed by its name first, then by its semantic."""
        entry = self.normalisation.get(spec.name, self.normalisation.get(spec.semantic))
        return dict(entry) if isinstance(entry, Mapping) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "task": self.task,
            "model_version": self.model_version,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
            "deploy_resolution": list(self.deploy_resolution),
            "normalisation": self.normalisation,
            "training_config_sha256": self.training_config_sha256,
            "model_sha256": self.model_sha256,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> ModelSidecar:
        """Validate a decoded sidecar; :class:`SidecarError` names ``source`` and the bad field."""
        return _parse_sidecar(data, source)


def _find(specs: tuple[TensorSpec, ...], name: str, kind: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no {kind} named {name!r}; declared {kind}s: {[spec.name for spec in specs]}")


def sidecar_path_for(model_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.json`` (same folder, same stem)."""
    return Path(model_path).with_suffix(SIDECAR_SUFFIX)


def read_sidecar(path: str | Path) -> ModelSidecar:
    """Read and validate a sidecar; :class:`SidecarError` names the file and the bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SidecarError(f"{path}: sidecar file not found") from exc
    except OSError as exc:
        raise SidecarError(f"{path}: cannot read sidecar: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SidecarError(f"{path}: not valid JSON: {exc}") from exc
    return _parse_sidecar(data, str(path))


def write_sidecar(sidecar: ModelSidecar, path: str | Path) -> None:
    """Validate and write atomically: a reader sees the old file or the complete new one, never a partial one."""
    path = Path(path)
    data = sidecar.to_dict()
    _parse_sidecar(data, str(path))  # refuse to write something read_sidecar would reject
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    item = getattr(value, "item", None)  # numpy scalars, without importing numpy here
    if callable(item):
        return item()
    raise TypeError(f"config value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def config_sha256(config: Mapping[str, Any]) -> str:
    """A stable hash of a config: SHA-256 of its canonical JSON (sorted keys, no whitespace, tuples as lists)."""
    canonical = json.dumps(
        config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=_json_default
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------------------
# Validation


def _fail(source: str, field_name: str, problem: str) -> SidecarError:
    return SidecarError(f"{source}: field {field_name!r}: {problem}")


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], source: str, prefix: str = "") -> Any:
    name = f"{prefix}{key}"
    if key not in data:
        raise _fail(source, name, "missing")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        expected = " or ".join(t.__name__ for t in _as_tuple(kind))
        raise _fail(source, name, f"expected {expected}, got {type(value).__name__} {value!r}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _parse_tensor(data: Any, source: str, prefix: str) -> TensorSpec:
    if not isinstance(data, Mapping):
        raise _fail(source, prefix.rstrip("."), f"expected an object, got {type(data).__name__} {data!r}")
    name = _require(data, "name", str, source, prefix)
    if not name:
        raise _fail(source, f"{prefix}name", "must not be empty")
    shape = _require(data, "shape", list, source, prefix)
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or (dim <= 0 and dim != -1):
            raise _fail(source, f"{prefix}shape", f"dimensions must be positive integers or -1, got {shape!r}")
    dtype = _require(data, "dtype", str, source, prefix)
    if dtype not in KNOWN_DTYPES:
        raise _fail(source, f"{prefix}dtype", f"unknown dtype {dtype!r}; expected one of {', '.join(KNOWN_DTYPES)}")
    semantic = _require(data, "semantic", str, source, prefix)
    units = data.get("units", "")
    if not isinstance(units, str):
        raise _fail(source, f"{prefix}units", f"expected str, got {type(units).__name__} {units!r}")
    return TensorSpec(name=name, shape=tuple(shape), dtype=dtype, semantic=semantic, units=units)


def _parse_tensors(data: Mapping[str, Any], key: str, source: str) -> tuple[TensorSpec, ...]:
    items = _require(data, key, list, source)
    if not items:
        raise _fail(source, key, "must declare at least one tensor")
    specs = tuple(_parse_tensor(item, source, f"{key}[{i}].") for i, item in enumerate(items))
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail(source, key, f"duplicate tensor names {duplicates}")
    return specs


def _check_number(entry: Mapping[str, Any], key: str, source: str, field_name: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, f"{field_name}.{key}", f"expected a finite number, got {value!r}")
    return float(value)


def _parse_normalisation(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    norm = _require(data, "normalisation", dict, source)
    for key, entry in norm.items():
        field_name = f"normalisation.{key}"
        if not isinstance(entry, Mapping):
            raise _fail(source, field_name, f"expected an object, got {type(entry).__name__} {entry!r}")
        kind = entry.get("kind")
        if kind not in NORMALISATION_KINDS:
            known = list(NORMALISATION_KINDS)
            raise _fail(source, f"{field_name}.kind", f"unknown kind {kind!r}; expected one of {known}")
        required, optional = NORMALISATION_KINDS[kind]
        values = {k: _check_number(entry, k, source, field_name) for k in required}
        values.update({k: _check_number(entry, k, source, field_name) for k in optional if k in entry})
        if "min_m" in values and "max_m" in values and not values["min_m"] < values["max_m"]:
            raise _fail(source, field_name, f"needs min_m < max_m, got min_m={values['min_m']} max_m={values['max_m']}")
        if kind == "mean_std" and values["std"] == 0.0:
            raise _fail(source, f"{field_name}.std", "must not be 0")
        if kind == "mean_subtract_clip" and values["clip"] <= 0.0:
            raise _fail(source, f"{field_name}.clip", f"must be > 0, got {values['clip']}")
    return dict(norm)


def _parse_sha(data: Mapping[str, Any], key: str, source: str, *, allow_empty: bool) -> str:
    value = _require(data, key, str, source)
    if (value or not allow_empty) and not _SHA256_RE.match(value):
        raise _fail(source, key, f"expected 64 lowercase hex digits{' or empty' if allow_empty else ''}, got {value!r}")
    return value


def _parse_sidecar(data: Any, source: str) -> ModelSidecar:
    if not isinstance(data, Mapping):
        raise SidecarError(f"{source}: expected a JSON object at the top level, got {type(data).__name__}")
    version = _require(data, "format_version", int, source) if "format_version" in data else FORMAT_VERSION
    if version < 1 or version > FORMAT_VERSION:
        raise _fail(source, "format_version", f"unsupported version {version}; this reader knows 1..{FORMAT_VERSION}")
    name = _require(data, "name", str, source)
    task = _require(data, "task", str, source)
    if task not in KNOWN_TASKS:
        raise _fail(source, "task", f"unknown task {task!r}; expected one of {', '.join(KNOWN_TASKS)}")
    model_version = _require(data, "model_version", str, source)
    inputs = _parse_tensors(data, "inputs", source)
    outputs = _parse_tensors(data, "outputs", source)
    resolution = _require(data, "deploy_resolution", list, source)
    if len(resolution) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in resolution):
        raise _fail(source, "deploy_resolution", f"expected [height, width] positive integers, got {resolution!r}")
    extra = data.get("extra", {})
    if not isinstance(extra, dict):
        raise _fail(source, "extra", f"expected an object, got {type(extra).__name__} {extra!r}")
    return ModelSidecar(
        name=name,
        task=task,
        model_version=model_version,
        inputs=inputs,
        outputs=outputs,
        deploy_resolution=(int(resolution[0]), int(resolution[1])),
        normalisation=_parse_normalisation(data, source),
        training_config_sha256=_parse_sha(data, "training_config_sha256", source, allow_empty=False),
        model_sha256=_parse_sha(data, "model_sha256", source, allow_empty=True),
        format_version=version,
        extra=dict(extra),
    )
