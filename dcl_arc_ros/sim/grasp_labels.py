"""Antipodal parallel-jaw grasp labels: oriented rectangles plus GG-CNN dense maps, from geometry and masks.

The gripper approaches along the camera ray (the GG-CNN setting), so its jaws touch the object on its silhouette as
seen from the camera: the contour generator, whose surface normals are perpendicular to the ray and point along the
silhouette's outward 2D normal. For every candidate centre (a regular pixel grid on the visible, eroded mask) and
every closing angle this module

1. walks from the centre along the closing line across the object's full silhouette (the object rendered alone)
   to the two contact points; both contacts and the whole segment between them must show this object in the frame
   (nothing else lies between the jaws);
2. scores antipodality: both contact normals (outward normals of the smoothed silhouette) must lie in the friction
   cone (half-angle ``atan(mu)``) around the closing line;
3. places two fingers just outside the contacts, reaching from the object's top halfway down to the highest point
   of the support plane under them (at most ``finger_depth_m``), and rejects the grasp if the object is thinner than
   ``min_thickness_m`` there or if the clean depth anywhere under a finger footprint is nearer than the finger tip,
   i.e. if a finger would hit the table, the tray, or another object;
4. scores ``quality = antipodal margin * (0.5 + 0.5 * finger clearance)``, the antipodal margin being 1 for contact
   normals exactly along the closing line and 0 at the friction-cone edge, the clearance rising to 1 at 2 cm of free
   depth under the fingers;
5. keeps at most a few well-spread rectangles per object (greedy non-maximum suppression), and paints every valid
   centre's best grasp into the dense quality / cos 2θ / sin 2θ / width maps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data.frame import GraspLabels


@dataclass(frozen=True)
class GripperParams:
    """A parallel-jaw gripper and the labelling choices."""

    max_opening_m: float = 0.085
    finger_width_m: float = 0.02  # finger extent across the closing direction
    finger_thickness_m: float = 0.01  # finger extent along the closing direction
    finger_depth_m: float = 0.03  # how far the fingers reach beyond the object's top
    clearance_m: float = 0.005  # gap between a contact and the finger before closing
    collision_margin_m: float = 0.004
    friction: float = 0.5
    min_thickness_m: float = 0.01
    n_angles: int = 12
    grid_px_per_160: float = 2.0  # candidate-centre spacing at 160 px image width (scaled with resolution)
    max_rects_per_object: int = 8
    min_visible_fraction: float = 0.3


def empty_grasps(height: int, width: int) -> GraspLabels:
    # separate np.zeros calls, not copies of one: fresh zero pages cost nothing until a grasp is painted on them
    return GraspLabels(
        rects=np.zeros((0, 5), dtype=np.float32),
        instance_ids=np.zeros(0, dtype=np.int32),
        width_m=np.zeros(0, dtype=np.float32),
        quality_map=np.zeros((height, width), dtype=np.float32),
        cos2_map=np.zeros((height, width), dtype=np.float32),
        sin2_map=np.zeros((height, width), dtype=np.float32),
        width_map=np.zeros((height, width), dtype=np.float32),
    )


def support_depth(
    intrinsics: Intrinsics, world_T_cam: np.ndarray, support_height: float, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Depth (metres along the optical axis) where the rays through pixels ``(u, v)`` meet the support plane.

    NaN where the ray runs parallel to or away from the plane.
    """
    cam_T_world = np.linalg.inv(world_T_cam)
    normal = cam_T_world[:3, :3] @ np.array([0.0, 0.0, 1.0])
    offset = float(normal @ (cam_T_world @ np.array([0.0, 0.0, support_height, 1.0]))[:3])
    rays = np.empty((*np.shape(u), 3), dtype=np.result_type(u, v, np.float16))  # what np.stack(..., -1) would give
    np.subtract(u, intrinsics.cx, out=rays[..., 0])
    rays[..., 0] /= intrinsics.fx
    np.subtract(v, intrinsics.cy, out=rays[..., 1])
    rays[..., 1] /= intrinsics.fy
    rays[..., 2] = 1.0
    denom = rays @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = offset / denom
    return np.where(t > 0, t, np.nan)


def _sample(img: np.ndarray, u: np.ndarray, v: np.ndarray, fill: float | bool) -> np.ndarray:
    """Nearest-pixel lookup with ``fill`` outside the image."""
    return _Lookup(u, v, img.shape[:2]).read(img, fill)


