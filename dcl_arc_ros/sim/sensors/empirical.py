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
from dcl_arc_ros.sim.sensors.base import SceneContext, check_depth, viewing_angles

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
    sigma = z - 0.4
    if isinstance(sigma, np.ndarray):  # the same operations in place on the fresh array: fewer full-frame buffers
        np.square(sigma, out=sigma)
        sigma *= 0.0019
        sigma += 0.0012
    else:
        sigma = 0.0012 + 0.0019 * sigma**2
    steep = theta > 60.0 * _DEG
    if np.any(steep):
        t = np.minimum(theta[steep], _THETA_MAX)
        sigma = np.array(sigma, copy=True)
        sigma[steep] += 0.0001 / np.sqrt(np.broadcast_to(z, theta.shape)[steep]) * t**2 / (np.pi / 2 - t) ** 2
    return sigma


def lateral_sigma_px(theta: np.ndarray) -> np.ndarray:
    """Nguyen et al. 2012 lateral standard deviation in pixels at angle ``theta`` (rad)."""
    theta = np.minimum(np.asarray(theta), np.float32(_THETA_MAX))
    if not isinstance(theta, np.ndarray) or theta.ndim == 0:
        return 0.8 + 0.035 * theta / (np.float32(np.pi / 2) - theta)
    rest = np.float32(np.pi / 2) - theta  # in place on the fresh arrays: 0.8 + 0.035 * theta / (pi / 2 - theta)
    theta *= 0.035
    theta /= rest
    theta += 0.8
    return theta


def projector_shadow(depth: np.ndarray, fx: float, baseline_m: float) -> np.ndarray:
    """(H, W) bool: pixels a projector ``baseline_m`` to the right (+x) of the camera cannot light.

    A point at column u and depth z lands on projector column ``q = u - fx B / z``. Along a row, the visible surface
    has q increasing with u; a pixel is in shadow when some pixel to its right has a projector column at or left of
    its own (that nearer surface blocks the projector ray). NaN (no surface) never casts a shadow.
    """
    # the columns are handled right to left (mirrored), so the running minimum runs along contiguous rows
    w = depth.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = fx * baseline_m / depth
    shift[~(depth > 0)] = -np.inf  # no surface (NaN) never casts a shadow: its q is +inf
    q = np.arange(w - 1, -1, -1, dtype=np.float64) - shift[:, ::-1]
    # mirrored column j is shadowed when q[j] > min(q[:j]) + 0.5, the minimum over the strictly larger columns
    prefix_min = np.minimum.accumulate(q, axis=1)
    prefix_min += 0.5
    shadow = np.zeros(depth.shape, dtype=bool)
    np.greater(q[:, 1:], prefix_min[:, :-1], out=shadow[:, 1:])
    return shadow[:, ::-1] & np.isfinite(depth)


def discontinuity_band(depth: np.ndarray, threshold_m: float, radius_px: int = 1) -> np.ndarray:
    """(H, W) bool: pixels whose (2r+1)^2 neighbourhood spans more than ``threshold_m`` (no hit counts as far)."""
    far = np.where(np.isfinite(depth), depth, np.float32(1e3)).astype(np.float32, copy=False)
    kernel = np.ones((2 * radius_px + 1, 2 * radius_px + 1), np.uint8)
    return cv2.morphologyEx(far, cv2.MORPH_GRADIENT, kernel) > threshold_m  # dilate - erode


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

        # Full-frame steps run in place on fresh buffers where they can: the same float32 operations in the same
        # order as the plain expressions in the comments, with fewer passes over memory and fewer page faults.
        if p.lateral:
            sigma = lateral_sigma_px(theta).astype(np.float32, copy=False)
            grid_u, grid_v = _pixel_grid(h, w)
            map_u = rng.standard_normal((h, w), dtype=np.float32)  # map_u = grid_u + sigma * N(0, 1)
            map_u *= sigma
            map_u += grid_u
            map_v = rng.standard_normal((h, w), dtype=np.float32)  # map_v = grid_v + sigma * N(0, 1)
            map_v *= sigma
            map_v += grid_v
            nan_fill = np.where(np.isfinite(depth), depth, np.float32(0.0))
            z = cv2.remap(nan_fill, map_u, map_v, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            theta = cv2.remap(theta, map_u, map_v, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
            z[z <= 0] = np.nan
        else:
            z = depth.copy()

        if p.axial:
            with np.errstate(invalid="ignore"):
                noise = rng.standard_normal((h, w), dtype=np.float32)  # z = z + sigma_z * N(0, 1)
                noise *= axial_sigma(z, theta).astype(np.float32, copy=False)
                np.add(z, noise, out=z)

        if p.quantise:
            f_b = np.float32(intrinsics.fx * scene_context.baseline_m)
            step = np.float32(scene_context.disparity_subpixel)
            with np.errstate(divide="ignore", invalid="ignore"):
                disparity = f_b / z  # disparity = round(f_b / z / step) * step
                disparity /= step
                np.round(disparity, out=disparity)
                disparity *= step
                z = f_b / disparity  # z = where(disparity > 0, f_b / disparity, NaN)
                z[~(disparity > 0)] = np.nan

        # independent hole causes, combined into one per-pixel probability and drawn once
        keep = np.full((h, w), 1.0 - p.dropout, dtype=np.float32)
        if p.edge_hole_probability > 0:
            radius = max(1, round(w / p.edge_band_width_per_px))
            band = discontinuity_band(depth, p.edge_threshold_m, radius)
            np.multiply(keep, 1.0 - p.edge_hole_probability, out=keep, where=band)
        if p.grazing_full_deg > p.grazing_start_deg:
            ramp = theta / _DEG  # keep *= 1 - clip((theta / deg - start) / (full - start), 0, 1)
            ramp -= p.grazing_start_deg
            ramp /= p.grazing_full_deg - p.grazing_start_deg
            np.clip(ramp, 0.0, 1.0, out=ramp)
            np.subtract(1.0, ramp, out=ramp)
            keep *= ramp
        holes = rng.random((h, w), dtype=np.float32) >= keep
        if p.shadows:
            holes |= projector_shadow(depth, intrinsics.fx, scene_context.baseline_m)
        z[holes] = np.nan
        if p.apply_range:
            lo, hi = scene_context.depth_range_m
            with np.errstate(invalid="ignore"):
                z[(z < lo) | (z > hi)] = np.nan
        return z.astype(np.float32, copy=False)
