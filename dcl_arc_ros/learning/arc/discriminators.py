"""ARC's discriminators (the shared PatchGAN of dcl_arc_ros.learning.nets, CycleGAN-style) and its GAN objectives.

* "vanilla": the log-likelihood loss of the paper's Eq. 8 (binary cross-entropy on logits);
* "lsgan": the least-squares loss CycleGAN trains T with.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dcl_arc_ros.learning.nets.patchgan import PatchGAN, PatchGANConfig


def patch_discriminator(in_channels: int = 3, *, ndf: int = 32, n_layers: int = 3) -> PatchGAN:
    """CycleGAN's discriminator: the shared PatchGAN with InstanceNorm and plain stride-2 convolutions."""
    config = PatchGANConfig(in_channels=in_channels, ndf=ndf, n_layers=n_layers, norm="instance", anti_alias=False)
    return PatchGAN(config)


def gan_loss(logits: torch.Tensor, target_is_real: bool, mode: str) -> torch.Tensor:
    """The GAN objective of ``logits`` against an all-real or all-fake target."""
    target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"gan mode = {mode!r}, expected 'vanilla' or 'lsgan'")


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, mode: str) -> torch.Tensor:
    """0.5 * (loss on real + loss on detached fake), as in CycleGAN."""
    return 0.5 * (gan_loss(disc(real), True, mode) + gan_loss(disc(fake.detach()), False, mode))
