"""One TinyRenderer pass -> RGB, metric depth and body segmentation, with randomised lighting.

PyBullet's renderer takes OpenGL matrices. This module builds them from :class:`Intrinsics` and an optical-frame
``world_T_cam`` so that pixel centres match the ROS/OpenCV convention (integer ``(u, v)`` is the centre of a pixel,
the image spans ``[-0.5, width - 0.5]``), and converts the non-linear depth buffer into metres along the optical axis.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np
import pybullet as pb

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.errors import RenderError

_GL_FROM_OPTICAL = np.diag([1.0, -1.0, -1.0, 1.0])  # optical (x right, y down, z fwd) -> OpenGL (y up, looks down -z)
TEXTURE_KINDS = ("checker", "stripes", "blotches", "wood", "grain")


@dataclass(frozen=True)
class Lighting:
    """TinyRenderer's single directional light. ``direction`` points from the scene towards the light."""

    direction: tuple[float, float, float] = (0.3, 0.2, 1.0)
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    distance: float = 2.0
    ambient: float = 0.6
    diffuse: float = 0.35
    specular: float = 0.05
    shadow: bool = False


@dataclass(frozen=True)
class RenderOutput:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres along the optical axis, NaN where nothing was hit
    segmentation: np.ndarray  # (H, W) int32 pybullet body unique id, -1 where nothing was hit


def random_lighting(rng: np.random.Generator, *, real_like: bool) -> Lighting:
    """Synthetic scenes get white, shadowless light from above; real-like ones coloured, lower light with shadows."""
    if real_like:
        elev = rng.uniform(np.deg2rad(25), np.deg2rad(70))
        temperature = rng.uniform(-1.0, 1.0)  # warm (-) to cool (+) white balance
        colour = np.clip([1.0 - 0.15 * temperature, 1.0 - 0.03 * abs(temperature), 1.0 + 0.15 * temperature], 0, 1)
        ambient, diffuse, specular = rng.uniform(0.3, 0.55), rng.uniform(0.4, 0.7), rng.uniform(0.05, 0.4)
        shadow = True
    else:
        elev = rng.uniform(np.deg2rad(55), np.deg2rad(89))
        colour = np.ones(3)
        ambient, diffuse, specular = rng.uniform(0.5, 0.7), rng.uniform(0.25, 0.45), rng.uniform(0.0, 0.1)
        shadow = False
    azim = rng.uniform(-np.pi, np.pi)
    direction = (np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev))
    return Lighting(
        direction=tuple(float(x) for x in direction),  # type: ignore[arg-type]
        colour=tuple(float(x) for x in colour),  # type: ignore[arg-type]
        distance=2.0,
        ambient=float(ambient),
        diffuse=float(diffuse),
        specular=float(specular),
        shadow=shadow,
    )


def projection_matrix(intrinsics: Intrinsics, near: float, far: float) -> np.ndarray:
    """Row-major 4x4 OpenGL projection for ``intrinsics`` as TinyRenderer rasterises it (samples at pixel centres)."""
    k = intrinsics
    # TinyRenderer samples column i at the left edge of the i-th frustum slice and row j (counted from the top) at the
    # lower edge of its slice. Shifting the frustum by half a pixel puts every sample exactly on the pixel centre
    # (u, v) = (i, j) of the ROS/OpenCV convention (checked by tests/sim/test_sim_render.py).
    left = -k.cx * near / k.fx
    right = (k.width - k.cx) * near / k.fx
    top = (k.cy + 1.0) * near / k.fy
    bottom = -(k.height - 1.0 - k.cy) * near / k.fy
    return np.array(
        [
            [2 * near / (right - left), 0.0, (right + left) / (right - left), 0.0],
            [0.0, 2 * near / (top - bottom), (top + bottom) / (top - bottom), 0.0],
            [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0.0, 0.0, -1.0, 0.0],
        ]
    )


def view_matrix(world_T_cam: np.ndarray) -> np.ndarray:
    """Row-major 4x4 OpenGL view matrix (world -> OpenGL eye) of an optical-frame camera pose."""
    return _GL_FROM_OPTICAL @ np.linalg.inv(world_T_cam)


