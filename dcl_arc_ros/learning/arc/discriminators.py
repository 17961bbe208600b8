"""PatchGAN discriminators and the two GAN objectives ARC uses.

* "vanilla": the log-likelihood loss of the paper's Eq. 8 (binary cross-entropy on logits);
* "lsgan": the least-squares loss CycleGAN trains T with.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class PatchDiscriminator(nn.Module):
    """The CycleGAN / pix2pix PatchGAN: 4x4 convs, ``n_layers`` stride-2 stages, one logit per patch."""

    def __init__(self, in_channels: int = 3, *, ndf: int = 32, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(ch, out, 4, stride=stride, padding=1),
                nn.InstanceNorm2d(out, affine=False),
                nn.LeakyReLU(0.2, True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


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
