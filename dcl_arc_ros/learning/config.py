"""Typed configs: dataclasses <-> plain dicts <-> YAML, strict about unknown keys and types.

Every network and trainer owns a small dataclass config and its presets (in its own module); this module holds the
generic machinery plus the configs several trainers share. The resolved config is stored in every checkpoint (see
:mod:`dcl_arc_ros.learning.checkpoint`), so evaluation and export rebuild networks from it alone.

Usage::

    from dcl_arc_ros.learning.config import from_dict, to_dict, load_yaml, apply_overrides

    raw = apply_overrides(load_yaml(Path("training/configs/dcl_tiny.yaml")), ["loop.max_steps=10"])
    cfg = from_dict(MyTrainConfig, raw, source="training/configs/dcl_tiny.yaml")
    save_yaml(cfg, out_dir / "config.yaml")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from dcl_arc_ros.learning.errors import ConfigError

T = TypeVar("T")

__all__ = [
    "DepthRange",
    "OptimConfig",
    "apply_overrides",
    "config_digest",
    "from_dict",
    "load_yaml",
    "merge_dicts",
    "save_yaml",
    "to_dict",
]


@dataclass(frozen=True)
class DepthRange:
    """Fixed metric range mapped linearly to [-1, 1]; metric scale is kept (never per-image max normalisation).

    ``min_m`` maps to -1 and ``max_m`` to +1. Invalid pixels are 0 m; with ``min_m == 0`` they map to -1.
    """

    min_m: float = 0.0
    max_m: float = 4.0

    def __post_init__(self) -> None:
        if not self.max_m > self.min_m >= 0.0:
            raise ConfigError(f"DepthRange needs 0 <= min_m < max_m, got min_m={self.min_m} max_m={self.max_m}")

    def as_sidecar(self) -> dict[str, Any]:
        """The ``normalisation`` entry of a model sidecar for a depth tensor in this range."""
        return {"kind": "range", "min_m": float(self.min_m), "max_m": float(self.max_m), "invalid_value_m": 0.0}


@dataclass(frozen=True)
class OptimConfig:
    """Adam settings (the DCL paper: lr 2e-4, betas (0.5, 0.999))."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0.0:
            raise ConfigError(f"OptimConfig.lr must be > 0, got {self.lr}")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise ConfigError(f"OptimConfig betas must lie in [0, 1), got ({self.beta1}, {self.beta2})")


# --------------------------------------------------------------------------------------------------------------------
# dataclass <-> dict
# --------------------------------------------------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass instance as plain, YAML/JSON-safe nested dicts (tuples become lists)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise ConfigError(f"to_dict expects a dataclass instance, got {type(cfg).__name__}")
    return _plain(cfg)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, source: str = "<dict>") -> T:
    """Build ``cls`` from a nested dict, checking every key and type.

    Missing keys take the dataclass defaults; unknown keys and wrong types raise :class:`ConfigError` naming the
    dotted key and ``source`` (normally the YAML file or checkpoint the dict came from).
    """
    return _build(cls, data if data is not None else {}, source=source, where=cls.__name__)


def _build(cls: Any, data: Any, *, source: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(data).__name__} ({data!r})")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in '{where}'; allowed: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, source=source, where=f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: cannot build '{where}': {exc}") from exc


def _coerce(tp: Any, value: Any, *, source: str, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        return _build(tp, value, source=source, where=where)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{source}: '{where}' = {value!r} is not one of {list(allowed)}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{source}: '{where}' must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source=source, where=where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{source}: '{where}' = {value!r} matches none of {args}: {errors}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{where}' must be a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: '{where}' needs {len(args)} items, got {len(value)} ({value!r})")
            items = [
                _coerce(a, v, source=source, where=f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            ]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(item_tp, v, source=source, where=f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{where}' must be true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{where}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{where}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{where}' must be a string, got {value!r}")
        return value
    return value


# --------------------------------------------------------------------------------------------------------------------
# YAML, overrides, hashing
# --------------------------------------------------------------------------------------------------------------------


def load_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping; an unreadable file or a non-mapping top level raises :class:`ConfigError`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def save_yaml(cfg: Any, path: Path | str) -> Path:
    """Write a dataclass (or a plain dict) as YAML; returns the path."""
    path = Path(path)
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else _plain(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    tmp.replace(path)
    return path


def merge_dicts(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, everything else in ``update`` replaces ``base``."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides; values are parsed as YAML (``3``, ``1e-4``, ``true``, ``[1, 2]``)."""
    out = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        nested: Any = value
        for part in reversed(key.strip().split(".")):
            nested = {part: nested}
        out = merge_dicts(out, nested)
    return out


def config_digest(cfg: Any) -> str:
    """sha256 of the canonical JSON of a config (dataclass or dict): the training-config hash of a sidecar."""
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else _plain(cfg)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()
