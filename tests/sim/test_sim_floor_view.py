"""The per-view floor stand-in renders the same image as the full floor, and the floor it leaves out is truly hidden."""

from __future__ import annotations

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.cameras import camera_preset, sample_camera_pose
from dcl_arc_ros.sim.objects import box_mesh
from dcl_arc_ros.sim.pipeline import render_view
from dcl_arc_ros.sim.render import render
from dcl_arc_ros.sim.scenes import build_scene, floor_view_mesh, hidden_floor_rectangle, split_top_mesh


def _intrinsics() -> Intrinsics:
    return camera_preset("realsense_d435").at_resolution(160, 120)


@pytest.mark.parametrize(("seed", "family", "support"), [(41, "synthetic", "table"), (42, "real_like", "tray")])
def test_render_view_matches_the_full_render(seed: int, family: str, support: str) -> None:
    intr = _intrinsics()
    with build_scene(seed, family, support=support) as scene:
        assert scene.floor is not None and scene.floor.occluder is not None
        hidden_somewhere = False
        for k in range(3):
            pose = sample_camera_pose(np.random.default_rng([seed, k]), scene.workspace_centre, (0.45, 0.8))
            hidden_somewhere |= hidden_floor_rectangle(scene.floor, pose[:3, 3]) is not None
            full = render(scene.client, intr, pose, scene.lighting)
            view = render_view(scene, intr, pose)
            np.testing.assert_array_equal(view.segmentation, full.segmentation)
            np.testing.assert_array_equal(np.isnan(view.depth), np.isnan(full.depth))
            np.testing.assert_allclose(view.depth, full.depth, atol=1e-4, equal_nan=True)
            # textures may land on the neighbouring texel at a handful of pixels, nothing more
            assert np.mean(np.abs(view.rgb.astype(int) - full.rgb).max(axis=-1) > 8) < 0.002
            # the stand-in is gone afterwards: a plain render shows the full floor again
            again = render(scene.client, intr, pose, scene.lighting)
            np.testing.assert_array_equal(again.segmentation, full.segmentation)
        assert hidden_somewhere


def test_hidden_floor_points_are_behind_the_support_top() -> None:
    with build_scene(43, "synthetic", support="table") as scene:
        floor = scene.floor
        assert floor is not None and floor.occluder is not None
        x0, x1, y0, y1, top_z = floor.occluder
        floor_z = floor.centre[2] + floor.mesh.extents[2] / 2
        rng = np.random.default_rng(0)
        checked = 0
        for k in range(20):
            camera = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), top_z + rng.uniform(0.2, 0.9)])
            hidden = hidden_floor_rectangle(floor, camera)
            if hidden is None:
                continue
            points = np.column_stack(
                [rng.uniform(hidden[0], hidden[1], 200), rng.uniform(hidden[2], hidden[3], 200), np.full(200, floor_z)]
            )
            # where the ray from the camera to each point crosses the support's top plane
            t = (camera[2] - top_z) / (camera[2] - points[:, 2])
            cross = camera + t[:, None] * (points - camera)
            assert np.all((cross[:, 0] > x0) & (cross[:, 0] < x1) & (cross[:, 1] > y0) & (cross[:, 1] < y1)), k
            checked += 1
        assert checked > 5
        # a camera level with the table top hides nothing for sure
        assert hidden_floor_rectangle(floor, np.array([0.0, 0.0, top_z])) is None


def test_split_top_mesh_keeps_the_box_surface() -> None:
    half = np.array([0.6, 0.4, 0.02])
    mesh = box_mesh(half, uv_tile_m=0.25)
    split = split_top_mesh(mesh, 0.25)
    np.testing.assert_allclose(split.face_areas.sum(), mesh.face_areas.sum(), rtol=1e-12)
    top = split.face_normals[:, 2] > 0.5
    assert top.sum() > 2 and np.all(split.face_normals[top] @ [0.0, 0.0, 1.0] > 0.999)  # still facing up
    # texture coordinates continue the full face's: u = (x + half_x) / tile
    np.testing.assert_allclose(
        split.uvs[len(mesh.vertices) :, 0], (split.vertices[len(mesh.vertices) :, 0] + 0.6) / 0.25
    )
    # a hole removes exactly its area from the top face
    holed = split_top_mesh(mesh, 0.25, (-0.2, 0.3, -0.1, 0.15))
    np.testing.assert_allclose(split.face_areas.sum() - holed.face_areas.sum(), 0.5 * 0.25, rtol=1e-9)
    with build_scene(44, "synthetic", support="table") as scene:
        assert scene.floor is not None
        assert floor_view_mesh(scene.floor, None).face_areas.sum() == pytest.approx(scene.floor.mesh.face_areas.sum())
