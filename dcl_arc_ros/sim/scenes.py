"""Tabletop scenes: a table, a tray or the floor, with objects dropped and settled by physics.

Each scene lives in its own DIRECT PyBullet client. Everything that is rendered is built from a :class:`TriMesh` this
package owns (support boxes included), so the labels can use exactly the rendered geometry.

Two families differ in content, not only in noise:

* ``synthetic``: catalogue objects (random_urdfs "seen" classes and primitives) in vivid flat colours on a plain
  support, white shadowless light from above.
* ``real_like``: the same kind of objects with procedural textures and muted colours, plus distractor objects that
  never occur in the synthetic family (duck, teddy, mug, ...), flat clutter (paper sheets, books, boards) on the
  support, a textured back wall, and coloured light from a lower angle with shadows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pybullet as pb

from dcl_arc_ros.sim.errors import SceneError
from dcl_arc_ros.sim.objects import (
    CATALOGUE,
    ObjectSpec,
    TriMesh,
    box_mesh,
    distractor_names,
    make_mesh,
    novel_names,
    seen_names,
)
from dcl_arc_ros.sim.render import (
    TEXTURE_KINDS,
    Lighting,
    load_texture,
    procedural_texture,
    random_colour,
    random_lighting,
)

Family = Literal["synthetic", "real_like"]
BoxRole = Literal["", "floor", "occluder"]  # "occluder": the support's top box, which hides part of the floor
Support = Literal["table", "tray", "floor"]
FAMILIES: tuple[str, ...] = ("synthetic", "real_like")
SUPPORTS: tuple[str, ...] = ("table", "tray", "floor")
OBJECT_POOLS: tuple[str, ...] = ("seen", "novel", "all")

_SETTLE_DT = 1.0 / 240.0
_UV_TILE_M = 0.25  # large boxes (floor, table top) repeat their texture every 25 cm
_WHITE = (1.0, 1.0, 1.0, 1.0)
_TOP_CELL_M = 0.25  # large top faces are drawn as cells of at most this size
_OCCLUSION_MARGIN_M = 0.01  # the hidden floor rectangle keeps this far inside the support's top face
_SETTLE_MAX_STEPS = 480  # 2 s of simulated time; whatever still rolls after that is frozen where it is
_SETTLE_CHECK_EVERY = 40
_SETTLE_SPEED = 0.01  # m/s and rad/s below which the scene counts as settled


@dataclass(frozen=True)
class SceneBody:
    """A rendered body: a labelled object (``instance_id > 0``) or background (``instance_id == 0``)."""

    body_id: int
    instance_id: int
    mesh: TriMesh
    world_T_body: np.ndarray  # (4, 4), fixed once the scene has settled
    spec: ObjectSpec | None = None  # None for background (support, clutter, walls)


@dataclass(frozen=True)
class SceneParams:
    """What a scene may contain. Defaults give 3-8 objects on a random support."""

    n_objects: tuple[int, int] = (3, 8)
    supports: tuple[str, ...] = SUPPORTS
    object_pool: str = "seen"
    primitive_fraction: float = 0.3
    n_distractors: tuple[int, int] = (2, 4)  # real_like only
    n_clutter: tuple[int, int] = (2, 5)  # real_like only


@dataclass(frozen=True)
class FloorView:
    """What is needed to draw the floor per camera view without the part the support box hides.

    TinyRenderer rasterises every triangle over its whole screen bounding box and depth-tests each pixel there, so a
    floor under a table costs render time even where the table hides it (about 20-30 ms of ~150 at 640x480). For one
    view, the floor points the support box certainly hides form an axis-aligned rectangle (the support's top face
    projected from the camera onto the floor plane, :func:`hidden_floor_rectangle`); :func:`floor_view_mesh` gives the
    floor mesh without it, its top split into small cells.
    """

    body_id: int
    mesh: TriMesh  # the floor box in its own frame (what the labels use)
    centre: tuple[float, float, float]  # world position of the floor body (no rotation)
    texture_id: int  # -1 for a plain colour
    rgba: tuple[float, float, float, float]
    uv_tile_m: float | None
    occluder: tuple[float, float, float, float, float] | None  # x0, x1, y0, y1 and top z of the support's top box


@dataclass
class Scene:
    """A settled scene in its own physics client. Close it (or use ``with``) to free the client."""

    client: int
    family: str
    support: str
    support_height: float  # world z of the surface the objects rest on
    workspace_centre: np.ndarray  # (3,) world point the cameras look at
    workspace_radius: float
    lighting: Lighting
    bodies: tuple[SceneBody, ...] = ()
    floor: FloorView | None = None
    _by_id: dict[int, SceneBody] = field(default_factory=dict, repr=False)

    @property
    def objects(self) -> tuple[SceneBody, ...]:
        return tuple(b for b in self.bodies if b.instance_id > 0)

    def body(self, body_id: int) -> SceneBody:
        if not self._by_id:
            self._by_id.update({b.body_id: b for b in self.bodies})
        return self._by_id[body_id]

    def close(self) -> None:
        if self.client >= 0 and pb.isConnected(physicsClientId=self.client):
            pb.disconnect(physicsClientId=self.client)
        self.client = -1

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pose(position: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = np.asarray(pb.getMatrixFromQuaternion(quaternion)).reshape(3, 3)
    t[:3, 3] = position
    return t


def _random_quaternion(rng: np.random.Generator) -> list[float]:
    q = rng.normal(size=4)
    return (q / np.linalg.norm(q)).tolist()


@dataclass(frozen=True)
class _BoxPlan:
    half_extents: tuple[float, ...]
    position: tuple[float, ...]
    textured_p: float
    yaw: float = 0.0
    role: BoxRole = ""


class _Builder:
    """Creates bodies in one client and remembers what it made.

    Static boxes are only planned by :meth:`static_box` and created by :meth:`create_static`, after the objects and
    in reverse planning order (clutter, support, floor last). TinyRenderer draws bodies in creation order, so drawing
    the near things first lets its depth test skip shading the far ones they hide: about a third of the render time
    when a floor lies under a table.
    """

    def __init__(self, client: int, rng: np.random.Generator, real_like: bool) -> None:
        self.client = client
        self.rng = rng
        self.real_like = real_like
        self.static: list[SceneBody] = []
        self.planned: list[_BoxPlan] = []
        self.dynamic: list[tuple[int, TriMesh, ObjectSpec]] = []
        self.floor: FloorView | None = None

    def _visual(self, mesh: TriMesh) -> int:
        return pb.createVisualShape(
            pb.GEOM_MESH,
            vertices=mesh.vertices.tolist(),
            indices=mesh.faces.reshape(-1).tolist(),
            uvs=mesh.uvs.tolist(),
            normals=mesh.vertex_normals.tolist(),
            physicsClientId=self.client,
        )

    def _appearance(
        self, body: int, *, textured_p: float, saturated: bool
    ) -> tuple[int, tuple[float, float, float, float]]:
        """Give ``body`` a random texture or colour; returns (texture id or -1, RGBA)."""
        if self.rng.random() < textured_p:
            kind = TEXTURE_KINDS[int(self.rng.integers(len(TEXTURE_KINDS)))]
            tex = load_texture(self.client, procedural_texture(self.rng, kind))
            apply_appearance(self.client, body, tex, _WHITE)
            return tex, _WHITE
        colour = random_colour(self.rng, saturated=saturated)
        apply_appearance(self.client, body, -1, colour)
        return -1, colour

    def static_box(
        self,
        half_extents: Sequence[float],
        position: Sequence[float],
        *,
        textured_p: float,
        yaw: float = 0.0,
        role: BoxRole = "",
    ) -> None:
        self.planned.append(
            _BoxPlan(tuple(map(float, half_extents)), tuple(map(float, position)), textured_p, yaw, role)
        )

    def create_static(self) -> None:
        occluder = next((p for p in self.planned if p.role == "occluder"), None)
        for plan in reversed(self.planned):
            half = np.asarray(plan.half_extents)
            uv_tile_m = _UV_TILE_M if half.max() > 0.3 else None
            mesh = box_mesh(half, uv_tile_m=uv_tile_m)
            visual = split_top_mesh(mesh, uv_tile_m) if 2 * half[:2].max() > _TOP_CELL_M else mesh
            col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half.tolist(), physicsClientId=self.client)
            quat = pb.getQuaternionFromEuler([0.0, 0.0, plan.yaw])
            body = pb.createMultiBody(
                0.0, col, self._visual(visual), list(plan.position), quat, physicsClientId=self.client
            )
            texture_id, rgba = self._appearance(body, textured_p=plan.textured_p, saturated=False)
            self.static.append(SceneBody(body, 0, mesh, _pose(plan.position, quat)))
            if plan.role == "floor" and plan.yaw == 0.0:
                box = None
                if occluder is not None and occluder.yaw == 0.0:
                    (ox, oy, oz), (hx, hy, hz) = occluder.position, occluder.half_extents
                    box = (ox - hx, ox + hx, oy - hy, oy + hy, oz + hz)
                centre = (plan.position[0], plan.position[1], plan.position[2])
                self.floor = FloorView(body, mesh, centre, texture_id, rgba, uv_tile_m, box)
        self.planned.clear()

    def dynamic_object(self, spec: ObjectSpec, position: Sequence[float]) -> None:
        mesh = make_mesh(spec, self.rng)
        if spec.kind == "box":
            col = pb.createCollisionShape(
                pb.GEOM_BOX, halfExtents=(mesh.extents / 2).tolist(), physicsClientId=self.client
            )
        elif spec.kind == "sphere":
            col = pb.createCollisionShape(
                pb.GEOM_SPHERE, radius=float(mesh.extents[0] / 2), physicsClientId=self.client
            )
        elif spec.kind == "cylinder":
            col = pb.createCollisionShape(
                pb.GEOM_CYLINDER,
                radius=float(mesh.extents[0] / 2),
                height=float(mesh.extents[2]),
                physicsClientId=self.client,
            )
        else:  # a file mesh: its convex hull
            col = pb.createCollisionShape(pb.GEOM_MESH, vertices=mesh.vertices.tolist(), physicsClientId=self.client)
        mass = float(np.clip(400.0 * np.prod(mesh.extents), 0.03, 0.6))  # ~ cardboard/plastic density
        body = pb.createMultiBody(
            mass, col, self._visual(mesh), list(position), _random_quaternion(self.rng), physicsClientId=self.client
        )
        pb.changeDynamics(
            body,
            -1,
            lateralFriction=0.8,
            rollingFriction=0.005,
            spinningFriction=0.005,
            linearDamping=0.1,
            angularDamping=0.1,
            physicsClientId=self.client,
        )
        self._appearance(body, textured_p=0.7 if self.real_like else 0.0, saturated=not self.real_like)
        self.dynamic.append((body, mesh, spec))


def apply_appearance(client: int, body: int, texture_id: int, rgba: Sequence[float]) -> None:
    """Texture (``texture_id >= 0``) or plain colour of a body's visual shape."""
    if texture_id >= 0:
        pb.changeVisualShape(body, -1, textureUniqueId=texture_id, rgbaColor=list(rgba), physicsClientId=client)
    else:
        pb.changeVisualShape(body, -1, rgbaColor=list(rgba), physicsClientId=client)


