"""A, the attention module: which pixels of a real image to keep (M = 1) and which to remove (M = 0).

The network outputs full-resolution mask logits ``log a`` (one map, the log-odds of keeping a pixel). Training uses
the Gumbel-sigmoid relaxation of the paper's Eq. 1,

    m = sigmoid((log a + g) / tau),    g = -log(-log u),  u ~ U(0, 1),

with tau annealed linearly (0.9 -> 0.05 by default), and the sparsity loss of Eq. 2, KL(rho || mean(M)), where rho is
the portion of pixels KEPT. Note that the paper's single Gumbel sample has mean 0.577, so it biases soft masks towards
"keep"; ``noise="logistic"`` uses the difference of two Gumbel samples (the unbiased binary-concrete relaxation).

At inference there is no noise and the mask is thresholded at 0.5: sigmoid(log a / tau) > 0.5 exactly when
log a > 0, whatever tau, so the hard mask is ``(logits > 0)`` and is exactly binary.

Initialisation: the logits start near ``init_keep_logit`` (2.0: about 90% kept) rather than at a saturated value such
as logit(0.99) = 4.6, where sigmoid((log a + g) / tau) has almost no gradient once tau has been annealed.

rho schedule in pretrain_A: the official code uses rho = 0.99 while A is first trained and 0.85 in the joint step.
Our Algorithm 1 freezes A after its pre-training, so pre-training runs both: ``rho_initial`` for the first
``rho_initial_fraction`` of the steps (A learns which pixels hurt D while keeping nearly everything), then ``rho``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcl_arc_ros.learning.arc.blocks import ResnetGenerator

_EPS = 1e-6


class AttentionModule(nn.Module):
    """RGB in [-1, 1] (B, 3, H, W) -> mask logits log a (B, 1, H, W) at full resolution."""

    def __init__(self, *, ngf: int = 16, n_down: int = 2, n_blocks: int = 2, init_keep_logit: float = 2.0) -> None:
        super().__init__()
        self.net = ResnetGenerator(3, 1, ngf=ngf, n_down=n_down, n_blocks=n_blocks, out_activation="none")
        final_conv = self.net.head[-1]
        assert isinstance(final_conv, nn.Conv2d) and final_conv.bias is not None
        nn.init.normal_(final_conv.weight, std=1e-3)  # start from a near-uniform mask ...
        nn.init.constant_(final_conv.bias, init_keep_logit)  # ... that keeps about sigmoid(init_keep_logit)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)

    def soft_mask(self, x: torch.Tensor, tau: float, *, noise: str = "gumbel") -> torch.Tensor:
        """A differentiable, nearly binary training mask with Gumbel noise."""
        return gumbel_sigmoid(self.logits(x), tau, noise=noise)

    def hard_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The inference mask: no noise, threshold 0.5; values exactly 0 or 1 (float, same dtype as ``x``)."""
        return hard_mask_from_logits(self.logits(x))


def sample_noise(shape: torch.Size, *, like: torch.Tensor, noise: str = "gumbel") -> torch.Tensor:
    """Gumbel noise g = -log(-log u) ("gumbel") or the difference of two such samples ("logistic")."""

    def gumbel() -> torch.Tensor:
        u = torch.rand(shape, device=like.device, dtype=like.dtype).clamp_(_EPS, 1.0 - _EPS)
        return -torch.log(-torch.log(u))

    if noise == "gumbel":
        return gumbel()
    if noise == "logistic":
        return gumbel() - gumbel()
    raise ValueError(f"noise = {noise!r}, expected 'gumbel' or 'logistic'")


def gumbel_sigmoid(logits: torch.Tensor, tau: float, *, noise: str = "gumbel") -> torch.Tensor:
    """m = sigmoid((log a + g) / tau) (paper Eq. 1)."""
    if tau <= 0:
        raise ValueError(f"tau = {tau} must be > 0")
    return torch.sigmoid((logits + sample_noise(logits.shape, like=logits, noise=noise)) / tau)


def hard_mask_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """1 where the pixel is kept (logit > 0, i.e. sigmoid > 0.5), else 0."""
    return (logits > 0).to(logits.dtype)


def kl_sparsity(mask: torch.Tensor, rho: float) -> torch.Tensor:
    """KL(rho || xi) of Eq. 2, xi = mean of each image's mask; averaged over the batch.

    rho is the target portion of pixels kept. xi is clamped away from 0 and 1 so the loss stays finite.
    """
    if not 0.0 < rho < 1.0:
        raise ValueError(f"rho = {rho} must be in (0, 1)")
    xi = mask.flatten(1).mean(dim=1).clamp(_EPS, 1.0 - _EPS)
    kl = rho * torch.log(rho / xi) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - xi))
    return kl.mean()


@dataclass(frozen=True)
class TauSchedule:
    """Linear annealing of the Gumbel temperature from ``start`` at step 0 to ``end`` at step ``steps - 1``."""

    start: float = 0.9
    end: float = 0.05
    steps: int = 1

    def __call__(self, step: int) -> float:
        if self.steps <= 1:
            return self.end
        t = min(max(step, 0), self.steps - 1) / (self.steps - 1)
        return self.start + (self.end - self.start) * t


@dataclass(frozen=True)
class RhoSchedule:
    """rho_initial for the first ``initial_fraction`` of ``steps``, then rho (see the module docstring)."""

    rho: float = 0.85
    rho_initial: float = 0.99
    initial_fraction: float = 0.5
    steps: int = 1

    def __call__(self, step: int) -> float:
        return self.rho_initial if step < round(self.initial_fraction * self.steps) else self.rho
