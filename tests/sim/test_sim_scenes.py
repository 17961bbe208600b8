"""Catalogue split, primitives, camera presets, the renderer's pixel convention and scene content."""

from __future__ import annotations

import dataclasses

import numpy as np
import pybullet as pb
import pytest
from scipy.spatial.transform import Rotation

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.cameras import CAMERAS, camera_preset, look_at, sample_camera_pose
from dcl_arc_ros.sim.errors import CameraPresetError, CatalogueError, MeshFormatError, SceneError
from dcl_arc_ros.sim.labels import silhouette
from dcl_arc_ros.sim.objects import (
    CATALOGUE,
    box_mesh,
    cylinder_mesh,
    data_path,
    distractor_names,
    make_mesh,
    novel_names,
    read_obj,
    seen_names,
    spec_by_name,
    sphere_mesh,
)
from dcl_arc_ros.sim.render import Lighting, render
from dcl_arc_ros.sim.scenes import SceneParams, build_scene


def test_seen_novel_split_is_the_documented_rule() -> None:
    novel = novel_names()
    assert len(novel) == 200 and all(int(n[5:]) % 5 == 4 for n in novel)
    seen = seen_names()
    assert len(seen) == 802 and {"box", "cylinder", "sphere"} <= set(seen)  # 799 random_urdfs (168 is broken) + 3
    assert not set(seen) & set(novel) and not set(distractor_names()) & (set(seen) | set(novel))
    ids = [s.class_id for s in CATALOGUE.values()]
    assert len(ids) == len(set(ids))
    assert spec_by_name("urdf_042").class_id == 42 and not spec_by_name("urdf_042").novel
    with pytest.raises(CatalogueError, match="'urdf_1000'"):
        spec_by_name("urdf_1000")


@pytest.mark.parametrize("mesh", [box_mesh(np.array([0.01, 0.02, 0.03])), cylinder_mesh(0.02, 0.05), sphere_mesh(0.03)])
def test_primitive_meshes_are_closed_outward_and_sampled_on_the_surface(mesh) -> None:  # type: ignore[no-untyped-def]
    centroids = mesh.triangles.mean(axis=1)
    assert np.all(np.einsum("fi,fi->f", mesh.face_normals, centroids) > 0)  # outward winding
    points, normals = mesh.sample_surface(0.002)
    plane_dist = np.einsum("ni,ni->n", normals, points)
    assert np.all(plane_dist > 0) and len(points) >= len(mesh.faces)
    assert np.all(np.abs(points) <= mesh.extents / 2 + 1e-9)


def test_catalogue_meshes_are_finite_and_the_all_nan_mesh_is_left_out() -> None:
    with pytest.raises(MeshFormatError, match=r"168\.obj"):
        read_obj(data_path() / "random_urdfs/168/168.obj")
    assert "urdf_168" not in CATALOGUE
    names = list(CATALOGUE)
    for name in names[::25] + list(distractor_names()):
        mesh = make_mesh(CATALOGUE[name], np.random.default_rng(0))
        assert np.isfinite(mesh.vertices).all() and len(mesh.faces) > 0, name


@pytest.mark.parametrize("name", ["urdf_000", "urdf_517", "teddy", "duck", "box"])
def test_hull_silhouettes_equal_face_by_face_rasterisation(name: str) -> None:
    mesh = make_mesh(CATALOGUE[name], np.random.default_rng(0))
    assert mesh.hull_parts, "these meshes have convex parts"
    slow = dataclasses.replace(mesh, hull_parts=(), loose_faces=None)  # every face on its own
    intr = Intrinsics(fx=300.0, fy=300.0, cx=79.5, cy=59.5, width=160, height=120)
    for k in range(3):
        pose = np.eye(4)
        pose[:3, :3] = Rotation.random(random_state=k).as_matrix()
        pose[:3, 3] = [0.01 * k, -0.01, 0.45]
        fast_mask, slow_mask = silhouette(mesh, pose, intr), silhouette(slow, pose, intr)
        assert slow_mask.sum() > 100
        assert (fast_mask & slow_mask).sum() / (fast_mask | slow_mask).sum() > 0.99


def test_file_meshes_are_centred_and_tabletop_sized() -> None:
    for name in ("urdf_000", "urdf_517", "duck", "mug"):
        mesh = make_mesh(CATALOGUE[name], np.random.default_rng(0))
        np.testing.assert_allclose(mesh.vertices.max(0) + mesh.vertices.min(0), 0.0, atol=1e-9)
        assert 0.02 < mesh.extents.max() < 0.2, name