def hidden_floor_rectangle(floor: FloorView, camera_position: np.ndarray) -> tuple[float, float, float, float] | None:
    """World rectangle (x0, x1, y0, y1) of the floor's top face that the support box hides from a camera at
    ``camera_position``, or None when it hides nothing for sure.

    A ray from camera ``c`` to a floor point ``p`` crosses the support's top plane at ``c + (p - c) / k`` with
    ``k = (c_z - floor_z) / (c_z - top_z)``; it is blocked when that point lies inside the top face. Central projection
    between parallel planes is a scaling about the camera's foot point, so the blocked floor points form the top face
    (shrunk by a margin) scaled by ``k`` about ``c``: an axis-aligned rectangle.
    """
    if floor.occluder is None:
        return None
    x0, x1, y0, y1, top_z = floor.occluder
    half = floor.mesh.extents / 2
    floor_z = floor.centre[2] + half[2]
    c = np.asarray(camera_position, dtype=np.float64)
    if c[2] - top_z <= 1e-3:
        return None  # camera level with or below the support's top: it hides nothing from above
    k = (c[2] - floor_z) / (c[2] - top_z)
    m = _OCCLUSION_MARGIN_M
    hx0, hx1 = c[0] + (x0 + m - c[0]) * k, c[0] + (x1 - m - c[0]) * k
    hy0, hy1 = c[1] + (y0 + m - c[1]) * k, c[1] + (y1 - m - c[1]) * k
    fx0, fx1 = floor.centre[0] - half[0], floor.centre[0] + half[0]
    fy0, fy1 = floor.centre[1] - half[1], floor.centre[1] + half[1]
    hx0, hx1, hy0, hy1 = max(hx0, fx0), min(hx1, fx1), max(hy0, fy0), min(hy1, fy1)
    if hx1 - hx0 <= 0.0 or hy1 - hy0 <= 0.0:
        return None
    return float(hx0), float(hx1), float(hy0), float(hy1)


