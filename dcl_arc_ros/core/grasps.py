"""GG-CNN grasp maths: map decoding, peak picking, grasp rectangles, rectangle IoU, success rules and 3D grasps.

Pure numpy + OpenCV: no torch, no rclpy.

Conventions (the same as :class:`dcl_arc_ros.data.frame.GraspLabels`):

- Image coordinates are ``(u, v)`` = (column, row), pixel centres at integer coordinates.
- A grasp angle is the jaw-closing direction in the image, measured from +u towards +v, defined modulo pi and reported
  in [-pi/2, pi/2). The network predicts ``cos 2a`` and ``sin 2a`` so that the two ends of that modulo-pi range meet.
- ``width_px`` is the jaw opening in pixels, measured along the closing direction. ``length_px`` is the extent of the
  jaws across it; GG-CNN's convention, used when a length is not given, is half the opening.
- 3D grasps live in the camera optical frame (x right, y down, z forward). The gripper frame has z along the optical
  axis (the approach direction, into the scene), x along the closing direction and y = z cross x, so its orientation
  is a rotation about the optical axis by the closing angle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import PipelineError

#: GG-CNN divides the width target by this many pixels during training; the decoder multiplies it back.
GGCNN_WIDTH_SCALE_PX = 150.0

AngleSmoothing = Literal["angle", "vector"]


# --------------------------------------------------------------------------------------------------------------------
# Map decoding
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraspDecodeParams:
    """Everything the decoder needs, with GG-CNN's published values as defaults.

    angle_smoothing:
        ``"angle"`` blurs the angle map after ``atan2`` (what the reference GG-CNN code does; identical grasps to it).
        ``"vector"`` blurs the ``cos 2a`` / ``sin 2a`` maps first and takes ``atan2`` of the blurred vectors, which
        averages orientations correctly across the +-pi/2 wrap (blurring the angle itself averages +89 and -89 degrees
        to 0 degrees, i.e. the perpendicular grasp). The default follows the reference so that our grasps match it.
    """

    quality_sigma: float = 2.0
    angle_sigma: float = 2.0
    width_sigma: float = 1.0
    angle_smoothing: AngleSmoothing = "angle"
    width_scale_px: float = GGCNN_WIDTH_SCALE_PX
    min_distance: int = 20
    threshold: float = 0.2
    max_grasps: int = 5
    exclude_border: bool = True

    def __post_init__(self) -> None:
        for name in ("quality_sigma", "angle_sigma", "width_sigma"):
            if getattr(self, name) < 0:
                raise PipelineError(f"GraspDecodeParams.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.angle_smoothing not in ("angle", "vector"):
            raise PipelineError(
                f"GraspDecodeParams.angle_smoothing must be 'angle' or 'vector', got {self.angle_smoothing!r}"
            )
        if self.min_distance < 1:
            raise PipelineError(f"GraspDecodeParams.min_distance must be >= 1 pixel, got {self.min_distance!r}")
        if self.max_grasps < 1:
            raise PipelineError(f"GraspDecodeParams.max_grasps must be >= 1, got {self.max_grasps!r}")


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class GraspMaps:
    """Decoded, smoothed per-pixel grasp maps (all (H, W) float32)."""

    quality: np.ndarray
    angle: np.ndarray  # radians, modulo pi, in [-pi/2, pi/2] (the blur can move it slightly inside that range)
    width_px: np.ndarray


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur that matches ``scipy.ndimage.gaussian_filter(mode="nearest", truncate=4)``.

    This is also what ``skimage.filters.gaussian`` does by default. The kernel radius is ``int(4 sigma + 0.5)`` and the
    border replicates the edge pixel, so results agree with the reference to float rounding (about 1e-7).
    """
    img = np.asarray(image, dtype=np.float32)
    if sigma <= 0:
        return img.copy()
    radius = int(4.0 * sigma + 0.5)
    ksize = 2 * radius + 1
    return cv2.GaussianBlur(img, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)


def _as_2d(m: np.ndarray) -> np.ndarray:
    """Drop leading singleton axes (batch, channel): (1, 1, H, W) -> (H, W)."""
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    return m


