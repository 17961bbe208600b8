"""Checkpoints that carry their own architecture: every network is saved with its kind and resolved config.

One checkpoint file holds the step, every network (kind + config + weights), every optimizer state, the full run
config and any extra state a trainer wants back on resume (RNG states, data positions). Files are written atomically
(temporary file + rename), so a kill during a save never leaves a truncated ``latest.pt``.

Usage::

    from dcl_arc_ros.learning.checkpoint import save_checkpoint, load_checkpoint, build_from_checkpoint

    save_checkpoint(path, step=100, networks={"generator": (spec, gen)}, optimizers={"g": opt},
                    run_config=cfg, primary="generator")
    gen = build_from_checkpoint(path)                     # the primary network, eval mode, weights loaded
    disc = build_from_checkpoint(path, "discriminator")
    ckpt = load_checkpoint(path); ckpt.restore({"generator": gen}, {"g": opt})
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcl_arc_ros.learning.config import to_dict
from dcl_arc_ros.learning.errors import CheckpointError, ConfigError, RegistryError
from dcl_arc_ros.learning.registry import NetworkSpec

CHECKPOINT_FORMAT = "dcl_arc_ros.checkpoint"
CHECKPOINT_VERSION = 1

__all__ = [
    "Checkpoint",
    "build_from_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "unwrap",
]


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel (or DataParallel) wrapper."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, nn.Module) else module


@dataclass
class Checkpoint:
    path: Path
    step: int
    primary: str
    networks: dict[str, NetworkSpec]
    state_dicts: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    run_config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, name: str | None = None, *, eval_mode: bool = True) -> nn.Module:
        """Rebuild network ``name`` (default: the primary one) from its saved config and load its weights."""
        name = name or self.primary
        if name not in self.networks:
            raise CheckpointError(f"{self.path}: no network {name!r}; it holds {sorted(self.networks)}")
        net = self.networks[name].build()
        self._load_state(name, net)
        return net.eval() if eval_mode else net.train()

    def _load_state(self, name: str, module: nn.Module) -> None:
        try:
            unwrap(module).load_state_dict(self.state_dicts[name])
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(f"{self.path}: weights of network {name!r} do not fit its module: {exc}") from exc

    def restore(
        self,
        modules: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    ) -> None:
        """Load weights (and optimizer states) into existing objects; every given name must be in the checkpoint."""
        for name, module in modules.items():
            if name not in self.state_dicts:
                raise CheckpointError(f"{self.path}: no weights for network {name!r}; it holds {sorted(self.networks)}")
            self._load_state(name, module)
        for name, opt in (optimizers or {}).items():
            if name not in self.optimizers:
                raise CheckpointError(f"{self.path}: no optimizer state {name!r}; it holds {sorted(self.optimizers)}")
            try:
                opt.load_state_dict(self.optimizers[name])
            except (ValueError, KeyError) as exc:
                raise CheckpointError(f"{self.path}: optimizer state {name!r} does not fit: {exc}") from exc


def save_checkpoint(
    path: Path | str,
    *,
    step: int,
    networks: Mapping[str, tuple[NetworkSpec, nn.Module]],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    run_config: Any = None,
    primary: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically and return its path. ``run_config`` may be a dataclass or a plain dict."""
    path = Path(path)
    if not networks:
        raise CheckpointError(f"{path}: a checkpoint needs at least one network")
    primary = primary or next(iter(networks))
    if primary not in networks:
        raise CheckpointError(f"{path}: primary network {primary!r} is not among {sorted(networks)}")
    if run_config is None:
        cfg: dict[str, Any] = {}
    elif dataclasses.is_dataclass(run_config) and not isinstance(run_config, type):
        cfg = to_dict(run_config)
    else:
        cfg = dict(run_config)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "primary": primary,
        "networks": {
            name: {**spec.to_dict(), "state_dict": unwrap(module).state_dict()}
            for name, (spec, module) in networks.items()
        },
        "optimizers": {name: opt.state_dict() for name, opt in (optimizers or {}).items()},
        "run_config": cfg,
        "extra": dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path | str, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read and validate a checkpoint (weights-only unpickling: no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} file")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r}, expected {CHECKPOINT_VERSION}")
    specs: dict[str, NetworkSpec] = {}
    states: dict[str, dict[str, torch.Tensor]] = {}
    for name, entry in payload["networks"].items():
        try:
            specs[name] = NetworkSpec.from_dict(entry, source=f"{path} network {name!r}")
        except (ConfigError, RegistryError) as exc:
            raise CheckpointError(f"{path}: network {name!r} cannot be rebuilt: {exc}") from exc
        states[name] = entry["state_dict"]
    return Checkpoint(
        path=path,
        step=int(payload["step"]),
        primary=str(payload["primary"]),
        networks=specs,
        state_dicts=states,
        optimizers=dict(payload.get("optimizers", {})),
        run_config=dict(payload.get("run_config", {})),
        extra=dict(payload.get("extra", {})),
    )


def build_from_checkpoint(
    path: Path | str, name: str | None = None, *, map_location: str | torch.device = "cpu", eval_mode: bool = True
) -> nn.Module:
    """Rebuild a network from the config saved in the checkpoint alone and load its weights."""
    return load_checkpoint(path, map_location=map_location).build(name, eval_mode=eval_mode)


def latest_checkpoint(directory: Path | str) -> Path | None:
    """``directory/latest.pt`` if present, else the highest ``step_*.pt``, else None."""
    directory = Path(directory)
    latest = directory / "latest.pt"
    if latest.is_file():
        return latest
    steps = sorted(directory.glob("step_*.pt"))
    return steps[-1] if steps else None