def split_top_mesh(
    mesh: TriMesh, uv_tile_m: float | None, hole: tuple[float, float, float, float] | None = None
) -> TriMesh:
    """A box mesh (from :func:`box_mesh`) with its top face split into cells, optionally with a hole.

    The renderer scans every triangle's whole screen bounding box, so a large face drawn as two triangles costs about
    twice its screen area; cells of at most ``_TOP_CELL_M`` waste far less. ``hole`` (x0, x1, y0, y1) in the box's
    frame is left out of the top face: the face becomes up to four rectangles around it. Texture coordinates are the
    ones the full face gives the same points, so every drawn pixel renders as before.
    """
    half = mesh.extents / 2
    up = mesh.face_normals[:, 2] > 0.5
    fx0, fx1, fy0, fy1 = -half[0], half[0], -half[1], half[1]
    if hole is None:
        pieces = [(fx0, fx1, fy0, fy1)]
    else:
        hx0, hx1, hy0, hy1 = hole
        pieces = [(fx0, hx0, fy0, fy1), (hx1, fx1, fy0, fy1), (hx0, hx1, fy0, hy0), (hx0, hx1, hy1, fy1)]
    scale = np.array([uv_tile_m, uv_tile_m]) if uv_tile_m else 2 * half[:2]
    vertices, uvs, faces = [mesh.vertices], [mesh.uvs], [mesh.faces[~up]]
    count = len(mesh.vertices)
    for x0, x1, y0, y1 in pieces:
        if x1 - x0 <= 0.0 or y1 - y0 <= 0.0:
            continue
        xs = np.linspace(x0, x1, max(2, int(np.ceil((x1 - x0) / _TOP_CELL_M)) + 1))
        ys = np.linspace(y0, y1, max(2, int(np.ceil((y1 - y0) / _TOP_CELL_M)) + 1))
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        xy = np.column_stack([gx.reshape(-1), gy.reshape(-1)])
        vertices.append(np.column_stack([xy, np.full(len(xy), half[2])]))
        uvs.append((xy + half[:2]) / scale)
        grid = count + np.arange(len(xy)).reshape(len(xs), len(ys))
        a, b, c, d = grid[:-1, :-1], grid[1:, :-1], grid[1:, 1:], grid[:-1, 1:]  # counter-clockwise from above
        faces.append(np.stack([np.stack([a, b, c], -1), np.stack([a, c, d], -1)], -2).reshape(-1, 3))
        count += len(xy)
    v = np.concatenate(vertices)
    normals = np.concatenate([mesh.vertex_normals, np.tile([0.0, 0.0, 1.0], (len(v) - len(mesh.vertices), 1))])
    return TriMesh(v, np.concatenate(faces).astype(np.int32), normals, np.concatenate(uvs), True)