def decode_grasp_maps(
    quality: np.ndarray,
    cos2: np.ndarray,
    sin2: np.ndarray,
    width: np.ndarray,
    params: GraspDecodeParams | None = None,
) -> GraspMaps:
    """Turn the four raw network maps into smoothed quality, angle (radians) and width (pixels) maps.

    ``width`` is the raw network output (the width target divided by ``params.width_scale_px``).
    Leading singleton dimensions (batch, channel) are squeezed.
    """
    p = params or GraspDecodeParams()
    maps = [_as_2d(np.asarray(m, dtype=np.float32)) for m in (quality, cos2, sin2, width)]
    q, c, s, w = maps
    shapes = {m.shape for m in maps}
    if len(shapes) != 1 or q.ndim != 2:
        raise PipelineError(f"grasp maps must be four (H, W) arrays of one shape, got shapes {[m.shape for m in maps]}")
    if p.angle_smoothing == "vector":
        angle = 0.5 * np.arctan2(gaussian_blur(s, p.angle_sigma), gaussian_blur(c, p.angle_sigma))
    else:
        angle = gaussian_blur(0.5 * np.arctan2(s, c), p.angle_sigma)
    return GraspMaps(
        quality=gaussian_blur(q, p.quality_sigma),
        angle=angle.astype(np.float32, copy=False),
        width_px=gaussian_blur(w * np.float32(p.width_scale_px), p.width_sigma),
    )


# --------------------------------------------------------------------------------------------------------------------
# Peak picking
# --------------------------------------------------------------------------------------------------------------------


def find_peaks(
    image: np.ndarray,
    *,
    min_distance: int = 1,
    threshold: float | None = None,
    num_peaks: int | None = None,
    exclude_border: bool | int = True,
) -> np.ndarray:
    """Local maxima of a 2D map, strongest first, as an (N, 2) int array of (row, col).

    Returns the same peaks, in the same order, as ``skimage.feature.peak_local_max(image, min_distance=...,
    threshold_abs=..., num_peaks=..., exclude_border=...)`` (scikit-image 0.19 and later), without scipy:

    1. a pixel is a candidate when it equals the maximum over the ``(2 d + 1)^2`` square around it (one
       ``cv2.dilate``) and is strictly above the threshold (the map minimum when ``threshold`` is None);
    2. candidates within ``exclude_border`` pixels of the edge are dropped (``True`` means ``min_distance``);
    3. candidates are visited strongest first (ties in row-major order); each one kept suppresses every later
       candidate at Chebyshev distance strictly below ``min_distance`` (only when ``min_distance > 1``, as in
       scikit-image), until ``num_peaks`` are kept.

    A constant map has no peaks. Only the few candidates that survive step 1 reach the Python-level loop of step 3,
    and that loop runs once per *kept* peak with a vectorised suppression.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise PipelineError(f"find_peaks needs a 2D map, got shape {img.shape}")
    if min_distance < 1:
        raise PipelineError(f"find_peaks min_distance must be >= 1, got {min_distance!r}")
    if img.dtype not in (np.float32, np.float64):
        img = img.astype(np.float32)
    size = 2 * int(min_distance) + 1
    # Out-of-image pixels never win a max filter, so the default (-inf) border equals scipy's "nearest" mode here.
    local_max = cv2.dilate(img, np.ones((size, size), np.uint8))
    candidates = img == local_max
    if candidates.all():
        return np.zeros((0, 2), dtype=np.intp)
    thr = float(img.min()) if threshold is None else float(threshold)
    candidates &= img > thr
    border = int(min_distance) if exclude_border is True else int(exclude_border)
    if border > 0:
        candidates[:border] = False
        candidates[-border:] = False
        candidates[:, :border] = False
        candidates[:, -border:] = False
    flat = np.flatnonzero(candidates)  # row-major, like np.nonzero
    if flat.size == 0:
        return np.zeros((0, 2), dtype=np.intp)
    rows, cols = np.divmod(flat, img.shape[1])
    order = np.argsort(-img[rows, cols], kind="stable")
    coords = np.stack([rows[order], cols[order]], axis=1).astype(np.intp)
    limit = coords.shape[0] if num_peaks is None else max(int(num_peaks), 0)
    if min_distance <= 1:
        return coords[:limit]
    alive = np.ones(coords.shape[0], dtype=bool)
    kept: list[int] = []
    i = 0
    while len(kept) < limit:
        remaining = np.flatnonzero(alive[i:])
        if remaining.size == 0:
            break
        i += int(remaining[0])
        kept.append(i)
        cheb = np.abs(coords[i + 1 :] - coords[i]).max(axis=1)
        alive[i + 1 :] &= cheb >= min_distance
        i += 1
    return coords[kept]


# --------------------------------------------------------------------------------------------------------------------
# Rectangles
# --------------------------------------------------------------------------------------------------------------------


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap grasp angles (modulo pi) into [-pi/2, pi/2)."""
    return (np.asarray(angle, dtype=np.float64) + np.pi / 2) % np.pi - np.pi / 2


