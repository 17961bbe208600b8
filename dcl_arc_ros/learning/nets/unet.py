"""U-Net for the depth cleaner: noisy depth (+ its validity mask, + optional RGB) -> clean depth, or -> normals.

Input depth is in the normalised space of :class:`~dcl_arc_ros.learning.config.DepthRange`, holes = ``hole_value``.
The validity mask is derived from the depth inside the network (``depth > hole_value``) and fed as an extra channel,
so a deployed model needs the depth tensor alone and the mask can never disagree with it.

``internal_downsample = s > 1`` runs the U-Net at 1/s resolution: depth is reduced by a masked mean (holes do not pull
values towards 0 m), the mask by a max, RGB by a plain mean; the result is upsampled bilinearly to the input size.
This is the model's own speed/accuracy trade-off and the exporter records it in the sidecar.

``refine_channels > 0`` (with ``internal_downsample > 1``) adds a cheap two-convolution refinement at full
resolution that sees the upsampled prediction, the measured depth and its mask, so edges the measurement has can
come back after the low-resolution U-Net (initialised to a no-op).

``out_kind="depth"`` gives (B, 1, H, W) in [-1, 1]; ``"normals"`` gives (B, 3, H, W) unit vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.nets.blocks import NormKind, make_norm

OutKind = Literal["depth", "normals"]

__all__ = ["PRESETS", "UNet", "UNetConfig"]


@dataclass(frozen=True)
class UNetConfig:
    out_kind: OutKind = "depth"
    rgb_channels: int = 0
    base_channels: int = 32
    levels: int = 4
    norm: NormKind = "batch"
    internal_downsample: int = 1
    residual: bool = True  # depth only: predict a correction added to the (hole-free) input
    hole_value: float = -1.0
    refine_channels: int = 0  # depth with internal_downsample > 1: a full-resolution 2-conv refinement (0 = off)

    def __post_init__(self) -> None:
        if self.refine_channels < 0 or (self.refine_channels and self.out_kind != "depth"):
            raise ConfigError(f"UNetConfig.refine_channels must be >= 0 and needs out_kind 'depth', got {self}")
        if self.base_channels < 1 or self.levels < 1 or self.internal_downsample < 1 or self.rgb_channels < 0:
            raise ConfigError(
                f"UNetConfig needs base_channels, levels, internal_downsample >= 1 and rgb_channels >= 0, got "
                f"{self.base_channels}, {self.levels}, {self.internal_downsample}, {self.rgb_channels}"
            )

    @property
    def out_channels(self) -> int:
        return 1 if self.out_kind == "depth" else 3


PRESETS: dict[str, UNetConfig] = {
    "default": UNetConfig(),
    "tiny": UNetConfig(base_channels=8, levels=2, norm="instance"),
    # Deploy-sized cleaner: runs at quarter resolution (160x120 for a 640x480 camera), bilinear upsampling back.
    # ONNX Runtime, 2 threads, 640x480 in: median 70 ms on this 2-core machine while the load average was ~8
    # (other jobs); the half-resolution variant (base 16) took ~300 ms under similar load.
    "deploy": UNetConfig(base_channels=8, levels=4, internal_downsample=4),
    "normals": UNetConfig(out_kind="normals", residual=False),
    "tiny_normals": UNetConfig(out_kind="normals", residual=False, base_channels=8, levels=2, norm="instance"),
}


def _double_conv(cin: int, cout: int, norm: NormKind) -> nn.Sequential:
    bias = norm != "batch"
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=bias),
        make_norm(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=bias),
        make_norm(norm, cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        in_ch = 2 + cfg.rgb_channels
        chans = [cfg.base_channels * 2**i for i in range(cfg.levels + 1)]
        self.down = nn.ModuleList([_double_conv(in_ch, chans[0], cfg.norm)])
        for i in range(cfg.levels):
            self.down.append(_double_conv(chans[i], chans[i + 1], cfg.norm))
        self.up = nn.ModuleList()
        for i in reversed(range(cfg.levels)):
            self.up.append(_double_conv(chans[i + 1] + chans[i], chans[i], cfg.norm))
        self.head = nn.Conv2d(chans[0], cfg.out_channels, 1)
        self.refine: nn.Module | None = None
        if cfg.refine_channels and cfg.internal_downsample > 1:
            # Sees the upsampled prediction and the full-resolution measurement + mask: restores sharp edges.
            self.refine = nn.Sequential(
                nn.Conv2d(3, cfg.refine_channels, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(cfg.refine_channels, 1, 3, padding=1),
            )
            last = self.refine[-1]
            assert isinstance(last, nn.Conv2d)
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)

    def _shrink(
        self, depth: torch.Tensor, valid: torch.Tensor, rgb: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        s = self.cfg.internal_downsample
        wsum = F.avg_pool2d(valid, s)
        depth_lo = F.avg_pool2d(depth * valid, s) / wsum.clamp_min(1e-6)
        valid_lo = (wsum > 0).to(depth.dtype)
        depth_lo = valid_lo * depth_lo + (1.0 - valid_lo) * self.cfg.hole_value
        rgb_lo = F.avg_pool2d(rgb, s) if rgb is not None else None
        return depth_lo, valid_lo, rgb_lo

    def forward(self, depth: torch.Tensor, rgb: torch.Tensor | None = None) -> torch.Tensor:
        if depth.dim() != 4 or depth.shape[1] != 1:
            raise ValueError(f"UNet expects depth of shape (B, 1, H, W), got {tuple(depth.shape)}")
        if (rgb is None) != (self.cfg.rgb_channels == 0):
            raise ValueError(f"UNet built with rgb_channels={self.cfg.rgb_channels} got rgb={rgb is not None}")
        height, width = int(depth.shape[-2]), int(depth.shape[-1])
        valid = (depth > self.cfg.hole_value + 1e-4).to(depth.dtype)
        x_depth, x_valid, x_rgb = depth, valid, rgb
        s = self.cfg.internal_downsample
        if s > 1:
            if height % s or width % s:
                raise ValueError(f"input size {(height, width)} must be a multiple of internal_downsample={s}")
            x_depth, x_valid, x_rgb = self._shrink(depth, valid, rgb)
        parts = [x_depth, x_valid] + ([x_rgb] if x_rgb is not None else [])
        x = torch.cat(parts, dim=1)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        mult = 2**self.cfg.levels
        pad_h, pad_w = (-h) % mult, (-w) % mult
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block in self.up:
            skip = skips.pop(-2)
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        out = self.head(x)[..., :h, :w]
        if self.cfg.out_kind == "depth":
            if self.cfg.residual:
                # Holes carry no value to correct: start them from the masked local mean instead of hole_value.
                base = x_depth * x_valid + (1.0 - x_valid) * _hole_base(x_depth, x_valid)
                out = base + out
                # Clamp only when deployed: in training a clamped pixel would get no gradient and stay saturated.
                if not self.training:
                    out = out.clamp(-1.0, 1.0)
            else:
                out = torch.tanh(out)
        if s > 1:
            out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False)
            if self.refine is not None:
                out = (out + self.refine(torch.cat([out, depth, valid], dim=1))).clamp(-1.0, 1.0)
        if self.cfg.out_kind == "normals":
            # F.normalize's maths; torch's norm over a 3-wide non-last dim is ~30x slower on CPU than this sum.
            out = out / out.pow(2).sum(dim=1, keepdim=True).sqrt().clamp_min(1e-6)
        return out


def _hole_base(depth: torch.Tensor, valid: torch.Tensor, size: int = 9) -> torch.Tensor:
    """Start value for every hole: the masked local mean, from ever coarser scales where the window holds no reading.

    A hole wider than the window (e.g. the invalid band an active-stereo camera leaves along one side) takes the mean
    of the nearest readings found at 2x, 4x, ... coarser scales, and finally the image's mean valid depth, so no hole
    starts from an arbitrary value.
    """
    num = F.avg_pool2d(depth * valid, size, stride=1, padding=size // 2, count_include_pad=False)
    den = F.avg_pool2d(valid, size, stride=1, padding=size // 2, count_include_pad=False)
    base = num / den.clamp_min(1e-6)
    covered = den > 1e-6
    coarse_num, coarse_den = depth * valid, valid
    # A fixed number of levels from the (static) size, so the graph exports without data-dependent control flow.
    levels = max(math.ceil(math.log2(max(min(depth.shape[-2:]), 2))), 1)
    for _ in range(levels):
        coarse_num = F.avg_pool2d(coarse_num, 2, ceil_mode=True)
        coarse_den = F.avg_pool2d(coarse_den, 2, ceil_mode=True)
        blur_num = F.avg_pool2d(coarse_num, 3, stride=1, padding=1, count_include_pad=False)
        blur_den = F.avg_pool2d(coarse_den, 3, stride=1, padding=1, count_include_pad=False)
        # Bilinear on numerator and denominator separately: a smooth weighted mean, no blocks of 2^k pixels.
        up_num = F.interpolate(blur_num, size=depth.shape[-2:], mode="bilinear", align_corners=False)
        up_den = F.interpolate(blur_den, size=depth.shape[-2:], mode="bilinear", align_corners=False)
        here = (~covered) & (up_den > 1e-6)
        base = torch.where(here, up_num / up_den.clamp_min(1e-6), base)
        covered = covered | here
    mean_valid = (depth * valid).sum(dim=(-2, -1), keepdim=True) / valid.sum(dim=(-2, -1), keepdim=True).clamp_min(1.0)
    return torch.where(covered, base, mean_valid.expand_as(base))


def build_unet(cfg: UNetConfig) -> UNet:
    return UNet(cfg)