def floor_view_mesh(floor: FloorView, hidden: tuple[float, float, float, float] | None) -> TriMesh:
    """The floor box in its own frame, top face split into cells, without the ``hidden`` world rectangle."""
    cx, cy = floor.centre[0], floor.centre[1]
    hole = None if hidden is None else (hidden[0] - cx, hidden[1] - cx, hidden[2] - cy, hidden[3] - cy)
    return split_top_mesh(floor.mesh, floor.uv_tile_m, hole)


def _object_pool(pool: str) -> tuple[str, ...]:
    if pool == "seen":
        return seen_names()
    if pool == "novel":
        return novel_names()
    if pool == "all":
        return seen_names() + novel_names()
    raise SceneError(f"unknown object pool {pool!r}; known: {', '.join(OBJECT_POOLS)}")


def _draw_classes(rng: np.random.Generator, params: SceneParams, n: int) -> list[ObjectSpec]:
    pool = _object_pool(params.object_pool)
    meshes = [name for name in pool if CATALOGUE[name].kind == "mesh"]
    primitives = [name for name in pool if CATALOGUE[name].kind != "mesh"]
    names = []
    for _ in range(n):
        use_primitive = primitives and (not meshes or rng.random() < params.primitive_fraction)
        choices = primitives if use_primitive else meshes
        names.append(choices[int(rng.integers(len(choices)))])
    return [CATALOGUE[name] for name in names]