class _Lookup:
    """Nearest-pixel positions of points ``(u, v)`` in an image of ``shape``, to read several images at once.

    A point is inside when ``-0.5 <= u < w - 0.5`` and ``-0.5 <= v < h - 0.5`` (NaN never is); inside points read
    the pixel ``(rint(v), rint(u))``, which is always in the image there, so no clamping is needed.
    """

    def __init__(self, u: np.ndarray, v: np.ndarray, shape: tuple[int, ...]) -> None:
        h, w = shape[0], shape[1]
        self.inside = (u >= -0.5) & (u < w - 0.5) & (v >= -0.5) & (v < h - 0.5)  # NaN coordinates compare False
        flat = np.rint(v) * w + np.rint(u)  # exact: small whole numbers in float64
        self.index = np.where(self.inside, flat, 0.0).astype(np.intp)

    def read(self, img: np.ndarray, fill: float | bool) -> np.ndarray:
        values = img.reshape(-1)[self.index]
        return np.where(self.inside, values, np.asarray(fill, dtype=img.dtype))


def _outward_normals(silhouette: np.ndarray, margin: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Unit outward 2D normals (nu, nv) of a binary silhouette, from the gradient of its smoothed indicator.

    Only the silhouette's bounding box grown by ``margin`` pixels is filtered; elsewhere the normals are zero.
    """
    nu = np.zeros(silhouette.shape, dtype=np.float32)
    nv = np.zeros(silhouette.shape, dtype=np.float32)
    rows, cols = np.flatnonzero(silhouette.any(axis=1)), np.flatnonzero(silhouette.any(axis=0))
    if rows.size == 0:
        return nu, nv
    y0, y1 = max(0, rows[0] - margin), min(silhouette.shape[0], rows[-1] + margin + 1)
    x0, x1 = max(0, cols[0] - margin), min(silhouette.shape[1], cols[-1] + margin + 1)
    smooth = cv2.GaussianBlur(silhouette[y0:y1, x0:x1].astype(np.float32), (0, 0), 1.5)
    gu = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gv = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    norm = np.sqrt(gu * gu + gv * gv)
    edge = norm > 1e-6
    np.divide(np.negative(gu, out=gu), norm, out=nu[y0:y1, x0:x1], where=edge)
    np.divide(np.negative(gv, out=gv), norm, out=nv[y0:y1, x0:x1], where=edge)
    return nu, nv


@dataclass(frozen=True)
class _Candidates:
    cu: np.ndarray  # (N,) centre column
    cv: np.ndarray  # (N,) centre row
    angle: np.ndarray  # (N,)
    width_px: np.ndarray  # (N,) jaw opening in pixels (contacts + clearance)
    width_m: np.ndarray  # (N,)
    quality: np.ndarray  # (N,) 0 = invalid


def _object_candidates(
    sil: np.ndarray,
    visible: np.ndarray,
    depth: np.ndarray,
    intrinsics: Intrinsics,
    world_T_cam: np.ndarray,
    support_height: float,
    params: GripperParams,
    grid: int,
    origin: tuple[int, int],
    image_size: tuple[int, int],
) -> _Candidates | None:
    """Candidates inside a window of the image whose top-left pixel is ``origin`` (inputs are already cropped).

    Returned centres are in full-image pixel coordinates.
    """
    h, w = depth.shape
    x0, y0 = origin
    full_w, full_h = image_size
    # bool arrays are 0/1 bytes: OpenCV erodes them as uint8 views, without copies
    core = cv2.erode(np.ascontiguousarray(visible).view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)
    # the candidate grid: rows gy0, gy0 + grid, ... and columns gx0, gx0 + grid, ... of the window
    gy0, gx0 = (grid // 2 - y0) % grid, (grid // 2 - x0) % grid
    on = core[gy0::grid, gx0::grid] & np.isfinite(depth[gy0::grid, gx0::grid])
    on_rows, on_cols = np.nonzero(on)  # row-major, as the grid's boolean selection
    cu = (gx0 + grid * on_cols).astype(np.float64)
    cv = (gy0 + grid * on_rows).astype(np.float64)
    if cu.size == 0:
        return None
    angles = -np.pi / 2 + np.arange(params.n_angles) * (np.pi / params.n_angles)
    cu = np.repeat(cu, params.n_angles)
    cv = np.repeat(cv, params.n_angles)
    ang = np.tile(angles, len(on_rows))
    du, dv = np.cos(ang), np.sin(ang)
    z_c = depth[cv.astype(np.int64), cu.astype(np.int64)].astype(np.float64)
    px_per_m = intrinsics.fx / z_c
    max_half = int(np.ceil(0.5 * params.max_opening_m * px_per_m.max())) + 2

    # march along the closing line one pixel at a time: centres are whole pixels, so the rounded offsets of every
    # step depend only on the angle; with the silhouette padded (as outside) by the march length no bounds checks are
    # needed
    pad = max_half + 1
    outside = np.ones((h + 2 * pad, w + 2 * pad), dtype=bool)
    np.logical_not(sil, out=outside[pad : pad + h, pad : pad + w])
    outside = outside.reshape(-1)
    row = w + 2 * pad
    base = (cv.astype(np.int64) + pad) * row + (cu.astype(np.int64) + pad)
    steps = np.arange(1, max_half + 1, dtype=np.float64)
    centre_base = base[:: params.n_angles]  # candidates are centre-major, angle-minor

    def run_length(sign: float) -> np.ndarray:
        off_u = np.rint(sign * steps[None, :] * np.cos(angles)[:, None]).astype(np.int64)
        off_v = np.rint(sign * steps[None, :] * np.sin(angles)[:, None]).astype(np.int64)
        table = off_v * row + off_u  # (n_angles, max_half)
        first_out = np.empty(len(base), dtype=np.float64)
        rows = np.arange(len(centre_base))
        for a in range(params.n_angles):  # one angle at a time: no (N, max_half) gather of the offset table
            exited = outside[centre_base[:, None] + table[a]]
            first = exited.argmax(axis=1)  # index of first outside step; 0 also when none is outside
            first_out[a :: params.n_angles] = np.where(exited[rows, first], first, max_half)
        return first_out  # number of inside steps beyond the centre

    t_neg, t_pos = run_length(-1.0), run_length(1.0)
    closed = (t_neg < max_half) & (t_pos < max_half)
    # contacts: last inside pixels on each side
    p1u, p1v = cu - t_neg * du, cv - t_neg * dv
    p2u, p2v = cu + t_pos * du, cv + t_pos * dv
    span_px = t_neg + t_pos + 1.0
    clearance_px = params.clearance_m * px_per_m
    width_px = span_px + 2.0 * clearance_px
    width_m = width_px / px_per_m
    fits = closed & (width_m <= params.max_opening_m)

    # both contacts must be seen in this frame, otherwise the object's edge there is unknown
    at_p1, at_p2 = _Lookup(p1u, p1v, (h, w)), _Lookup(p2u, p2v, (h, w))
    seen = at_p1.read(visible, False) & at_p2.read(visible, False)

    nu, nv = _outward_normals(sil, margin=4)
    n1u, n1v = at_p1.read(nu, 0.0), at_p1.read(nv, 0.0)
    n2u, n2v = at_p2.read(nu, 0.0), at_p2.read(nv, 0.0)
    cos1 = -(n1u * du + n1v * dv)  # contact 1 normal must point along -d
    cos2 = n2u * du + n2v * dv
    cos_cone = np.cos(np.arctan(params.friction))
    antipodal = np.clip((np.minimum(cos1, cos2) - cos_cone) / (1.0 - cos_cone), 0.0, 1.0)

    # Only candidates that fit, see both contacts and have both contact normals inside the friction cone can score
    # above zero; the remaining tests run on those alone. Every test is per candidate (row-wise), so their values
    # are the ones the whole set would give, and every other candidate keeps quality 0 as before.
    quality = np.zeros(len(cu))
    live = np.flatnonzero(fits & seen & (antipodal > 0))
    if live.size == 0:
        return _Candidates(cu + x0, cv + y0, ang, width_px, width_m, quality)
    p1u, p1v, p2u, p2v = p1u[live], p1v[live], p2u[live], p2v[live]
    du, dv, px_per_m, clearance_px = du[live], dv[live], px_per_m[live], clearance_px[live]

    # the object's top along the closing segment and its thickness above the support under the centre
    seg = np.linspace(-1.0, 1.0, 9)[None, :]
    mid_u, mid_v = 0.5 * (p1u + p2u), 0.5 * (p1v + p2v)
    half_u, half_v = 0.5 * (p2u - p1u), 0.5 * (p2v - p1v)
    seg_u, seg_v = mid_u[:, None] + seg * half_u[:, None], mid_v[:, None] + seg * half_v[:, None]
    on_segment = _Lookup(seg_u, seg_v, (h, w))
    seg_depth = on_segment.read(depth, np.nan)
    # nothing else may lie between the jaws: the whole closing segment must show this object
    unobstructed = on_segment.read(visible, False).all(axis=1)
    with np.errstate(all="ignore"):
        z_top = np.nanmin(np.where(np.isfinite(seg_depth), seg_depth, np.inf), axis=1)

    # finger footprints: a 3 x 3 grid of samples over each finger, just outside the contacts
    finger_half_w = 0.5 * params.finger_width_m * px_per_m
    along = clearance_px[:, None] + params.finger_thickness_m * px_per_m[:, None] * np.array([0.15, 0.5, 0.85])
    across = finger_half_w[:, None] * np.array([-1.0, 0.0, 1.0])
    fu_parts, fv_parts = [], []
    for sign, pu, pv in ((-1.0, p1u, p1v), (1.0, p2u, p2v)):
        a = sign * along[:, :, None]  # (N, 3 along, 1)
        c = across[:, None, :]  # (N, 1, 3 across)
        fu_parts.append((pu[:, None, None] + a * du[:, None, None] - c * dv[:, None, None]).reshape(live.size, -1))
        fv_parts.append((pv[:, None, None] + a * dv[:, None, None] + c * du[:, None, None]).reshape(live.size, -1))
    fu, fv = np.concatenate(fu_parts, axis=1), np.concatenate(fv_parts, axis=1)

    # the fingers reach halfway from the object's top down to the highest support point under them (seen from a
    # tilted camera the support rises towards the near finger), at most finger_depth_m
    with np.errstate(invalid="ignore"):
        z_support = np.nanmin(support_depth(intrinsics, world_T_cam, support_height, fu, fv), axis=1)
    thickness = z_support - z_top
    thick_enough = np.nan_to_num(thickness, nan=0.0) >= params.min_thickness_m
    z_tip = z_top + np.clip(0.5 * np.nan_to_num(thickness, nan=0.0), 0.005, params.finger_depth_m)

    # collision: anything the depth map sees under a finger footprint nearer than the finger tip
    d = _sample(depth, fu, fv, np.nan)
    outside_image = (fu + x0 < -0.5) | (fu + x0 > full_w - 0.5) | (fv + y0 < -0.5) | (fv + y0 > full_h - 0.5)
    d = np.where(outside_image, -np.inf, np.where(np.isfinite(d), d, np.inf))  # no hit = free; off-image = unknown
    free_depth = d.min(axis=1)
    slack = free_depth - z_tip
    collision_free = slack >= params.collision_margin_m
    clearance_score = np.clip(slack / 0.02, 0.0, 1.0)

    valid = unobstructed & thick_enough & collision_free & np.isfinite(z_top)  # fits and seen hold for all
    quality[live] = np.where(valid, antipodal[live] * (0.5 + 0.5 * clearance_score), 0.0)
    return _Candidates(cu + x0, cv + y0, ang, width_px, width_m, quality)


def _window(
    mask: np.ndarray, depth: np.ndarray, intrinsics: Intrinsics, params: GripperParams
) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the mask's bounding box grown by the farthest a finger can reach beyond a centre."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = rows[0], rows[-1] + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))  # only the occupied rows: the full-height column scan is slow
    x0, x1 = cols[0], cols[-1] + 1
    inside = depth[y0:y1, x0:x1]
    if not np.isfinite(inside).any():
        return None
    reach_m = 0.5 * params.max_opening_m + 2 * params.clearance_m + params.finger_thickness_m + params.finger_width_m
    margin = int(np.ceil(reach_m * intrinsics.fx / float(np.nanmin(inside)))) + 3
    h, w = depth.shape
    return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)


def _suppress(c: _Candidates, keep: int, min_dist_px: float) -> np.ndarray:
    """Indices of up to ``keep`` good candidates, greedily spread: a candidate is skipped when an already chosen one
    lies within ``min_dist_px`` and closes within 30 degrees of it."""
    order = np.argsort(-c.quality, kind="stable")
    order = order[c.quality[order] > 0][: 50 * keep]
    us, vs, angles = c.cu[order].tolist(), c.cv[order].tolist(), c.angle[order].tolist()
    min_d2 = min_dist_px * min_dist_px
    chosen: list[int] = []
    for k, (u, v, a) in enumerate(zip(us, vs, angles, strict=True)):
        if len(chosen) >= keep:
            break
        clash = False
        for j in chosen:
            dang = abs(a - angles[j]) % math.pi  # jaw angles are equivalent modulo pi
            dang = min(dang, math.pi - dang)
            if (u - us[j]) ** 2 + (v - vs[j]) ** 2 < min_d2 and dang < math.pi / 6:
                clash = True
                break
        if not clash:
            chosen.append(k)
    return order[np.asarray(chosen, dtype=np.int64)]


def grasp_labels(
    instances: np.ndarray,
    silhouettes: Mapping[int, np.ndarray],
    depth_clean: np.ndarray,
    intrinsics: Intrinsics,
    world_T_cam: np.ndarray,
    support_height: float,
    params: GripperParams | None = None,
) -> GraspLabels:
    """Grasp rectangles and GG-CNN maps for every object in ``silhouettes`` (instance id -> full silhouette)."""
    params = params or GripperParams()
    h, w = depth_clean.shape
    out = empty_grasps(h, w)
    grid = max(1, round(params.grid_px_per_160 * w / 160.0))
    rects, ids, widths = [], [], []
    flat_instances = instances.reshape(-1)
    if flat_instances.min(initial=0) < 0:
        flat_instances = flat_instances.clip(0)
    visible_counts = np.bincount(flat_instances, minlength=max(silhouettes, default=0) + 1)
    for inst, sil in sorted(silhouettes.items()):
        window = _window(sil, depth_clean, intrinsics, params)
        if window is None:
            continue
        x0, y0, x1, y1 = window
        sil_win = sil[y0:y1, x0:x1]
        if visible_counts[inst] < max(4, params.min_visible_fraction * np.count_nonzero(sil_win)):
            continue
        vis_win = instances[y0:y1, x0:x1] == inst
        c = _object_candidates(
            sil_win,
            vis_win,
            depth_clean[y0:y1, x0:x1],
            intrinsics.crop(x0, y0, x1 - x0, y1 - y0),
            world_T_cam,
            support_height,
            params,
            grid,
            (x0, y0),
            (w, h),
        )
        if c is None or not np.any(c.quality > 0):
            continue
        # dense maps: the best angle at each valid centre, painted over its grid cell (inside the visible mask);
        # centre u = grid // 2 + k * grid owns the pixels k * grid <= u < (k + 1) * grid
        q = c.quality.reshape(-1, params.n_angles)
        rows = np.arange(q.shape[0]) * params.n_angles + q.argmax(axis=1)
        good = rows[c.quality[rows] > 0]
        cells = np.full(((h + grid - 1) // grid, (w + grid - 1) // grid), -1, dtype=np.int64)
        cells[c.cv[good].astype(np.int64) // grid, c.cu[good].astype(np.int64) // grid] = good
        # cells[v // grid, u // grid] over the window: the covering cells, each repeated grid x grid, then cropped
        cy0, cx0 = y0 // grid, x0 // grid
        block = cells[cy0 : (y1 - 1) // grid + 1, cx0 : (x1 - 1) // grid + 1]
        owner = np.repeat(np.repeat(block, grid, axis=0), grid, axis=1)
        owner = owner[y0 - cy0 * grid : y1 - cy0 * grid, x0 - cx0 * grid : x1 - cx0 * grid]
        paint = (owner >= 0) & vis_win
        g = owner[paint]
        for target, values in (
            (out.quality_map, c.quality[g]),
            (out.cos2_map, np.cos(2 * c.angle[g])),
            (out.sin2_map, np.sin(2 * c.angle[g])),
            (out.width_map, c.width_px[g]),
        ):
            target[y0:y1, x0:x1][paint] = values
        pick = _suppress(c, params.max_rects_per_object, min_dist_px=3.0 * grid)
        rects.append(np.stack([c.cu[pick], c.cv[pick], c.angle[pick], c.width_px[pick], c.quality[pick]], axis=1))
        ids.append(np.full(len(pick), inst, dtype=np.int32))
        widths.append(c.width_m[pick])
    if not rects:
        return out
    return GraspLabels(
        rects=np.concatenate(rects).astype(np.float32),
        instance_ids=np.concatenate(ids),
        width_m=np.concatenate(widths).astype(np.float32),
        quality_map=out.quality_map,
        cos2_map=out.cos2_map,
        sin2_map=out.sin2_map,
        width_map=out.width_map,
    )
