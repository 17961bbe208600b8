"""Depth synthesis: DCL and its baselines behind one config, one loop and one :class:`Synthesizer` interface.

Trained methods (``DCLTrainConfig.method``), sharing the generator, discriminator, GAN loss, projector and loop:

* ``dcl``: L = L_adv + alpha L_dc + beta L_idt (alpha 1.5, beta 1.0), L_dc the differential NCE
  (:mod:`dcl_arc_ros.learning.losses.dcl`), L_idt = |G(d_r) - d_r|_1 on REAL depth;
* ``dcl_rgb``: the same with the RGB encoder theta (the batch's aligned RGB joins the decoder);
* ``cut``: L_adv + lambda (PatchNCE(d_s, G(d_s)) + PatchNCE(d_r, G(d_r))), CUT's default with NCE identity;
* ``cyclegan``: two generators and two discriminators, cycle L1 (lambda 10) and identity L1 (0.5 lambda).

``weights.metric`` > 0 adds the coarse metric anchor (:func:`metric_anchor_loss`, not in the papers) to dcl, dcl_rgb
and cut alike.

Non-trained synthesis methods behind the same :class:`Synthesizer` interface: ``clean`` (identity) and ``empirical``
(the sensor-model registry ``dcl_arc_ros.sim.sensors.SENSORS["empirical"]``, imported lazily).

Holes (not in the papers; why: ``docs/results/dcl.md``). Real sensors return "no reading" pixels, and the generator's
hole head can cut them (:mod:`dcl_arc_ros.learning.nets.resnet_generator`). With every loss on the holed output
(``hole_losses="output"``, the papers' setting) short runs learned no holes at all. ``hole_losses="depth"`` puts the
non-adversarial terms on the depth channel before holes are cut, ``generator.ray_channels=2`` lets generator and
discriminator see where each pixel is in the camera, and ``weights.hole_rate`` matches the real hole rate per bin of
that position (:mod:`dcl_arc_ros.learning.losses.holes`).

Batches are ``{"source": sample, "real": sample}`` (unpaired); a sample has ``"depth"`` (B, 1, H, W) metres with 0
where invalid, ``"valid"``, and ``"rgb"`` (B, 3, H, W) in [0, 1] for ``dcl_rgb``. Depth is mapped to [-1, 1] over
the fixed ``data.depth_range``: metric scale is kept and never renormalised per image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from dcl_arc_ros.learning.checkpoint import load_checkpoint, unwrap
from dcl_arc_ros.learning.config import DepthRange, OptimConfig, from_dict, merge_dicts, to_dict
from dcl_arc_ros.learning.errors import ConfigError, DatasetError, RegistryError
from dcl_arc_ros.learning.losses.dcl import DCLLossConfig, dcl_loss
from dcl_arc_ros.learning.losses.gan import GANLoss, GANMode, discriminator_loss, set_requires_grad
from dcl_arc_ros.learning.losses.holes import HoleRatePrior
from dcl_arc_ros.learning.losses.patchnce import PatchNCEConfig, ProjectorConfig, patchnce_loss
from dcl_arc_ros.learning.nets.blocks import denormalise_depth, normalise_depth
from dcl_arc_ros.learning.nets.patchgan import PRESETS as PATCHGAN_PRESETS
from dcl_arc_ros.learning.nets.patchgan import PatchGANConfig
from dcl_arc_ros.learning.nets.resnet_generator import PRESETS as GENERATOR_PRESETS
from dcl_arc_ros.learning.nets.resnet_generator import ResnetGenerator, ResnetGeneratorConfig, ray_map
from dcl_arc_ros.learning.registry import NetworkSpec
from dcl_arc_ros.learning.trainers.loop import LoopConfig

TrainedMethod = Literal["dcl", "dcl_rgb", "cut", "cyclegan"]
TRAINED_METHODS: tuple[str, ...] = ("dcl", "dcl_rgb", "cut", "cyclegan")
SYNTHESIS_METHODS: tuple[str, ...] = ("clean", "empirical", *TRAINED_METHODS)

__all__ = [
    "DCL_PRESETS",
    "METHODS",
    "SYNTHESIS_METHODS",
    "SYNTHESIZERS",
    "CycleGANTask",
    "DCLTrainConfig",
    "DataConfig",
    "LossWeights",
    "SynthesisTask",
    "Synthesizer",
    "ToyDepthDataset",
    "config_for_method",
    "make_synthesizer",
    "make_task",
    "open_unpaired_datasets",
]


# --------------------------------------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------------------------------------


DepthFrom = Literal["clean", "sensor"]
HoleLosses = Literal["output", "depth"]


@dataclass(frozen=True)
class DataConfig:
    """The two unpaired sets. ``*_kind`` names a source of ``dcl_arc_ros.data.torch_datasets.SOURCES`` ("bags",
    "folder", "nyuv2", "castel", ...) or ``"toy"`` (:class:`ToyDepthDataset`, in memory); ``*_paths`` are its
    arguments. The source set reads the clean depth, the real set the sensor depth, by default. Training crops are
    ``crop_height`` x ``crop_width`` (0: whole frames)."""

    depth_range: DepthRange = field(default_factory=DepthRange)
    source_kind: str = "toy"
    source_paths: tuple[str, ...] = ()
    source_depth_from: DepthFrom = "clean"
    real_kind: str = "toy"
    real_paths: tuple[str, ...] = ()
    real_depth_from: DepthFrom = "sensor"
    crop_height: int = 32
    crop_width: int = 32
    toy_samples: int = 64
    in_memory: bool = False  # keep decoded frames in memory (bags/folders): the first epoch decodes, later ones do not
    real_crop_x_min: int = 0  # real crops start right of this column (0: anywhere; e.g. 96 skips a stereo band)


@dataclass(frozen=True)
class LossWeights:
    adv: float = 1.0
    dc: float = 1.5  # alpha (dcl) / lambda_NCE (cut, CUT's default is 1.0: config_for_method sets it)
    idt: float = 1.0  # beta: L1 identity on real depth (dcl); 0.5 * cycle in cyclegan
    cycle: float = 10.0  # cyclegan only
    metric: float = 0.0  # not in the paper: coarse metric anchor on source depth (see metric_anchor_loss); 0 = off
    metric_pool: int = 8  # block size (pixels) of that anchor's local means
    hole_rate: float = 0.0  # not in the paper: the hole-rate prior (learning/losses/holes.py); 0 = off


@dataclass(frozen=True)
class DCLTrainConfig:
    method: TrainedMethod = "dcl"
    generator: ResnetGeneratorConfig = field(default_factory=lambda: GENERATOR_PRESETS["default"])
    discriminator: PatchGANConfig = field(default_factory=lambda: PATCHGAN_PRESETS["default"])
    contrastive: DCLLossConfig = field(default_factory=DCLLossConfig)
    patchnce: PatchNCEConfig = field(default_factory=PatchNCEConfig)
    feature_layers: tuple[int, ...] = ()  # empty: the generator's evenly spread default (5 layers)
    projector_units: int = 128
    freeze_projector: bool = False
    cut_nce_idt: bool = True
    gan_mode: GANMode = "lsgan"
    # Which map the non-adversarial terms of dcl/dcl_rgb/cut see. "output" (the papers): the synthesized depth with
    # its holes, so L_idt, L_dc (or PatchNCE) and the metric anchor all pay for every hole. "depth": the depth
    # channel before holes are cut in, with L_idt only where the real frame has a reading; the hole head then learns
    # from the adversarial term (and weights.hole_rate) alone. See SynthesisTask.
    hole_losses: HoleLosses = "output"
    # Bins (along x, along y) of the viewing ray over which weights.hole_rate matches the real hole rate; (1, 1) is
    # one global rate, more bins need generator.ray_channels. See dcl_arc_ros/learning/losses/holes.py.
    hole_rate_bins: tuple[int, int] = (1, 1)
    hole_rate_extent: float = 1.0  # the bins span rays in [-extent, extent] (0.6: about +-31 degrees)
    weights: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        uses_rgb = self.generator.rgb_channels > 0
        if self.hole_losses not in ("output", "depth"):
            raise ConfigError(f"hole_losses must be 'output' or 'depth', got {self.hole_losses!r}")
        if self.weights.hole_rate < 0:
            raise ConfigError(f"weights.hole_rate must be >= 0, got {self.weights.hole_rate}")
        if len(self.hole_rate_bins) != 2 or min(self.hole_rate_bins) < 1:
            raise ConfigError(f"hole_rate_bins must be two counts >= 1, got {self.hole_rate_bins}")
        if not self.hole_rate_extent > 0:
            raise ConfigError(f"hole_rate_extent must be > 0, got {self.hole_rate_extent}")
        if max(self.hole_rate_bins) > 1 and not self.generator.ray_channels:
            raise ConfigError(
                f"hole_rate_bins {tuple(self.hole_rate_bins)} bins the viewing ray: set generator.ray_channels to 2"
            )
        if (self.method == "dcl_rgb") != uses_rgb:
            raise ConfigError(
                f"method {self.method!r} with generator.rgb_channels={self.generator.rgb_channels}: dcl_rgb needs "
                "the RGB encoder and the other methods must not have it (use config_for_method)"
            )


_TINY_LOOP = LoopConfig(max_steps=50, batch_size=4, log_every=5, image_every=25, checkpoint_every=25)
DCL_PRESETS: dict[str, DCLTrainConfig] = {
    # The paper: batch 16, Adam 2e-4 (0.5, 0.999), official network sizes.
    "default": DCLTrainConfig(loop=LoopConfig(batch_size=16, max_steps=20000, checkpoint_every=1000)),
    "tiny": DCLTrainConfig(
        generator=GENERATOR_PRESETS["tiny"],
        discriminator=PATCHGAN_PRESETS["tiny"],
        contrastive=DCLLossConfig(num_anchors=64, num_negatives=16, sigma=2.0),
        patchnce=PatchNCEConfig(num_patches=64),
        projector_units=32,
        loop=_TINY_LOOP,
    ),
}


def config_for_method(cfg: DCLTrainConfig, method: str) -> DCLTrainConfig:
    """``cfg`` adapted to ``method``: the RGB encoder on/off, and CUT's lambda_NCE of 1.0 for ``cut``."""
    if method not in TRAINED_METHODS:
        raise RegistryError(f"unknown trained method {method!r}; expected one of {list(TRAINED_METHODS)}")
    gen = cfg.generator
    if method == "dcl_rgb" and gen.rgb_channels == 0:
        gen = dataclasses.replace(gen, rgb_channels=3)
    elif method != "dcl_rgb" and gen.rgb_channels > 0:
        gen = dataclasses.replace(gen, rgb_channels=0)
    weights = cfg.weights
    if method == "cut" and cfg.method != "cut":
        weights = dataclasses.replace(weights, dc=1.0)
    if method == "cyclegan" and cfg.method != "cyclegan":
        weights = dataclasses.replace(weights, idt=0.5 * weights.cycle)
    return dataclasses.replace(cfg, method=method, generator=gen, weights=weights)  # type: ignore[arg-type]