def _build_support(b: _Builder, support: str) -> tuple[float, float]:
    """Plan the floor plus the chosen support; returns (support top height, workspace radius)."""
    rng = b.rng
    texture_p = 0.9 if b.real_like else 0.0
    b.static_box([2.0, 2.0, 0.01], [0.0, 0.0, -0.01], textured_p=texture_p, role="floor")  # top at z = 0
    if support == "floor":
        return 0.0, 0.2
    if support == "tray":
        hx, hy, wall_h, t = rng.uniform(0.17, 0.23), rng.uniform(0.13, 0.18), rng.uniform(0.04, 0.07), 0.006
        b.static_box([hx, hy, t], [0.0, 0.0, t], textured_p=texture_p, role="occluder")
        for sx in (-1, 1):
            b.static_box([t, hy, wall_h / 2], [sx * (hx - t), 0.0, 2 * t + wall_h / 2], textured_p=texture_p)
        for sy in (-1, 1):
            b.static_box([hx - 2 * t, t, wall_h / 2], [0.0, sy * (hy - t), 2 * t + wall_h / 2], textured_p=texture_p)
        return 2 * t, float(min(hx, hy)) - 0.03
    if support == "table":
        height, hx, hy, thick = rng.uniform(0.65, 0.8), rng.uniform(0.4, 0.6), rng.uniform(0.3, 0.4), 0.02
        for sx in (-1, 1):
            for sy in (-1, 1):
                leg_h = (height - 2 * thick) / 2
                b.static_box([0.025, 0.025, leg_h], [sx * (hx - 0.05), sy * (hy - 0.05), leg_h], textured_p=0.0)
        # planned after the legs, so created (and drawn) before them
        b.static_box([hx, hy, thick], [0.0, 0.0, height - thick], textured_p=texture_p, role="occluder")
        return float(height), 0.2
    raise SceneError(f"unknown support {support!r}; known: {', '.join(SUPPORTS)}")


