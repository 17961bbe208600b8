"""GG-CNN and GG-CNN2 (Morrison et al.): a depth crop in, four per-pixel grasp maps out.

Both networks take (B, 1, H, W) depth (minus its mean, clipped to [-1, 1]) and return a tuple of four (B, 1, H, W)
maps: grasp quality, cos(2 theta), sin(2 theta) and the jaw width divided by ``width_scale_px`` (150 pixels in the
original). :func:`dcl_arc_ros.core.grasps.decode_grasp_maps` turns them into grasps.

- ``GGCNN``: three strided convolutions (kernels 9/5/3, strides 3/2/2, 32/16/8 filters) and the mirrored transposed
  convolutions back up; at a size that is a multiple of 12 (e.g. 300) the decoder lands exactly on the input size.
  Other sizes are resized bilinearly to the input size at the end, so every size works.
- ``GGCNN2``: two stride-2 max-pool stages, then dilated convolutions (dilation 2 and 4) that widen the receptive field
  without further downsampling, then two bilinear x2 upsampling stages; multiples of 4 need no final resize.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcl_arc_ros.learning.errors import ConfigError

__all__ = ["GGCNN", "GGCNN2", "GGCNN2_PRESETS", "GGCNN_PRESETS", "GGCNN2Config", "GGCNNConfig", "GraspMapsOutput"]

GraspMapsOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class GGCNNConfig:
    filters: tuple[int, int, int] = (32, 16, 8)
    kernels: tuple[int, int, int] = (9, 5, 3)
    strides: tuple[int, int, int] = (3, 2, 2)
    width_scale_px: float = 150.0

    def __post_init__(self) -> None:
        if min(self.filters) < 1 or min(self.kernels) < 1 or min(self.strides) < 1:
            raise ConfigError(f"GGCNNConfig filters/kernels/strides must be >= 1, got {self}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"GGCNNConfig kernels must be odd, got {self.kernels}")


@dataclass(frozen=True)
class GGCNN2Config:
    filters: tuple[int, int, int, int] = (16, 16, 32, 16)
    dilations: tuple[int, int] = (2, 4)
    width_scale_px: float = 150.0

    def __post_init__(self) -> None:
        if min(self.filters) < 1 or min(self.dilations) < 1:
            raise ConfigError(f"GGCNN2Config filters and dilations must be >= 1, got {self}")


GGCNN_PRESETS: dict[str, GGCNNConfig] = {
    "default": GGCNNConfig(),  # the published network
    # CPU real-time variant: half the filters of the outer layers, about 2.2x cheaper at 300x300 (the full-resolution
    # transposed convolution dominates the cost).
    "deploy": GGCNNConfig(filters=(16, 8, 8)),
    "tiny": GGCNNConfig(filters=(8, 8, 4)),
}
GGCNN2_PRESETS: dict[str, GGCNN2Config] = {
    "default": GGCNN2Config(),  # the published network
    "tiny": GGCNN2Config(filters=(4, 4, 8, 4)),
}


class _Heads(nn.Module):
    """Four 1-channel heads: quality, cos 2t, sin 2t, width (plain linear outputs, as in the original)."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.quality = nn.Conv2d(channels, 1, kernel)
        self.cos2 = nn.Conv2d(channels, 1, kernel)
        self.sin2 = nn.Conv2d(channels, 1, kernel)
        self.width = nn.Conv2d(channels, 1, kernel)
        for conv in (self.quality, self.cos2, self.sin2, self.width):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor) -> GraspMapsOutput:
        return self.quality(x), self.cos2(x), self.sin2(x), self.width(x)


def _match_size(maps: GraspMapsOutput, size: tuple[int, int]) -> GraspMapsOutput:
    if maps[0].shape[-2:] == size:
        return maps
    q, c, s, w = (F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps)
    return q, c, s, w


class GGCNN(nn.Module):
    """The original GG-CNN."""

    def __init__(self, cfg: GGCNNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or GGCNNConfig()
        (f1, f2, f3), (k1, k2, k3), (s1, s2, s3) = cfg.filters, cfg.kernels, cfg.strides
        self.encoder = nn.Sequential(
            nn.Conv2d(1, f1, k1, stride=s1, padding=k1 // 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(f1, f2, k2, stride=s2, padding=k2 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(f2, f3, k3, stride=s3, padding=k3 // 2),
            nn.ReLU(inplace=True),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(f3, f3, k3, stride=s3, padding=k3 // 2, output_padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f3, f2, k2, stride=s2, padding=k2 // 2, output_padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f2, f1, k1, stride=s1, padding=k1 // 3, output_padding=1),
            nn.ReLU(inplace=True),
        )
        self.heads = _Heads(f1, kernel=2)  # 2x2 heads take the (n + 1)-sized decoder output back to n
        for m in [*self.encoder, *self.decoder]:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> GraspMapsOutput:
        return _match_size(self.heads(self.decoder(self.encoder(x))), (x.shape[-2], x.shape[-1]))


class GGCNN2(nn.Module):
    """GG-CNN2: max-pooling encoder, dilated convolutions, bilinear upsampling decoder."""

    def __init__(self, cfg: GGCNN2Config | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or GGCNN2Config()
        f1, f2, f3, f4 = cfg.filters
        d1, d2 = cfg.dilations
        self.features = nn.Sequential(
            nn.Conv2d(1, f1, 11, padding=5),
            nn.ReLU(inplace=True),
            nn.Conv2d(f1, f1, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(f1, f2, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(f2, f2, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(f2, f3, 5, dilation=d1, padding=2 * d1),
            nn.ReLU(inplace=True),
            nn.Conv2d(f3, f3, 5, dilation=d2, padding=2 * d2),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(f3, f4, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(f4, f4, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.heads = _Heads(f4, kernel=1)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: torch.Tensor) -> GraspMapsOutput:
        return _match_size(self.heads(self.features(x)), (x.shape[-2], x.shape[-1]))


def build_ggcnn(cfg: GGCNNConfig) -> GGCNN:
    return GGCNN(cfg)


def build_ggcnn2(cfg: GGCNN2Config) -> GGCNN2:
    return GGCNN2(cfg)
