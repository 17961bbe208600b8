"""The two backbones ARC's modules are built from (paper, Section 4.1).

* ``ResnetGenerator``: the CycleGAN encoder / residual blocks / decoder used by T, I and (with one output map) A.
* ``SkipEncoderDecoder``: the depth predictor's encoder-decoder with skip connections.

Both use only ops that export to ONNX and run in TensorRT (reflection padding, InstanceNorm, Conv, ConvTranspose,
bilinear upsampling); ``tests/learning/test_arc_export.py`` exports them.
"""

from __future__ import annotations

import torch
from torch import nn

from dcl_arc_ros.learning.arc.errors import ARCShapeError


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, ``n_down`` stride-2 convs, ``n_blocks`` residual blocks, mirrored transposed convs, c7s1-out.

    ``out_activation`` is "tanh" for images in [-1, 1] or "none" for logits (the attention module).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        ngf: int = 32,
        n_down: int = 2,
        n_blocks: int = 6,
        out_activation: str = "tanh",
    ) -> None:
        super().__init__()
        if out_activation not in ("tanh", "none"):
            raise ValueError(f"out_activation = {out_activation!r}, expected 'tanh' or 'none'")
        self.factor = 2**n_down
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1), _norm(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(ch // 2),
                nn.ReLU(True),
            ]
            ch //= 2
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ch, out_channels, 7))
        self.out_activation = out_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.factor, type(self).__name__)
        y = self.head(self.body(x))
        return torch.tanh(y) if self.out_activation == "tanh" else y


class _ConvBlock(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
            _norm(out_ch),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            _norm(out_ch),
            nn.LeakyReLU(0.2, inplace=True),
        )


class SkipEncoderDecoder(nn.Module):
    """A U-Net-style encoder-decoder: ``levels`` stride-2 stages, bilinear upsampling, skip concatenation.

    Channel widths double per level and are capped at ``8 * ngf``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, ngf: int = 32, levels: int = 4) -> None:
        super().__init__()
        widths = [min(ngf * 2**i, ngf * 8) for i in range(levels + 1)]
        self.factor = 2**levels
        self.stem = _ConvBlock(in_channels, widths[0])
        self.down = nn.ModuleList(_ConvBlock(widths[i], widths[i + 1], stride=2) for i in range(levels))
        self.up = nn.ModuleList(_ConvBlock(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_divisible(x, self.factor, type(self).__name__)
        skips = [self.stem(x)]
        for stage in self.down:
            skips.append(stage(skips[-1]))
        y = skips.pop()
        for stage in self.up:
            skip = skips.pop()
            y = nn.functional.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = stage(torch.cat([y, skip], dim=1))
        return self.head(y)


def check_divisible(x: torch.Tensor, factor: int, who: str) -> None:
    """Raise ARCShapeError unless the spatial size of ``x`` is divisible by ``factor``."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if height % factor or width % factor:
        raise ARCShapeError(f"{who}: input {height}x{width} is not divisible by {factor}; resize it first")