def load_dcl_config(raw: Mapping[str, Any], *, source: str, method: str | None = None) -> DCLTrainConfig:
    """A YAML mapping -> config: ``preset`` (default "default") + the mapping's values, for the mapping's method.

    ``method``, when it differs from the mapping's, then adapts the method-specific defaults with
    :func:`config_for_method` (RGB encoder, CUT's lambda_NCE 1.0, CycleGAN's identity weight 0.5 * lambda_cycle).
    An optional ``per_method: {METHOD: {...}}`` mapping holds values for one method only, merged over the rest when
    that method is the one loaded (one file can then describe every row of an experiment).
    """
    raw = dict(raw)
    per_method = raw.pop("per_method", None) or {}
    if not isinstance(per_method, Mapping) or any(
        m not in TRAINED_METHODS or not isinstance(v, Mapping) or "method" in v for m, v in per_method.items()
    ):
        raise ConfigError(
            f"{source}: per_method must map methods {list(TRAINED_METHODS)} to mappings of settings (without "
            f"'method'), got {per_method!r}"
        )
    preset_for_method = DCL_PRESETS.get(str(raw.get("preset", "default")), DCL_PRESETS["default"])
    target = method or raw.get("method", preset_for_method.method)
    if target in per_method:
        raw = merge_dicts(raw, dict(per_method[target]))
    preset_name = raw.pop("preset", "default")
    if preset_name not in DCL_PRESETS:
        raise ConfigError(f"{source}: unknown preset {preset_name!r}; presets: {sorted(DCL_PRESETS)}")
    preset = DCL_PRESETS[preset_name]
    own = raw.get("method", preset.method)
    if own not in TRAINED_METHODS:
        raise ConfigError(f"{source}: method {own!r} is not one of {list(TRAINED_METHODS)}")
    merged = merge_dicts(to_dict(config_for_method(preset, own)), raw)
    gen = dict(merged.get("generator", {}))
    if own == "dcl_rgb" and not gen.get("rgb_channels"):
        gen["rgb_channels"] = 3
    if own != "dcl_rgb":
        gen["rgb_channels"] = 0
    merged["generator"] = gen
    cfg = from_dict(DCLTrainConfig, merged, source=source)
    if method is not None and method != cfg.method:
        cfg = config_for_method(cfg, method)
    return cfg


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------


