"""The object catalogue: which things can be put on the table, their class ids and the seen/novel split.

Every object is a triangle mesh in its own frame (origin at the centre of its bounding box), so the renderer, the
physics and the labels all use exactly the same geometry.

Catalogue (class ids are stable; nothing here depends on a random seed):

* ``urdf_000`` ... ``urdf_999`` -> class ids 0 ... 999: the ``random_urdfs`` meshes that ship with
  ``pybullet_data``, at the scale their URDFs use (0.015). ``urdf_168`` is left out: its mesh file holds only NaN
  vertices.
* ``box``, ``cylinder``, ``sphere`` -> class ids 1000, 1001, 1002: primitives whose size is drawn per instance.
* Distractors, class ids from 2000 (``duck``, ``teddy``, ``bunny``, ``mug``, ``torus``, ``soccerball``, ``lego``,
  ``domino``): other ``pybullet_data`` meshes. They appear **only** in the ``real_like`` scene family and
  never in the ``synthetic`` one, so they are clutter that a model trained on synthetic scenes has never seen.

Seen/novel split (fixed, for the grasp and pose evaluations): a ``random_urdfs`` object is **novel** when its index
modulo 5 is 4 (``urdf_004``, ``urdf_009``, ..., 200 classes); the other 799 and the three primitives are **seen**.
Distractors are novel too. Training scenes draw only seen classes unless asked otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import pybullet_data

from dcl_arc_ros.sim.errors import CatalogueError, MeshFormatError

ObjectKind = Literal["mesh", "box", "cylinder", "sphere"]

RANDOM_URDF_COUNT = 1000
RANDOM_URDF_SCALE = 0.015  # the mesh scale every random_urdfs/NNN/NNN.urdf uses
# random_urdfs/168/168.obj ships with nothing but "v nan nan nan" vertices: it is left out (class id 168 is unused)
BROKEN_RANDOM_URDFS: frozenset[int] = frozenset({168})
NOVEL_MODULUS = 5
NOVEL_REMAINDER = 4
PRIMITIVE_CLASS_IDS: dict[str, int] = {"box": 1000, "cylinder": 1001, "sphere": 1002}
DISTRACTOR_CLASS_ID0 = 2000

# name -> (path inside pybullet_data, longest side in metres once normalised)
_DISTRACTOR_MESHES: dict[str, tuple[str, float]] = {
    "duck": ("duck_vhacd.obj", 0.10),
    "teddy": ("teddy2_VHACD_CHs.obj", 0.12),
    "bunny": ("bunny.obj", 0.10),
    "mug": ("objects/mug.obj", 0.10),
    "torus": ("torus/torus_textured.obj", 0.09),
    "soccerball": ("soccerball.obj", 0.08),
    "lego": ("lego/lego.obj", 0.06),
    "domino": ("domino/domino.obj", 0.06),
}


@dataclass(frozen=True)
class ObjectSpec:
    """One class of the catalogue."""

    name: str
    class_id: int
    kind: ObjectKind
    novel: bool
    distractor: bool = False
    source: str = ""  # mesh path relative to pybullet_data ("" for primitives)
    scale: float = 1.0  # mesh scale (ignored for primitives, whose size is drawn per instance)
    max_extent_m: float = 0.0  # when > 0, the mesh is rescaled so its longest side is this long


@dataclass(frozen=True)
class TriMesh:
    """A triangle mesh in the object frame, metres.

    ``vertex_normals`` and ``uvs`` are what the renderer shades and textures with; the labels use the faces.
    ``convex`` marks meshes whose surface normal at a point can be found exactly as the face plane the point lies on
    (the one with the largest signed distance), which is true for the primitives.
    """

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    vertex_normals: np.ndarray  # (V, 3) float64, unit
    uvs: np.ndarray  # (V, 2) float64 in [0, 1]
    convex: bool = False
    # Silhouette helpers: vertex indices of parts verified convex (a part's silhouette is the convex hull of its
    # projected vertices) and the faces of everything else (None = every face).
    hull_parts: tuple[np.ndarray, ...] = ()
    loose_faces: np.ndarray | None = None

    @property
    def triangles(self) -> np.ndarray:
        """(F, 3, 3) corner coordinates."""
        return self.vertices[self.faces]

    @property
    def face_normals(self) -> np.ndarray:
        """(F, 3) unit face normals (zero for degenerate faces)."""
        tri = self.triangles
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)

    @property
    def face_areas(self) -> np.ndarray:
        tri = self.triangles
        return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)

    @property
    def extents(self) -> np.ndarray:
        return self.vertices.max(axis=0) - self.vertices.min(axis=0)

    def sample_surface(self, spacing_m: float, *, max_points: int = 60000) -> tuple[np.ndarray, np.ndarray]:
        """Deterministic surface samples about ``spacing_m`` apart, with their face normals: ((N, 3), (N, 3)).

        Every face gets at least its centroid, so thin faces are never missed.
        """
        areas = self.face_areas
        per_face = np.maximum(1, np.ceil(areas / spacing_m**2)).astype(np.int64)
        if per_face.sum() > max_points:
            per_face = np.maximum(1, np.floor(per_face * (max_points / per_face.sum()))).astype(np.int64)
        face_idx = np.repeat(np.arange(len(self.faces)), per_face)
        # low-discrepancy barycentric coordinates (R2 sequence), folded into the triangle
        k = np.arange(len(face_idx)) - np.repeat(np.cumsum(per_face) - per_face, per_face)
        g = 1.32471795724474602596
        a = np.mod(0.5 + k / g, 1.0)
        b = np.mod(0.5 + k / g**2, 1.0)
        fold = a + b > 1.0
        a[fold], b[fold] = 1.0 - a[fold], 1.0 - b[fold]
        first = k == 0
        a[first], b[first] = 1.0 / 3.0, 1.0 / 3.0
        tri = self.triangles[face_idx]
        points = tri[:, 0] + a[:, None] * (tri[:, 1] - tri[:, 0]) + b[:, None] * (tri[:, 2] - tri[:, 0])
        return points, self.face_normals[face_idx]


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted
    vn = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(vn, faces[:, corner], fn)
    length = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.divide(vn, length, out=np.tile([0.0, 0.0, 1.0], (len(vn), 1)), where=length > 0)


def _spherical_uvs(vertices: np.ndarray) -> np.ndarray:
    d = vertices / np.maximum(np.linalg.norm(vertices, axis=1, keepdims=True), 1e-9)
    u = 0.5 + np.arctan2(d[:, 1], d[:, 0]) / (2 * np.pi)
    v = 0.5 + np.arcsin(np.clip(d[:, 2], -1.0, 1.0)) / np.pi
    return np.stack([u, v], axis=1)


_MAX_CONVEXITY_CHECK_FACES = 2000


def _is_convex_part(vertices: np.ndarray, faces: np.ndarray) -> bool:
    """True when every vertex of the part lies on one side of every face plane (winding-agnostic)."""
    if len(faces) < 4 or len(faces) > _MAX_CONVEXITY_CHECK_FACES:
        return False
    used = np.unique(faces)
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normals, axis=1)
    keep = length > 1e-12
    normals = normals[keep] / length[keep, None]
    # signed distance of every part vertex (rows) to every face plane (columns), as one matrix product
    dist = vertices[used] @ normals.T - np.einsum("fi,fi->f", tri[keep, 0], normals)
    tol = 1e-6 + 1e-4 * float(np.ptp(vertices[used], axis=0).max())
    return bool(np.all((dist.max(axis=0) <= tol) | (dist.min(axis=0) >= -tol)))


def mesh_from_arrays(
    vertices: np.ndarray, faces: np.ndarray, *, convex: bool = False, face_parts: np.ndarray | None = None
) -> TriMesh:
    """Centre a mesh on its bounding box and attach smooth normals and spherical UVs.

    ``face_parts`` (F,) groups faces into parts (OBJ objects, e.g. a convex decomposition); parts that are convex
    get a fast silhouette (the hull of their projected vertices), the rest are rasterised face by face.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int32)
    vertices = vertices - 0.5 * (vertices.max(axis=0) + vertices.min(axis=0))
    parts = np.zeros(len(faces), dtype=np.int64) if face_parts is None else np.asarray(face_parts)
    hulls: list[np.ndarray] = []
    loose: list[np.ndarray] = []
    for part in np.unique(parts):
        part_faces = faces[parts == part]
        if _is_convex_part(vertices, part_faces):
            hulls.append(np.unique(part_faces).astype(np.int32))
        else:
            loose.append(part_faces)
    loose_faces = np.concatenate(loose) if loose else np.zeros((0, 3), dtype=np.int32)
    return TriMesh(
        vertices, faces, _vertex_normals(vertices, faces), _spherical_uvs(vertices), convex, tuple(hulls), loose_faces
    )


