"""Object proposals from depth alone: support-plane RANSAC, connected components above the plane, size filters.

Pure numpy + OpenCV. Two entry points share one code path:

- :func:`propose_objects` segments a depth frame (plane fit, height threshold, connected components) and hands the
  label image to :func:`crops_from_labels`;
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


def fit_support_plane(points: np.ndarray, params: ProposalParams | None = None) -> Plane:
    """RANSAC plane fit on an organised (H, W, 3) or flat (N, 3) point cloud (NaN = invalid), refined by least squares.

    Hypotheses come from random triples of the subsampled valid points and are all scored in one matrix product on
    ``ransac_score_points`` random points; the best one (most inliers) is refined by least squares (SVD) on its
    inliers among all subsampled points.
    """
    p = params or ProposalParams()
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 3:
        pts = pts[:: p.ransac_sample_stride, :: p.ransac_sample_stride]
    pts = pts.reshape(-1, 3)
    pts = pts[np.all(np.isfinite(pts), axis=1) & (pts[:, 2] > 0)]
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
    dist = _dot3(score_pts[:, None, :], normals[None, :, :]) + offsets  # (S, K): every hypothesis at once
    counts = (np.abs(dist) < p.ransac_inlier_m).sum(axis=0)
    best = int(np.argmax(counts))
    normal, offset = normals[best], float(offsets[best])
    for _ in range(2):  # least-squares refinement on the inliers of the whole subset (twice: inliers move)
        sel = pts[np.abs(_dot3(pts, normal) + offset) < p.ransac_inlier_m]
        if sel.shape[0] < 3:
            break
        centre = sel.mean(axis=0)
        _, _, vt = np.linalg.svd(sel - centre, full_matrices=False)
        normal = vt[-1]
        offset = -float(normal @ centre)
    if offset < 0:  # orient towards the camera: the origin is on the positive side
        normal, offset = -normal, -offset
    frac = float((np.abs(_dot3(pts, normal) + offset) < p.ransac_inlier_m).mean())
    return Plane(normal=normal, offset=offset, inlier_fraction=frac)


def segment_above_plane(
    depth_m: np.ndarray, intrinsics: Intrinsics, params: ProposalParams | None = None
) -> tuple[np.ndarray, Plane]:
    """(H, W) int32 component labels (0 = background) of the pixels above the support plane, and the plane."""
    p = params or ProposalParams()
    depth = _check_depth(depth_m, intrinsics)
    points = intrinsics.points_from_depth(depth)
    plane = fit_support_plane(points, p)
    height = plane.signed_height(points)
    above = np.isfinite(height) & (height > p.min_height_m) & (height < p.max_height_m)
    mask = above.astype(np.uint8)
    if p.opening_px > 0:
        # Open to cut thin bridges and specks, label, then give back to each component the above-plane pixels the
        # opening shaved off its border (so a component's mask is every above-plane pixel connected to it).
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (p.opening_px, p.opening_px))
        _, labels = cv2.connectedComponents(
            cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel), connectivity=8, ltype=cv2.CV_32S
        )
        labels = _regrow_labels(labels, above, kernel, max_steps=4 * p.opening_px)
    else:
        _, labels = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
    return labels.astype(np.int32, copy=False), plane


def _regrow_labels(labels: np.ndarray, allowed: np.ndarray, kernel: np.ndarray, *, max_steps: int) -> np.ndarray:
    """Grow labels into unlabelled ``allowed`` pixels by repeated dilation (a bounded morphological reconstruction)."""
    out = labels
    for _ in range(max_steps):
        grown = cv2.dilate(out.astype(np.float32), kernel).astype(np.int32)
        nxt = np.where(allowed & (out == 0), grown, out)
        if np.array_equal(nxt, out):
            break
        out = nxt
    return out


def crops_from_labels(
    labels: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics, params: ProposalParams | None = None
) -> list[ObjectCrop]:
    """Label image (0 = background; component ids or ground-truth instance ids) -> size-filtered object crops.

    Crops come sorted by their box (top-left first) so two segmentations of one scene can be compared directly.
    Only each object's valid-depth pixels count towards its size and extent.
    """
    p = params or ProposalParams()
    depth = _check_depth(depth_m, intrinsics)
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
        pts = intrinsics.deproject(cols, rows, depth[rows, cols]).astype(np.float64)
        extent = float(np.max(pts.max(axis=0) - pts.min(axis=0)))
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
                centroid_m=pts.mean(axis=0),
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


def _check_depth(depth_m: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    depth = np.asarray(depth_m, dtype=np.float32)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise DepthError(
            f"depth of shape {depth.shape} does not match the intrinsics ({intrinsics.height}x{intrinsics.width})"
        )
    return depth
