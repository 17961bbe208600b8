"""T, the style translator: a CycleGAN between the real and the synthetic domain (paper Section 3.3, Eq. 10-12).

ARC's T is the real-to-synthetic generator G_r2s; it is trained together with its synthetic-to-real twin G_s2r and
one PatchGAN per domain. ``generator_loss`` and ``discriminator_loss`` are the two halves of a CycleGAN step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcl_arc_ros.learning.arc.blocks import ResnetGenerator
from dcl_arc_ros.learning.arc.discriminators import discriminator_loss, gan_loss, patch_discriminator


@dataclass(frozen=True)
class TranslatorLossWeights:
    cycle: float = 10.0
    identity: float = 5.0  # the paper; the official code uses 0.5
    gan_mode: str = "lsgan"


@dataclass
class TranslatorOutputs:
    fake_syn: torch.Tensor  # G_r2s(x_r)
    fake_real: torch.Tensor  # G_s2r(x_s)


class StyleTranslator(nn.Module):
    """G_r2s (the module T used at inference), G_s2r, and the real / synthetic discriminators."""

    def __init__(
        self, *, ngf: int = 32, ndf: int = 32, n_down: int = 2, n_blocks: int = 6, disc_layers: int = 3
    ) -> None:
        super().__init__()
        self.g_r2s = ResnetGenerator(3, 3, ngf=ngf, n_down=n_down, n_blocks=n_blocks)
        self.g_s2r = ResnetGenerator(3, 3, ngf=ngf, n_down=n_down, n_blocks=n_blocks)
        self.disc_real = patch_discriminator(3, ndf=ndf, n_layers=disc_layers)
        self.disc_syn = patch_discriminator(3, ndf=ndf, n_layers=disc_layers)

    def forward(self, x_real: torch.Tensor) -> torch.Tensor:
        """T(x): real image in [-1, 1] -> its synthetic-looking version."""
        return self.g_r2s(x_real)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.g_r2s.parameters(), *self.g_s2r.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.disc_real.parameters(), *self.disc_syn.parameters()]

    def generator_loss(
        self, x_real: torch.Tensor, x_syn: torch.Tensor, weights: TranslatorLossWeights
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], TranslatorOutputs]:
        """Eq. 12: cycle * l_cycle + identity * l_id + (l_adv_real + l_adv_syn)."""
        fake_syn = self.g_r2s(x_real)
        fake_real = self.g_s2r(x_syn)
        cycle = (self.g_s2r(fake_syn) - x_real).abs().mean() + (self.g_r2s(fake_real) - x_syn).abs().mean()
        parts = {"cycle": cycle}
        total = weights.cycle * cycle
        if weights.identity > 0:
            identity = (self.g_s2r(x_real) - x_real).abs().mean() + (self.g_r2s(x_syn) - x_syn).abs().mean()
            parts["identity"] = identity
            total = total + weights.identity * identity
        adv = gan_loss(self.disc_syn(fake_syn), True, weights.gan_mode) + gan_loss(
            self.disc_real(fake_real), True, weights.gan_mode
        )
        parts["adv"] = adv
        total = total + adv
        return total, parts, TranslatorOutputs(fake_syn=fake_syn, fake_real=fake_real)

    def discriminator_loss(
        self, x_real: torch.Tensor, x_syn: torch.Tensor, outputs: TranslatorOutputs, gan_mode: str
    ) -> torch.Tensor:
        return discriminator_loss(self.disc_syn, x_syn, outputs.fake_syn, gan_mode) + discriminator_loss(
            self.disc_real, x_real, outputs.fake_real, gan_mode
        )
