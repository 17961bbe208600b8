"""PoseNet: a small ResNet-style network on object-centric depth crops -> class logits + a 6D rotation.

Input: (B, 1, S, S) crops from :func:`dcl_arc_ros.core.pose_pipeline.prepare_pose_input` (depth relative to the
object's median, background +1). Outputs: (B, num_classes) logits and (B, 6) rotation in the continuous 6D
representation (the first two columns of the allocentric rotation matrix; see :mod:`dcl_arc_ros.core.pose_pipeline`
for why), decoded by Gram-Schmidt (:func:`rotation_6d_to_matrix` here, ``rotation_from_6d`` in the core).

The rotation head's bias starts at the identity's 6D form, so an untrained network predicts the identity rather than a
degenerate pair of vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcl_arc_ros.learning.errors import ConfigError

__all__ = ["POSENET_PRESETS", "PoseNet", "PoseNetConfig", "geodesic_angle", "rotation_6d_to_matrix"]


@dataclass(frozen=True)
class PoseNetConfig:
    num_classes: int = 10
    crop_size: int = 64
    stem_channels: int = 32
    stage_channels: tuple[int, ...] = (32, 64, 128, 256)  # each stage after the first halves the resolution
    blocks_per_stage: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.num_classes < 1 or self.crop_size < 8 or self.stem_channels < 1 or self.blocks_per_stage < 1:
            raise ConfigError(f"PoseNetConfig has a non-positive size: {self}")
        if not self.stage_channels or min(self.stage_channels) < 1:
            raise ConfigError(f"PoseNetConfig.stage_channels must be non-empty and positive, got {self.stage_channels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"PoseNetConfig.dropout must lie in [0, 1), got {self.dropout}")


POSENET_PRESETS: dict[str, PoseNetConfig] = {
    "default": PoseNetConfig(),  # ResNet-18-like widths at 64x64 crops
    "deploy": PoseNetConfig(stage_channels=(32, 64, 128), blocks_per_stage=1),
    "tiny": PoseNetConfig(num_classes=4, crop_size=32, stem_channels=8, stage_channels=(8, 16), blocks_per_stage=1),
}


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x), inplace=True)


class PoseNet(nn.Module):
    def __init__(self, cfg: PoseNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or PoseNetConfig()
        self.stem = nn.Sequential(
            nn.Conv2d(1, cfg.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(cfg.stem_channels),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        cin = cfg.stem_channels
        for i, cout in enumerate(cfg.stage_channels):
            for j in range(cfg.blocks_per_stage):
                blocks.append(_BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.body = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.class_head = nn.Linear(cin, cfg.num_classes)
        self.rotation_head = nn.Linear(cin, 6)
        nn.init.zeros_(self.rotation_head.weight)
        with torch.no_grad():
            self.rotation_head.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.dropout(torch.flatten(self.pool(self.body(self.stem(x))), 1))
        return self.class_head(feats), self.rotation_head(feats)


def build_posenet(cfg: PoseNetConfig) -> PoseNet:
    return PoseNet(cfg)


def rotation_6d_to_matrix(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt; the torch twin of ``core.pose_pipeline.rotation_from_6d``."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(eps)
    a2p = a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1
    b2 = a2p / a2p.norm(dim=-1, keepdim=True).clamp_min(eps)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle (radians) between two batches of rotation matrices."""
    trace = (r1 * r2).sum(dim=(-2, -1))  # trace(r1^T r2)
    return torch.acos(((trace - 1.0) / 2.0).clamp(-1.0, 1.0))