def angle_difference(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Absolute difference of grasp angles modulo pi, in [0, pi/2]."""
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) % np.pi
    return np.minimum(d, np.pi - d)


@dataclass(frozen=True)
class GraspRect:
    """An oriented grasp rectangle in image pixels."""

    cx: float
    cy: float
    angle: float  # closing direction, radians from +u towards +v, modulo pi
    width_px: float  # jaw opening, along the closing direction
    length_px: float  # jaw extent, across the closing direction
    quality: float = 1.0

    def corners(self) -> np.ndarray:
        """(4, 2) float64 corners (u, v) in order around the rectangle."""
        return rect_corners(self.as_array()[None])[0]

    def as_array(self) -> np.ndarray:
        """(6,) float64 row (cx, cy, angle, width_px, length_px, quality)."""
        return np.array([self.cx, self.cy, self.angle, self.width_px, self.length_px, self.quality], dtype=np.float64)


def rects_from_labels(rects: np.ndarray, *, length_ratio: float = 0.5) -> np.ndarray:
    """GraspLabels rows (cx, cy, angle, width_px, quality) -> (N, 6) rows with length = ratio * width inserted."""
    r = np.asarray(rects, dtype=np.float64).reshape(-1, 5)
    return np.concatenate([r[:, :4], length_ratio * r[:, 3:4], r[:, 4:5]], axis=1)


def rect_corners(rects: np.ndarray) -> np.ndarray:
    """(N, >=5) rows (cx, cy, angle, width_px, length_px, ...) -> (N, 4, 2) corners, vectorised."""
    r = np.asarray(rects, dtype=np.float64).reshape(-1, np.shape(rects)[-1])
    c, s = np.cos(r[:, 2]), np.sin(r[:, 2])
    along = np.stack([c, s], axis=1) * (r[:, 3:4] / 2)  # half the opening, along the closing direction
    across = np.stack([-s, c], axis=1) * (r[:, 4:5] / 2)  # half the jaw length, across it
    centre = r[:, 0:2]
    return np.stack(
        [centre - along - across, centre + along - across, centre + along + across, centre - along + across], axis=1
    )


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _clip_convex(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: the part of convex polygon ``subject`` inside convex polygon ``clip`` (either winding)."""
    orientation = np.sign(_signed_area(clip)) or 1.0
    out = subject
    n = clip.shape[0]
    for k in range(n):
        if out.shape[0] == 0:
            break
        a, b = clip[k], clip[(k + 1) % n]
        edge = b - a
        side = orientation * (edge[0] * (out[:, 1] - a[1]) - edge[1] * (out[:, 0] - a[0]))
        inside = side >= 0
        nxt_side = np.roll(side, -1)
        nxt = np.roll(out, -1, axis=0)
        pts: list[np.ndarray] = []
        for p, q, sp, sq, ip in zip(out, nxt, side, nxt_side, inside, strict=True):
            if ip:
                pts.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                pts.append(p + t * (q - p))
        out = np.array(pts, dtype=np.float64).reshape(-1, 2)
    return out


def _signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def rect_iou(a: np.ndarray | GraspRect, b: np.ndarray | GraspRect) -> float:
    """Intersection over union of two oriented rectangles (rows as in :func:`rect_corners`, or GraspRect)."""
    ra = a.as_array() if isinstance(a, GraspRect) else np.asarray(a, dtype=np.float64)
    rb = b.as_array() if isinstance(b, GraspRect) else np.asarray(b, dtype=np.float64)
    return float(rect_iou_matrix(ra[None], rb[None])[0, 0])


def rect_iou_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) IoU between predicted and ground-truth rectangles (rows as in :func:`rect_corners`).

    Pairs whose circumscribed circles do not meet are 0 without clipping, so only nearby pairs pay for the exact
    convex-polygon intersection.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(-1, np.shape(pred)[-1])
    g = np.asarray(gt, dtype=np.float64).reshape(-1, np.shape(gt)[-1])
    out = np.zeros((p.shape[0], g.shape[0]), dtype=np.float64)
    if out.size == 0:
        return out
    pc, gc = rect_corners(p), rect_corners(g)
    area_p = np.abs(p[:, 3] * p[:, 4])
    area_g = np.abs(g[:, 3] * g[:, 4])
    rad_p = 0.5 * np.hypot(p[:, 3], p[:, 4])
    rad_g = 0.5 * np.hypot(g[:, 3], g[:, 4])
    dist = np.linalg.norm(p[:, None, :2] - g[None, :, :2], axis=2)
    for i, j in zip(*np.nonzero(dist < rad_p[:, None] + rad_g[None, :]), strict=True):
        inter_poly = _clip_convex(pc[i], gc[j])
        inter = _polygon_area(inter_poly) if inter_poly.shape[0] >= 3 else 0.0
        union = area_p[i] + area_g[j] - inter
        out[i, j] = inter / union if union > 0 else 0.0
    return out


