"""D, the depth predictor: an encoder-decoder with skip connections, RGB in [-1, 1] -> depth in [-1, 1].

Depth units follow the official implementation: metres clipped to [min_m, max_m] (0 to 10 m by default) and mapped
linearly to [-1, 1]; ``DepthRange`` converts both ways and ``masked_l1`` is the loss of Eq. 13-15 over valid pixels.
The pure deployment code (dcl_arc_ros.core.arc_pipeline) applies the same mapping from the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dcl_arc_ros.learning.arc.blocks import SkipEncoderDecoder


class DepthPredictor(nn.Module):
    def __init__(self, *, ngf: int = 32, levels: int = 4) -> None:
        super().__init__()
        self.net = SkipEncoderDecoder(3, 1, ngf=ngf, levels=levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 1, H, W) normalised depth in [-1, 1]."""
        return torch.tanh(self.net(x))


@dataclass(frozen=True)
class DepthRange:
    """Metric depth <-> the network's [-1, 1] units."""

    min_m: float = 0.0
    max_m: float = 10.0

    def to_unit(self, depth_m: torch.Tensor) -> torch.Tensor:
        clipped = depth_m.nan_to_num(0.0).clamp(self.min_m, self.max_m)
        return 2.0 * (clipped - self.min_m) / (self.max_m - self.min_m) - 1.0

    def to_metres(self, unit: torch.Tensor) -> torch.Tensor:
        return (unit.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.max_m - self.min_m) + self.min_m

    def valid(self, depth_m: torch.Tensor) -> torch.Tensor:
        """1 where the ground truth is a finite reading above zero (0 = no reading), as float."""
        return (torch.isfinite(depth_m) & (depth_m > 0)).to(torch.float32)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |prediction - target| over valid pixels (0 when a batch has none)."""
    weight = valid.to(prediction.dtype)
    return ((prediction - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)
