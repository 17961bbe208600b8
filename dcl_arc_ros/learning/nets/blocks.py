"""Small building blocks shared by the networks: norms, anti-aliased resampling, residual blocks, depth scaling."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dcl_arc_ros.learning.config import DepthRange
from dcl_arc_ros.learning.errors import ConfigError

NormKind = Literal["batch", "instance", "none"]
PadKind = Literal["reflect", "zeros"]

__all__ = [
    "BlurDownsample",
    "BlurUpsample",
    "NormKind",
    "ResnetBlock",
    "denormalise_depth",
    "make_norm",
    "normalise_depth",
]


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """A 2-D normalisation layer by name. ``instance`` has no affine parameters and no running stats (as in CUT)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm kind {kind!r}; expected 'batch', 'instance' or 'none'")


def _binomial_kernel(channels: int) -> torch.Tensor:
    taps = torch.tensor([1.0, 2.0, 1.0])
    k2 = taps[:, None] * taps[None, :]
    k2 = k2 / k2.sum()
    return k2.expand(channels, 1, 3, 3).contiguous()


class BlurDownsample(nn.Module):
    """Anti-aliased 2x downsampling: a fixed 3x3 binomial low-pass filter applied depthwise with stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.kernel: torch.Tensor
        self.register_buffer("kernel", _binomial_kernel(channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.kernel, stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """Anti-aliased 2x upsampling: nearest-neighbour doubling followed by the same binomial low-pass filter."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.kernel: torch.Tensor
        self.register_buffer("kernel", _binomial_kernel(channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.kernel, groups=self.channels)


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with reflection padding and a residual connection."""

    def __init__(self, channels: int, norm: NormKind, *, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "batch"),
            make_norm(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0.0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=norm != "batch"),
            make_norm(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def normalise_depth(depth_m: torch.Tensor, depth_range: DepthRange) -> torch.Tensor:
    """Metres -> [-1, 1] over the fixed configured range (clipped); 0 m (invalid) maps to -1 when ``min_m == 0``."""
    span = depth_range.max_m - depth_range.min_m
    x = (depth_m - depth_range.min_m) * (2.0 / span) - 1.0
    return x.clamp(-1.0, 1.0)


def denormalise_depth(x: torch.Tensor, depth_range: DepthRange) -> torch.Tensor:
    """[-1, 1] -> metres over the fixed configured range (the inverse of :func:`normalise_depth` inside the range)."""
    span = depth_range.max_m - depth_range.min_m
    return (x.clamp(-1.0, 1.0) + 1.0) * (span / 2.0) + depth_range.min_m