# --------------------------------------------------------------------------------------------------------------------
# Success rules and top-k evaluation
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuccessRule:
    """A grasp matches a ground-truth rectangle when IoU > ``min_iou`` and (optionally) the angles agree."""

    name: str
    min_iou: float
    max_angle_rad: float | None = None  # None: no angle condition
    description: str = ""

    def matches(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """(P, G) bool: prediction i matches ground truth j."""
        p = np.asarray(pred, dtype=np.float64).reshape(-1, np.shape(pred)[-1])
        g = np.asarray(gt, dtype=np.float64).reshape(-1, np.shape(gt)[-1])
        ok = rect_iou_matrix(p, g) > self.min_iou
        if self.max_angle_rad is not None:
            ok &= angle_difference(p[:, None, 2], g[None, :, 2]) < self.max_angle_rad
        return ok


#: The two rules the DCL paper's grasp evaluation reports.
SUCCESS_RULES: dict[str, SuccessRule] = {
    "cornell": SuccessRule(
        "cornell", 0.25, math.radians(30.0), "Cornell rule: IoU > 0.25 and angle within 30 degrees (modulo pi)"
    ),
    "iou50": SuccessRule("iou50", 0.5, None, "DCL paper's rule: IoU > 0.5 with a ground-truth grasp"),
}


def get_success_rule(name: str) -> SuccessRule:
    try:
        return SUCCESS_RULES[name]
    except KeyError:
        raise PipelineError(f"unknown grasp success rule {name!r}; known: {sorted(SUCCESS_RULES)}") from None


def grasp_success(pred: np.ndarray, gt: np.ndarray, *, rule: str | SuccessRule = "cornell", top_k: int = 1) -> bool:
    """True when any of the first ``top_k`` predictions (already sorted by quality) matches any ground truth."""
    r = get_success_rule(rule) if isinstance(rule, str) else rule
    p = np.asarray(pred, dtype=np.float64).reshape(-1, np.shape(pred)[-1])[: max(int(top_k), 0)]
    g = np.asarray(gt, dtype=np.float64).reshape(-1, np.shape(gt)[-1])
    if p.shape[0] == 0 or g.shape[0] == 0:
        return False
    return bool(r.matches(p, g).any())


def grasp_metrics(
    pred: np.ndarray, gt: np.ndarray, *, top_ks: Sequence[int] = (1, 3), rules: Sequence[str] = ("cornell", "iou50")
) -> dict[str, bool]:
    """Success of one frame for every rule and k, e.g. ``{"cornell_top1": True, "iou50_top3": False, ...}``.

    ``pred`` rows are sorted by quality (best first); ``gt`` rows as in :func:`rect_corners` (see
    :func:`rects_from_labels` for GraspLabels). The IoU matrix is computed once for the largest k.
    """
    k_max = max(top_ks, default=0)
    p = np.asarray(pred, dtype=np.float64).reshape(-1, np.shape(pred)[-1])[:k_max]
    g = np.asarray(gt, dtype=np.float64).reshape(-1, np.shape(gt)[-1])
    iou = rect_iou_matrix(p, g)
    angle_gap = angle_difference(p[:, None, 2], g[None, :, 2])
    out: dict[str, bool] = {}
    for name in rules:
        rule = get_success_rule(name)
        ok = iou > rule.min_iou
        if rule.max_angle_rad is not None:
            ok &= angle_gap < rule.max_angle_rad
        hit: np.ndarray = np.asarray(np.asarray(ok).any(axis=1))  # (P,): prediction i matches some ground truth
        for k in top_ks:
            out[f"{name}_top{k}"] = bool(hit[:k].any())
    return out


# --------------------------------------------------------------------------------------------------------------------
# From maps to rectangles
# --------------------------------------------------------------------------------------------------------------------


def detect_grasp_rects(maps: GraspMaps, params: GraspDecodeParams | None = None) -> np.ndarray:
    """Peaks of the quality map -> (N, 6) rows (cx, cy, angle, width_px, length_px, quality), best first.

    The jaw length follows GG-CNN: half the opening.
    """
    p = params or GraspDecodeParams()
    peaks = find_peaks(
        maps.quality,
        min_distance=p.min_distance,
        threshold=p.threshold,
        num_peaks=p.max_grasps,
        exclude_border=p.exclude_border,
    )
    rows, cols = peaks[:, 0], peaks[:, 1]
    width = maps.width_px[rows, cols].astype(np.float64)
    return np.stack(
        [
            cols.astype(np.float64),
            rows.astype(np.float64),
            wrap_angle(maps.angle[rows, cols]),
            width,
            0.5 * width,
            maps.quality[rows, cols].astype(np.float64),
        ],
        axis=1,
    ).reshape(-1, 6)


# --------------------------------------------------------------------------------------------------------------------
# 3D grasps
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Grasp3D:
    """A parallel-jaw grasp in the camera optical frame.

    position: (3,) grasp centre in metres (on the surface seen at the grasp pixel).
    quaternion: (4,) (x, y, z, w) of the gripper frame (see the module docstring): a rotation about the optical axis.
    """

    position: np.ndarray
    quaternion: np.ndarray
    angle: float  # rotation about the optical axis, radians, modulo pi in [-pi/2, pi/2)
    width_m: float  # jaw opening in metres
    quality: float
    rect: GraspRect  # the image rectangle it came from (full-image pixels)


def quaternion_about_z(angle: np.ndarray | float) -> np.ndarray:
    """(..., 4) quaternions (x, y, z, w) of rotations about the z axis by ``angle`` radians."""
    a = np.asarray(angle, dtype=np.float64)
    half = 0.5 * a
    zeros = np.zeros_like(half)
    return np.stack([zeros, zeros, np.sin(half), np.cos(half)], axis=-1)


def robust_depth_at(depth_m: np.ndarray, u: np.ndarray, v: np.ndarray, *, half_window: int = 2) -> np.ndarray:
    """Median of the valid (finite, > 0) depth in a (2 h + 1)^2 window around each (u, v); NaN when none is valid."""
    d = np.asarray(depth_m, dtype=np.float32)
    uu = np.rint(np.asarray(u, dtype=np.float64)).astype(np.intp).reshape(-1)
    vv = np.rint(np.asarray(v, dtype=np.float64)).astype(np.intp).reshape(-1)
    h, w = d.shape
    offs = np.arange(-half_window, half_window + 1)
    rr = np.clip(vv[:, None, None] + offs[None, :, None], 0, h - 1)
    cc = np.clip(uu[:, None, None] + offs[None, None, :], 0, w - 1)
    patch = d[rr, cc].reshape(uu.size, offs.size**2).astype(np.float64)
    patch[~(np.isfinite(patch) & (patch > 0))] = np.inf  # invalid values sort last
    patch.sort(axis=1)
    n_valid = np.isfinite(patch).sum(axis=1)
    rows = np.arange(uu.size)
    lo = patch[rows, np.maximum(n_valid - 1, 0) // 2]
    hi = patch[rows, np.maximum(n_valid, 1) // 2] if patch.shape[1] > 1 else lo
    with np.errstate(invalid="ignore"):
        return np.where(n_valid > 0, 0.5 * (lo + hi), np.nan)


def grasps_to_3d(
    rects: np.ndarray,
    depth_m: np.ndarray,
    intrinsics: Intrinsics,
    *,
    half_window: int = 2,
) -> list[Grasp3D]:
    """Image rectangles (full-image pixels, rows as in :func:`rect_corners`) -> 3D grasps in the camera frame.

    The depth of each grasp is the median of the valid depth in a small window around its centre (a single pixel can
    be a hole or a flying pixel). Grasps with no valid depth there are dropped. The two jaw tips are deprojected at
    that depth: their distance is the opening in metres and their direction gives the angle about the optical axis
    (equal to the image angle when fx == fy). The order of ``rects`` is kept.
    """
    r = np.asarray(rects, dtype=np.float64).reshape(-1, np.shape(rects)[-1])
    if r.shape[0] == 0:
        return []
    z = robust_depth_at(depth_m, r[:, 0], r[:, 1], half_window=half_window)
    ok = np.isfinite(z)
    r, z = r[ok], z[ok]
    centre = intrinsics.deproject(r[:, 0], r[:, 1], z)
    du, dv = 0.5 * r[:, 3] * np.cos(r[:, 2]), 0.5 * r[:, 3] * np.sin(r[:, 2])
    tip_a = intrinsics.deproject(r[:, 0] - du, r[:, 1] - dv, z)
    tip_b = intrinsics.deproject(r[:, 0] + du, r[:, 1] + dv, z)
    jaw = tip_b - tip_a
    width_m = np.linalg.norm(jaw, axis=1)
    angle = wrap_angle(np.arctan2(jaw[:, 1], jaw[:, 0]))
    quats = quaternion_about_z(angle)
    quality = r[:, 5] if r.shape[1] > 5 else np.ones(r.shape[0])
    length = r[:, 4] if r.shape[1] > 4 else 0.5 * r[:, 3]
    return [
        Grasp3D(
            position=np.asarray(centre[i], dtype=np.float64),
            quaternion=quats[i],
            angle=float(angle[i]),
            width_m=float(width_m[i]),
            quality=float(quality[i]),
            rect=GraspRect(
                float(r[i, 0]), float(r[i, 1]), float(r[i, 2]), float(r[i, 3]), float(length[i]), float(quality[i])
            ),
        )
        for i in range(r.shape[0])
    ]


# --------------------------------------------------------------------------------------------------------------------
# Network input
# --------------------------------------------------------------------------------------------------------------------


def normalise_depth_for_ggcnn(depth_filled_m: np.ndarray) -> np.ndarray:
    """GG-CNN's input normalisation: depth (no holes) minus its mean, clipped to [-1, 1], float32."""
    d = np.asarray(depth_filled_m, dtype=np.float32)
    if not np.all(np.isfinite(d)):
        raise PipelineError("normalise_depth_for_ggcnn needs depth without NaN/inf: fill the holes first")
    return np.clip(d - d.mean(dtype=np.float64), -1.0, 1.0).astype(np.float32)
