"""I, the inpainting module: fill the removed pixels, keep the others (paper Section 3.2, Eq. 3-9).

    x~ = (1 - M) * I(M * x) + M * x          (Eq. 3; M = 1 keeps a pixel)

I sees the masked image and the mask itself (4 input channels): in [-1, 1] a removed pixel is 0, which is also a
legitimate grey, so the mask channel tells I which zeros are holes. It is trained self-supervised on randomly removed
rectangles (``random_hole_masks``) with L1 reconstruction + perceptual + Gram style + adversarial losses weighted
1, 1, 1, 0.01 (Eq. 9); the adversarial term compares completed real images against synthetic ones (Eq. 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcl_arc_ros.learning.arc.blocks import ResnetGenerator
from dcl_arc_ros.learning.arc.discriminators import gan_loss
from dcl_arc_ros.learning.arc.perceptual import PerceptualFeatures, perceptual_and_style_losses


class InpaintingModule(nn.Module):
    """(x, M) -> I(M * x): a full image proposal in [-1, 1]; ``complete`` applies Eq. 3."""

    def __init__(self, *, ngf: int = 32, n_down: int = 2, n_blocks: int = 4) -> None:
        super().__init__()
        self.net = ResnetGenerator(4, 3, ngf=ngf, n_down=n_down, n_blocks=n_blocks)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x * mask, mask], dim=1))

    def complete(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return compose(x, mask, self(x, mask))


def compose(x: torch.Tensor, mask: torch.Tensor, filled: torch.Tensor) -> torch.Tensor:
    """Eq. 3: kept pixels (M = 1) come from ``x`` unchanged, removed ones (M = 0) from ``filled``."""
    return (1.0 - mask) * filled + mask * x


def random_hole_masks(
    batch: int,
    height: int,
    width: int,
    *,
    fraction_min: float = 0.05,
    fraction_max: float = 0.3,
    holes: int = 3,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(batch, 1, H, W) masks with ``holes`` random axis-aligned rectangles set to 0 (removed), 1 elsewhere.

    Each rectangle's area is drawn so the holes' total nominal area is between ``fraction_min`` and ``fraction_max``
    of the image (overlaps make the actual removed share somewhat smaller); aspect ratios are in [0.5, 2].
    """
    g = generator
    total = fraction_min + (fraction_max - fraction_min) * torch.rand(batch, 1, generator=g)
    area = total / holes * height * width  # (batch, 1) pixels per hole
    aspect = torch.exp((torch.rand(batch, holes, generator=g) - 0.5) * 2 * 0.6931)  # in [0.5, 2]
    h = (area * aspect).sqrt().clamp(1, height)
    w = (area / aspect).sqrt().clamp(1, width)
    y0 = torch.rand(batch, holes, generator=g) * (height - h)
    x0 = torch.rand(batch, holes, generator=g) * (width - w)
    ys = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width)
    inside = (
        (ys >= y0[..., None, None])
        & (ys < (y0 + h)[..., None, None])
        & (xs >= x0[..., None, None])
        & (xs < (x0 + w)[..., None, None])
    )  # (batch, holes, H, W)
    return (~inside.any(dim=1, keepdim=True)).to(device=device, dtype=torch.float32)


@dataclass(frozen=True)
class InpaintingLossWeights:
    rec: float = 1.0
    perceptual: float = 1.0
    style: float = 1.0
    adv: float = 0.01
    gan_mode: str = "vanilla"


def reconstruction_losses(
    filled: torch.Tensor, target: torch.Tensor, extractor: PerceptualFeatures, weights: InpaintingLossWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 4-6 on I's raw output I(M * x) against the unmasked image x (weighted sum and the parts)."""
    rec = (filled - target).abs().mean()
    feat, style = perceptual_and_style_losses(extractor, filled, target)
    total = weights.rec * rec + weights.perceptual * feat + weights.style * style
    return total, {"rec": rec, "perceptual": feat, "style": style}


def adversarial_loss(disc: nn.Module, completed: torch.Tensor, weights: InpaintingLossWeights) -> torch.Tensor:
    """The generator side of Eq. 8: completed real images should look synthetic to ``disc``."""
    return gan_loss(disc(completed), True, weights.gan_mode)
