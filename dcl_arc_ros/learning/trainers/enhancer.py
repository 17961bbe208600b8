"""The depth cleaner (depth enhancement) and the normal estimator: a U-Net trained on (synthesized noisy, clean) pairs.

Each step takes a batch of clean frames and makes the network input with the configured synthesis method: ``clean``,
``empirical`` or a trained generator checkpoint (``dcl``, ``dcl_rgb``, ``cut``, ``cyclegan``), all through the
:class:`~dcl_arc_ros.learning.trainers.dcl.Synthesizer` interface. With ``synthesis="paired"`` the dataset's own
sensor depth is the input (real-like training pairs: the paper's "supervised on real" reference row).

* ``target="depth"``: masked L1 + gradient loss against ``depth_clean`` (normalised units), holes filled;
* ``target="normals"``: mean (1 - cos) against the dataset's ``normals``.

Batches are ``{"train": sample}``; samples carry ``depth_clean`` (and ``depth`` for ``paired``; ``rgb`` when the
U-Net takes RGB; ``normals`` for the normal target; ``intrinsics`` when present is passed to the synthesizer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import Dataset

from dcl_arc_ros.learning.checkpoint import load_checkpoint
from dcl_arc_ros.learning.config import DepthRange, OptimConfig, from_dict, merge_dicts, to_dict
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.losses.depth import DepthLossWeights, enhancement_loss, normal_angle_loss
from dcl_arc_ros.learning.nets.blocks import denormalise_depth, normalise_depth
from dcl_arc_ros.learning.nets.unet import PRESETS as UNET_PRESETS
from dcl_arc_ros.learning.nets.unet import UNetConfig
from dcl_arc_ros.learning.registry import NetworkSpec
from dcl_arc_ros.learning.trainers.dcl import SYNTHESIS_METHODS, Synthesizer, ToyDepthDataset, make_synthesizer
from dcl_arc_ros.learning.trainers.loop import LoopConfig

Target = Literal["depth", "normals"]

__all__ = [
    "ENHANCER_PRESETS",
    "EnhancerConfig",
    "EnhancerDataConfig",
    "EnhancerTask",
    "clean_depth",
    "load_enhancer_config",
    "open_enhancer_dataset",
]


@dataclass(frozen=True)
class EnhancerDataConfig:
    """The clean training frames (``kind`` as in :class:`~dcl_arc_ros.learning.trainers.dcl.DataConfig`)."""

    depth_range: DepthRange = field(default_factory=DepthRange)
    kind: str = "toy"
    paths: tuple[str, ...] = ()
    crop_height: int = 32
    crop_width: int = 32
    toy_samples: int = 64
    in_memory: bool = False  # keep decoded frames in memory (after the first epoch no bag is read again)


@dataclass(frozen=True)
class EnhancerConfig:
    target: Target = "depth"
    synthesis: str = "clean"  # a SYNTHESIS_METHODS name or "paired"
    synthesis_checkpoint: str = ""  # for trained synthesis methods
    init_checkpoint: str = ""  # start from this cleaner's weights (fine-tuning, e.g. on a few real pairs)
    net: UNetConfig = field(default_factory=lambda: UNET_PRESETS["default"])
    losses: DepthLossWeights = field(default_factory=DepthLossWeights)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, beta1=0.9, beta2=0.999))
    loop: LoopConfig = field(default_factory=LoopConfig)
    data: EnhancerDataConfig = field(default_factory=EnhancerDataConfig)

    def __post_init__(self) -> None:
        if self.synthesis not in (*SYNTHESIS_METHODS, "paired"):
            raise ConfigError(f"synthesis {self.synthesis!r} is not one of {[*SYNTHESIS_METHODS, 'paired']}")
        if self.synthesis in SYNTHESIS_METHODS[2:] and not self.synthesis_checkpoint:
            raise ConfigError(f"synthesis {self.synthesis!r} is a trained method: set synthesis_checkpoint")
        if (self.target == "normals") != (self.net.out_kind == "normals"):
            raise ConfigError(f"target {self.target!r} needs net.out_kind {self.target!r}, got {self.net.out_kind!r}")


_TINY_LOOP = LoopConfig(max_steps=60, batch_size=4, log_every=5, image_every=30, checkpoint_every=30)
ENHANCER_PRESETS: dict[str, EnhancerConfig] = {
    "default": EnhancerConfig(loop=LoopConfig(batch_size=16, max_steps=20000, checkpoint_every=1000)),
    "deploy": EnhancerConfig(net=UNET_PRESETS["deploy"]),
    "tiny": EnhancerConfig(net=UNET_PRESETS["tiny"], optim=OptimConfig(lr=2e-3, beta1=0.9), loop=_TINY_LOOP),
    "tiny_normals": EnhancerConfig(
        target="normals", net=UNET_PRESETS["tiny_normals"], optim=OptimConfig(lr=2e-3, beta1=0.9), loop=_TINY_LOOP
    ),
}


def load_enhancer_config(raw: Mapping[str, Any], *, source: str) -> EnhancerConfig:
    """A YAML mapping -> config: ``preset`` (default "default") + the mapping's overrides."""
    raw = dict(raw)
    preset_name = raw.pop("preset", "default")
    if preset_name not in ENHANCER_PRESETS:
        raise ConfigError(f"{source}: unknown preset {preset_name!r}; presets: {sorted(ENHANCER_PRESETS)}")
    return from_dict(EnhancerConfig, merge_dicts(to_dict(ENHANCER_PRESETS[preset_name]), raw), source=source)


