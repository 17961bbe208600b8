"""A physically different "real-like" depth sensor: active IR stereo with a real matcher (D435-like).

1. A virtual projector halfway between two IR cameras casts a fixed random-dot speckle pattern.
2. Each IR camera's image is formed by projecting every pixel's 3D point into the projector and reading the pattern
   there, if the projector can see that point (projector-depth test against a z-buffer splatted from both views),
   with inverse-square fall-off, ambient light and sensor noise.
3. OpenCV StereoSGBM matches left against right (the left IR camera is the depth camera, so the output is aligned
   with the clean depth), and disparity becomes depth ``z = f B / d``.

The left view is the clean depth itself; the right view costs one extra depth render through
``SceneContext.render_depth``. The result shows the structure real active stereo has: invalid band on the left
(no match possible), holes along occlusion edges, edge fattening, and texture- and angle-dependent noise, with exact
paired ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.errors import SensorError
from dcl_arc_ros.sim.sensors.base import SceneContext, check_depth

PATTERN_SEED = 435  # the projector's diffractive element is a fixed physical part: one pattern for every frame


@dataclass(frozen=True)
class ActiveStereoParams:
    baseline_m: float | None = 0.05  # D435 IR cameras; None = use the camera preset's baseline
    min_depth_m: float = 0.3  # sets the disparity search range
    block_size: int = 0  # SGBM block; 0 = 7 at 640 px width, scaled down for smaller images (odd, >= 3)
    dot_density: float = 0.25  # fraction of projector pixels that are dots
    dot_blur_px: float = 0.6
    pattern_oversample: float = 1.5  # projector pixels per camera pixel
    ambient: float = 0.12
    gain: float = 0.85
    reference_depth_m: float = 0.6  # where the pattern has full brightness
    noise_dn: float = 2.0  # IR sensor noise in 8-bit levels
    shadow_tolerance: float = 0.01  # relative depth slack of the projector-depth test
    subpixel_iterations: int = 2  # gradient-based refinement of SGBM's parabola fit (0 = raw SGBM)
    apply_range: bool = True


@cache
def speckle_pattern(height: int, width: int, density: float, blur_px: float) -> np.ndarray:
    """The projector's fixed random-dot pattern, float32 in [0, 1]."""
    rng = np.random.default_rng(PATTERN_SEED)
    dots = (rng.random((height, width)) < density).astype(np.float32)
    dots *= rng.uniform(0.6, 1.0, (height, width)).astype(np.float32)
    pattern = cv2.GaussianBlur(dots, (0, 0), blur_px)
    return pattern / max(float(pattern.max()), 1e-6)


def _rays(intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    u = (np.arange(intrinsics.width, dtype=np.float32) - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height, dtype=np.float32) - intrinsics.cy) / intrinsics.fy
    return u[None, :], v[:, None]


@dataclass(frozen=True)
class _Projector:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


