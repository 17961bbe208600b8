"""Procedural RGB-D scenes in two domains, for tests, smoke runs and the tiny config (not for reported results).

Both domains show a floor plane receding from the camera and a few box-like objects whose brightness falls with depth
(so RGB carries a depth cue). The "real" domain differs in low-level appearance (tint, gamma, sensor noise, missing
depth readings) AND in high-level content: it adds textured clutter blobs of kinds never seen in the synthetic domain,
which is the situation ARC's attention module is made for.

Samples follow the training-data contract: {"rgb": (3, H, W) float32 in [0, 1], "depth": (1, H, W) metres with 0 =
invalid, "valid": (1, H, W) float32}. Frame ``i`` of a given (domain, seed) is always the same.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

Domain = Literal["synthetic", "real"]
_DOMAIN_CODE = {"synthetic": 0, "real": 1}


class ToySceneDataset(Dataset[dict[str, torch.Tensor]]):
    def __init__(
        self, size: int, height: int = 48, width: int = 64, *, domain: Domain = "synthetic", seed: int = 0
    ) -> None:
        if domain not in _DOMAIN_CODE:
            raise ValueError(f"toy domain = {domain!r}, expected one of {sorted(_DOMAIN_CODE)}")
        if size < 1 or height < 8 or width < 8:
            raise ValueError(f"toy dataset size {size} and resolution {height}x{width} must be >= 1 and >= 8x8")
        self.size, self.height, self.width, self.domain, self.seed = size, height, width, domain, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.size:
            raise IndexError(f"toy frame {index} out of range [0, {self.size})")
        rgb, depth, valid = render_toy_scene(self.height, self.width, self.domain, (self.seed, index))
        return {
            "rgb": torch.from_numpy(rgb.transpose(2, 0, 1).copy()),
            "depth": torch.from_numpy(depth[None]),
            "valid": torch.from_numpy(valid[None].astype(np.float32)),
        }


def render_toy_scene(
    height: int, width: int, domain: Domain, key: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb (H, W, 3) float32 in [0, 1], depth (H, W) float32 metres (0 = invalid), valid (H, W) bool)."""
    rng = np.random.default_rng((_DOMAIN_CODE[domain], *key))
    v = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    u = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    far, near = rng.uniform(6.0, 8.0), rng.uniform(2.0, 3.0)
    depth = np.broadcast_to(far + (near - far) * v, (height, width)).astype(np.float32).copy()  # floor: near at bottom
    albedo = np.broadcast_to(np.array([0.55, 0.5, 0.45], np.float32), (height, width, 3)).copy()
    for _ in range(rng.integers(2, 5)):  # boxes standing on the floor
        cx, w = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.3)
        top, bottom = rng.uniform(0.2, 0.6), rng.uniform(0.65, 0.95)
        inside = (np.abs(u - cx) < w / 2) & (v > top) & (v < bottom)
        depth_at_base = far + (near - far) * bottom
        depth = np.where(inside, np.float32(depth_at_base - rng.uniform(0.0, 0.3)), depth)
        albedo = np.where(inside[..., None], rng.uniform(0.3, 1.0, 3).astype(np.float32), albedo)
    if domain == "real":  # clutter never seen in synthetic data: striped / speckled blobs at their own depths
        for _ in range(rng.integers(2, 5)):
            cy, cx = rng.uniform(0.2, 0.9), rng.uniform(0.0, 1.0)
            ry, rx = rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.2)
            blob = ((v - cy) / ry) ** 2 + ((u - cx) / rx) ** 2 < 1.0
            freq, phase = rng.uniform(20, 60), rng.uniform(0, 2 * np.pi)
            stripes = 0.5 + 0.5 * np.sin(freq * (u + v) + phase)
            texture = stripes[..., None] * rng.uniform(0.0, 1.0, 3) + rng.uniform(0, 0.3, (height, width, 1))
            albedo = np.where(blob[..., None], texture.astype(np.float32), albedo)
            depth = np.where(blob, np.float32(rng.uniform(1.5, 4.0)), depth)
    shading = np.clip(1.6 / np.sqrt(depth), 0.0, 1.0)[..., None]  # brighter when nearer: a monocular depth cue
    rgb = albedo * shading
    valid = np.ones((height, width), dtype=bool)
    if domain == "real":
        tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)
        rgb = np.clip(rgb * tint, 0.0, 1.0) ** rng.uniform(0.7, 1.0)
        rgb = rgb + rng.normal(0.0, 0.03, rgb.shape)
        valid = rng.random((height, width)) > 0.05  # missing readings, as a real sensor has
    depth = np.where(valid, depth, 0.0).astype(np.float32)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32), depth, valid