def _adam(params: Any, optim: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=optim.lr, betas=(optim.beta1, optim.beta2), weight_decay=optim.weight_decay)


def _require(sample: Mapping[str, Any], key: str, where: str) -> torch.Tensor:
    if key not in sample:
        raise DatasetError(f"{where} batch has no {key!r}; keys: {sorted(sample)}")
    value = sample[key]
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        raise DatasetError(f"{where} batch {key!r} must be a (B, C, H, W) tensor, got {type(value).__name__}")
    return value


def _rays_of(sample: Mapping[str, Any], depth: torch.Tensor, where: str) -> torch.Tensor:
    """The viewing rays of ``sample``'s pixels (:func:`ray_map`) from its ``intrinsics`` (B, 4)."""
    if "intrinsics" not in sample:
        raise DatasetError(
            f"{where} batch has no 'intrinsics'; a generator with ray_channels needs each crop's intrinsics"
        )
    return ray_map(sample["intrinsics"].to(depth.device), int(depth.shape[-2]), int(depth.shape[-1]))


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def metric_anchor_loss(fake: torch.Tensor, source: torch.Tensor, hole_value: float, pool: int) -> torch.Tensor:
    """L1 between block means (``pool`` x ``pool``) of the synthesized and the source depth over the pixels both have.

    Not part of the paper. The differential loss cannot see a global shift or scaling and L_idt only constrains G on
    real inputs, which G can tell apart from clean ones; with metric depth (no per-image normalisation) a generator
    can then move clean depth by tens of centimetres. Block means leave pixel-level noise and holes free while tying
    the local depth level to the source.
    """
    keep = ((fake > hole_value + 1e-6) & (source > hole_value + 1e-6)).to(fake.dtype)
    den = F.avg_pool2d(keep, pool, ceil_mode=True)
    fake_mean = F.avg_pool2d(fake * keep, pool, ceil_mode=True) / den.clamp_min(1e-6)
    src_mean = F.avg_pool2d(source * keep, pool, ceil_mode=True) / den.clamp_min(1e-6)
    weight = (den > 0.25).to(fake.dtype)
    return ((fake_mean - src_mean).abs() * weight).sum() / weight.sum().clamp_min(1.0)