def _add_clutter(b: _Builder, top: float, radius: float, n: int) -> None:
    """Flat background clutter (paper sheets, books, boards) and a back wall, for the real-like family."""
    rng = b.rng
    for _ in range(n):
        ang = rng.uniform(-np.pi, np.pi)
        r = rng.uniform(0.6, 1.6) * radius
        half = [rng.uniform(0.04, 0.11), rng.uniform(0.03, 0.08), rng.uniform(0.0008, 0.012)]
        b.static_box(
            half, [r * np.cos(ang), r * np.sin(ang), top + half[2]], textured_p=0.95, yaw=rng.uniform(0, np.pi)
        )
    if rng.random() < 0.7:
        ang = rng.uniform(-np.pi, np.pi)
        dist = rng.uniform(0.45, 0.7)
        b.static_box([0.01, 0.9, 0.6], [dist * np.cos(ang), dist * np.sin(ang), top + 0.3], textured_p=1.0, yaw=ang)


def _settle(client: int, bodies: Sequence[int]) -> None:
    for step in range(1, _SETTLE_MAX_STEPS + 1):
        pb.stepSimulation(physicsClientId=client)
        if step % _SETTLE_CHECK_EVERY == 0 and step >= 2 * _SETTLE_CHECK_EVERY:
            speeds = [np.abs(np.concatenate(pb.getBaseVelocity(b, physicsClientId=client))).max() for b in bodies]
            if not speeds or max(speeds) < _SETTLE_SPEED:
                return


def build_scene(
    seed: int,
    family: str = "synthetic",
    *,
    params: SceneParams | None = None,
    support: str | None = None,
) -> Scene:
    """Build and settle one scene; the same ``seed`` (and arguments) gives the same scene.

    Objects that fall off the support are removed; instance ids are 1..M in a stable order.
    """
    if family not in FAMILIES:
        raise SceneError(f"unknown scene family {family!r}; known: {', '.join(FAMILIES)}")
    params = params or SceneParams()
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE7E]))
    real_like = family == "real_like"
    support = support or params.supports[int(rng.integers(len(params.supports)))]
    if support not in SUPPORTS:
        raise SceneError(f"unknown support {support!r}; known: {', '.join(SUPPORTS)}")

    client = pb.connect(pb.DIRECT)
    try:
        pb.setGravity(0, 0, -9.81, physicsClientId=client)
        pb.setTimeStep(_SETTLE_DT, physicsClientId=client)
        b = _Builder(client, rng, real_like)
        top, radius = _build_support(b, support)
        n_obj = int(rng.integers(params.n_objects[0], params.n_objects[1] + 1))
        specs = _draw_classes(rng, params, n_obj)
        if real_like:
            n_dis = int(rng.integers(params.n_distractors[0], params.n_distractors[1] + 1))
            names = distractor_names()
            specs += [CATALOGUE[names[int(rng.integers(len(names)))]] for _ in range(n_dis)]
            _add_clutter(b, top, radius, int(rng.integers(params.n_clutter[0], params.n_clutter[1] + 1)))
        order = rng.permutation(len(specs))
        for k, i in enumerate(order):
            r, ang = radius * 0.8 * np.sqrt(rng.random()), rng.uniform(-np.pi, np.pi)
            b.dynamic_object(specs[i], [r * np.cos(ang), r * np.sin(ang), top + 0.08 + 0.07 * k])
        b.create_static()
        _settle(client, [d[0] for d in b.dynamic])

        kept: list[SceneBody] = []
        for body, mesh, spec in b.dynamic:
            pos, quat = pb.getBasePositionAndOrientation(body, physicsClientId=client)
            on_support = pos[2] > top - 0.01 and np.hypot(pos[0], pos[1]) < 1.5 * radius + 0.05
            if not on_support:
                pb.removeBody(body, physicsClientId=client)
                continue
            kept.append(SceneBody(body, len(kept) + 1, mesh, _pose(pos, quat), spec))
        if not kept:
            raise SceneError(f"scene seed={seed} family={family!r} support={support!r}: every object fell off")
        return Scene(
            client=client,
            family=family,
            support=support,
            support_height=float(top),
            workspace_centre=np.array([0.0, 0.0, top]),
            workspace_radius=float(radius),
            lighting=random_lighting(rng, real_like=real_like),
            bodies=tuple(b.static) + tuple(kept),
            floor=b.floor,
        )
    except BaseException:
        pb.disconnect(physicsClientId=client)
        raise
