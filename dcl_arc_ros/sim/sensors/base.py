"""The sensor-model interface: clean rendered depth in, what a depth camera would report out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.errors import SensorError

# Renders clean metric depth (H, W), NaN = no hit, at the same intrinsics, from a camera whose optical frame has the
# given (4, 4) pose in the depth camera's optical frame. Active sensors use it for their second view.
DepthRenderer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SceneContext:
    """What a sensor model may know about the scene besides the clean depth."""

    normals: np.ndarray | None = None  # (H, W, 3) unit normals, camera frame, facing the camera (0 = unknown)
    instances: np.ndarray | None = None  # (H, W) int32 instance ids
    baseline_m: float = 0.05  # projector/camera or camera/camera baseline
    depth_range_m: tuple[float, float] = (0.2, 4.0)  # readings outside are invalid
    disparity_subpixel: float = 1.0 / 8.0  # disparity quantum of the device, pixels
    render_depth: DepthRenderer | None = None


@runtime_checkable
class SensorModel(Protocol):
    """Turns clean depth into a sensor reading. Implementations are stateless apart from fixed device properties."""

    @property
    def name(self) -> str:
        """The registry key of this model."""
        ...

    def apply(
        self, depth_clean: np.ndarray, intrinsics: Intrinsics, rng: np.random.Generator, scene_context: SceneContext
    ) -> np.ndarray:
        """(H, W) float32 metres, NaN where the device gives no reading. Randomness comes only from ``rng``."""
        ...


def check_depth(depth_clean: np.ndarray, intrinsics: Intrinsics, who: str) -> np.ndarray:
    """Validate the shared input contract and return the depth as float32."""
    depth = np.asarray(depth_clean)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise SensorError(
            f"{who}: depth of shape {depth.shape} does not match intrinsics {intrinsics.width}x{intrinsics.height}"
        )
    if not np.issubdtype(depth.dtype, np.floating):
        raise SensorError(f"{who}: depth must be floating-point metres with NaN for no hit, got dtype {depth.dtype}")
    # the range of the finite values: NaN-skipping reductions, without gathering the finite values first
    lo, hi = np.fmin.reduce(depth, axis=None), np.fmax.reduce(depth, axis=None)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # no finite value, or infinities: take the finite ones explicitly
        finite = depth[np.isfinite(depth)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (np.nan, np.nan)
    if lo <= 0.0 or hi > 100.0:  # False for NaN (no finite value)
        raise SensorError(
            f"{who}: depth values {lo:.4g}..{hi:.4g} are not metres in (0, 100]; millimetre input must be converted "
            "first"
        )
    return depth.astype(np.float32, copy=False)


def viewing_angles(normals: np.ndarray | None, intrinsics: Intrinsics) -> np.ndarray:
    """(H, W) angle in radians between each pixel's viewing ray and its surface normal (0 where unknown)."""
    if normals is None:
        return np.zeros((intrinsics.height, intrinsics.width), dtype=np.float32)
    ray = unit_rays(intrinsics)
    n = np.ascontiguousarray(normals, dtype=np.float32)
    # per-pixel dot products as OpenCV channel sums: the same float32 products and sums as
    # einsum("hwi,hwi->hw"), in fewer passes (tests/sim/test_sim_fast_paths.py checks they are equal)
    cos = np.abs(cv2.transform(cv2.multiply(n, ray), _CHANNEL_SUM))
    # unknown normals (all zero, n . n == 0) have cos == 0; any n with n . n == 0 in float32 has components below
    # 1e-22, so |n . r| < 1e-20 finds every candidate, and only those are checked (with the same einsum as before)
    candidates = np.flatnonzero(cos.reshape(-1) < _UNKNOWN_COS)
    n_candidates = n.reshape(-1, 3)[candidates]
    unknown = candidates[np.einsum("ni,ni->n", n_candidates, n_candidates) == 0]
    theta = np.arccos(np.minimum(cos, np.float32(1.0), out=cos), out=cos)
    theta.reshape(-1)[unknown] = 0.0
    return theta


_UNKNOWN_COS = np.float32(1e-20)


_CHANNEL_SUM = np.ones((1, 3), dtype=np.float32)


@cache
def unit_rays(intrinsics: Intrinsics) -> np.ndarray:
    """(H, W, 3) float32 unit viewing rays through the pixel centres (cached per intrinsics; read-only)."""
    h, w = intrinsics.height, intrinsics.width
    ray = np.empty((h, w, 3), dtype=np.float32)
    ray[..., 0] = ((np.arange(w, dtype=np.float32) - intrinsics.cx) / intrinsics.fx)[None, :]
    ray[..., 1] = ((np.arange(h, dtype=np.float32) - intrinsics.cy) / intrinsics.fy)[:, None]
    ray[..., 2] = 1.0
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
    ray.flags.writeable = False
    return ray
