"""Object proposals from depth alone: support-plane RANSAC, connected components above the plane, size filters.

Pure numpy + OpenCV. Two entry points share one code path:

- :func:`propose_objects` segments a depth frame (plane fit, height threshold, cuts along depth jumps and concave
  creases so that touching objects come apart, connected components, then neighbours that meet across a continuous,
  convex or flat contact merged back, since those are pieces of one object) and hands the label image to
  :func:`crops_from_labels`;
- ground-truth instance masks go straight to :func:`crops_from_labels`, so a test can check that both give the same
  crops when the segmentation is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import DepthError, PipelineError


@dataclass(frozen=True)
class ProposalParams:
    """Segmentation and size-filter parameters (metres and pixels)."""

    ransac_iterations: int = 200
    ransac_inlier_m: float = 0.008  # point-to-plane distance counted as on the plane
    ransac_sample_stride: int = 4  # fit on every n-th pixel in each direction (speed)
    ransac_score_points: int = 3000  # hypotheses are scored on this many random points of that subset
    min_height_m: float = 0.012  # a pixel belongs to an object when it is this far above the plane, towards the camera
    max_height_m: float = 0.5
    opening_px: int = 3  # morphological opening of the above-plane mask (cuts 1-2 pixel bridges); 0 disables it
    # Touching objects (see surface_boundaries): cut between pixels edge_step_px apart (at 1/edge_downsample of the
    # image) across a depth jump larger than max(jump_min_m, jump_rel * depth), or across a concave crease where the
    # surface normals turn towards each other by more than crease (|n_q - n_p| along the step; 0.6 is about 35 deg).
    split_touching: bool = True
    edge_downsample: int = 2
    edge_step_px: int = 2
    normal_window_px: int = 5  # box window over which points are averaged before the normals are taken
    jump_rel: float = 0.03
    jump_min_m: float = 0.01
    crease: float = 0.6
    # Fragments (see merge_convex_neighbours): two components that touch along at least merge_min_contact_px pixel
    # pairs of continuous depth are merged unless the surface folds inwards between them by more than
    # merge_concavity, measured on planes fitted to each side within merge_radius_px of the contact.
    merge_convex: bool = True
    merge_concavity: float = 0.1
    merge_radius_px: int = 16
    merge_min_contact_px: int = 10
    min_top_height_m: float = 0.025  # a component's top (95th percentile height) must reach this; 0 disables it
    min_pixels: int = 150
    max_pixels: int = 80_000
    min_extent_m: float = 0.02  # largest side of the 3D bounding box of the visible points
    max_extent_m: float = 0.40
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ransac_iterations < 1 or self.ransac_sample_stride < 1:
            raise PipelineError(
                f"ransac_iterations ({self.ransac_iterations}) and ransac_sample_stride "
                f"({self.ransac_sample_stride}) must be >= 1"
            )
        if not 0 < self.min_pixels <= self.max_pixels:
            raise PipelineError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if not 0 <= self.min_extent_m <= self.max_extent_m:
            raise PipelineError(f"need 0 <= min_extent_m <= max_extent_m, got {self.min_extent_m}, {self.max_extent_m}")
        for name in ("edge_downsample", "edge_step_px", "normal_window_px", "merge_radius_px", "merge_min_contact_px"):
            if getattr(self, name) < 1:
                raise PipelineError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("jump_rel", "jump_min_m", "crease", "merge_concavity", "min_top_height_m"):
            if not getattr(self, name) >= 0:
                raise PipelineError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class Plane:
    """``normal . p + offset = 0`` with a unit normal that points towards the camera (``offset > 0``)."""

    normal: np.ndarray  # (3,)
    offset: float
    inlier_fraction: float  # of the valid points scored

    def signed_height(self, points: np.ndarray) -> np.ndarray:
        """Distance of (..., 3) points above the plane (positive on the camera's side)."""
        return _dot3(np.asarray(points), self.normal) + self.offset


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ObjectCrop:
    """One object: its box in full-image pixels, mask and depth inside the box, and 3D summary."""

    label: int  # component id (proposals) or instance id (ground-truth masks)
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive
    mask: np.ndarray  # (y1 - y0, x1 - x0) bool
    depth: np.ndarray  # (y1 - y0, x1 - x0) float32 metres, NaN outside the mask or invalid
    pixels: int
    extent_m: float
    centroid_m: np.ndarray  # (3,) mean of the object's valid 3D points, camera frame


def _dot3(points: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """``points . normal`` over the last axis, written out: a 3-term dot product is faster without BLAS (and a busy
    multi-threaded BLAS is far slower for these skinny products)."""
    return points[..., 0] * normal[..., 0] + points[..., 1] * normal[..., 1] + points[..., 2] * normal[..., 2]


def _dot3_planar(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a . b`` over the first axis of two (3, ...) arrays (coordinates stored as planes)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def fit_support_plane(points: np.ndarray, params: ProposalParams | None = None) -> Plane:
    """RANSAC plane fit on an organised (H, W, 3) or flat (N, 3) point cloud (NaN = invalid), refined by least squares.

    Hypotheses come from random triples of the subsampled valid points and are all scored at once on
    ``ransac_score_points`` random points; the best one (most inliers) is refined by least squares on its
    inliers among all subsampled points.
    """
    p = params or ProposalParams()
    pts = np.asarray(points)
    if pts.ndim == 3:
        pts = pts[:: p.ransac_sample_stride, :: p.ransac_sample_stride]
    pts = pts.reshape(-1, 3).astype(np.float64)  # subsample first, then convert: only the subset is copied
    finite = np.isfinite(pts)
    pts = pts[finite[:, 0] & finite[:, 1] & finite[:, 2] & (pts[:, 2] > 0)]
    if pts.shape[0] < 3:
        raise DepthError(f"support-plane fit needs at least 3 valid points, got {pts.shape[0]}")
    rng = np.random.default_rng(p.seed)
    tri = pts[rng.integers(0, pts.shape[0], size=(p.ransac_iterations, 3))]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-12
    if not ok.any():
        raise DepthError("support-plane fit: every sampled triple was degenerate (collinear points)")
    normals = normals[ok] / norms[ok, None]
    offsets = -np.einsum("ij,ij->i", normals, tri[ok, 0])
    score_pts = (
        pts
        if pts.shape[0] <= p.ransac_score_points
        else pts[rng.choice(pts.shape[0], p.ransac_score_points, replace=False)]
    )
    counts = _count_inliers(score_pts, normals, offsets, p.ransac_inlier_m)
    best = int(np.argmax(counts))
    normal, offset = normals[best], float(offsets[best])
    columns = np.ascontiguousarray(pts.T)  # (3, N): the refinement's distances stream through memory
    for _ in range(2):  # least-squares refinement on the inliers of the whole subset (twice: inliers move)
        sel = np.compress(np.abs(_dot3_planar(columns, normal) + offset) < p.ransac_inlier_m, columns, axis=1)
        if sel.shape[1] < 3:
            break
        centre, normal = _least_squares_plane(sel)
        offset = -float(normal @ centre)
    if offset < 0:  # orient towards the camera: the origin is on the positive side
        normal, offset = -normal, -offset
    frac = float((np.abs(_dot3_planar(columns, normal) + offset) < p.ransac_inlier_m).mean())
    return Plane(normal=normal, offset=offset, inlier_fraction=frac)


def _count_inliers(points: np.ndarray, normals: np.ndarray, offsets: np.ndarray, band_m: float) -> np.ndarray:
    """(K,) how many of the (S, 3) points lie within ``band_m`` of each of the K planes ``normals . p + offsets``.

    In float32 (far finer than the band), one coordinate at a time, and a block of planes at a time into buffers
    reused across blocks, so that a block's (planes x points) distances stay in cache: for 200 planes and 3000
    points, one (K, S) array per step (2.4 MB each) took 8.9 ms here, and the blocks 1.8 ms, with the same counts.
    """
    block = 32
    coords = np.ascontiguousarray(points.T, dtype=np.float32)  # (3, S)
    normals32, offsets32 = normals.astype(np.float32), offsets.astype(np.float32)
    band = np.float32(band_m)
    counts = np.empty(normals.shape[0], np.int64)
    dist = np.empty((block, coords.shape[1]), np.float32)
    term = np.empty_like(dist)
    inside = np.empty(dist.shape, bool)
    for start in range(0, normals.shape[0], block):
        n = normals32[start : start + block]
        d, t, hit = dist[: len(n)], term[: len(n)], inside[: len(n)]
        np.multiply.outer(n[:, 0], coords[0], out=d)
        d += np.multiply.outer(n[:, 1], coords[1], out=t)
        d += np.multiply.outer(n[:, 2], coords[2], out=t)
        d += offsets32[start : start + block, None]
        np.less(np.abs(d, out=d), band, out=hit)
        counts[start : start + len(n)] = np.count_nonzero(hit, axis=1)
    return counts


def segment_above_plane(
    depth_m: np.ndarray, intrinsics: Intrinsics, params: ProposalParams | None = None
) -> tuple[np.ndarray, Plane]:
    """(H, W) int32 component labels (0 = background) of the pixels above the support plane, and the plane.

    With ``split_touching`` the above-plane pixels are first cut at :func:`surface_boundaries`; after labelling, the
    cut (and opened) pixels go back to the component whose surface they continue (:func:`_regrow_labels`), with
    ``merge_convex`` the pieces of one object are joined again (:func:`merge_convex_neighbours`), and components
    whose top stays under ``min_top_height_m`` are dropped.
    """
    p = params or ProposalParams()
    depth = checked_depth(depth_m, intrinsics)
    points = intrinsics.points_from_depth(depth)
    plane = fit_support_plane(points, p)
    height = plane.signed_height(points)
    above = np.isfinite(height) & (height > p.min_height_m) & (height < p.max_height_m)
    seeds = above & ~surface_boundaries(points, p) if p.split_touching else above
    mask = seeds.astype(np.uint8)
    if p.opening_px > 0:
        # Open to cut thin bridges and specks, label, then give back to each component the above-plane pixels the
        # opening (and the cuts) shaved off its border (so a component's mask is every above-plane pixel next to it).
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (p.opening_px, p.opening_px))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    _, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    cut_width = 2 * p.edge_downsample * (p.edge_step_px + 1) if p.split_touching else 0
    if p.opening_px > 0 or cut_width:
        labels = _regrow_labels(labels, above, depth, p, max_steps=2 * p.opening_px + cut_width)
    if p.merge_convex:
        labels = merge_convex_neighbours(labels, points, depth, p)
    if p.min_top_height_m > 0:
        labels = _drop_low_components(labels, height, p.min_top_height_m)
    return labels.astype(np.int32, copy=False), plane


def _pair_slices(shape: tuple[int, int], dy: int, dx: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices of the pixels p and of their partners q = p + (dy, dx) that both lie inside an (H, W) image."""
    h, w = shape
    rows_p, rows_q = slice(0, h - dy), slice(dy, h)  # dy >= 0
    cols_p, cols_q = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    return (rows_p, cols_p), (rows_q, cols_q)


def surface_boundaries(points: np.ndarray, params: ProposalParams | None = None) -> np.ndarray:
    """(H, W) bool: the pixels where one object's surface ends, so that touching objects can be told apart.

    On the organised cloud ``points`` (NaN = invalid), subsampled by ``edge_downsample`` and box-averaged over
    ``normal_window_px`` for the normals, every pixel p is compared with its partner q ``edge_step_px`` away in four
    directions (right, down and both diagonals). Both are marked when
    - their depths differ by more than ``max(jump_min_m, jump_rel * depth)``: an occlusion boundary, one object in
      front of another; or
    - the surface folds towards itself between them, ``(n_q - n_p) . (x_q - x_p) / |x_q - x_p| < -crease`` with the
      normals towards the camera: a concave crease, where two objects touch or one stands on another. A convex edge
      (a box's own corners) folds the other way and is not cut.
    """
    p = params or ProposalParams()
    full_h, full_w = points.shape[:2]
    ds, step = p.edge_downsample, p.edge_step_px
    # Planar (3, h, w) layout: each coordinate is contiguous, so every step below streams through memory.
    pts = np.moveaxis(np.asarray(points[::ds, ::ds], dtype=np.float32), -1, 0)
    h, w = pts.shape[1:]
    z = pts[2]
    valid = np.isfinite(z) & (z > 0)
    win = (p.normal_window_px, p.normal_window_px)
    total = cv2.boxFilter(valid.astype(np.float32), -1, win, normalize=False, borderType=cv2.BORDER_CONSTANT)
    scale = np.maximum(total, np.float32(1.0))
    smooth = np.empty((3, h, w), np.float32)
    for c in range(3):
        channel = np.where(valid, pts[c], np.float32(0.0))
        smooth[c] = cv2.boxFilter(channel, -1, win, normalize=False, borderType=cv2.BORDER_CONSTANT)
        smooth[c] /= scale
    # Normals from central differences: (x(u+s) - x(u-s)) x (x(v+s) - x(v-s)), turned towards the camera.
    du = np.zeros_like(smooth)
    dv = np.zeros_like(smooth)
    du[:, :, step : w - step] = smooth[:, :, 2 * step :] - smooth[:, :, : w - 2 * step]
    dv[:, step : h - step] = smooth[:, 2 * step :] - smooth[:, : h - 2 * step]
    normal = np.empty_like(smooth)
    normal[0] = du[1] * dv[2] - du[2] * dv[1]
    normal[1] = du[2] * dv[0] - du[0] * dv[2]
    normal[2] = du[0] * dv[1] - du[1] * dv[0]
    length = np.sqrt(_dot3_planar(normal, normal))
    has_normal = valid & (total >= 0.5 * win[0] * win[1]) & (length > 0)
    normal /= np.maximum(length, np.float32(1e-12))
    np.negative(normal, out=normal, where=_dot3_planar(normal, smooth) > 0)
    depth = np.where(valid, z, np.float32(0.0))
    jumps = np.zeros((h, w), dtype=bool)
    creases = np.zeros((h, w), dtype=bool)
    for dy, dx in ((0, step), (step, 0), (step, step), (step, -step)):
        sp, sq = _pair_slices((h, w), dy, dx)
        both = valid[sp] & valid[sq]
        jump = both & (np.abs(depth[sq] - depth[sp]) > np.maximum(p.jump_min_m, p.jump_rel * depth[sp]))
        delta = smooth[(slice(None), *sq)] - smooth[(slice(None), *sp)]
        turn = normal[(slice(None), *sq)] - normal[(slice(None), *sp)]
        folds = _dot3_planar(turn, delta) / np.maximum(np.sqrt(_dot3_planar(delta, delta)), np.float32(1e-9))
        crease = has_normal[sp] & has_normal[sq] & ~jump & (folds < -p.crease)
        for marks, found in ((jumps, jump), (creases, crease)):
            marks[sp] |= found
            marks[sq] |= found
    # Lengthen the creases by a pixel, so that one reaches the jump at the objects' outline: the normals are blurred
    # there, and the gap would bridge the two objects.
    cut = jumps | (cv2.dilate(creases.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    if ds > 1:
        cut = np.repeat(np.repeat(cut, ds, axis=0), ds, axis=1)[:full_h, :full_w]
    return cut


def merge_convex_neighbours(
    labels: np.ndarray, points: np.ndarray, depth: np.ndarray, params: ProposalParams | None = None
) -> np.ndarray:
    """Labels with the neighbours that are pieces of one object merged (the locally-convex-connection test).

    The cuts of :func:`surface_boundaries` also fire inside objects (sensor noise, a handle, a hole's rim), so one
    object can come out in pieces. Two components are neighbours when at least ``merge_min_contact_px`` of their
    4-adjacent pixel pairs lie on a continuous surface (a depth step within the cut's jump threshold). For each such
    pair a plane is fitted (least squares) to each side's points within ``merge_radius_px`` of the contact, with the
    normal towards the camera; the fold between the two patches, ``(n_a - n_b) . (c_a - c_b) / |c_a - c_b|`` for
    the centroids c, is positive across a convex edge and about zero across a flat one. Neighbours merge unless the
    surface folds inwards, ``fold < -merge_concavity``: two objects that touch meet at a concave valley, or at a
    depth jump, which is not a continuous contact. Merges are transitive (union-find); ids stay those of the
    smallest label in each group.
    """
    p = params or ProposalParams()
    lab = np.asarray(labels, dtype=np.int32)
    z = np.asarray(depth, dtype=np.float32)
    height, width = lab.shape
    count = int(lab.max(initial=0)) + 1
    keys, rows, cols = [], [], []
    for dy, dx in ((0, 1), (1, 0)):  # each 4-adjacent pixel pair once
        a, b = lab[: height - dy, : width - dx], lab[dy:, dx:]
        ys, xs = np.divmod(np.flatnonzero(a != b), width - dx)  # the few pixels where the label changes ...
        inner = (a[ys, xs] > 0) & (b[ys, xs] > 0)  # ... on a border between two components
        ys, xs = ys[inner], xs[inner]
        za, zb = z[ys, xs], z[ys + dy, xs + dx]
        limit = np.maximum(np.float32(p.jump_min_m), np.float32(p.jump_rel) * zb)
        continuous = (za > 0) & (zb > 0) & (np.abs(za - zb) <= limit)  # False where either depth is NaN
        ys, xs = ys[continuous], xs[continuous]
        la, lb = a[ys, xs], b[ys, xs]
        key = np.minimum(la, lb).astype(np.int64) * count + np.maximum(la, lb)
        for off_y, off_x in ((0, 0), (dy, dx)):  # both pixels of each pair belong to the contact
            keys.append(key)
            rows.append(ys + off_y)
            cols.append(xs + off_x)
    key = np.concatenate(keys)
    if key.size == 0:
        return lab
    order = np.argsort(key, kind="stable")
    key, row, col = key[order], np.concatenate(rows)[order], np.concatenate(cols)[order]
    pairs, starts, sizes = np.unique(key, return_index=True, return_counts=True)
    parent = np.arange(count)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    r = p.merge_radius_px
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    planes = np.moveaxis(points, -1, 0)  # (3, H, W): a patch's points come out as (3, N) rows
    for pair, start, size in zip(pairs, starts, sizes, strict=True):
        if size < 2 * p.merge_min_contact_px:  # two pixels per contact pair
            continue
        first, second = divmod(int(pair), count)
        cy, cx = row[start : start + size], col[start : start + size]
        y0, y1 = max(int(cy.min()) - r, 0), min(int(cy.max()) + r + 1, height)
        x0, x1 = max(int(cx.min()) - r, 0), min(int(cx.max()) + r + 1, width)
        contact = np.zeros((y1 - y0, x1 - x0), np.uint8)
        contact[cy - y0, cx - x0] = 1
        near = cv2.dilate(contact, kernel) > 0
        window, window_planes = lab[y0:y1, x0:x1], planes[:, y0:y1, x0:x1]
        patch_a = _patch_plane(window_planes[:, near & (window == first)])
        patch_b = _patch_plane(window_planes[:, near & (window == second)])
        if patch_a is None or patch_b is None:
            continue
        (centre_a, normal_a), (centre_b, normal_b) = patch_a, patch_b
        step = centre_a - centre_b
        fold = float((normal_a - normal_b) @ step) / max(float(np.linalg.norm(step)), 1e-9)
        if fold >= -p.merge_concavity:
            ra, rb = root(first), root(second)
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(count)], dtype=np.int32)
    return roots[lab]


def _patch_plane(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Centroid and unit normal (towards the camera at the origin) of the least-squares plane of the valid points
    among (3, N) ``columns``; None for fewer than 6 valid points."""
    pts = columns[:, np.isfinite(columns).all(axis=0)].astype(np.float64)
    if pts.shape[1] < 6:
        return None
    centre, normal = _least_squares_plane(pts)
    return centre, (-normal if normal @ centre > 0 else normal)


def _least_squares_plane(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and unit normal (either sign) of the plane that fits (3, N) float64 points best in least squares:
    the direction of least spread, from the 3x3 scatter matrix (far cheaper than an SVD of the points)."""
    centre = columns.mean(axis=1)
    offsets = columns - centre[:, None]
    return centre, np.linalg.eigh(offsets @ offsets.T)[1][:, 0]


def _drop_low_components(labels: np.ndarray, height: np.ndarray, min_top_m: float) -> np.ndarray:
    """Labels with every component whose top stays below ``min_top_m`` set to background: the cut-up pieces of a
    mat, a tray floor or a rim, not objects. The top is the 95th percentile of the height above the plane of the
    component's valid pixels, i.e. a component is low when under 5 % of them reach ``min_top_m``."""
    pix = np.flatnonzero(labels)  # the labelled pixels only: most of the image is background
    lab, top = labels.reshape(-1)[pix], height.reshape(-1)[pix]
    total = np.bincount(lab[np.isfinite(top)], minlength=int(labels.max(initial=0)) + 1)
    reaching = np.bincount(lab[top >= min_top_m], minlength=total.size)
    low = reaching < 0.05 * total
    low[0] = False
    if not low.any():
        return labels
    return np.where(low[labels], 0, labels)


def _regrow_labels(
    labels: np.ndarray, allowed: np.ndarray, depth: np.ndarray, params: ProposalParams, *, max_steps: int
) -> np.ndarray:
    """Grow labels into unlabelled ``allowed`` pixels, one pixel (4-neighbourhood) per step, up to ``max_steps``.

    A breadth-first search from the labelled pixels that border an unlabelled one. A pixel joins a neighbour's label
    only across a continuous surface (a depth step within the cut's jump threshold), so a cut band goes back to the
    object each of its pixels lies on, not to whichever is nearer in the image; pixels no surface reaches (flying
    pixels at an occlusion) stay background. When two labels reach a pixel in the same step, the first wins.
    """
    height, width = labels.shape
    work = labels.astype(np.int32).reshape(-1)
    # Labelled and open pixels lie above the plane, so their depth is finite; a NaN elsewhere compares False.
    z = np.asarray(depth, dtype=np.float32).reshape(-1)
    open_ = allowed.reshape(-1) & (work == 0)
    if not open_.any():
        return work.reshape(height, width)
    jump_min, jump_rel = np.float32(params.jump_min_m), np.float32(params.jump_rel)
    near_open = cv2.dilate(open_.reshape(height, width).astype(np.uint8), np.ones((3, 3), np.uint8)).reshape(-1) > 0
    frontier = np.flatnonzero((work > 0) & near_open)
    for _ in range(max_steps):
        if frontier.size == 0:
            break
        rows, cols = np.divmod(frontier, width)
        reached, sources = [], []
        for dy, dx, inside in (
            (0, -1, cols > 0),
            (0, 1, cols < width - 1),
            (-1, 0, rows > 0),
            (1, 0, rows < height - 1),
        ):
            src = frontier[inside]
            dst = src + dy * width + dx
            keep = open_[dst]
            src, dst = src[keep], dst[keep]
            reach = z[dst]
            ok = np.abs(reach - z[src]) <= np.maximum(jump_min, jump_rel * reach)
            reached.append(dst[ok])
            sources.append(src[ok])
        dst = np.concatenate(reached)
        if dst.size == 0:
            break
        dst, first = np.unique(dst, return_index=True)
        work[dst] = work[np.concatenate(sources)[first]]
        open_[dst] = False
        frontier = dst
    return work.reshape(height, width)


def crops_from_labels(
    labels: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics, params: ProposalParams | None = None
) -> list[ObjectCrop]:
    """Label image (0 = background; component ids or ground-truth instance ids) -> size-filtered object crops.

    Crops come sorted by their box (top-left first) so two segmentations of one scene can be compared directly.
    Only each object's valid-depth pixels count towards its size and extent.
    """
    p = params or ProposalParams()
    depth = checked_depth(depth_m, intrinsics)
    lab = np.asarray(labels)
    if lab.shape != depth.shape:
        raise PipelineError(f"label image shape {lab.shape} does not match depth shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    flat_lab = np.where(valid, lab, 0).reshape(-1)
    pix = np.flatnonzero(flat_lab > 0)
    # Group the labelled pixels by object once (a stable sort), instead of scanning the image once per object.
    pix = pix[np.argsort(flat_lab[pix], kind="stable")]
    ids, starts, counts = np.unique(flat_lab[pix], return_index=True, return_counts=True)
    width = depth.shape[1]
    crops: list[ObjectCrop] = []
    for obj_id, start, count in zip(ids, starts, counts, strict=True):  # one iteration per object, vectorised inside
        if not p.min_pixels <= count <= p.max_pixels:
            continue
        rows, cols = np.divmod(pix[start : start + count], width)
        # (3, N) float64: min, max and mean along contiguous rows are far faster than along axis 0 of (N, 3)
        columns = np.ascontiguousarray(intrinsics.deproject(cols, rows, depth[rows, cols]).T, dtype=np.float64)
        extent = float(np.max(columns.max(axis=1) - columns.min(axis=1)))
        if not p.min_extent_m <= extent <= p.max_extent_m:
            continue
        y0, y1, x0, x1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        m = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        m[rows - y0, cols - x0] = True
        crops.append(
            ObjectCrop(
                label=int(obj_id),
                box=(x0, y0, x1, y1),
                mask=m,
                depth=np.where(m, depth[y0:y1, x0:x1], np.float32(np.nan)).astype(np.float32),
                pixels=int(count),
                extent_m=extent,
                centroid_m=columns.mean(axis=1),
            )
        )
    crops.sort(key=lambda c: (c.box[1], c.box[0], c.box[3], c.box[2]))
    return crops


def propose_objects(
    depth_m: np.ndarray, intrinsics: Intrinsics, params: ProposalParams | None = None
) -> list[ObjectCrop]:
    """Object crops of a depth frame: everything standing on the dominant plane that passes the size filters.

    Returns an empty list (not an error) when nothing stands on the plane. Raises DepthError when the frame has too
    few valid pixels to fit a plane at all.
    """
    labels, _ = segment_above_plane(depth_m, intrinsics, params)
    return crops_from_labels(labels, depth_m, intrinsics, params)


def checked_depth(depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """``depth_m`` as float32, or a DepthError when its shape is not the intrinsics' image size."""
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise DepthError(
            f"depth of shape {depth.shape} does not match the intrinsics ({intrinsics.height}x{intrinsics.width})"
        )
    return depth


def mask_iou(crop: ObjectCrop, instances: np.ndarray, instance_id: int) -> float:
    """Intersection over union of a crop's mask and one instance of a full-image label image."""
    x0, y0, x1, y1 = crop.box
    truth = instances == instance_id
    inter = int(np.count_nonzero(crop.mask & truth[y0:y1, x0:x1]))
    union = crop.pixels + int(np.count_nonzero(truth)) - inter
    return inter / union if union else 0.0


def match_to_instances(
    crops: list[ObjectCrop], instances: np.ndarray, targets: set[int], *, iou: float = 0.5
) -> dict[int, int]:
    """``{crop index: instance id}``: each crop goes to the instance its mask overlaps most, when that instance is
    one of ``targets``, is not taken by an earlier crop, and the mask IoU is at least ``iou``."""
    matched: dict[int, int] = {}
    for index, crop in enumerate(crops):
        x0, y0, x1, y1 = crop.box
        ids = np.unique(instances[y0:y1, x0:x1][crop.mask])
        scores = {int(i): mask_iou(crop, instances, int(i)) for i in ids[ids > 0]}
        if not scores:
            continue
        best = max(scores, key=scores.__getitem__)
        if best in targets and best not in matched.values() and scores[best] >= iou:
            matched[index] = best
    return matched
