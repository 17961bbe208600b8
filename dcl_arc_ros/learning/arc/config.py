"""The ARC training configuration: nested dataclasses, resolved to a plain dict saved in every stage checkpoint.

Defaults follow the paper (Section 3, Section 4.1) and the official implementation where the paper is silent:
Adam lr 5e-5 (1e-4 for discriminators), betas (0.9, 0.999), input 240x320, RGB in [-1, 1], depth clipped to 10 m and
mapped to [-1, 1], Gumbel temperature annealed 0.9 -> 0.05, rho 0.99 while A is first trained and 0.85 afterwards,
cycle weight 10 and identity weight 5, inpainting weights 1 / 1 / 1 / 0.01, five fine-tuning rounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcl_arc_ros.learning.arc.errors import ARCConfigError
from dcl_arc_ros.learning.config import apply_overrides, config_digest, from_dict, load_yaml, merge_dicts, to_dict
from dcl_arc_ros.learning.errors import ConfigError

__all__ = ["ARCConfig", "config_from_mapping", "config_sha256", "load_config", "to_dict"]


@dataclass
class ModelConfig:
    """Network sizes and the tensor conventions shared by every module."""

    height: int = 240  # training / deploy resolution (official: 240x320)
    width: int = 320
    ngf: int = 32  # base width of the CycleGAN-style generators (T and I)
    ndf: int = 32  # base width of the PatchGAN discriminators
    n_downsampling: int = 2  # stride-2 stages in the generators
    translator_blocks: int = 6  # residual blocks in each translator generator
    inpainting_blocks: int = 4
    attention_ngf: int = 16  # A is a lighter generator with one output map (the mask logits)
    attention_blocks: int = 2
    depth_ngf: int = 32  # D: encoder-decoder with skip connections
    depth_levels: int = 4  # D's number of stride-2 encoder stages
    disc_layers: int = 3  # PatchGAN depth (3 -> 70x70 receptive field)
    depth_min_m: float = 0.0  # depth range mapped to [-1, 1] (official: clipped to 10 m)
    depth_max_m: float = 10.0


@dataclass
class AttentionConfig:
    """A: Gumbel-sigmoid mask, KL sparsity, linear temperature annealing."""

    rho: float = 0.85  # portion of pixels KEPT, the target of the KL term (the joint/final value)
    rho_initial: float = 0.99  # rho while A is first trained (official code)
    rho_initial_fraction: float = 0.5  # share of pretrain_A steps that use rho_initial before switching to rho
    tau_start: float = 0.9
    tau_end: float = 0.05
    tau_test: float = 0.05  # documentation only: without noise the 0.5 threshold does not depend on tau
    noise: str = "gumbel"  # "gumbel": g = -log(-log u) as in the paper; "logistic": binary-concrete (g1 - g2)
    kl_weight: float = 1.0
    depth_weight: float = 1.0  # D's depth L1 on the masked, translated real image (D and T fixed)
    adv_weight: float = 0.01  # the synthetic-domain discriminator on the masked, translated real image
    init_keep_logit: float = 2.0  # initial bias of the mask logits: start keeping ~90%, unsaturated (see attention.py)


@dataclass
class InpaintingConfig:
    """I: self-supervised completion of randomly removed regions (Eq. 4-9)."""

    rec_weight: float = 1.0
    perceptual_weight: float = 1.0
    style_weight: float = 1.0
    adv_weight: float = 0.01
    hole_fraction_min: float = 0.05  # random rectangular holes cover this share of the image ...
    hole_fraction_max: float = 0.3  # ... up to this share
    holes_per_image: int = 3
    gan_mode: str = "vanilla"  # Eq. 8 is the log-likelihood GAN loss


@dataclass
class PerceptualConfig:
    """Features for the perceptual and style losses (see perceptual.py for the substitute and why)."""

    weights_path: str = ""  # a torchvision-layout VGG16 state_dict (.pth); empty = the documented substitute
    layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")
    seed: int = 0  # substitute only: the fixed seed of its random VGG16-shaped filters
    width_scale: float = 1.0  # substitute only: channel multiplier (tests use less); pretrained needs 1.0


@dataclass
class TranslatorConfig:
    """T: CycleGAN real <-> synthetic (Eq. 10-12)."""

    cycle_weight: float = 10.0
    identity_weight: float = 5.0  # the paper; the official code uses 0.5
    gan_mode: str = "lsgan"  # CycleGAN's least-squares GAN loss


@dataclass
class OptimConfig:
    lr: float = 5e-5
    lr_disc: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999


@dataclass
class ScheduleConfig:
    """Steps per stage. The paper trains each module for 50 epochs; size these to the data and the machine."""

    batch_size: int = 4
    pretrain_d_steps: int = 20000
    pretrain_t_steps: int = 20000
    pretrain_a_steps: int = 10000
    pretrain_i_steps: int = 20000
    finetune_rounds: int = 5  # Algorithm 1's stopping condition
    eq14_steps: int = 2000  # per round: optimise I, D, T on real + synthetic depth L1
    eq15_steps: int = 1000  # per round: optimise D on real depth L1
    checkpoint_every: int = 500
    log_every: int = 25
    image_every: int = 500  # TensorBoard mask / inpainting grids
    grid_samples: int = 4


@dataclass
class DatasetConfig:
    """One dataset, built by name from the dataset registry of training/train_arc.py."""

    kind: str = "toy"
    root: str = ""
    split: str = "train"
    size: int = 0  # 0 = all; for "toy" the number of generated frames
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    synthetic: DatasetConfig = field(default_factory=lambda: DatasetConfig(kind="toy", size=512))
    real: DatasetConfig = field(default_factory=lambda: DatasetConfig(kind="toy", size=48, options={"domain": "real"}))
    num_workers: int = 0


@dataclass
class ARCConfig:
    seed: int = 0
    device: str = "cpu"
    model: ModelConfig = field(default_factory=ModelConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    inpainting: InpaintingConfig = field(default_factory=InpaintingConfig)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    translator: TranslatorConfig = field(default_factory=TranslatorConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self, source: str = "<config>") -> ARCConfig:
        """Range checks that a type check cannot do; raises ARCConfigError naming the field and ``source``."""
        a, m = self.attention, self.model
        for name, value in (("attention.rho", a.rho), ("attention.rho_initial", a.rho_initial)):
            if not 0.0 < value < 1.0:
                raise ARCConfigError(f"{source}: {name} = {value} must be in (0, 1) (the KL term diverges at 0 and 1)")
        if not 0.0 <= a.rho_initial_fraction <= 1.0:
            raise ARCConfigError(f"{source}: attention.rho_initial_fraction = {a.rho_initial_fraction} not in [0, 1]")
        if a.tau_start <= 0 or a.tau_end <= 0:
            raise ARCConfigError(f"{source}: attention.tau_start/tau_end = {a.tau_start}/{a.tau_end} must be > 0")
        if a.noise not in ("gumbel", "logistic"):
            raise ARCConfigError(f"{source}: attention.noise = {a.noise!r}, expected 'gumbel' or 'logistic'")
        if m.depth_max_m <= m.depth_min_m:
            raise ARCConfigError(
                f"{source}: model.depth_max_m = {m.depth_max_m} must exceed depth_min_m = {m.depth_min_m}"
            )
        for name, factor in (("generators", 2**m.n_downsampling), ("depth predictor", 2**m.depth_levels)):
            if m.height % factor or m.width % factor:
                raise ARCConfigError(
                    f"{source}: model.height x width = {m.height}x{m.width} must be divisible by {factor} "
                    f"for the {name}"
                )
        i = self.inpainting
        if not 0.0 < i.hole_fraction_min <= i.hole_fraction_max < 1.0:
            raise ARCConfigError(
                f"{source}: inpainting hole fractions {i.hole_fraction_min}..{i.hole_fraction_max} must satisfy "
                "0 < min <= max < 1"
            )
        for mode_name, mode in (("inpainting.gan_mode", i.gan_mode), ("translator.gan_mode", self.translator.gan_mode)):
            if mode not in ("vanilla", "lsgan"):
                raise ARCConfigError(f"{source}: {mode_name} = {mode!r}, expected 'vanilla' or 'lsgan'")
        if self.schedule.batch_size < 1:
            raise ARCConfigError(f"{source}: schedule.batch_size = {self.schedule.batch_size} must be >= 1")
        return self


def config_from_mapping(data: Mapping[str, Any], source: str = "<config>", overrides: Iterable[str] = ()) -> ARCConfig:
    """Defaults overlaid with ``data`` (partial mappings are fine) and ``dotted.key=value`` overrides, validated."""
    raw = apply_overrides(merge_dicts(to_dict(ARCConfig()), data), overrides)
    try:
        config = from_dict(ARCConfig, raw, source=source)
    except ConfigError as exc:
        raise ARCConfigError(str(exc)) from exc
    return config.validate(source)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ARCConfig:
    """Read a YAML config (partial: missing keys keep their defaults), then apply ``overrides``."""
    try:
        data = load_yaml(path)
    except ConfigError as exc:
        raise ARCConfigError(str(exc)) from exc
    return config_from_mapping(data, str(path), overrides)


def config_sha256(config: ARCConfig) -> str:
    """A stable hash of the resolved config (the sidecar's training_config_sha256)."""
    return config_digest(config)