def _parse_obj_fast(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Vertices, triangles and parts of an OBJ whose vertices are ``v x y z`` and whose faces are triangles with
    positive indices (the shipped meshes), parsed column-wise by numpy; None for anything else."""
    v_rows: list[str] = []
    f_rows: list[str] = []
    f_parts: list[int] = []
    part = 0
    for line in text.splitlines():
        head = line[:2]
        if head == "v ":
            v_rows.append(line[2:])
        elif head == "f ":
            f_rows.append(line[2:])
            f_parts.append(part)
        elif head in ("o ", "g "):
            part += 1
    if not v_rows or not f_rows:
        return None
    v_tokens = [row.split() for row in v_rows]
    f_tokens = [row.split() for row in f_rows]
    if any(len(t) != 3 for t in v_tokens) or any(len(t) != 3 for t in f_tokens):
        return None
    try:
        v = np.array(v_tokens, dtype=np.float64)
        f = np.array([[tok.split("/", 1)[0] for tok in t] for t in f_tokens], dtype=np.int64)
    except ValueError:
        return None
    if f.min() < 1:  # relative (negative) indices: the line-by-line reader resolves them
        return None
    return v, f - 1, np.asarray(f_parts, dtype=np.int32)


def _parse_obj_lines(text: str, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line-by-line OBJ reader: any polygon size, relative indices, and errors that name the line."""
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    face_parts: list[int] = []
    part = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.startswith(("o ", "g ")):
            part += 1
        elif line.startswith("v "):
            parts = line.split()
            try:
                vertices.append([float(parts[1]), float(parts[2]), float(parts[3])])
            except (IndexError, ValueError) as exc:
                raise MeshFormatError(f"{path}:{line_no}: bad vertex line {line!r}") from exc
        elif line.startswith("f "):
            try:
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
            except ValueError as exc:
                raise MeshFormatError(f"{path}:{line_no}: bad face line {line!r}") from exc
            idx = [i - 1 if i > 0 else len(vertices) + i for i in idx]
            faces.extend([idx[0], idx[j], idx[j + 1]] for j in range(1, len(idx) - 1))
            face_parts.extend([part] * (len(idx) - 2))
    if not vertices or not faces:
        raise MeshFormatError(f"{path}: no triangles (vertices={len(vertices)}, faces={len(faces)})")
    return (
        np.asarray(vertices, dtype=np.float64),
        np.asarray(faces, dtype=np.int64),
        np.asarray(face_parts, dtype=np.int32),
    )


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (V, 3), triangles (F, 3) and each triangle's part (F,) of a Wavefront OBJ file.

    Polygons are fan-triangulated; a part is what an ``o`` or ``g`` line starts.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise MeshFormatError(f"cannot read mesh file {path}: {exc}") from exc
    parsed = _parse_obj_fast(text)
    v, f, parts = parsed if parsed is not None else _parse_obj_lines(text, path)
    if f.min() < 0 or f.max() >= len(v):
        raise MeshFormatError(f"{path}: face index out of range 1..{len(v)}")
    # some shipped meshes (random_urdfs/168) contain "v nan nan nan": drop the faces that use such vertices
    finite_vertex = np.all(np.isfinite(v), axis=1, keepdims=False)
    good_faces = np.all(np.take(finite_vertex, f), axis=1)
    f = f[good_faces]
    if len(f) == 0:
        raise MeshFormatError(f"{path}: no triangle has finite vertices")
    used, f = np.unique(f, return_inverse=True)
    return v[used], f.reshape(-1, 3).astype(np.int32), parts[good_faces]


def _one_hull(n_vertices: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Silhouette helpers of a convex primitive: all vertices form one hull part, no loose faces."""
    return (np.arange(n_vertices, dtype=np.int32),), np.zeros((0, 3), dtype=np.int32)


def box_mesh(half_extents: np.ndarray, uv_tile_m: float | None = None) -> TriMesh:
    """An axis-aligned box with 4 vertices per face (flat normals, per-face UVs).

    By default each face shows the whole texture once; with ``uv_tile_m`` the texture repeats every ``uv_tile_m``
    metres instead (the renderer wraps UVs), so large surfaces keep a realistic texel size.
    """
    h = np.asarray(half_extents, dtype=np.float64)
    vertices: list[np.ndarray] = []
    normals: list[np.ndarray] = []
    uvs: list[list[float]] = []
    faces: list[list[int]] = []
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    for axis in range(3):
        for sign in (-1.0, 1.0):
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            if sign < 0:
                u_axis, v_axis = v_axis, u_axis  # keep counter-clockwise seen from outside
            base = len(vertices)
            for su, sv in square:
                p = np.zeros(3)
                p[axis], p[u_axis], p[v_axis] = sign * h[axis], su * h[u_axis], sv * h[v_axis]
                n = np.zeros(3)
                n[axis] = sign
                vertices.append(p)
                normals.append(n)
                if uv_tile_m:
                    uvs.append([(su + 1) * h[u_axis] / uv_tile_m, (sv + 1) * h[v_axis] / uv_tile_m])
                else:
                    uvs.append([(su + 1) / 2, (sv + 1) / 2])
            faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    v = np.array(vertices)
    return TriMesh(v, np.array(faces, dtype=np.int32), np.array(normals), np.array(uvs), True, *_one_hull(len(v)))


def cylinder_mesh(radius: float, height: float, segments: int = 32) -> TriMesh:
    """A closed cylinder along z, centred at the origin (separate cap vertices for flat cap normals)."""
    ang = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(ang), radius * np.sin(ang)], axis=1)
    z0, z1 = -height / 2, height / 2
    side_bottom = np.column_stack([ring, np.full(segments, z0)])
    side_top = np.column_stack([ring, np.full(segments, z1)])
    side_n = np.column_stack([np.cos(ang), np.sin(ang), np.zeros(segments)])
    vertices = [side_bottom, side_top, side_bottom, side_top, [[0, 0, z0]], [[0, 0, z1]]]
    v = np.concatenate([np.asarray(x, dtype=np.float64) for x in vertices])
    n = np.concatenate(
        [
            side_n,
            side_n,
            np.tile([0, 0, -1.0], (segments, 1)),
            np.tile([0, 0, 1.0], (segments, 1)),
            [[0, 0, -1.0]],
            [[0, 0, 1.0]],
        ]
    )
    s = segments
    i = np.arange(s)
    j = (i + 1) % s
    side = np.concatenate([np.stack([i, j, s + j], 1), np.stack([i, s + j, s + i], 1)])
    cb, ct = 4 * s, 4 * s + 1
    bottom = np.stack([np.full(s, cb), 2 * s + j, 2 * s + i], 1)
    top = np.stack([np.full(s, ct), 3 * s + i, 3 * s + j], 1)
    uv_side = np.column_stack([np.tile(i / s, 2), np.repeat([0.0, 1.0], s)])
    uv_caps = np.concatenate([0.5 + 0.5 * ring / radius] * 2)
    uvs = np.concatenate([uv_side, uv_caps, [[0.5, 0.5], [0.5, 0.5]]])
    return TriMesh(v, np.concatenate([side, bottom, top]).astype(np.int32), n, uvs, True, *_one_hull(len(v)))


def sphere_mesh(radius: float, subdivisions: int = 2) -> TriMesh:
    """An icosphere."""
    t = (1.0 + 5**0.5) / 2.0
    verts = [
        [-1, t, 0],
        [1, t, 0],
        [-1, -t, 0],
        [1, -t, 0],
        [0, -1, t],
        [0, 1, t],
        [0, -1, -t],
        [0, 1, -t],
        [t, 0, -1],
        [t, 0, 1],
        [-t, 0, -1],
        [-t, 0, 1],
    ]
    faces = [
        [0, 11, 5],
        [0, 5, 1],
        [0, 1, 7],
        [0, 7, 10],
        [0, 10, 11],
        [1, 5, 9],
        [5, 11, 4],
        [11, 10, 2],
        [10, 7, 6],
        [7, 1, 8],
        [3, 9, 4],
        [3, 4, 2],
        [3, 2, 6],
        [3, 6, 8],
        [3, 8, 9],
        [4, 9, 5],
        [2, 4, 11],
        [6, 2, 10],
        [8, 6, 7],
        [9, 8, 1],
    ]
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    for _ in range(subdivisions):
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        key = np.sort(edges, axis=1)
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        mid = len(v) + inverse.reshape(3, -1).T  # (F, 3) midpoints of edges 01, 12, 20
        v = np.concatenate([v, 0.5 * (v[uniq[:, 0]] + v[uniq[:, 1]])])
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        ab, bc, ca = mid[:, 0], mid[:, 1], mid[:, 2]
        f = np.concatenate(
            [np.stack([a, ab, ca], 1), np.stack([b, bc, ab], 1), np.stack([c, ca, bc], 1), np.stack([ab, bc, ca], 1)]
        )
    n = v / np.linalg.norm(v, axis=1, keepdims=True)
    return TriMesh(radius * n, f.astype(np.int32), n, _spherical_uvs(n), True, *_one_hull(len(n)))


def _random_urdf_spec(index: int) -> ObjectSpec:
    return ObjectSpec(
        name=f"urdf_{index:03d}",
        class_id=index,
        kind="mesh",
        novel=index % NOVEL_MODULUS == NOVEL_REMAINDER,
        source=f"random_urdfs/{index:03d}/{index:03d}.obj",
        scale=RANDOM_URDF_SCALE,
    )


def _build_catalogue() -> dict[str, ObjectSpec]:
    specs = [_random_urdf_spec(i) for i in range(RANDOM_URDF_COUNT) if i not in BROKEN_RANDOM_URDFS]
    specs += [ObjectSpec(name, cid, name, novel=False) for name, cid in PRIMITIVE_CLASS_IDS.items()]  # type: ignore[arg-type]
    specs += [
        ObjectSpec(name, DISTRACTOR_CLASS_ID0 + i, "mesh", novel=True, distractor=True, source=src, max_extent_m=size)
        for i, (name, (src, size)) in enumerate(_DISTRACTOR_MESHES.items())
    ]
    return {s.name: s for s in specs}


CATALOGUE: dict[str, ObjectSpec] = _build_catalogue()
CLASS_NAMES: dict[int, str] = {s.class_id: s.name for s in CATALOGUE.values()}


def seen_names() -> tuple[str, ...]:
    """Classes that training scenes may use."""
    return tuple(s.name for s in CATALOGUE.values() if not s.novel and not s.distractor)


def novel_names() -> tuple[str, ...]:
    """Held-out classes (random_urdfs index % 5 == 4) for novel-object evaluation."""
    return tuple(s.name for s in CATALOGUE.values() if s.novel and not s.distractor)


def distractor_names() -> tuple[str, ...]:
    """Clutter classes used only by the ``real_like`` family."""
    return tuple(s.name for s in CATALOGUE.values() if s.distractor)


def spec_by_name(name: str) -> ObjectSpec:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise CatalogueError(
            f"unknown object {name!r}; names are urdf_000..urdf_999, "
            f"{', '.join(PRIMITIVE_CLASS_IDS)} and distractors {', '.join(_DISTRACTOR_MESHES)}"
        ) from None


def data_path() -> Path:
    return Path(pybullet_data.getDataPath())


@cache
def _file_mesh(source: str, scale: float, max_extent_m: float) -> TriMesh:
    path = data_path() / source
    if not path.is_file():
        raise CatalogueError(f"mesh file {path} for catalogue source {source!r} is missing")
    v, f, parts = read_obj(path)
    v = v * scale
    if max_extent_m > 0:
        v = v * (max_extent_m / float((v.max(axis=0) - v.min(axis=0)).max()))
    return mesh_from_arrays(v, f, face_parts=parts)


def make_mesh(spec: ObjectSpec, rng: np.random.Generator) -> TriMesh:
    """The mesh of one instance of ``spec``; primitives draw their size from ``rng``, file meshes ignore it."""
    if spec.kind == "box":
        return box_mesh(rng.uniform([0.012, 0.012, 0.012], [0.045, 0.045, 0.04]))
    if spec.kind == "cylinder":
        return cylinder_mesh(float(rng.uniform(0.015, 0.035)), float(rng.uniform(0.03, 0.12)))
    if spec.kind == "sphere":
        return sphere_mesh(float(rng.uniform(0.015, 0.035)))
    return _file_mesh(spec.source, spec.scale, spec.max_extent_m)