def test_camera_presets_carry_real_intrinsics() -> None:
    sr300 = camera_preset("realsense_sr300").intrinsics
    assert (sr300.fx, sr300.fy, sr300.cx, sr300.cy) == (476.05, 476.05, 311.48, 246.28)
    assert camera_preset("realsense_d435").baseline_m == pytest.approx(0.05)
    assert all((p.intrinsics.width, p.intrinsics.height) == (640, 480) for p in CAMERAS.values())
    half = camera_preset("kinect_v1").at_resolution(320, 240)
    assert half.fx == pytest.approx(262.5)
    with pytest.raises(CameraPresetError, match="'kinect2'"):
        camera_preset("kinect2")


def test_sampled_camera_poses_look_at_the_workspace() -> None:
    target = np.array([0.1, -0.2, 0.7])
    for k in range(20):
        pose = sample_camera_pose(np.random.default_rng(k), target, (0.5, 0.8), target_jitter_m=0.0)
        r = pose[:3, :3]
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        to_target = target - pose[:3, 3]
        assert 0.5 <= np.linalg.norm(to_target) <= 0.8 + 1e-9
        np.testing.assert_allclose(r[:, 2], to_target / np.linalg.norm(to_target), atol=1e-9)
        assert pose[2, 3] > target[2]  # above the table


def test_renderer_samples_pixel_centres_and_returns_metric_depth() -> None:
    client = pb.connect(pb.DIRECT)
    try:
        half = np.array([0.05, 0.03, 0.02])
        mesh = box_mesh(half)
        vis = pb.createVisualShape(
            pb.GEOM_MESH,
            vertices=mesh.vertices.tolist(),
            indices=mesh.faces.reshape(-1).tolist(),
            physicsClientId=client,
        )
        body = pb.createMultiBody(0, -1, vis, [0.0, 0.0, 0.0], physicsClientId=client)
        intr = Intrinsics(fx=131.25, fy=131.25, cx=79.5, cy=59.5, width=160, height=120)
        pose = look_at(np.array([0.0, 0.0, 0.5]), np.zeros(3), up=np.array([0.0, 1.0, 0.0]))
        out = render(client, intr, pose, Lighting())
        top = 0.5 - half[2]
        np.testing.assert_allclose(out.depth[out.segmentation == body], top, rtol=1e-4)
        # the box covers exactly the pixels whose centre falls inside its projected top face
        u = np.arange(160)[None, :]
        v = np.arange(120)[:, None]
        x, y = (u - intr.cx) * top / intr.fx, (v - intr.cy) * top / intr.fy
        expected = (np.abs(x) < half[0]) & (np.abs(y) < half[1])
        np.testing.assert_array_equal(out.segmentation == body, expected)
        assert np.isnan(out.depth[~expected]).all()  # nothing else in the scene: no hit is NaN
    finally:
        pb.disconnect(physicsClientId=client)


@pytest.mark.parametrize(("family", "support"), [("synthetic", "table"), ("real_like", "table"), ("real_like", "tray")])
def test_scene_content_differs_by_family_and_objects_rest_on_the_support(family: str, support: str) -> None:
    with build_scene(31, family, support=support) as scene:
        objects = scene.objects
        assert objects and [o.instance_id for o in objects] == list(range(1, len(objects) + 1))
        distractors = [o for o in objects if o.spec is not None and o.spec.distractor]
        background = [b for b in scene.bodies if b.instance_id == 0]
        for o in objects:
            centre = o.world_T_body[:3, 3]
            assert centre[2] > scene.support_height - 0.01
            assert np.hypot(*centre[:2]) < 1.5 * scene.workspace_radius + 0.05
        if family == "synthetic":
            assert not distractors
            assert all(not o.spec.novel for o in objects if o.spec is not None)
        else:
            assert distractors, "real-like scenes add distractor objects"
            n_support_parts = {"table": 6, "tray": 6, "floor": 1}[support]
            assert len(background) > n_support_parts, "real-like scenes add clutter"


def test_novel_pool_and_bad_names() -> None:
    with build_scene(5, "synthetic", params=SceneParams(object_pool="novel", primitive_fraction=0.0)) as scene:
        assert all(o.spec is not None and o.spec.novel for o in scene.objects)
    with pytest.raises(SceneError, match="'indoor'"):
        build_scene(5, "indoor")
    with pytest.raises(SceneError, match="'shelf'"):
        build_scene(5, "synthetic", support="shelf")
