"""The fast paths of the labels and the empirical sensor give exactly what the code before them gave.

``tests/sim/reference/`` holds frozen copies of the modules as they were before the speed-ups. Each test runs the
current function and its frozen counterpart on the same fixed inputs (rendered views of fixed scenes at two
resolutions, and a few hand-made arrays) and requires identical arrays, NaN for NaN.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.cameras import camera_preset, sample_camera_pose
from dcl_arc_ros.sim.errors import SensorError
from dcl_arc_ros.sim.grasp_labels import grasp_labels
from dcl_arc_ros.sim.labels import (
    _camera_frame_normals,
    _surface_index,
    instance_map,
    object_silhouettes,
    surface_normals,
)
from dcl_arc_ros.sim.objects import TriMesh, box_mesh, mesh_from_arrays
from dcl_arc_ros.sim.pipeline import render_view
from dcl_arc_ros.sim.render import depth_buffer_to_metric, render
from dcl_arc_ros.sim.scenes import Scene, SceneBody, build_scene
from dcl_arc_ros.sim.sensors import EmpiricalParams, EmpiricalSensor, SceneContext
from dcl_arc_ros.sim.sensors.base import check_depth, viewing_angles
from dcl_arc_ros.sim.sensors.empirical import discontinuity_band, projector_shadow

_REFERENCE = Path(__file__).parent / "reference"
_PACKAGE = "dcl_arc_sim_reference"


def _reference(name: str) -> ModuleType:
    """Import ``tests/sim/reference/<name>.py`` (under a private package name, so its relative imports work)."""
    if _PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            _PACKAGE, _REFERENCE / "__init__.py", submodule_search_locations=[str(_REFERENCE)]
        )
        assert spec is not None and spec.loader is not None
        package = importlib.util.module_from_spec(spec)
        sys.modules[_PACKAGE] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{_PACKAGE}.{name}")


@dataclass(frozen=True)
class View:
    scene: Scene
    intrinsics: Intrinsics
    world_T_cam: np.ndarray
    depth: np.ndarray
    segmentation: np.ndarray
    instances: np.ndarray
    silhouettes: dict[int, np.ndarray]


@pytest.fixture(scope="module")
def views() -> Iterator[list[View]]:
    """Two views each of a table scene at 640x480 and of a tray scene at 320x240 (the fast paths scale with size)."""
    out: list[View] = []
    scenes = []
    for seed, support, width, height in ((1000, "table", 640, 480), (1001, "tray", 320, 240)):
        scene = build_scene(seed, "synthetic", support=support)
        scenes.append(scene)
        preset = camera_preset("realsense_d435")
        intr = preset.at_resolution(width, height)
        for k in range(2):
            pose = sample_camera_pose(np.random.default_rng([seed, k]), scene.workspace_centre, preset.view_distance_m)
            r = render_view(scene, intr, pose)
            sil = object_silhouettes(scene, pose, intr)
            out.append(View(scene, intr, pose, r.depth, r.segmentation, instance_map(r.segmentation, scene), sil))
    yield out
    for scene in scenes:
        scene.close()


def _normals(view: View) -> np.ndarray:
    return surface_normals(view.depth, view.segmentation, view.intrinsics, view.world_T_cam, view.scene)


def _part_wise_bodies(view: View) -> list[int]:
    """Body ids of the view's meshes that are labelled part by part (made of convex parts, not convex)."""
    return [
        b.body_id for b in view.scene.bodies if not b.mesh.convex and b.mesh.hull_parts and not len(b.mesh.loose_faces)
    ]


def test_surface_normals_equal_the_reference_off_part_wise_meshes(views: list[View]) -> None:
    """Support, floor and primitive pixels are labelled exactly as before; only part-wise meshes changed path."""
    ref = _reference("labels_v0")
    for view in views:
        expected = ref.surface_normals(view.depth, view.segmentation, view.intrinsics, view.world_T_cam, view.scene)
        got = _normals(view)
        assert np.count_nonzero(np.any(got != 0, axis=-1)) > 0.9 * np.isfinite(view.depth).sum()
        same_path = ~np.isin(view.segmentation, _part_wise_bodies(view))
        assert np.isin(view.segmentation, _part_wise_bodies(view)).any()  # the views do show such objects
        np.testing.assert_array_equal(got[same_path], expected[same_path])
        assert got.dtype == expected.dtype == np.float32


def _two_part_mesh() -> TriMesh:
    """An L-shaped object: two boxes of different sizes, each one OBJ-style part, overlapping in a corner."""
    a, b = box_mesh(np.array([0.03, 0.01, 0.02])), box_mesh(np.array([0.01, 0.025, 0.015]))
    offset = np.array([0.025, 0.02, -0.005])
    vertices = np.concatenate([a.vertices, b.vertices + offset])
    faces = np.concatenate([a.faces, b.faces + len(a.vertices)])
    parts = np.repeat([0, 1], [len(a.faces), len(b.faces)])
    return mesh_from_arrays(vertices, faces, face_parts=parts)