def _project_into(
    depth: np.ndarray, intrinsics: Intrinsics, offset_x: float, proj: _Projector
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projector pixel coordinates and depth of every pixel's point; the camera sits ``offset_x`` right of it."""
    ru, rv = _rays(intrinsics)
    z = depth
    x = ru * z + offset_x
    y = rv * z
    with np.errstate(invalid="ignore", divide="ignore"):
        up = proj.fx * x / z + proj.cx
        vp = proj.fy * y / z + proj.cy
    return up.astype(np.float32), vp.astype(np.float32), z


def _splat_zbuffer(views: list[tuple[np.ndarray, np.ndarray, np.ndarray]], proj: _Projector) -> np.ndarray:
    """Nearest depth per cell of a half-resolution projector grid, from the points of every view (inf = empty)."""
    gh, gw = (proj.height + 1) // 2, (proj.width + 1) // 2
    zbuf = np.full(gh * gw, np.inf, dtype=np.float32)
    for up, vp, z in views:
        ok = np.isfinite(z) & np.isfinite(up) & np.isfinite(vp)
        iu = np.floor(up[ok] / 2).astype(np.int64)
        iv = np.floor(vp[ok] / 2).astype(np.int64)
        inside = (iu >= 0) & (iu < gw) & (iv >= 0) & (iv < gh)
        np.minimum.at(zbuf, iv[inside] * gw + iu[inside], z[ok][inside].astype(np.float32))
    return zbuf.reshape(gh, gw)


def refine_subpixel(
    left: np.ndarray, right: np.ndarray, disparity: np.ndarray, window: int, iterations: int
) -> np.ndarray:
    """Gradient-based (Lucas-Kanade along x) refinement of a valid disparity map over ``window``-sized blocks.

    SGBM's parabola fit pulls disparities towards whole pixels ("pixel locking", up to 0.5 px); stereo ASICs refine
    further. Each iteration warps the right image by the current disparity and solves the windowed least-squares
    update ``dd = -sum(g r) / sum(g^2)``, g the warped image's x-gradient and r the left-minus-warped residual.
    Updates are limited to one pixel in total; invalid pixels (<= 0) stay invalid.
    """
    valid = disparity > 0
    lf = cv2.GaussianBlur(left.astype(np.float32), (0, 0), 0.7)
    rf = cv2.GaussianBlur(right.astype(np.float32), (0, 0), 0.7)
    h, w = disparity.shape
    grid_u = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w))
    grid_v = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    start = np.where(valid, disparity, 0.0).astype(np.float32)
    d = start.copy()
    for _ in range(iterations):
        warped = cv2.remap(rf, grid_u - d, grid_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        grad = cv2.Sobel(warped, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        resid = lf - warped
        num = cv2.boxFilter((grad * resid).astype(np.float32), -1, (window, window), normalize=False)
        den = cv2.boxFilter((grad * grad).astype(np.float32), -1, (window, window), normalize=False)
        step = np.where(den > 1e-3, -num / np.maximum(den, 1e-3), 0.0)
        d = np.clip(d + step, start - 1.0, start + 1.0).astype(np.float32)
    return np.where(valid, d, disparity).astype(np.float32)


@dataclass(frozen=True)
class ActiveStereoSensor:
    name: str = "active_stereo"
    params: ActiveStereoParams = ActiveStereoParams()

    def _ir_image(
        self,
        projected: tuple[np.ndarray, np.ndarray, np.ndarray],
        zbuf: np.ndarray,
        pattern: np.ndarray,
        rng: np.random.Generator,
    ) -> np.ndarray:
        p = self.params
        up, vp, z = projected
        gh, gw = zbuf.shape
        finite = np.isfinite(z) & np.isfinite(up) & np.isfinite(vp)
        cu = np.clip(np.floor(np.nan_to_num(up, nan=-1.0) / 2), 0, gw - 1).astype(np.int64)
        cv = np.clip(np.floor(np.nan_to_num(vp, nan=-1.0) / 2), 0, gh - 1).astype(np.int64)
        lit = finite & (z <= zbuf[cv, cu] * (1.0 + p.shadow_tolerance) + 1e-3)
        dots = cv2.remap(
            pattern,
            np.nan_to_num(up, nan=-10.0),
            np.nan_to_num(vp, nan=-10.0),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            falloff = np.clip((p.reference_depth_m / z) ** 2, 0.0, 2.0)
        signal = np.where(lit, p.gain * dots * falloff, 0.0)
        ambient = np.where(finite, p.ambient, 0.5 * p.ambient)
        img = 255.0 * (signal + ambient) + p.noise_dn * rng.standard_normal(z.shape)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def baseline(self, scene_context: SceneContext) -> float:
        """The IR camera baseline: the sensor's own (D435-like 50 mm) unless set to None, then the camera preset's."""
        if self.params.baseline_m is not None:
            return float(self.params.baseline_m)
        return float(scene_context.baseline_m)

    def ir_images(
        self, depth_clean: np.ndarray, intrinsics: Intrinsics, rng: np.random.Generator, scene_context: SceneContext
    ) -> tuple[np.ndarray, np.ndarray]:
        """The left and right 8-bit IR images the matcher sees."""
        p = self.params
        depth_left = check_depth(depth_clean, intrinsics, self.name)
        if scene_context.render_depth is None:
            raise SensorError(f"{self.name}: SceneContext.render_depth is required to render the right IR view")
        b = self.baseline(scene_context)
        if not 0.0 < b < 1.0:
            raise SensorError(f"{self.name}: baseline_m={b!r} must be in (0, 1) metres")
        left_T_right = np.eye(4)
        left_T_right[0, 3] = b
        depth_right = check_depth(scene_context.render_depth(left_T_right), intrinsics, self.name + " (right view)")
        s = p.pattern_oversample
        proj = _Projector(
            fx=intrinsics.fx * s,
            fy=intrinsics.fy * s,
            cx=(intrinsics.cx + 0.5) * s - 0.5,
            cy=(intrinsics.cy + 0.5) * s - 0.5,
            width=round(intrinsics.width * s),
            height=round(intrinsics.height * s),
        )
        pattern = speckle_pattern(proj.height, proj.width, p.dot_density, p.dot_blur_px * s)
        # the projector sits at x = B/2 in the left camera frame, so the left camera is B/2 to its left
        left = _project_into(depth_left, intrinsics, -b / 2, proj)
        right = _project_into(depth_right, intrinsics, b / 2, proj)
        zbuf = _splat_zbuffer([left, right], proj)
        return self._ir_image(left, zbuf, pattern, rng), self._ir_image(right, zbuf, pattern, rng)

    def apply(
        self, depth_clean: np.ndarray, intrinsics: Intrinsics, rng: np.random.Generator, scene_context: SceneContext
    ) -> np.ndarray:
        p = self.params
        img_left, img_right = self.ir_images(depth_clean, intrinsics, rng, scene_context)
        b = self.baseline(scene_context)
        block = p.block_size or max(3, round(7 * intrinsics.width / 640) | 1)
        max_disp = intrinsics.fx * b / p.min_depth_m
        num_disp = int(np.ceil(max_disp / 16.0)) * 16
        sgbm = cv2.StereoSGBM.create(
            minDisparity=0,
            numDisparities=num_disp,
            blockSize=block,
            P1=8 * block * block,
            P2=32 * block * block,
            disp12MaxDiff=1,
            uniquenessRatio=10,
            speckleWindowSize=max(20, intrinsics.width // 8),
            speckleRange=2,
            mode=cv2.STEREO_SGBM_MODE_SGBM,
        )
        disparity = sgbm.compute(img_left, img_right).astype(np.float32) / 16.0
        if p.subpixel_iterations > 0:
            disparity = refine_subpixel(img_left, img_right, disparity, block, p.subpixel_iterations)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(disparity > 0.0, intrinsics.fx * b / disparity, np.nan).astype(np.float32)
        if p.apply_range:
            lo, hi = scene_context.depth_range_m
            with np.errstate(invalid="ignore"):
                z[(z < lo) | (z > hi)] = np.nan
        return z
