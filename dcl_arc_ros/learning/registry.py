"""The explicit registry of network kinds: name -> (config dataclass, builder, presets).

Checkpoints record each network as ``(kind, config dict)``; :func:`build_network` turns that back into a module, so
nothing needs command-line flags to rebuild a network. Other subpackages add their kinds with
:func:`register_model_kind` at import time; a checkpoint also records the module that defines the config class, and
:func:`get_model_kind` imports it when the kind is not registered yet (an explicit, recorded module path, not a naming
convention).

Usage::

    from dcl_arc_ros.learning.registry import NetworkSpec, preset

    spec = NetworkSpec("unet", preset("unet", "tiny"))
    net = spec.build()
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from torch import nn

from dcl_arc_ros.learning.config import from_dict, to_dict
from dcl_arc_ros.learning.errors import ConfigError, RegistryError
from dcl_arc_ros.learning.losses import patchnce
from dcl_arc_ros.learning.nets import patchgan, resnet_generator, unet

C = TypeVar("C")

__all__ = ["MODEL_KINDS", "ModelKind", "NetworkSpec", "get_model_kind", "preset", "register_model_kind"]


@dataclass(frozen=True)
class ModelKind(Generic[C]):
    config_cls: type[C]
    build: Callable[[C], nn.Module]
    presets: Mapping[str, C]
    description: str = ""


MODEL_KINDS: dict[str, ModelKind[Any]] = {
    "resnet_generator": ModelKind(
        resnet_generator.ResnetGeneratorConfig,
        resnet_generator.build_resnet_generator,
        resnet_generator.PRESETS,
        "CUT-style ResNet generator with a hole head (DCL, CUT, CycleGAN)",
    ),
    "patchgan": ModelKind(patchgan.PatchGANConfig, patchgan.build_patchgan, patchgan.PRESETS, "PatchGAN discriminator"),
    "unet": ModelKind(unet.UNetConfig, unet.build_unet, unet.PRESETS, "U-Net depth cleaner / normal estimator"),
    "feature_projector": ModelKind(
        patchnce.ProjectorConfig,
        patchnce.build_feature_projector,
        patchnce.PRESETS,
        "per-layer 2-layer MLP + L2 norm for PatchNCE / differential NCE",
    ),
}


def register_model_kind(name: str, kind: ModelKind[Any], *, replace: bool = False) -> None:
    """Add a kind; registering a different kind under a taken name raises unless ``replace``."""
    existing = MODEL_KINDS.get(name)
    if existing is not None and existing != kind and not replace:
        raise RegistryError(f"model kind {name!r} is already registered (config {existing.config_cls.__name__})")
    MODEL_KINDS[name] = kind


def get_model_kind(name: str, *, module: str | None = None) -> ModelKind[Any]:
    """Look a kind up; when missing and ``module`` is given, import that module (which registers it) and retry."""
    if name not in MODEL_KINDS and module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise RegistryError(f"model kind {name!r}: cannot import its module {module!r}: {exc}") from exc
    try:
        return MODEL_KINDS[name]
    except KeyError:
        raise RegistryError(f"unknown model kind {name!r}; registered: {sorted(MODEL_KINDS)}") from None


def preset(kind: str, name: str) -> Any:
    """The named preset config of a kind (e.g. ``preset("resnet_generator", "tiny")``)."""
    presets = get_model_kind(kind).presets
    if name not in presets:
        raise RegistryError(f"model kind {kind!r} has no preset {name!r}; presets: {sorted(presets)}")
    return presets[name]


@dataclass(frozen=True)
class NetworkSpec:
    """A network as data: its kind and its config. ``build()`` makes the module."""

    kind: str
    config: Any

    def __post_init__(self) -> None:
        cls = get_model_kind(self.kind).config_cls
        if not isinstance(self.config, cls):
            raise ConfigError(
                f"network kind {self.kind!r} needs a {cls.__name__} config, got {type(self.config).__name__}"
            )

    def build(self) -> nn.Module:
        return get_model_kind(self.kind).build(self.config)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": to_dict(self.config), "config_module": type(self.config).__module__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> NetworkSpec:
        if "kind" not in data or "config" not in data:
            raise ConfigError(f"{source}: a network entry needs 'kind' and 'config', got keys {sorted(data)}")
        kind = get_model_kind(str(data["kind"]), module=data.get("config_module"))
        return cls(str(data["kind"]), from_dict(kind.config_cls, data["config"], source=source))

    @classmethod
    def from_preset(cls, kind: str, name: str, **overrides: Any) -> NetworkSpec:
        return cls(kind, dataclasses.replace(preset(kind, name), **overrides))