def depth_buffer_to_metric(buffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """OpenGL depth buffer in [0, 1] -> metres along the optical axis; the far plane (no hit) becomes NaN."""
    buf = np.asarray(buffer, dtype=np.float64)
    depth = far * near / (far - (far - near) * buf)
    depth[buf >= 1.0 - 1e-7] = np.nan
    return depth.astype(np.float32)


def render(
    client: int,
    intrinsics: Intrinsics,
    world_T_cam: np.ndarray,
    lighting: Lighting,
    *,
    near: float = 0.05,
    far: float = 6.0,
    segmentation: bool = True,
) -> RenderOutput:
    """Render RGB + depth (+ segmentation) of the scene in ``client`` with TinyRenderer in one pass."""
    w, h = intrinsics.width, intrinsics.height
    flags = 0 if segmentation else pb.ER_NO_SEGMENTATION_MASK
    _, _, rgba, depth_buf, seg = pb.getCameraImage(
        w,
        h,
        viewMatrix=view_matrix(world_T_cam).T.reshape(-1).tolist(),
        projectionMatrix=projection_matrix(intrinsics, near, far).T.reshape(-1).tolist(),
        lightDirection=list(lighting.direction),
        lightColor=list(lighting.colour),
        lightDistance=lighting.distance,
        shadow=int(lighting.shadow),
        lightAmbientCoeff=lighting.ambient,
        lightDiffuseCoeff=lighting.diffuse,
        lightSpecularCoeff=lighting.specular,
        renderer=pb.ER_TINY_RENDERER,
        flags=flags,
        physicsClientId=client,
    )
    rgba_arr = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)
    depth_arr = np.asarray(depth_buf, dtype=np.float32).reshape(h, w)
    if rgba_arr.shape != (h, w, 4) or depth_arr.shape != (h, w):
        raise RenderError(f"renderer returned {rgba_arr.shape}/{depth_arr.shape} for a {w}x{h} request")
    seg_arr = np.asarray(seg, dtype=np.int32).reshape(h, w) if segmentation else np.full((h, w), -1, dtype=np.int32)
    return RenderOutput(
        rgb=np.ascontiguousarray(rgba_arr[..., :3]),
        depth=depth_buffer_to_metric(depth_arr, near, far),
        segmentation=seg_arr,
    )


def random_colour(rng: np.random.Generator, *, saturated: bool) -> tuple[float, float, float, float]:
    """An RGBA colour: vivid for synthetic scenes, muted (everyday materials) for real-like ones."""
    hue = rng.uniform(0, 180)
    sat = rng.uniform(120, 255) if saturated else rng.uniform(10, 130)
    val = rng.uniform(120, 255) if saturated else rng.uniform(60, 230)
    hsv = np.array([[[hue, sat, val]]], dtype=np.uint8)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    return float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0


def procedural_texture(rng: np.random.Generator, kind: str, size: int = 128) -> np.ndarray:
    """A (size, size, 3) uint8 RGB texture of one of :data:`TEXTURE_KINDS`, drawn from ``rng``."""
    c0 = np.array(random_colour(rng, saturated=False)[:3])
    c1 = np.array(random_colour(rng, saturated=bool(rng.random() < 0.5))[:3])
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == "checker":
        n = rng.integers(2, 9)
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float64)
    elif kind == "stripes":
        ang, freq = rng.uniform(0, np.pi), rng.uniform(3, 12)
        t = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq * (np.cos(ang) * xx + np.sin(ang) * yy)))
    elif kind == "blotches":
        coarse = rng.random((int(rng.integers(3, 8)),) * 2)
        t = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == "wood":
        warp = cv2.resize(rng.random((4, 4)), (size, size), interpolation=cv2.INTER_CUBIC)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(6, 16) * yy + 2.0 * warp))
    elif kind == "grain":
        t = cv2.GaussianBlur(rng.random((size, size)), (0, 0), rng.uniform(0.6, 2.0))
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    else:
        raise RenderError(f"unknown texture kind {kind!r}; known: {', '.join(TEXTURE_KINDS)}")
    img = (1 - t)[..., None] * c0 + t[..., None] * c1
    img *= rng.uniform(0.9, 1.0, size=(size, size, 1))  # a little per-texel variation
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def load_texture(client: int, image: np.ndarray) -> int:
    """Hand an RGB uint8 image to the renderer; returns the texture id.

    PyBullet only loads textures from files, and reads the file completely when loading it, so the image goes
    through a temporary PNG that is deleted straight afterwards (nothing is left behind, even by killed workers'
    siblings).
    """
    data = np.ascontiguousarray(image, dtype=np.uint8)
    fd, name = tempfile.mkstemp(prefix="dcl_arc_texture_", suffix=".png")
    os.close(fd)
    try:
        if not cv2.imwrite(name, cv2.cvtColor(data, cv2.COLOR_RGB2BGR)):
            raise RenderError(f"could not write texture file {name}")
        tex = pb.loadTexture(name, physicsClientId=client)
    finally:
        os.unlink(name)
    if tex < 0:
        raise RenderError(f"renderer could not load texture file {name}")
    return int(tex)


def camera_effects(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Real-camera image effects for the real-like family: slight defocus, vignetting, gain, shot and read noise."""
    img: np.ndarray = cv2.GaussianBlur(rgb.astype(np.float32) / 255.0, (0, 0), float(rng.uniform(0.3, 0.9)))
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    img *= (1.0 - rng.uniform(0.05, 0.25) * r2 / 2.0)[..., None]
    img *= np.float32(rng.uniform(0.85, 1.15))
    img = img + rng.normal(0.0, 1.0, img.shape).astype(np.float32) * (0.004 + 0.02 * np.sqrt(np.clip(img, 0, 1)))
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
