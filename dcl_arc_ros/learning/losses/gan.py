"""GAN objectives: LSGAN (least squares, the DCL/CUT default) and vanilla (binary cross-entropy on logits)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dcl_arc_ros.learning.errors import ConfigError

GANMode = Literal["lsgan", "vanilla"]

__all__ = ["GANLoss", "GANMode", "discriminator_loss", "set_requires_grad"]


class GANLoss:
    """``loss(pred, target_is_real)`` averaged over every patch score of a PatchGAN."""

    def __init__(self, mode: GANMode = "lsgan") -> None:
        if mode not in ("lsgan", "vanilla"):
            raise ConfigError(f"unknown GAN mode {mode!r}; expected 'lsgan' or 'vanilla'")
        self.mode = mode

    def __call__(self, pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
        if self.mode == "lsgan":
            return F.mse_loss(pred, target)
        return F.binary_cross_entropy_with_logits(pred, target)


def discriminator_loss(gan: GANLoss, pred_real: torch.Tensor, pred_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (real -> 1, fake -> 0), the pix2pix/CUT convention."""
    return 0.5 * (gan(pred_real, True) + gan(pred_fake, False))


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)
