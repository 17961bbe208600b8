"""Per-frame labels from the scene geometry: instance masks, surface normals, object poses, visible fractions.

Normals come from the meshes the renderer drew, never from image derivatives: every pixel's clean-depth point is
moved into the frame of the body it belongs to (from the segmentation) and matched to that body's surface:

* convex meshes (the support boxes, primitives): the face whose plane the point lies on, i.e. the face with the
  largest signed plane distance; exact for convex shapes;
* meshes made of convex parts (the random_urdfs objects: every part verified convex when loaded): the same rule
  within the part whose surface the point lies on (the part whose largest signed plane distance is nearest zero);
  exact as well;
* other meshes: the face of the nearest dense surface sample (samples ~1.5 mm apart, each carrying its face normal).

Normals are then rotated into the camera frame and flipped to face the camera.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data.frame import ObjectLabel
from dcl_arc_ros.sim.errors import LabelError
from dcl_arc_ros.sim.objects import TriMesh
from dcl_arc_ros.sim.scenes import Scene, SceneBody

SURFACE_SAMPLE_SPACING_M = 0.0015
_SURFACE_CACHE_SIZE = 64  # surface indices (~0.6 MB each) of recently used meshes
_SUPERSAMPLE = 3
_ON_PLANE_M = 1e-4  # a clean-depth point this close to a face's plane lies on it (depth precision ~1e-6 m)
_MAIN_FACE_MIN_FRACTION = 0.05  # convex bodies covering this much of the image are labelled in image layout
_PART_BOX_MARGIN_M = 1e-3  # a point is tested against a convex part when it lies this close to the part's box


@dataclass(frozen=True)
class _SurfaceIndex:
    mesh: TriMesh  # kept so the id() key stays valid while cached
    tree: cKDTree | None
    normals: np.ndarray  # (N, 3) sample normals, or (F, 3) outward plane normals for convex and part-wise meshes
    offsets: np.ndarray  # (F,) plane offsets n . x for convex and part-wise meshes, empty otherwise
    # part-wise meshes: part k owns planes part_start[k]:part_start[k + 1] and lies in the box part_lo[k]..part_hi[k]
    part_start: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    part_lo: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.float32))
    part_hi: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.float32))


_surface_cache: OrderedDict[int, _SurfaceIndex] = OrderedDict()


def _surface_index(mesh: TriMesh) -> _SurfaceIndex:
    key = id(mesh)
    hit = _surface_cache.get(key)
    if hit is not None and hit.mesh is mesh:
        _surface_cache.move_to_end(key)
        return hit
    if mesh.convex:
        normals = mesh.face_normals
        keep = np.linalg.norm(normals, axis=1) > 0
        planes = np.column_stack([normals[keep], np.einsum("fi,fi->f", normals[keep], mesh.triangles[keep, 0])])
        planes = np.unique(np.round(planes, 9), axis=0)  # coplanar faces (e.g. a box's two triangles) share a plane
        index = _SurfaceIndex(mesh, None, planes[:, :3].astype(np.float32), planes[:, 3].astype(np.float32))
    else:
        index = _part_index(mesh) or _sample_index(mesh)
    _surface_cache[key] = index
    while len(_surface_cache) > _SURFACE_CACHE_SIZE:
        _surface_cache.popitem(last=False)
    return index


def _sample_index(mesh: TriMesh) -> _SurfaceIndex:
    points, normals = mesh.sample_surface(SURFACE_SAMPLE_SPACING_M)
    return _SurfaceIndex(mesh, cKDTree(points), normals, np.empty(0))


def _part_index(mesh: TriMesh) -> _SurfaceIndex | None:
    """Outward face planes of every convex part of ``mesh``; None unless the parts cover the whole mesh.

    A part's faces are the facets of the convex hull of its vertices (``mesh_from_arrays`` verified the part is
    convex), whose outward planes Qhull gives directly. Coplanar facets share one plane.
    """
    loose = 0 if mesh.loose_faces is None else len(mesh.loose_faces)
    if not mesh.hull_parts or loose > 0 or mesh.loose_faces is None:
        return None
    normals, offsets, starts, lo, hi = [], [], [0], [], []
    for part in mesh.hull_parts:
        vertices = mesh.vertices[part]
        try:
            equations = ConvexHull(vertices).equations  # n . x + c <= 0 inside, n outward
        except (QhullError, ValueError):
            return None  # flat or degenerate part: no volume to take planes from
        planes = np.unique(np.round(equations, 9), axis=0)
        normals.append(planes[:, :3])
        offsets.append(-planes[:, 3])
        starts.append(starts[-1] + len(planes))
        lo.append(vertices.min(axis=0) - _PART_BOX_MARGIN_M)
        hi.append(vertices.max(axis=0) + _PART_BOX_MARGIN_M)
    return _SurfaceIndex(
        mesh,
        None,
        np.concatenate(normals).astype(np.float32),
        np.concatenate(offsets).astype(np.float32),
        np.asarray(starts, dtype=np.int64),
        np.asarray(lo, dtype=np.float32),
        np.asarray(hi, dtype=np.float32),
    )


def _part_faces(points: np.ndarray, index: _SurfaceIndex) -> np.ndarray:
    """Index of the plane each body-frame point lies on, for a mesh made of convex parts.

    On a part's surface the largest signed distance to the part's planes is zero (reached at the face the point
    lies on); off it, it is positive (outside) or negative (inside, which a visible point never is). Each point takes
    the part where that largest distance is nearest zero, and that part's plane where it is reached. Only parts
    whose (slightly grown) box holds the point are tried; a point in no box (never seen so far) tries every part.
    """
    n = len(points)
    best = np.full(n, np.inf, dtype=np.float32)
    face = np.zeros(n, dtype=np.int64)

    def try_part(k: int, rows: np.ndarray) -> None:
        start, end = int(index.part_start[k]), int(index.part_start[k + 1])
        dist = points[rows] @ index.normals[start:end].T
        dist -= index.offsets[start:end]
        j = dist.argmax(axis=1)
        score = np.abs(np.take_along_axis(dist, j[:, None], axis=1)[:, 0])
        better = score < best[rows]
        best[rows[better]] = score[better]
        face[rows[better]] = start + j[better]

    in_box = np.ones((len(index.part_lo), n), dtype=bool)  # (parts, points), every box at once, axis by axis
    for axis, coords in enumerate(np.ascontiguousarray(points.T)):
        in_box &= coords[None, :] >= index.part_lo[:, axis, None]
        in_box &= coords[None, :] <= index.part_hi[:, axis, None]
    for k in np.flatnonzero(in_box.any(axis=1)).tolist():
        try_part(k, np.flatnonzero(in_box[k]))
    stray = np.flatnonzero(np.isinf(best))
    if stray.size:
        for k in range(len(index.part_lo)):
            try_part(k, stray)
    return face


def _best_plane(points: np.ndarray, normals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Index of the plane with the largest signed distance ``n . p - d`` for points on a convex surface.

    A point on face f is at distance ~0 from its plane and at negative distance from every other plane, so once a
    plane gives ~0 the point is decided. Trying the most camera-facing plane first (where most pixels lie, e.g. a
    table top) leaves only a few undecided points for the other planes.
    """
    view = points[:: max(1, len(points) // 256)].mean(axis=0)
    order = np.argsort(normals @ view, kind="stable")  # most negative first: faces the camera
    first = int(order[0])
    best = points @ normals[first] - offsets[first]
    index = np.full(len(points), first, dtype=np.int32)
    undecided = np.flatnonzero(best < -_ON_PLANE_M)
    for f in order[1:]:
        if undecided.size == 0:
            break
        dist = points[undecided] @ normals[f] - offsets[f]
        better = dist > best[undecided]
        best[undecided[better]] = dist[better]
        index[undecided[better]] = f
        undecided = undecided[best[undecided] < -_ON_PLANE_M]
    return index


def _camera_frame_normals(body: SceneBody, body_T_cam: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Normals (N, 3) in the camera frame at camera-frame points on ``body``."""
    index = _surface_index(body.mesh)
    rot, trans = body_T_cam[:3, :3], body_T_cam[:3, 3]
    if index.tree is None and index.part_start.size == 0:
        # move the planes into the camera frame rather than every point into the body frame:
        # n_b . (R p + t) - d = (R^T n_b) . p - (d - n_b . t)
        planes_cam = (index.normals @ rot).astype(np.float32)
        offsets_cam = (index.offsets - index.normals @ trans).astype(np.float32)
        return planes_cam[_best_plane(points_cam, planes_cam, offsets_cam)]
    points_body = points_cam @ rot.T.astype(np.float32) + trans.astype(np.float32)
    if index.tree is None:  # a mesh made of convex parts
        return (index.normals[_part_faces(points_body, index)] @ rot).astype(np.float32)
    _, nearest = index.tree.query(points_body, k=1, eps=0.5)
    return (index.normals[nearest] @ rot).astype(np.float32)  # body -> camera rotation is R^T


def instance_map(segmentation: np.ndarray, scene: Scene) -> np.ndarray:
    """Body-id segmentation -> instance ids (0 = background or nothing)."""
    lut_size = max([b.body_id for b in scene.bodies] + [0]) + 2
    lut = np.zeros(lut_size, dtype=np.int32)
    for b in scene.bodies:
        lut[b.body_id + 1] = b.instance_id
    low, high = int(segmentation.min()), int(segmentation.max())
    if low + 1 < 0 or high + 1 >= lut_size:
        raise LabelError(f"segmentation ids {low}..{high} include bodies the scene does not have")
    return lut[segmentation + 1]


def _pixel_rays(intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Per-column x/z and per-row y/z of the viewing rays, float32, exactly as ``points_from_depth`` computes them."""
    k = intrinsics
    ray_x = (np.arange(k.width, dtype=np.float32) - np.float32(k.cx)) / np.float32(k.fx)
    ray_y = (np.arange(k.height, dtype=np.float32) - np.float32(k.cy)) / np.float32(k.fy)
    return ray_x, ray_y


def _main_face_normals(
    body: SceneBody,
    body_T_cam: np.ndarray,
    mask: np.ndarray,
    depth: np.ndarray,
    rays: tuple[np.ndarray, np.ndarray],
    normals: np.ndarray,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Label, in image layout, the pixels of a large convex body that lie on the face most of its pixels lie on.

    A pixel ``(u, v)`` at depth ``z`` is the point ``z * r(u, v)`` with ``r = (ray_x[u], ray_y[v], 1)``, so its
    signed distance to a camera-frame plane ``n . p = d`` is ``z * (n . r) - d``: one multiply-add per pixel, without
    gathering the pixels into a point list. The same rule as :func:`_best_plane` applies: a pixel whose distance is
    at least ``-_ON_PLANE_M`` lies on the face. Writes those pixels' camera-facing normals into ``normals``
    (H, W, 3) and returns them as a mask; the other pixels of ``mask`` are left for the general path.

    The arrays may be a window of the image whose top-left pixel is ``origin`` (``rays`` cut to it as well): the
    coarse count then samples the same image pixels as it would on the whole image.
    """
    index = _surface_index(body.mesh)
    rot, trans = body_T_cam[:3, :3], body_T_cam[:3, 3]
    planes_cam = (index.normals @ rot).astype(np.float32)
    offsets_cam = (index.offsets - index.normals @ trans).astype(np.float32)
    ray_x, ray_y = rays
    # the face most of the body's pixels lie on, counted on a coarse pixel grid
    step = 8
    cy, cx = -origin[1] % step, -origin[0] % step
    z_coarse, m_coarse = depth[cy::step, cx::step], mask[cy::step, cx::step]
    g_coarse = (
        planes_cam[:, 0, None, None] * ray_x[None, None, cx::step]
        + planes_cam[:, 1, None, None] * ray_y[None, cy::step, None]
        + planes_cam[:, 2, None, None]
    )
    with np.errstate(invalid="ignore"):
        on_coarse = (z_coarse * g_coarse - offsets_cam[:, None, None] >= -_ON_PLANE_M) & m_coarse
    face = int(np.argmax(on_coarse.sum(axis=(1, 2))))
    n = planes_cam[face]
    along_x, along_y = ray_x * n[0], ray_y * n[1]
    g = along_x[None, :] + along_y[:, None] + n[2]  # n . r per pixel
    # n . p = z (n . r) > 0: the face points away from the camera there and its normal is -n. Rounding is monotonic,
    # so the extremes of g over the window are these sums of the extremes, exactly: usually one sign holds for all
    g_max = along_x.max(initial=-np.inf) + along_y.max(initial=-np.inf) + n[2]
    g_min = along_x.min(initial=np.inf) + along_y.min(initial=np.inf) + n[2]
    sign = None if g_max <= 0 or g_min > 0 else np.where(g > 0, np.float32(-1.0), np.float32(1.0))
    with np.errstate(invalid="ignore"):
        if depth.dtype == g.dtype:  # on = depth * g - d >= -_ON_PLANE_M, in place
            np.multiply(depth, g, out=g)
            g -= offsets_cam[face]
            on = g >= -_ON_PLANE_M
        else:
            on = depth * g - offsets_cam[face] >= -_ON_PLANE_M
    on &= mask
    # written channel by channel with a ``where`` mask: a boolean-indexed (H, W, 3) assignment costs several times more
    for c in range(3):
        if sign is not None:
            np.multiply(sign, n[c], out=normals[..., c], where=on)
        else:
            np.copyto(normals[..., c], -n[c] if g_min > 0 else n[c], where=on)
    return on


def surface_normals(
    depth_clean: np.ndarray,
    segmentation: np.ndarray,
    intrinsics: Intrinsics,
    world_T_cam: np.ndarray,
    scene: Scene,
) -> np.ndarray:
    """(H, W, 3) float32 unit normals in the camera frame facing the camera; zero where nothing was hit.

    Convex bodies that fill a large part of the image (the table, the floor) get the pixels on their main face
    labelled in image layout (:func:`_main_face_normals`); every other pixel is gathered per body and matched by
    :func:`_camera_frame_normals`.
    """
    h, w = depth_clean.shape
    flat_seg = np.where(np.isfinite(depth_clean), segmentation, -1).reshape(-1)
    if flat_seg.max(initial=-1) < np.iinfo(np.int16).max:
        flat_seg = flat_seg.astype(np.int16)  # stable argsort of int16 is a radix sort
    normals = np.zeros((h, w, 3), dtype=np.float32)
    flat_normals = normals.reshape(-1, 3)
    rays = _pixel_rays(intrinsics)
    counts = np.bincount(flat_seg.astype(np.int64) + 1)
    pending = flat_seg >= 0
    for body_id in np.flatnonzero(counts[1:] >= _MAIN_FACE_MIN_FRACTION * h * w).tolist():
        body = _scene_body(scene, body_id)
        if not body.mesh.convex:
            continue
        body_T_cam = np.linalg.inv(body.world_T_body) @ world_T_cam
        mask = (flat_seg == body_id).reshape(h, w)
        # only the body's bounding box: the floor and the support usually cover different parts of the image
        rows = np.flatnonzero(mask.any(axis=1))
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        cols = np.flatnonzero(mask[y0:y1].any(axis=0))
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        box = (slice(y0, y1), slice(x0, x1))
        box_rays = (rays[0][x0:x1], rays[1][y0:y1])
        on = _main_face_normals(body, body_T_cam, mask[box], depth_clean[box], box_rays, normals[box], (x0, y0))
        pending.reshape(h, w)[box] &= ~on

    rest = np.flatnonzero(pending)
    rest_seg = flat_seg[rest]
    order = np.argsort(rest_seg, kind="stable")
    rest, rest_seg = rest[order], rest_seg[order]
    starts = np.concatenate([[0], np.flatnonzero(rest_seg[1:] != rest_seg[:-1]) + 1]) if rest.size else np.zeros(0)
    ends = np.append(starts[1:], rest.size)
    depth_flat = depth_clean.reshape(-1)
    ray_x, ray_y = rays
    for start, end in zip(starts.astype(np.int64).tolist(), ends.astype(np.int64).tolist(), strict=True):
        body = _scene_body(scene, int(rest_seg[start]))
        pixels = rest[start:end]
        rows, cols = np.divmod(pixels, w)
        points = np.empty((len(pixels), 3), dtype=np.float32)
        z = depth_flat[pixels]
        points[:, 0] = z * ray_x[cols]
        points[:, 1] = z * ray_y[rows]
        points[:, 2] = z
        n_cam = _camera_frame_normals(body, np.linalg.inv(body.world_T_body) @ world_T_cam, points)
        facing_away = np.einsum("ni,ni->n", n_cam, points) > 0
        n_cam[facing_away] *= -1.0
        flat_normals[pixels] = n_cam
    return normals


def _scene_body(scene: Scene, body_id: int) -> SceneBody:
    try:
        return scene.body(body_id)
    except KeyError:
        raise LabelError(f"segmentation names body {body_id}, which the scene does not have") from None


def camera_poses(scene: Scene, world_T_cam: np.ndarray) -> dict[int, np.ndarray]:
    """instance id -> (4, 4) cam_T_obj."""
    cam_T_world = np.linalg.inv(world_T_cam)
    return {b.instance_id: cam_T_world @ b.world_T_body for b in scene.objects}


def silhouette(mesh: TriMesh, cam_T_obj: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(H, W) bool: pixels whose centre the object covers when rendered alone (union of its projected triangles).

    Triangles are filled at 3x resolution, where every output pixel centre is an exact sample, so the edge bias of the
    polygon filler shrinks to a sixth of a pixel.
    """
    pts = mesh.vertices @ cam_T_obj[:3, :3].T + cam_T_obj[:3, 3]
    mask = np.zeros((intrinsics.height, intrinsics.width), dtype=bool)
    if np.any(pts[:, 2] <= 1e-6):
        raise LabelError(f"object crosses the camera plane (min z={pts[:, 2].min():.4f} m); cannot rasterise it")
    u, v, _ = intrinsics.project(pts)
    x0 = int(np.clip(np.floor(u.min()), 0, intrinsics.width - 1))
    x1 = int(np.clip(np.ceil(u.max()) + 1, 0, intrinsics.width))
    y0 = int(np.clip(np.floor(v.min()), 0, intrinsics.height - 1))
    y1 = int(np.clip(np.ceil(v.max()) + 1, 0, intrinsics.height))
    if x1 <= x0 or y1 <= y0:
        return mask
    ss, shift = _SUPERSAMPLE, 4
    hi = np.zeros(((y1 - y0) * ss, (x1 - x0) * ss), dtype=np.uint8)
    # low-res pixel centre x maps to hi-res pixel centre ss * (x - x0) + ss // 2
    uv = np.stack([ss * (u - x0) + ss // 2, ss * (v - y0) + ss // 2], axis=1)
    fixed = np.round(uv * (1 << shift)).astype(np.int32)
    for part in mesh.hull_parts:  # a convex part's silhouette is the hull of its projected vertices
        cv2.fillConvexPoly(hi, cv2.convexHull(fixed[part]), 1, lineType=cv2.LINE_8, shift=shift)
    tris = fixed[mesh.faces if mesh.loose_faces is None else mesh.loose_faces]
    lo, top = tris.min(axis=1), tris.max(axis=1)
    limit = np.array([hi.shape[1], hi.shape[0]]) << shift
    for tri in tris[np.all(top >= 0, axis=1) & np.all(lo < limit, axis=1)]:
        cv2.fillConvexPoly(hi, tri, 1, lineType=cv2.LINE_8, shift=shift)
    mask[y0:y1, x0:x1] = hi[ss // 2 :: ss, ss // 2 :: ss].astype(bool)
    return mask


def object_silhouettes(scene: Scene, world_T_cam: np.ndarray, intrinsics: Intrinsics) -> dict[int, np.ndarray]:
    """instance id -> (H, W) bool mask of the object rendered alone (nothing in front of it)."""
    poses = camera_poses(scene, world_T_cam)
    return {b.instance_id: silhouette(b.mesh, poses[b.instance_id], intrinsics) for b in scene.objects}


def object_labels(
    instances: np.ndarray,
    scene: Scene,
    world_T_cam: np.ndarray,
    intrinsics: Intrinsics,
    silhouettes: dict[int, np.ndarray] | None = None,
) -> tuple[ObjectLabel, ...]:
    """One :class:`ObjectLabel` per object that is at least partly visible, ordered by instance id.

    ``visible_fraction`` is the object's pixels in ``instances`` over its pixels in its silhouette rendered alone,
    both counted inside the image (an unoccluded object cut by the image border has 1.0).
    """
    poses = camera_poses(scene, world_T_cam)
    if silhouettes is None:
        silhouettes = object_silhouettes(scene, world_T_cam, intrinsics)
    counts = np.bincount(instances.reshape(-1), minlength=max(poses, default=0) + 1)
    labels = []
    for body in scene.objects:
        visible = int(counts[body.instance_id])
        if visible == 0 or body.spec is None:
            continue
        alone = int(np.count_nonzero(silhouettes[body.instance_id]))
        labels.append(
            ObjectLabel(
                instance_id=body.instance_id,
                class_id=body.spec.class_id,
                name=body.spec.name,
                novel=body.spec.novel,
                cam_T_obj=poses[body.instance_id],
                visible_fraction=float(min(1.0, visible / max(alone, 1))),
            )
        )
    return tuple(labels)
