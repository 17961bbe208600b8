"""Pinhole intrinsics: (de)projection and crop/subsample/resize that keep K consistent with the pixels.

Pixel convention (ROS ``CameraInfo`` and OpenCV): integer pixel coordinates ``(u, v)`` are the CENTRE of column ``u``
and row ``v``; the image spans ``[-0.5, width - 0.5]`` horizontally.

Resize uses the half-pixel convention that ``cv2.resize`` uses for ``INTER_LINEAR``/``INTER_AREA``/``INTER_CUBIC``:
the image edges map onto each other, so a pixel centre ``u`` maps to ``u' = (u + 0.5) * sx - 0.5`` with
``sx = new_width / width``. Hence ``fx' = fx * sx`` and ``cx' = (cx + 0.5) * sx - 0.5`` (same for y). Intrinsics
resized with :meth:`Intrinsics.resize` therefore describe exactly the image ``cv2.resize`` produces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from dcl_arc_ros.core.errors import CameraError


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an undistorted (rectified) image of ``width`` x ``height`` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise CameraError(f"intrinsics {name}={value!r} is not finite")
            object.__setattr__(self, name, float(value))  # plain floats, not numpy scalars
        if self.fx <= 0.0 or self.fy <= 0.0:
            raise CameraError(f"focal lengths must be positive, got fx={self.fx!r} fy={self.fy!r}")
        if int(self.width) != self.width or int(self.height) != self.height or self.width <= 0 or self.height <= 0:
            raise CameraError(f"image size must be positive integers, got width={self.width!r} height={self.height!r}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> Intrinsics:
        """Build from a row-major 3x3 K (``CameraInfo.k``). Rejects all-zero (uncalibrated) and skewed K."""
        values = np.asarray(k, dtype=np.float64).reshape(-1)
        if values.size != 9:
            raise CameraError(f"K must have 9 elements (row-major 3x3), got {values.size}: {list(values)}")
        if not np.any(values):
            raise CameraError("K is all zeros: the camera is not calibrated (CameraInfo.k was never filled)")
        fx, skew, cx, zero_a, fy, cy, zero_b, zero_c, one = (float(v) for v in values)
        if skew != 0.0 or zero_a != 0.0 or zero_b != 0.0 or zero_c != 0.0 or one != 1.0:
            raise CameraError(
                f"K must have the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew), got {values.tolist()}"
            )
        return cls(fx=fx, fy=fy, cx=cx, cy=cy, width=int(width), height=int(height))

    def k_matrix(self) -> np.ndarray:
        """The 3x3 float64 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    def deproject(self, u: np.ndarray | float, v: np.ndarray | float, z: np.ndarray | float) -> np.ndarray:
        """Pixel coordinates plus depth (metres, along the optical axis) -> camera-frame points (..., 3).

        ``u``, ``v`` and ``z`` broadcast against each other; NaN depth gives NaN points.
        """
        u_arr, v_arr, z_arr = np.broadcast_arrays(np.asarray(u), np.asarray(v), np.asarray(z))
        dtype = np.result_type(u_arr, v_arr, z_arr, np.float32)
        points = np.empty((*z_arr.shape, 3), dtype=dtype)
        points[..., 0] = (u_arr - self.cx) * z_arr / self.fx
        points[..., 1] = (v_arr - self.cy) * z_arr / self.fy
        points[..., 2] = z_arr
        return points

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera-frame points (..., 3) -> ``(u, v, z)``. Points at or behind the camera give NaN ``u`` and ``v``."""
        pts = np.asarray(points)
        if pts.shape[-1:] != (3,):
            raise CameraError(f"points must have shape (..., 3), got {pts.shape}")
        x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_z = np.where(z > 0, 1.0 / z, np.nan)
        u = self.fx * x * inv_z + self.cx
        v = self.fy * y * inv_z + self.cy
        return u, v, z

    def crop(self, x0: int, y0: int, width: int, height: int) -> Intrinsics:
        """Intrinsics of ``image[y0:y0 + height, x0:x0 + width]``; the window must lie inside the image."""
        if width <= 0 or height <= 0 or x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise CameraError(
                f"crop x0={x0} y0={y0} width={width} height={height} does not fit a {self.width}x{self.height} image"
            )
        return Intrinsics(
            fx=self.fx, fy=self.fy, cx=self.cx - x0, cy=self.cy - y0, width=int(width), height=int(height)
        )

    def subsample(self, step: int) -> Intrinsics:
        """Intrinsics of ``image[::step, ::step]``: every ``step``-th pixel, starting with the first, so pixel ``u'``
        of the result is pixel ``step * u'`` of the original (unlike :meth:`resize`, which averages)."""
        if step < 1:
            raise CameraError(f"subsample step must be >= 1, got {step}")
        return Intrinsics(
            fx=self.fx / step,
            fy=self.fy / step,
            cx=self.cx / step,
            cy=self.cy / step,
            width=-(-self.width // step),
            height=-(-self.height // step),
        )

    def resize(self, width: int, height: int) -> Intrinsics:
        """Intrinsics of the image resized to ``width`` x ``height`` (half-pixel convention, see the module doc)."""
        if width <= 0 or height <= 0:
            raise CameraError(f"resize target must be positive, got width={width} height={height}")
        sx = width / self.width
        sy = height / self.height
        return Intrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=int(width),
            height=int(height),
        )

    def points_from_depth(self, depth_m: np.ndarray) -> np.ndarray:
        """A depth image (H, W) in metres -> an organised float32 point cloud (H, W, 3); NaN depth gives NaN.

        The cloud is stored coordinate by coordinate (a (3, H, W) array seen through a transposed view), so that
        ``points[..., k]`` is contiguous: per-coordinate arithmetic then streams through memory.
        """
        depth = np.asarray(depth_m)
        if depth.shape != (self.height, self.width):
            raise CameraError(
                f"depth of shape {depth.shape} does not match the intrinsics' image size "
                f"(height={self.height}, width={self.width})"
            )
        ray_x = ((np.arange(self.width, dtype=np.float32) - np.float32(self.cx)) / np.float32(self.fx))[None, :]
        ray_y = ((np.arange(self.height, dtype=np.float32) - np.float32(self.cy)) / np.float32(self.fy))[:, None]
        planes = np.empty((3, self.height, self.width), dtype=np.float32)
        np.multiply(depth, ray_x, out=planes[0], casting="same_kind")
        np.multiply(depth, ray_y, out=planes[1], casting="same_kind")
        planes[2] = depth
        return np.moveaxis(planes, 0, -1)


#: The image width the pixel-valued parameters of the grasp and pose pipelines are tuned for (640x480 cameras).
DEFAULT_WORKING_WIDTH: Final = 640


def working_step(width: int, working_width: int) -> int:
    """The integer step n that brings an image ``width`` pixels wide down to about ``working_width`` pixels
    (``width // working_width``, at least 1); ``working_width=0`` means full resolution (1)."""
    return max(1, width // working_width) if working_width else 1


def points_from_depth(depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Function form of :meth:`Intrinsics.points_from_depth`."""
    return intrinsics.points_from_depth(depth_m)
