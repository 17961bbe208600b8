"""Labels agree with the geometry: masks vs projected models, grasp centres on masks, normals vs depth planes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data.frame import Frame
from dcl_arc_ros.sim.cameras import camera_preset, look_at, sample_camera_pose
from dcl_arc_ros.sim.grasp_labels import GripperParams, grasp_labels
from dcl_arc_ros.sim.pipeline import render_frame
from dcl_arc_ros.sim.scenes import Scene, build_scene

CASES = [(11, "synthetic", "table"), (12, "real_like", "tray"), (13, "synthetic", "floor")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{s}" for _, f, s in CASES])
def scene_and_frames(request: pytest.FixtureRequest) -> Iterator[tuple[Scene, list[Frame]]]:
    seed, family, support = request.param
    preset = camera_preset("realsense_d435")
    intr = preset.at_resolution(320, 240)
    scene = build_scene(seed, family, support=support)
    frames = []
    for k in range(2):
        pose = sample_camera_pose(np.random.default_rng([seed, k]), scene.workspace_centre, preset.view_distance_m)
        frames.append(
            render_frame(
                scene,
                intr,
                pose,
                sensor="clean",
                baseline_m=preset.baseline_m,
                depth_range_m=preset.depth_range_m,
                disparity_subpixel=preset.disparity_subpixel,
                sensor_rng=np.random.default_rng(0),
                rgb_rng=np.random.default_rng(1),
            )
        )
    yield scene, frames
    scene.close()


def test_instance_masks_match_projected_model_points(scene_and_frames: tuple[Scene, list[Frame]]) -> None:
    scene, frames = scene_and_frames
    meshes = {b.instance_id: b.mesh for b in scene.objects}
    checked = 0
    for frame in frames:
        intr = frame.intrinsics
        for obj in frame.objects:
            mask = frame.instances == obj.instance_id
            if mask.sum() < 40:
                continue
            points, _ = meshes[obj.instance_id].sample_surface(0.0008, max_points=400000)
            cam = points @ obj.cam_T_obj[:3, :3].T + obj.cam_T_obj[:3, 3]
            u, v, z = intr.project(cam)
            ui, vi = np.rint(u).astype(int), np.rint(v).astype(int)
            inside = (ui >= 0) & (ui < intr.width) & (vi >= 0) & (vi < intr.height)
            ui, vi, z = ui[inside], vi[inside], z[inside]
            # "where not occluded": keep the model points that are the first surface along their pixel's ray
            seen = np.abs(z - frame.depth_clean[vi, ui]) < 0.004
            projected = np.zeros_like(mask)
            projected[vi[seen], ui[seen]] = True
            iou = (projected & mask).sum() / (projected | mask).sum()
            assert iou >= 0.9, f"{obj.name} (instance {obj.instance_id}): IoU {iou:.3f}"
            checked += 1
    assert checked >= 2


def test_object_labels_are_well_formed(scene_and_frames: tuple[Scene, list[Frame]]) -> None:
    scene, frames = scene_and_frames
    for frame in frames:
        assert frame.objects, "every test frame sees at least one object"
        ids = [o.instance_id for o in frame.objects]
        assert ids == sorted(set(ids))
        present = set(np.unique(frame.instances)) - {0}
        assert present == set(ids)
        for obj in frame.objects:
            r = obj.cam_T_obj[:3, :3]
            np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-9)
            assert np.linalg.det(r) == pytest.approx(1.0)
            assert 0.0 < obj.visible_fraction <= 1.0
            assert 0.1 < obj.cam_T_obj[2, 3] < 2.0
            if scene.family == "synthetic":
                assert obj.class_id < 2000, "distractors never appear in the synthetic family"


def test_grasp_centres_lie_on_their_object_masks(scene_and_frames: tuple[Scene, list[Frame]]) -> None:
    _, frames = scene_and_frames
    total = 0
    for frame in frames:
        g = frame.grasps
        assert g.rects.shape == (len(g.instance_ids), 5) and g.width_m.shape == g.instance_ids.shape
        cx, cy = np.rint(g.rects[:, 0]).astype(int), np.rint(g.rects[:, 1]).astype(int)
        np.testing.assert_array_equal(frame.instances[cy, cx], g.instance_ids)
        assert np.all((g.rects[:, 2] >= -np.pi / 2) & (g.rects[:, 2] < np.pi / 2))
        assert np.all((g.rects[:, 4] > 0) & (g.rects[:, 4] <= 1))
        assert np.all((g.width_m > 0) & (g.width_m <= GripperParams().max_opening_m))
        total += len(g.rects)
    assert total > 0


def test_grasp_maps_are_consistent_with_masks(scene_and_frames: tuple[Scene, list[Frame]]) -> None:
    _, frames = scene_and_frames
    for frame in frames:
        g = frame.grasps
        on = g.quality_map > 0
        assert np.all(frame.instances[on] > 0)
        np.testing.assert_allclose(g.cos2_map[on] ** 2 + g.sin2_map[on] ** 2, 1.0, atol=1e-5)
        assert np.all(g.width_map[on] > 0)
        assert not np.any(g.width_map[~on]) and not np.any(g.cos2_map[~on])
        for m in (g.quality_map, g.cos2_map, g.sin2_map, g.width_map):
            assert m.shape == frame.depth_clean.shape and m.dtype == np.float32


def test_normals_are_unit_and_agree_with_clean_depth_on_planes(scene_and_frames: tuple[Scene, list[Frame]]) -> None:
    _, frames = scene_and_frames
    for frame in frames:
        valid = np.isfinite(frame.depth_clean)
        length = np.linalg.norm(frame.normals, axis=-1)
        np.testing.assert_allclose(length[valid], 1.0, atol=1e-5)
        assert not np.any(frame.normals[~valid])
        pts = frame.intrinsics.points_from_depth(frame.depth_clean).astype(np.float64)
        assert np.all(np.einsum("hwi,hwi->hw", frame.normals, pts)[valid] < 0), "normals face the camera"
        # oracle for planar patches: central-difference normals where the depth's second differences vanish
        du = pts[1:-1, 2:] - pts[1:-1, :-2]
        dv = pts[2:, 1:-1] - pts[:-2, 1:-1]
        n = np.cross(du, dv)
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        z = frame.depth_clean.astype(np.float64)
        flat_u = np.abs(z[1:-1, 2:] - 2 * z[1:-1, 1:-1] + z[1:-1, :-2])
        flat_v = np.abs(z[2:, 1:-1] - 2 * z[1:-1, 1:-1] + z[:-2, 1:-1])
        same_body = (frame.instances[1:-1, 2:] == frame.instances[1:-1, :-2]) & (
            frame.instances[2:, 1:-1] == frame.instances[:-2, 1:-1]
        )
        planar = (flat_u < 2e-5) & (flat_v < 2e-5) & same_body & np.isfinite(n).all(axis=-1)
        cos = np.abs(np.einsum("hwi,hwi->hw", n, frame.normals[1:-1, 1:-1]))[planar]
        assert planar.sum() > 0.3 * planar.size
        assert np.mean(cos > np.cos(np.deg2rad(3.0))) > 0.97


# ------------------------------------------------------------------ grasp geometry on an analytic top-down scene


def _top_down_box(size_xy: tuple[float, float], height: float) -> dict[str, object]:
    intr = Intrinsics(fx=320.0, fy=320.0, cx=159.5, cy=119.5, width=320, height=240)
    world_T_cam = look_at(np.array([0.0, 0.0, 0.6]), np.zeros(3), up=np.array([0.0, 1.0, 0.0]))
    depth = np.full((240, 320), 0.6, dtype=np.float32)
    u = (np.arange(320) - intr.cx) / intr.fx
    v = (np.arange(240) - intr.cy) / intr.fy
    top = 0.6 - height
    inside = (np.abs(u[None, :] * top) < size_xy[0] / 2) & (np.abs(v[:, None] * top) < size_xy[1] / 2)
    depth[inside] = top
    instances = inside.astype(np.int32)
    return {
        "instances": instances,
        "silhouettes": {1: inside},
        "depth_clean": depth,
        "intrinsics": intr,
        "world_T_cam": world_T_cam,
        "support_height": 0.0,
    }


def test_grasps_on_a_tall_box_close_across_its_narrow_side() -> None:
    params = GripperParams()
    g = grasp_labels(**_top_down_box((0.03, 0.08), 0.05), params=params)  # type: ignore[arg-type]
    assert len(g.rects) > 0
    best = int(np.argmax(g.rects[:, 4]))
    # the camera's u axis is world x, so closing across the 3 cm side means an angle near 0
    assert abs(g.rects[best, 2]) < np.deg2rad(16)
    assert g.width_m[best] == pytest.approx(0.03 + 2 * params.clearance_m, rel=0.15)


def test_no_grasps_when_jaws_would_hit_the_table_or_the_object_is_too_wide() -> None:
    flat = grasp_labels(**_top_down_box((0.03, 0.08), 0.004))  # type: ignore[arg-type]
    assert len(flat.rects) == 0 and not flat.quality_map.any()
    wide = grasp_labels(**_top_down_box((0.12, 0.12), 0.05))  # type: ignore[arg-type]
    assert len(wide.rects) == 0