# --------------------------------------------------------------------------------------------------------------------
# DCL / DCL w/ rgb / CUT
# --------------------------------------------------------------------------------------------------------------------


class SynthesisTask:
    """A :class:`~dcl_arc_ros.learning.trainers.loop.TrainTask` for ``dcl``, ``dcl_rgb`` and ``cut``."""

    primary = "generator"

    def __init__(self, cfg: DCLTrainConfig, device: str | torch.device = "cpu") -> None:
        if cfg.method not in ("dcl", "dcl_rgb", "cut"):
            raise ConfigError(f"SynthesisTask trains dcl, dcl_rgb or cut, not {cfg.method!r}")
        self.cfg = cfg
        self.device = torch.device(device)
        self.gen_spec = NetworkSpec("resnet_generator", cfg.generator)
        # With viewing rays the discriminator sees them too: a band of holes is realistic on one side of the camera
        # only, and a crop alone does not say which side it came from.
        disc_in = cfg.discriminator.in_channels + cfg.generator.ray_channels
        self.disc_spec = NetworkSpec("patchgan", dataclasses.replace(cfg.discriminator, in_channels=disc_in))
        self.generator: ResnetGenerator = self.gen_spec.build().to(self.device)  # type: ignore[assignment]
        self.discriminator = self.disc_spec.build().to(self.device)
        self.layers = cfg.feature_layers or self.generator.default_feature_layers()
        channels = tuple(self.generator.feature_channels(self.layers))
        self.proj_spec = NetworkSpec("feature_projector", ProjectorConfig(channels, units=cfg.projector_units))
        self.projector = self.proj_spec.build().to(self.device)
        self.gan = GANLoss(cfg.gan_mode)
        self.hole_prior = HoleRatePrior(cfg.hole_rate_bins, cfg.hole_rate_extent)
        self.opt_g = _adam(self.generator.parameters(), cfg.optim)
        self.opt_d = _adam(self.discriminator.parameters(), cfg.optim)
        self.opt_p: torch.optim.Optimizer | None = None
        if cfg.freeze_projector:
            set_requires_grad(self.projector, False)
        else:
            self.opt_p = _adam(self.projector.parameters(), cfg.optim)
        # Modules used for forward passes; the loop may replace them with DDP wrappers.
        self.run_g: nn.Module = self.generator
        self.run_d: nn.Module = self.discriminator
        self.run_p: nn.Module = self.projector

    # TrainTask --------------------------------------------------------------------------------------------------
    def networks(self) -> dict[str, tuple[NetworkSpec, nn.Module]]:
        return {
            "generator": (self.gen_spec, self.generator),
            "discriminator": (self.disc_spec, self.discriminator),
            "projector": (self.proj_spec, self.projector),
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"generator": self.opt_g, "discriminator": self.opt_d}
        if self.opt_p is not None:
            opts["projector"] = self.opt_p
        return opts

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.run_g = wrap(self.generator)
        self.run_d = wrap(self.discriminator)
        self.run_p = wrap(self.projector)

    def _inputs(
        self, batch: Mapping[str, Mapping[str, Any]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        rng = self.cfg.data.depth_range
        d_s = normalise_depth(_require(batch["source"], "depth", "source").to(self.device), rng)
        d_r = normalise_depth(_require(batch["real"], "depth", "real").to(self.device), rng)
        rgb_s = rgb_r = None
        if self.cfg.generator.rgb_channels:
            rgb_s = _require(batch["source"], "rgb", "source").to(self.device)
            rgb_r = _require(batch["real"], "rgb", "real").to(self.device)
        return d_s, d_r, rgb_s, rgb_r

    def _rays(
        self, batch: Mapping[str, Mapping[str, Any]], d_s: torch.Tensor, d_r: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(source rays, real rays or None) when the generator sees viewing rays, else (None, None)."""
        if not self.cfg.generator.ray_channels:
            return None, None
        real = None if d_r is None else _rays_of(batch["real"], d_r, "real")
        return _rays_of(batch["source"], d_s, "source"), real

    @staticmethod
    def _judged(depth: torch.Tensor, rays: torch.Tensor | None) -> torch.Tensor:
        """What the discriminator sees: depth, with the viewing rays beside it when the generator has them."""
        return depth if rays is None else torch.cat([depth, rays], dim=1)

    def _project(self, blocks: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.run_p(blocks)

    def train_step(self, batch: Mapping[str, Mapping[str, Any]], step: int) -> dict[str, float]:
        cfg, w = self.cfg, self.cfg.weights
        hole_value = cfg.generator.hole_value
        d_s, d_r, rgb_s, rgb_r = self._inputs(batch)
        b = d_s.shape[0]
        need_idt = cfg.method != "cut" or cfg.cut_nce_idt
        x = torch.cat([d_s, d_r]) if need_idt else d_s
        rgb = None if rgb_s is None or rgb_r is None else (torch.cat([rgb_s, rgb_r]) if need_idt else rgb_s)
        rays_s, rays_r = self._rays(batch, d_s, d_r)
        rays = None if rays_s is None or rays_r is None else (torch.cat([rays_s, rays_r]) if need_idt else rays_s)
        out, depth, hole_logit = self.run_g(x, rgb, rays=rays, parts=True)  # one DDP forward per step
        fake = out[:b]

        # Discriminator: real -> 1, synthesized -> 0.
        set_requires_grad(self.discriminator, True)
        pred = self.run_d(torch.cat([self._judged(d_r, rays_r), self._judged(fake.detach(), rays_s)]))
        loss_d = discriminator_loss(self.gan, pred[: d_r.shape[0]], pred[d_r.shape[0] :])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # Generator (+ projector head).
        set_requires_grad(self.discriminator, False)
        loss_adv = self.gan(self.discriminator(self._judged(fake, rays_s)), True)
        logs: dict[str, float] = {}
        # "output": every term sees the holes; "depth": they see the depth channel, holes are left to L_adv.
        seen = out if cfg.hole_losses == "output" else depth
        if cfg.method == "cut":
            src = torch.cat([d_s, d_r]) if need_idt else d_s
            with torch.no_grad():  # keys are detached anyway (as in CUT); no graph needed
                feats_src = self.generator.encode_features(src, self.layers)
            feats_out = self.generator.encode_features(seen, self.layers)
            loss_nce = patchnce_loss(feats_src, feats_out, self._project, cfg.patchnce, project_keys=self.projector)
            loss_g = w.adv * loss_adv + w.dc * loss_nce
            logs["nce"] = loss_nce.item()
        else:
            with torch.no_grad():
                feats_src = self.generator.encode_features(d_s, self.layers)
            feats_out = self.generator.encode_features(seen[:b], self.layers)
            loss_dc = dcl_loss(feats_src, feats_out, self._project, cfg.contrastive, project_keys=self.projector)
            if cfg.hole_losses == "output":
                loss_idt = F.l1_loss(out[b:], d_r)  # L_idt on REAL depth
            else:  # only where the real frame has a reading: a hole there says nothing about depth
                has_reading = (d_r > hole_value + 1e-6).to(d_r.dtype)
                loss_idt = ((depth[b:] - d_r).abs() * has_reading).sum() / has_reading.sum().clamp_min(1.0)
            loss_g = w.adv * loss_adv + w.dc * loss_dc + w.idt * loss_idt
            logs["dc"] = loss_dc.item()
            logs["idt"] = loss_idt.item()
        if w.metric > 0:  # the same anchor for DCL and CUT, so that it does not decide their comparison
            loss_metric = metric_anchor_loss(seen[:b], d_s, hole_value, w.metric_pool)
            loss_g = loss_g + w.metric * loss_metric
            logs["metric"] = loss_metric.item()
        if w.hole_rate > 0 and hole_logit is not None:
            self.hole_prior.observe(d_r, hole_value, rays_r)
            loss_rate = self.hole_prior.loss(hole_logit[:b], rays_s)
            loss_g = loss_g + w.hole_rate * loss_rate
            logs["hole_rate"] = loss_rate.item()
        self.opt_g.zero_grad(set_to_none=True)
        if self.opt_p is not None:
            self.opt_p.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if self.opt_p is not None:
            self.opt_p.step()
        hole = (fake <= hole_value + 1e-6).float().mean()
        logs.update(
            {"loss": loss_g.item(), "g_adv": loss_adv.item(), "d": loss_d.item(), "fake_hole_fraction": hole.item()}
        )
        return logs

    def image_grids(self, batch: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        d_s, d_r, rgb_s, _ = self._inputs(batch)
        rays_s, _ = self._rays(batch, d_s, None)
        was = self.generator.training
        self.generator.eval()
        with torch.no_grad():
            fake = self.generator(d_s, rgb_s, rays=rays_s)
        self.generator.train(was)
        return {"source": _to_unit(d_s), "synthesized": _to_unit(fake), "real": _to_unit(d_r)}


# --------------------------------------------------------------------------------------------------------------------
# CycleGAN
# --------------------------------------------------------------------------------------------------------------------


class CycleGANTask:
    """CycleGAN between clean (A) and real (B) depth; ``generator`` (A -> B) is the synthesizer that is exported."""

    primary = "generator"

    def __init__(self, cfg: DCLTrainConfig, device: str | torch.device = "cpu") -> None:
        if cfg.method != "cyclegan":
            raise ConfigError(f"CycleGANTask trains cyclegan, not {cfg.method!r}")
        if cfg.generator.ray_channels:
            raise ConfigError("cyclegan does not feed viewing rays: set generator.ray_channels to 0")
        self.cfg = cfg
        self.device = torch.device(device)
        self.gen_spec = NetworkSpec("resnet_generator", cfg.generator)
        self.disc_spec = NetworkSpec("patchgan", cfg.discriminator)
        self.g_ab, self.g_ba = (self.gen_spec.build().to(self.device) for _ in range(2))
        self.d_a, self.d_b = (self.disc_spec.build().to(self.device) for _ in range(2))
        self.gan = GANLoss(cfg.gan_mode)
        self.opt_g = _adam([*self.g_ab.parameters(), *self.g_ba.parameters()], cfg.optim)
        self.opt_d = _adam([*self.d_a.parameters(), *self.d_b.parameters()], cfg.optim)
        self.run: dict[str, nn.Module] = {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def networks(self) -> dict[str, tuple[NetworkSpec, nn.Module]]:
        return {
            "generator": (self.gen_spec, self.g_ab),
            "generator_inverse": (self.gen_spec, self.g_ba),
            "discriminator": (self.disc_spec, self.d_b),
            "discriminator_inverse": (self.disc_spec, self.d_a),
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generators": self.opt_g, "discriminators": self.opt_d}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        self.run = {name: wrap(module) for name, module in self.run.items()}

    def train_step(self, batch: Mapping[str, Mapping[str, Any]], step: int) -> dict[str, float]:
        rng, w = self.cfg.data.depth_range, self.cfg.weights
        a = normalise_depth(_require(batch["source"], "depth", "source").to(self.device), rng)
        b = normalise_depth(_require(batch["real"], "depth", "real").to(self.device), rng)
        n = a.shape[0]
        set_requires_grad(self.d_a, False)
        set_requires_grad(self.d_b, False)
        out_ab = self.run["g_ab"](torch.cat([a, b]))  # fake_b and identity G_ab(b)
        out_ba = self.run["g_ba"](torch.cat([b, a]))  # fake_a and identity G_ba(a)
        fake_b, idt_b = out_ab[:n], out_ab[n:]
        fake_a, idt_a = out_ba[: b.shape[0]], out_ba[b.shape[0] :]
        rec_a = self.g_ba(fake_b)
        rec_b = self.g_ab(fake_a)
        loss_adv = self.gan(self.d_b(fake_b), True) + self.gan(self.d_a(fake_a), True)
        loss_cycle = F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b)
        loss_idt = F.l1_loss(idt_b, b) + F.l1_loss(idt_a, a)
        loss_g = w.adv * loss_adv + w.cycle * loss_cycle + w.idt * loss_idt
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()

        set_requires_grad(self.d_a, True)
        set_requires_grad(self.d_b, True)
        pred_b = self.run["d_b"](torch.cat([b, fake_b.detach()]))
        pred_a = self.run["d_a"](torch.cat([a, fake_a.detach()]))
        loss_d = discriminator_loss(self.gan, pred_b[: b.shape[0]], pred_b[b.shape[0] :]) + discriminator_loss(
            self.gan, pred_a[:n], pred_a[n:]
        )
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        return {
            "loss": loss_g.item(),
            "g_adv": loss_adv.item(),
            "cycle": loss_cycle.item(),
            "idt": loss_idt.item(),
            "d": loss_d.item(),
        }

    def image_grids(self, batch: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        rng = self.cfg.data.depth_range
        a = normalise_depth(batch["source"]["depth"].to(self.device), rng)
        b = normalise_depth(batch["real"]["depth"].to(self.device), rng)
        was = self.g_ab.training
        self.g_ab.eval()
        with torch.no_grad():
            fake = self.g_ab(a)
        self.g_ab.train(was)
        return {"source": _to_unit(a), "synthesized": _to_unit(fake), "real": _to_unit(b)}


METHODS: dict[str, Callable[[DCLTrainConfig, str | torch.device], Any]] = {
    "dcl": SynthesisTask,
    "dcl_rgb": SynthesisTask,
    "cut": SynthesisTask,
    "cyclegan": CycleGANTask,
}


def make_task(cfg: DCLTrainConfig, device: str | torch.device = "cpu") -> SynthesisTask | CycleGANTask:
    if cfg.method not in METHODS:
        raise RegistryError(f"unknown method {cfg.method!r}; trained methods: {sorted(METHODS)}")
    return METHODS[cfg.method](cfg, device)


# --------------------------------------------------------------------------------------------------------------------
# Synthesizers: the same interface for trained and non-trained methods
# --------------------------------------------------------------------------------------------------------------------


class Synthesizer(Protocol):
    """Clean metric depth -> realistic metric depth. Tensors (B, 1, H, W) metres, 0 = no reading; rgb optional."""

    name: str

    def __call__(
        self, depth_m: torch.Tensor, rgb: torch.Tensor | None = None, *, intrinsics: torch.Tensor | None = None
    ) -> torch.Tensor: ...


@dataclass
class CleanSynthesizer:
    """The ``clean`` baseline: the input unchanged (invalid pixels stay 0)."""

    name: str = "clean"

    def __call__(
        self, depth_m: torch.Tensor, rgb: torch.Tensor | None = None, *, intrinsics: torch.Tensor | None = None
    ) -> torch.Tensor:
        return depth_m.clone()


@dataclass
class EmpiricalSynthesizer:
    """The ``empirical`` ("Simulation") baseline: ``dcl_arc_ros.sim.sensors.SENSORS["empirical"]`` per image.

    The sensor model needs intrinsics: pass ``intrinsics`` (B, 4) = (fx, fy, cx, cy) as the datasets provide them;
    without them a 60-degree horizontal field of view centred on the image is assumed. Imported on first use only.
    """

    seed: int = 0
    name: str = "empirical"

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._model: Any = None

    def _sensor(self) -> Any:
        if self._model is None:
            from dcl_arc_ros.sim.sensors import SENSORS  # lazy: the sim layer is optional for training

            if "empirical" not in SENSORS:
                raise RegistryError(f"sensor registry has no 'empirical' model; it has {sorted(SENSORS)}")
            self._model = SENSORS["empirical"]
        return self._model

    def __call__(
        self, depth_m: torch.Tensor, rgb: torch.Tensor | None = None, *, intrinsics: torch.Tensor | None = None
    ) -> torch.Tensor:
        from dcl_arc_ros.core.camera import Intrinsics
        from dcl_arc_ros.sim.sensors import SceneContext

        model = self._sensor()
        height, width = int(depth_m.shape[-2]), int(depth_m.shape[-1])
        out = []
        for b, img in enumerate(depth_m.detach().cpu().numpy()[:, 0]):
            if intrinsics is not None:
                fx, fy, cx, cy = (float(v) for v in intrinsics[b])
            else:
                fx = fy = 0.5 * width / float(np.tan(np.radians(30.0)))
                cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
            k = Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
            clean = np.where(img > 0, img, np.nan).astype(np.float32)
            noisy = np.asarray(model.apply(clean, k, self._rng, SceneContext()), dtype=np.float32)
            out.append(np.nan_to_num(noisy, nan=0.0))
        return torch.from_numpy(np.stack(out)[:, None]).to(depth_m.device)


@dataclass
class GeneratorSynthesizer:
    """A trained generator (DCL, DCL w/ rgb, CUT, CycleGAN) in metres: normalise, run, denormalise, holes -> 0 m."""

    generator: nn.Module
    depth_range: DepthRange
    name: str = "generator"

    def __post_init__(self) -> None:
        self.generator = unwrap(self.generator).eval()
        cfg = getattr(self.generator, "cfg", None)
        self._hole_value = float(getattr(cfg, "hole_value", -1.0))
        self._uses_rgb = bool(getattr(cfg, "rgb_channels", 0))
        self._uses_rays = bool(getattr(cfg, "ray_channels", 0))

    @classmethod
    def from_checkpoint(cls, path: Path | str, name: str | None = None) -> GeneratorSynthesizer:
        ckpt = load_checkpoint(path)
        data = ckpt.run_config.get("data", {})
        rng = from_dict(DepthRange, data.get("depth_range", {}), source=str(path))
        method = str(ckpt.run_config.get("method", "generator"))
        return cls(ckpt.build("generator"), rng, name=name or method)

    @torch.no_grad()
    def __call__(
        self, depth_m: torch.Tensor, rgb: torch.Tensor | None = None, *, intrinsics: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = normalise_depth(depth_m, self.depth_range)
        if self._uses_rgb and rgb is None:
            raise ValueError(f"synthesizer {self.name!r} uses RGB; pass rgb (B, 3, H, W) in [0, 1]")
        rays = None
        if self._uses_rays:
            if intrinsics is None:
                raise ValueError(f"synthesizer {self.name!r} sees viewing rays; pass intrinsics (B, 4) fx, fy, cx, cy")
            rays = ray_map(intrinsics, int(x.shape[-2]), int(x.shape[-1]))
        y = self.generator(x, rgb if self._uses_rgb else None, rays=rays)
        out = denormalise_depth(y, self.depth_range)
        return torch.where(y <= self._hole_value + 1e-6, torch.zeros_like(out), out)


def make_synthesizer(method: str, *, checkpoint: Path | str | None = None, seed: int = 0) -> Synthesizer:
    """The synthesizer for a method name; trained methods need their ``checkpoint``."""
    if method not in SYNTHESIZERS:
        raise RegistryError(f"unknown synthesis method {method!r}; expected one of {list(SYNTHESIZERS)}")
    return SYNTHESIZERS[method](checkpoint, seed)


def _trained(method: str) -> Callable[[Path | str | None, int], Synthesizer]:
    def factory(checkpoint: Path | str | None, seed: int) -> Synthesizer:
        if checkpoint is None:
            raise ConfigError(f"synthesis method {method!r} is trained: give its checkpoint")
        return GeneratorSynthesizer.from_checkpoint(checkpoint, name=method)

    return factory


SYNTHESIZERS: dict[str, Callable[[Path | str | None, int], Synthesizer]] = {
    "clean": lambda checkpoint, seed: CleanSynthesizer(),
    "empirical": lambda checkpoint, seed: EmpiricalSynthesizer(seed=seed),
    **{m: _trained(m) for m in TRAINED_METHODS},
}


# --------------------------------------------------------------------------------------------------------------------
# A toy in-memory depth domain pair (smoke tests, tiny configs, CLI checks without generated data)
# --------------------------------------------------------------------------------------------------------------------


class ToyDepthDataset(Dataset):
    """Tilted planes with boxes, generated in memory (vectorised torch), deterministic per (seed, index).

    ``real_like=False`` gives clean depth; ``True`` adds depth-dependent noise, holes along depth edges and random
    dropout, a stand-in "real" domain. Samples carry ``depth``, ``valid``, ``rgb``, ``depth_clean`` and ``intrinsics``.
    """

    def __init__(
        self, n: int, *, height: int = 32, width: int = 32, real_like: bool = False, seed: int = 0, max_m: float = 3.0
    ) -> None:
        if n < 1 or height < 4 or width < 4:
            raise DatasetError(f"ToyDepthDataset needs n >= 1 and a size of at least 4x4, got n={n} {height}x{width}")
        self.n, self.height, self.width, self.real_like, self.seed, self.max_m = (
            n,
            height,
            width,
            real_like,
            seed,
            max_m,
        )

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        h, w = self.height, self.width
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        base = 1.0 + 1.2 * torch.rand((), generator=g)
        depth = base + 0.3 * (torch.rand((), generator=g) - 0.5) * xx + 0.3 * (torch.rand((), generator=g) - 0.5) * yy
        label = torch.zeros(h, w)
        for k in range(1 + int(torch.randint(0, 3, (), generator=g))):
            cy, cx = (torch.rand(2, generator=g) * 1.6 - 0.8).tolist()
            sy, sx = (0.15 + 0.35 * torch.rand(2, generator=g)).tolist()
            box = ((yy - cy).abs() < sy) & ((xx - cx).abs() < sx)
            height_m = 0.1 + 0.4 * float(torch.rand((), generator=g))
            depth = torch.where(box, depth - height_m, depth)
            label = torch.where(box, torch.full_like(label, k + 1.0), label)
        clean = depth.clamp(0.2, self.max_m)
        colours = torch.rand(4, 3, generator=g)
        rgb = colours[label.long()].permute(2, 0, 1) * (0.6 + 0.4 * (1.0 - (clean - 0.2) / self.max_m))
        noisy = clean.clone()
        if self.real_like:
            noisy = noisy + torch.randn(h, w, generator=g) * (0.002 + 0.004 * noisy**2)
            gy = F.pad((clean[1:] - clean[:-1]).abs(), (0, 0, 0, 1))
            gx = F.pad((clean[:, 1:] - clean[:, :-1]).abs(), (0, 1, 0, 0))
            edge = ((gx + gy) > 0.05).float()[None, None]
            edge = F.max_pool2d(edge, 3, stride=1, padding=1)[0, 0] > 0
            holes = (edge & (torch.rand(h, w, generator=g) < 0.7)) | (torch.rand(h, w, generator=g) < 0.03)
            noisy = torch.where(holes, torch.zeros_like(noisy), noisy)
        valid = (noisy > 0).float()
        return {
            "depth": noisy[None].float(),
            "valid": valid[None],
            "rgb": rgb.float().clamp(0, 1),
            "depth_clean": clean[None].float(),
            # a 90-degree pinhole over the sample, so that ray-aware generators train on toy data too
            "intrinsics": torch.tensor([w / 2.0, w / 2.0, (w - 1) / 2.0, (h - 1) / 2.0]),
        }


def _open_one(
    kind: str,
    paths: tuple[str, ...],
    depth_from: str,
    keys: tuple[str, ...],
    cfg: DataConfig,
    *,
    real_like: bool,
    seed: int,
) -> Dataset:
    if kind == "toy":
        height = cfg.crop_height or 32
        width = cfg.crop_width or 32
        return ToyDepthDataset(
            cfg.toy_samples, height=height, width=width, real_like=real_like, seed=seed, max_m=cfg.depth_range.max_m
        )
    from dcl_arc_ros.data import torch_datasets  # lazy: bag/folder readers are only needed for real runs

    transforms = []
    if cfg.crop_height and cfg.crop_width:
        x_min = cfg.real_crop_x_min if real_like else 0
        transforms.append(torch_datasets.RandomCrop(width=cfg.crop_width, height=cfg.crop_height, x_min=x_min))
    return torch_datasets.build_dataset(
        kind, *paths, transforms=transforms, depth_from=depth_from, keys=keys, in_memory=cfg.in_memory
    )


def open_unpaired_datasets(
    cfg: DataConfig, *, use_rgb: bool, seed: int = 0, with_rays: bool = False
) -> dict[str, Dataset]:
    """``{"source": clean set, "real": real set}`` as configured (see :class:`DataConfig`)."""
    keys = ("depth", "valid", "rgb") if use_rgb else ("depth", "valid")
    if with_rays:
        keys = (*keys, "intrinsics")
    return {
        "source": _open_one(
            cfg.source_kind, cfg.source_paths, cfg.source_depth_from, keys, cfg, real_like=False, seed=seed * 2 + 1
        ),
        "real": _open_one(
            cfg.real_kind, cfg.real_paths, cfg.real_depth_from, keys, cfg, real_like=True, seed=seed * 2 + 2
        ),
    }