def _need(sample: Mapping[str, Any], key: str) -> torch.Tensor:
    if key not in sample:
        raise DatasetError(f"enhancer batch has no {key!r}; keys: {sorted(sample)}")
    return sample[key]


class EnhancerTask:
    """A :class:`~dcl_arc_ros.learning.trainers.loop.TrainTask` training the cleaner (or the normal estimator)."""

    primary = "cleaner"

    def __init__(
        self, cfg: EnhancerConfig, device: str | torch.device = "cpu", *, synthesizer: Synthesizer | None = None
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.spec = NetworkSpec("unet", cfg.net)
        self.net = self.spec.build().to(self.device)
        if cfg.init_checkpoint:
            init = load_checkpoint(cfg.init_checkpoint)
            if init.networks.get("cleaner") != self.spec:
                raise ConfigError(
                    f"init_checkpoint {cfg.init_checkpoint}: its cleaner {init.networks.get('cleaner')} differs from "
                    f"the configured net {self.spec}"
                )
            init.restore({"cleaner": self.net})
        self.run_net: nn.Module = self.net
        self.opt = torch.optim.Adam(
            self.net.parameters(),
            lr=cfg.optim.lr,
            betas=(cfg.optim.beta1, cfg.optim.beta2),
            weight_decay=cfg.optim.weight_decay,
        )
        self.synthesizer: Synthesizer | None = None
        if cfg.synthesis != "paired":
            self.synthesizer = synthesizer or make_synthesizer(
                cfg.synthesis, checkpoint=cfg.synthesis_checkpoint or None, seed=cfg.loop.seed
            )

    def networks(self) -> dict[str, tuple[NetworkSpec, nn.Module]]:
        return {"cleaner": (self.spec, self.net)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"cleaner": self.opt}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.run_net = wrap(self.net)

    def make_input(self, sample: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(normalised noisy depth, rgb or None) for a batch: synthesized from depth_clean, or the sensor depth."""
        rgb = _need(sample, "rgb").to(self.device) if self.cfg.net.rgb_channels else None
        if self.synthesizer is None:
            noisy_m = _need(sample, "depth").to(self.device)
        else:
            clean_m = _need(sample, "depth_clean").to(self.device)
            intr = sample.get("intrinsics")
            synth_rgb = _need(sample, "rgb").to(self.device) if "rgb" in sample else None
            noisy_m = self.synthesizer(clean_m, synth_rgb, intrinsics=intr)
        return normalise_depth(noisy_m, self.cfg.data.depth_range), rgb

    def _forward(self, net: nn.Module, x: torch.Tensor, rgb: torch.Tensor | None) -> torch.Tensor:
        return net(x, rgb) if rgb is not None else net(x)

    def train_step(self, batch: Mapping[str, Mapping[str, Any]], step: int) -> dict[str, float]:
        sample = batch["train"]
        x, rgb = self.make_input(sample)
        pred = self._forward(self.run_net, x, rgb)
        logs: dict[str, float] = {}
        if self.cfg.target == "depth":
            clean_m = _need(sample, "depth_clean").to(self.device)
            mask = (clean_m > 0).to(pred.dtype)
            target = normalise_depth(clean_m, self.cfg.data.depth_range)
            loss, parts = enhancement_loss(pred, target, mask, self.cfg.losses)
            logs.update(parts)
            with torch.no_grad():
                err_m = denormalise_depth(pred, self.cfg.data.depth_range) - clean_m
                logs["rmse_m"] = float(((err_m**2 * mask).sum() / mask.sum().clamp_min(1.0)).sqrt())
        else:
            normals = _need(sample, "normals").to(self.device)
            mask = (normals.pow(2).sum(dim=1, keepdim=True) > 0.25).to(pred.dtype)  # |n| > 0.5, without slow norm()
            loss = normal_angle_loss(pred, normals, mask)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        logs["loss"] = loss.item()
        return logs

    def image_grids(self, batch: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        sample = batch["train"]
        x, rgb = self.make_input(sample)
        was = self.net.training
        self.net.eval()
        with torch.no_grad():
            pred = self._forward(self.net, x, rgb)
        self.net.train(was)
        grids = {"input": (x + 1) / 2}
        if self.cfg.target == "depth":
            grids["cleaned"] = (pred + 1) / 2
            grids["ground_truth"] = (normalise_depth(sample["depth_clean"], self.cfg.data.depth_range) + 1) / 2
        else:
            grids["normals"] = (pred + 1) / 2
        return grids


@torch.no_grad()
def clean_depth(
    net: nn.Module, depth_m: torch.Tensor, depth_range: DepthRange, rgb: torch.Tensor | None = None
) -> torch.Tensor:
    """Run a cleaner on metric depth (B, 1, H, W), 0 = hole; returns metric depth (holes filled)."""
    net = net.eval()
    x = normalise_depth(depth_m, depth_range)
    y = net(x, rgb) if rgb is not None else net(x)
    return denormalise_depth(y, depth_range)


def open_enhancer_dataset(cfg: EnhancerConfig, *, seed: int = 0) -> Dataset:
    """The training frames as configured: toy planes/boxes in memory, or a named data source."""
    data = cfg.data
    keys = ["depth_clean"]
    if cfg.synthesis == "paired":
        keys.append("depth")
    if cfg.net.rgb_channels or cfg.synthesis == "dcl_rgb":
        keys.append("rgb")
    if cfg.target == "normals":
        keys.append("normals")
    if cfg.synthesis == "empirical":
        keys.append("intrinsics")  # the sensor model's lateral noise and shadows depend on the focal length
    if data.kind == "toy":
        if cfg.target == "normals":
            raise ConfigError("the toy dataset has no normals; use a generated data source for target=normals")
        return ToyDepthDataset(
            data.toy_samples,
            height=data.crop_height or 32,
            width=data.crop_width or 32,
            real_like=cfg.synthesis == "paired",
            seed=seed,
            max_m=data.depth_range.max_m,
        )
    from dcl_arc_ros.data import torch_datasets

    transforms = []
    if data.crop_height and data.crop_width:
        transforms.append(torch_datasets.RandomCrop(width=data.crop_width, height=data.crop_height))
    return torch_datasets.build_dataset(
        data.kind, *data.paths, transforms=transforms, keys=tuple(keys), in_memory=data.in_memory
    )


def replace_synthesis(cfg: EnhancerConfig, synthesis: str, checkpoint: str = "") -> EnhancerConfig:
    """``cfg`` with another synthesis method (the evaluation trains one cleaner per method)."""
    return dataclasses.replace(cfg, synthesis=synthesis, synthesis_checkpoint=checkpoint)