def test_part_wise_normals_are_the_planes_the_points_lie_on() -> None:
    """Points on a mesh of convex parts get the normal of the face they lie on (exact), in any pose."""
    mesh = _two_part_mesh()
    assert len(mesh.hull_parts) == 2 and mesh.loose_faces is not None and len(mesh.loose_faces) == 0
    index = _surface_index(mesh)
    assert index.tree is None and index.part_start.size == 3  # the part-wise path, not the sample tree
    points, face_normals = mesh.sample_surface(0.002)
    angle = 0.7
    body_T_cam = np.eye(4)
    body_T_cam[:3, :3] = [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1.0]]
    body_T_cam[:3, 3] = [0.01, -0.02, 0.03]
    points_cam = ((points - body_T_cam[:3, 3]) @ body_T_cam[:3, :3]).astype(np.float32)  # body -> camera frame
    body = SceneBody(body_id=7, instance_id=1, mesh=mesh, world_T_body=np.eye(4))
    got_body = _camera_frame_normals(body, body_T_cam, points_cam).astype(np.float64) @ body_T_cam[:3, :3].T
    np.testing.assert_allclose(np.linalg.norm(got_body, axis=1), 1.0, atol=1e-6)
    agree = np.abs(np.einsum("ni,ni->n", got_body, face_normals)) > 1 - 1e-6
    # the only other answer is the neighbouring face of a sample that sits on an edge (within float32 rounding)
    half = np.abs(points - np.round(points / 5e-4) * 5e-4)  # distance to the half-millimetre grid of the faces
    on_edge = np.sum(half < 1e-6, axis=1) >= 2
    assert np.all(agree | on_edge)
    assert agree.mean() > 0.97


