"""The "Simulation" baseline of the DCL paper: published structured-light (Kinect v1 / RealSense) noise statistics.

Applied in this order, each step switchable in :class:`EmpiricalParams`:

1. **Lateral noise** (Nguyen et al. 2012): every pixel reads the depth of a neighbour displaced by a Gaussian offset
   of ``sigma_L = 0.8 + 0.035 * theta / (pi/2 - theta)`` pixels, theta = angle between ray and surface normal.
2. **Axial noise** (Nguyen et al. 2012): ``sigma_z = 0.0012 + 0.0019 (z - 0.4)^2`` m, plus
   ``0.0001 / sqrt(z) * theta^2 / (pi/2 - theta)^2`` for theta beyond 60 degrees.
3. **Disparity quantisation**: ``d = f B / z`` is rounded to the device's subpixel step (1/8 px for Kinect v1) and
   turned back into depth.
4. **Holes**:
   * projector shadows: pixels the projector (``B`` to the right of the camera) cannot light, found exactly per image
     row from the clean depth (a pixel is shadowed when a nearer surface to its right maps to a projector column at
     or left of its own);
   * depth discontinuities: pixels whose neighbourhood (3x3 up to 320 px wide images, 5x5 at 640) spans more
     than ``edge_threshold_m`` lose their reading with probability ``edge_hole_probability``;
   * grazing angles: the hole probability rises linearly from 0 at ``grazing_start_deg`` to 1 at ``grazing_full_deg``;
   * random dropout with probability ``dropout``;
   * readings outside the device's range.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.sensors.base import SceneContext, check_depth

from .sensor_base_v0 import viewing_angles

_DEG = np.pi / 180.0
_THETA_MAX = 89.0 * _DEG


@dataclass(frozen=True)
class EmpiricalParams:
    lateral: bool = True
    axial: bool = True
    quantise: bool = True
    shadows: bool = True
    edge_threshold_m: float = 0.02
    edge_hole_probability: float = 0.5
    edge_band_width_per_px: float = 320.0  # band radius = max(1, round(image width / this)) pixels
    grazing_start_deg: float = 70.0
    grazing_full_deg: float = 85.0
    dropout: float = 0.003
    apply_range: bool = True


def axial_sigma(z: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Nguyen et al. 2012 axial standard deviation (metres) at depth ``z`` (m) and angle ``theta`` (rad)."""
    z = np.asarray(z)
    theta = np.asarray(theta)
    sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
    steep = theta > 60.0 * _DEG
    if np.any(steep):
        t = np.minimum(theta[steep], _THETA_MAX)
        sigma = np.array(sigma, copy=True)
        sigma[steep] += 0.0001 / np.sqrt(np.broadcast_to(z, theta.shape)[steep]) * t**2 / (np.pi / 2 - t) ** 2
    return sigma


def lateral_sigma_px(theta: np.ndarray) -> np.ndarray:
    """Nguyen et al. 2012 lateral standard deviation in pixels at angle ``theta`` (rad)."""
    theta = np.minimum(np.asarray(theta), np.float32(_THETA_MAX))
    return 0.8 + 0.035 * theta / (np.float32(np.pi / 2) - theta)


def projector_shadow(depth: np.ndarray, fx: float, baseline_m: float) -> np.ndarray:
    """(H, W) bool: pixels a projector ``baseline_m`` to the right (+x) of the camera cannot light.

    A point at column u and depth z lands on projector column ``q = u - fx B / z``. Along a row, the visible surface
    has q increasing with u; a pixel is in shadow when some pixel to its right has a projector column at or left of
    its own (that nearer surface blocks the projector ray). NaN (no surface) never casts a shadow.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.arange(depth.shape[1], dtype=np.float64) - fx * baseline_m / depth
    finite = np.isfinite(depth)
    q[~(finite & (depth > 0))] = np.inf  # no surface (NaN) never casts a shadow
    # minimum over the strictly larger columns, accumulated right to left straight into its output
    right_min = np.empty_like(q)
    right_min[:, -1] = np.inf
    np.minimum.accumulate(q[:, :0:-1], axis=1, out=right_min[:, -2::-1])
    right_min += 0.5
    return (q > right_min) & finite


def discontinuity_band(depth: np.ndarray, threshold_m: float, radius_px: int = 1) -> np.ndarray:
    """(H, W) bool: pixels whose (2r+1)^2 neighbourhood spans more than ``threshold_m`` (no hit counts as far)."""
    far = np.where(np.isfinite(depth), depth, 1e3).astype(np.float32)
    kernel = np.ones((2 * radius_px + 1, 2 * radius_px + 1), np.uint8)
    return (cv2.dilate(far, kernel) - cv2.erode(far, kernel)) > threshold_m


@cache
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    grid_u, grid_v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    grid_u.flags.writeable = False
    grid_v.flags.writeable = False
    return grid_u, grid_v


@dataclass(frozen=True)
class EmpiricalSensor:
    name: str = "empirical"
    params: EmpiricalParams = EmpiricalParams()

    def apply(
        self, depth_clean: np.ndarray, intrinsics: Intrinsics, rng: np.random.Generator, scene_context: SceneContext
    ) -> np.ndarray:
        p = self.params
        depth = check_depth(depth_clean, intrinsics, self.name)
        h, w = depth.shape
        theta = viewing_angles(scene_context.normals, intrinsics)

        if p.lateral:
            sigma = lateral_sigma_px(theta).astype(np.float32)
            grid_u, grid_v = _pixel_grid(h, w)
            map_u = grid_u + sigma * rng.standard_normal((h, w), dtype=np.float32)
            map_v = grid_v + sigma * rng.standard_normal((h, w), dtype=np.float32)
            nan_fill = np.where(np.isfinite(depth), depth, np.float32(0.0))
            z = cv2.remap(nan_fill, map_u, map_v, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            theta = cv2.remap(theta, map_u, map_v, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            z[z <= 0] = np.nan
        else:
            z = depth.copy()

        if p.axial:
            with np.errstate(invalid="ignore"):
                noise = axial_sigma(z, theta).astype(np.float32) * rng.standard_normal((h, w), dtype=np.float32)
                z = (z + noise).astype(np.float32, copy=False)

        if p.quantise:
            f_b = np.float32(intrinsics.fx * scene_context.baseline_m)
            step = np.float32(scene_context.disparity_subpixel)
            with np.errstate(divide="ignore", invalid="ignore"):
                disparity = np.round(f_b / z / step) * step
                z = np.where(disparity > 0, f_b / disparity, np.float32(np.nan))

        # independent hole causes, combined into one per-pixel probability and drawn once
        keep = np.full((h, w), 1.0 - p.dropout, dtype=np.float32)
        if p.edge_hole_probability > 0:
            radius = max(1, round(w / p.edge_band_width_per_px))
            keep[discontinuity_band(depth, p.edge_threshold_m, radius)] *= 1.0 - p.edge_hole_probability
        if p.grazing_full_deg > p.grazing_start_deg:
            ramp = (theta / _DEG - p.grazing_start_deg) / (p.grazing_full_deg - p.grazing_start_deg)
            keep *= 1.0 - np.clip(ramp, 0.0, 1.0)
        holes = rng.random((h, w), dtype=np.float32) >= keep
        if p.shadows:
            holes |= projector_shadow(depth, intrinsics.fx, scene_context.baseline_m)
        z[holes] = np.nan
        if p.apply_range:
            lo, hi = scene_context.depth_range_m
            with np.errstate(invalid="ignore"):
                z[(z < lo) | (z > hi)] = np.nan
        return z.astype(np.float32, copy=False)
