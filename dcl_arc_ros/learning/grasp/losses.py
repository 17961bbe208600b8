"""GG-CNN training loss: mean squared error on each of the four maps, summed (as in the original)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dcl_arc_ros.learning.errors import ConfigError

__all__ = ["GRASP_MAP_KEYS", "GraspLossConfig", "grasp_maps_loss"]

#: Target keys, in the networks' output order.
GRASP_MAP_KEYS: tuple[str, str, str, str] = ("quality", "cos2", "sin2", "width")


@dataclass(frozen=True)
class GraspLossConfig:
    """Per-map weights (1, 1, 1, 1 is the published loss)."""

    quality: float = 1.0
    cos2: float = 1.0
    sin2: float = 1.0
    width: float = 1.0

    def __post_init__(self) -> None:
        if min(self.quality, self.cos2, self.sin2, self.width) < 0:
            raise ConfigError(f"GraspLossConfig weights must be >= 0, got {self}")


def grasp_maps_loss(
    pred: tuple[torch.Tensor, ...], target: Mapping[str, torch.Tensor], cfg: GraspLossConfig | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of per-map MSEs; returns the loss and the detached parts for logging.

    ``target`` holds (B, 1, H, W) maps under :data:`GRASP_MAP_KEYS`, the width already divided by the network's
    ``width_scale_px``.
    """
    c = cfg or GraspLossConfig()
    if len(pred) != len(GRASP_MAP_KEYS):
        raise ValueError(f"grasp loss needs {len(GRASP_MAP_KEYS)} predicted maps, got {len(pred)}")
    total = pred[0].new_zeros(())
    parts: dict[str, float] = {}
    for key, p in zip(GRASP_MAP_KEYS, pred, strict=True):
        t = target[key]
        if t.shape != p.shape:
            raise ValueError(f"grasp target {key!r} has shape {tuple(t.shape)}, prediction {tuple(p.shape)}")
        term = F.mse_loss(p, t)
        total = total + getattr(c, key) * term
        parts[f"loss_{key}"] = float(term.detach())
    return total, parts
