"""The ideal sensor: the rendered depth, limited to the device's range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.sensors.base import SceneContext, check_depth


@dataclass(frozen=True)
class CleanSensor:
    """Rendered depth unchanged except that readings outside ``scene_context.depth_range_m`` become NaN."""

    name: str = "clean"
    apply_range: bool = False

    def apply(
        self, depth_clean: np.ndarray, intrinsics: Intrinsics, rng: np.random.Generator, scene_context: SceneContext
    ) -> np.ndarray:
        depth = check_depth(depth_clean, intrinsics, self.name).copy()
        if self.apply_range:
            lo, hi = scene_context.depth_range_m
            with np.errstate(invalid="ignore"):
                depth[(depth < lo) | (depth > hi)] = np.nan
        return depth
