"""Procedural grasp frames for tests and smoke runs (not for reported results).

A table with one box per frame; the dense GG-CNN labels put a quality blob on the box, a closing angle across its
short side and the matching jaw width. Samples follow the ``dcl_arc_ros.data.torch_datasets`` contract (``depth``
(1, H, W) metres with 0 = invalid, ``valid``, ``grasp_quality``/``grasp_cos2``/``grasp_sin2``/``grasp_width``).
Frame ``i`` of a given seed is always the same.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ToyGraspFrames"]


class ToyGraspFrames(Dataset[dict[str, torch.Tensor]]):
    def __init__(self, size: int, *, height: int = 48, width: int = 48, seed: int = 0) -> None:
        if size < 1 or height < 32 or width < 32:
            raise ValueError(f"toy grasp frames need size >= 1 and at least 32x32 pixels, got {size}, {height}x{width}")
        self.size, self.height, self.width, self.seed = size, height, width, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.size:
            raise IndexError(f"toy grasp frame {index} out of range [0, {self.size})")
        rng = np.random.default_rng((self.seed, index))
        h, w = self.height, self.width
        depth = np.full((h, w), 0.8, np.float32)
        cx, cy = float(rng.uniform(14, w - 14)), float(rng.uniform(14, h - 14))
        yaw = float(rng.uniform(-math.pi / 2, math.pi / 2))
        half_len, half_wid = 6.0, 4.0
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        along = (xx - cx) * math.cos(yaw) + (yy - cy) * math.sin(yaw)
        across = -(xx - cx) * math.sin(yaw) + (yy - cy) * math.cos(yaw)
        depth[(np.abs(along) <= half_len) & (np.abs(across) <= half_wid)] = 0.72
        depth[rng.random((h, w)) < 0.05] = 0.0
        quality = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 6.0).astype(np.float32)
        on = (quality > 0.1).astype(np.float32)
        angle = yaw + math.pi / 2  # close across the short side
        maps = {
            "grasp_quality": quality,
            "grasp_cos2": on * math.cos(2 * angle),
            "grasp_sin2": on * math.sin(2 * angle),
            "grasp_width": on * (2 * half_wid + 4),
        }
        return {
            "depth": torch.from_numpy(depth[None]),
            "valid": torch.from_numpy((depth > 0)[None].astype(np.float32)),
            **{k: torch.from_numpy(v.astype(np.float32)[None]) for k, v in maps.items()},
        }