def test_part_wise_normals_agree_better_with_the_depth_geometry(views: list[View]) -> None:
    """On smooth object pixels the labelled normals match the clean depth's own surface at least as well as the
    nearest-sample labels of the reference did (they are exact planes now)."""
    ref = _reference("labels_v0")
    errors: dict[str, list[np.ndarray]] = {"new": [], "old": []}
    for view in views:
        k = view.intrinsics
        z = view.depth.astype(np.float64)
        u = (np.arange(k.width) - k.cx) / k.fx
        v = (np.arange(k.height) - k.cy) / k.fy
        p = np.stack([u[None, :] * z, v[:, None] * z, z], axis=-1)
        n = np.cross(p[1:-1, 2:] - p[1:-1, :-2], p[2:, 1:-1] - p[:-2, 1:-1])
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        seg = view.segmentation
        centre = seg[1:-1, 1:-1]
        same = np.ones(centre.shape, dtype=bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                same &= seg[1 + dy : seg.shape[0] - 1 + dy, 1 + dx : seg.shape[1] - 1 + dx] == centre
        zc = z[1:-1, 1:-1]
        flat = np.abs(z[1:-1, 2:] + z[1:-1, :-2] - 2 * zc) + np.abs(z[2:, 1:-1] + z[:-2, 1:-1] - 2 * zc) < 1e-4
        ok = np.isin(centre, _part_wise_bodies(view)) & same & flat & np.isfinite(n).all(axis=-1)
        old = ref.surface_normals(view.depth, seg, k, view.world_T_cam, view.scene)
        for name, labels in (("new", _normals(view)), ("old", old)):
            cos = np.abs(np.einsum("ni,ni->n", labels[1:-1, 1:-1][ok], n[ok]))
            errors[name].append(np.degrees(np.arccos(np.clip(cos, 0.0, 1.0))))
    new, old = np.concatenate(errors["new"]), np.concatenate(errors["old"])
    assert new.size > 1000
    assert np.mean(new > 10.0) <= np.mean(old > 10.0)
    assert np.percentile(new, 99) <= np.percentile(old, 99) + 0.1
    assert np.median(new) < 1.0


def test_grasp_labels_equal_the_reference(views: list[View]) -> None:
    ref = _reference("grasp_labels_v0")
    total = 0
    for view in views:
        height = view.scene.support_height
        args = (view.instances, view.silhouettes, view.depth, view.intrinsics, view.world_T_cam, height)
        got, expected = grasp_labels(*args), ref.grasp_labels(*args)
        for name in ("rects", "instance_ids", "width_m", "quality_map", "cos2_map", "sin2_map", "width_map"):
            np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
            assert getattr(got, name).dtype == getattr(expected, name).dtype, name
        total += len(got.rects)
    assert total > 0  # the views do have grasps to compare


def test_viewing_angles_equal_the_reference(views: list[View]) -> None:
    ref = _reference("sensor_base_v0")
    for view in views:
        normals = _normals(view)
        np.testing.assert_array_equal(
            viewing_angles(normals, view.intrinsics), ref.viewing_angles(normals, view.intrinsics)
        )
    # a strided (non-contiguous) float64 input is accepted as before
    normals64 = np.repeat(_normals(views[-1]).astype(np.float64), 2, axis=-1)[..., ::2]
    np.testing.assert_array_equal(
        viewing_angles(normals64, views[-1].intrinsics), ref.viewing_angles(normals64, views[-1].intrinsics)
    )


def test_hole_masks_equal_the_reference(views: list[View]) -> None:
    ref = _reference("empirical_v0")
    for view in views:
        for baseline in (0.05, 0.075):
            np.testing.assert_array_equal(
                projector_shadow(view.depth, view.intrinsics.fx, baseline),
                ref.projector_shadow(view.depth, view.intrinsics.fx, baseline),
            )
        for radius in (1, 2):
            np.testing.assert_array_equal(
                discontinuity_band(view.depth, 0.02, radius), ref.discontinuity_band(view.depth, 0.02, radius)
            )


@pytest.mark.parametrize(
    "params",
    [EmpiricalParams(), EmpiricalParams(lateral=False, shadows=False), EmpiricalParams(quantise=False, dropout=0.05)],
)
def test_empirical_sensor_equals_the_reference(views: list[View], params: EmpiricalParams) -> None:
    ref = _reference("empirical_v0")
    for k, view in enumerate(views):
        ctx = SceneContext(normals=_normals(view), instances=view.instances, baseline_m=0.05)
        got = EmpiricalSensor(params=params).apply(view.depth, view.intrinsics, np.random.default_rng(k), ctx)
        expected = ref.EmpiricalSensor(params=ref.EmpiricalParams(**vars(params))).apply(
            view.depth, view.intrinsics, np.random.default_rng(k), ctx
        )
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype == np.float32
        assert 0.0 < np.isnan(got).mean() < 0.5


def test_render_buffers_convert_as_the_reference() -> None:
    ref = _reference("render_v0")
    rng = np.random.default_rng(4)
    buffer = rng.uniform(0.0, 1.0, (48, 64)).astype(np.float32)
    buffer[:4] = 1.0  # no hit
    buffer[4, :8] = np.float32(1.0 - 1e-7)  # rounds to just below 1 in float32: the test is made in float64
    for near, far in ((0.05, 6.0), (0.1, 3.0)):
        got, expected = depth_buffer_to_metric(buffer, near, far), ref.depth_buffer_to_metric(buffer, near, far)
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype == np.float32 and np.isnan(got[:4]).all()


def test_rendered_frame_equals_the_reference(views: list[View]) -> None:
    """One render through the current and the frozen ``render``: identical RGB, depth and segmentation."""
    ref = _reference("render_v0")
    view = views[-1]
    scene, intr = view.scene, view.intrinsics
    got = render(scene.client, intr, view.world_T_cam, scene.lighting)
    expected = ref.render(scene.client, intr, view.world_T_cam, scene.lighting)
    for name in ("rgb", "depth", "segmentation"):
        a, b = getattr(got, name), getattr(expected, name)
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.dtype == b.dtype and a.flags.c_contiguous, name


def test_viewing_angles_of_zero_and_tiny_normals_equal_the_reference() -> None:
    """Unknown (all-zero) normals give 0 as before, also where n . n underflows in float32 but n . r does not."""
    ref = _reference("sensor_base_v0")
    intr = Intrinsics(fx=100.0, fy=100.0, cx=31.5, cy=23.5, width=64, height=48)
    rng = np.random.default_rng(2)
    normals = rng.normal(size=(48, 64, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[:10] = 0.0
    normals[10, :8] = np.float32(1e-30)  # n . n == 0 in float32, n . r is not
    normals[11, :8] = [0.0, -0.0, 0.0]
    normals[12, :8] = [1e-23, 0.0, 0.0]
    np.testing.assert_array_equal(viewing_angles(normals, intr), ref.viewing_angles(normals, intr))


@pytest.mark.parametrize("fill", [None, np.inf, -np.inf, 600.0, 0.0])
def test_depth_checks_equal_the_reference(fill: float | None) -> None:
    ref = _reference("sensor_base_v0")
    intr = Intrinsics(fx=100.0, fy=100.0, cx=31.5, cy=23.5, width=64, height=48)
    depth = np.full((48, 64), np.nan, dtype=np.float32)
    if fill is not None:
        depth[5:9, 3:7] = 0.8
        depth[0, 0] = fill
    outcomes = []
    for check in (check_depth, ref.check_depth):
        try:
            outcomes.append(("ok", check(depth, intr, "t")))
        except SensorError as exc:
            outcomes.append(("error", str(exc)))
    assert outcomes[0][0] == outcomes[1][0]
    if outcomes[0][0] == "ok":
        np.testing.assert_array_equal(outcomes[0][1], outcomes[1][1])
    else:
        values = [re.search(r"depth values (\S+)\.\.(\S+) are", message).groups() for _, message in outcomes]
        assert values[0] == values[1]
