"""PatchGAN discriminator (pix2pix / CycleGAN / CUT): a fully convolutional net giving one real/fake score per patch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.nets.blocks import BlurDownsample, NormKind, make_norm

__all__ = ["PRESETS", "PatchGAN", "PatchGANConfig"]


@dataclass(frozen=True)
class PatchGANConfig:
    """``n_layers`` strided stages; the receptive field is 70x70 for 3 layers at full resolution."""

    in_channels: int = 1
    ndf: int = 32
    n_layers: int = 3
    norm: NormKind = "batch"
    anti_alias: bool = True

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.ndf < 1 or self.n_layers < 1:
            raise ConfigError(
                f"PatchGANConfig needs in_channels, ndf, n_layers >= 1, got {self.in_channels}, {self.ndf}, "
                f"{self.n_layers}"
            )


PRESETS: dict[str, PatchGANConfig] = {
    "default": PatchGANConfig(),  # DCL official: ndf 32, BatchNorm, anti-aliased
    "tiny": PatchGANConfig(ndf=8, n_layers=2, norm="instance"),
}


def _down(cin: int, cout: int, cfg: PatchGANConfig, *, norm: bool) -> list[nn.Module]:
    layers: list[nn.Module]
    if cfg.anti_alias:
        layers = [nn.Conv2d(cin, cout, 4, stride=1, padding=1)]
        layers += [make_norm(cfg.norm, cout)] if norm else []
        layers += [nn.LeakyReLU(0.2, inplace=True), BlurDownsample(cout)]
    else:
        layers = [nn.Conv2d(cin, cout, 4, stride=2, padding=1)]
        layers += [make_norm(cfg.norm, cout)] if norm else []
        layers += [nn.LeakyReLU(0.2, inplace=True)]
    return layers


class PatchGAN(nn.Module):
    """Maps (B, in_channels, H, W) to (B, 1, h, w) raw scores (no sigmoid: the GAN loss decides)."""

    def __init__(self, cfg: PatchGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = _down(cfg.in_channels, cfg.ndf, cfg, norm=False)
        ch = cfg.ndf
        for n in range(1, cfg.n_layers):
            out = cfg.ndf * min(2**n, 8)
            layers += _down(ch, out, cfg, norm=True)
            ch = out
        out = cfg.ndf * min(2**cfg.n_layers, 8)
        layers += [nn.Conv2d(ch, out, 4, padding=1), make_norm(cfg.norm, out), nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(out, 1, 4, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_patchgan(cfg: PatchGANConfig) -> PatchGAN:
    return PatchGAN(cfg)
