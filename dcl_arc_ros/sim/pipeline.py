"""Scene -> labelled frames: the one entry point the bag writer and the benchmarks use.

One scene per seed, K frames from different random camera poses around it. Every random draw comes from a
``numpy`` generator seeded from ``(seed, frame index, stream)``, and PyBullet runs deterministically in DIRECT mode, so
the same arguments give identical arrays.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pybullet as pb

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data.frame import Frame
from dcl_arc_ros.sim.cameras import camera_preset, sample_camera_pose
from dcl_arc_ros.sim.errors import SceneError
from dcl_arc_ros.sim.grasp_labels import GripperParams, grasp_labels
from dcl_arc_ros.sim.labels import instance_map, object_labels, object_silhouettes, surface_normals
from dcl_arc_ros.sim.render import RenderOutput, camera_effects, render
from dcl_arc_ros.sim.scenes import (
    FAMILIES,
    Scene,
    SceneParams,
    apply_appearance,
    build_scene,
    floor_view_mesh,
    hidden_floor_rectangle,
)
from dcl_arc_ros.sim.sensors import SceneContext, get_sensor

DEFAULT_FRAME_PERIOD_NS = 33_333_333  # 30 Hz
_STREAM_CAMERA, _STREAM_SENSOR, _STREAM_RGB = 1, 2, 3


def _rng(seed: int, frame: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(frame), stream]))


def render_view(
    scene: Scene, intrinsics: Intrinsics, world_T_cam: np.ndarray, *, segmentation: bool = True
) -> RenderOutput:
    """Render one view of ``scene``: the same image as :func:`render` (up to float rounding), faster.

    For the duration of the call the floor body is made invisible and a stand-in is drawn instead: the same box with
    its top face split into small cells and without the part the support certainly hides from this camera
    (:func:`hidden_floor_rectangle`, :func:`floor_view_mesh`). Its pixels are labelled with the floor's body id.
    """
    floor = scene.floor
    if floor is None:
        return render(scene.client, intrinsics, world_T_cam, scene.lighting, segmentation=segmentation)
    client = scene.client
    mesh = floor_view_mesh(floor, hidden_floor_rectangle(floor, world_T_cam[:3, 3]))
    visual = pb.createVisualShape(
        pb.GEOM_MESH,
        vertices=mesh.vertices.tolist(),
        indices=mesh.faces.reshape(-1).tolist(),
        uvs=mesh.uvs.tolist(),
        normals=mesh.vertex_normals.tolist(),
        physicsClientId=client,
    )
    stand_in = pb.createMultiBody(0.0, -1, visual, list(floor.centre), physicsClientId=client)
    try:
        apply_appearance(client, stand_in, floor.texture_id, floor.rgba)
        pb.changeVisualShape(floor.body_id, -1, rgbaColor=[*floor.rgba[:3], 0.0], physicsClientId=client)  # skipped
        out = render(client, intrinsics, world_T_cam, scene.lighting, segmentation=segmentation)
    finally:
        pb.removeBody(stand_in, physicsClientId=client)
        pb.changeVisualShape(floor.body_id, -1, rgbaColor=list(floor.rgba), physicsClientId=client)
    if segmentation:
        out.segmentation[out.segmentation == stand_in] = floor.body_id
    return out


def render_frame(
    scene: Scene,
    intrinsics: Intrinsics,
    world_T_cam: np.ndarray,
    *,
    sensor: str,
    baseline_m: float,
    depth_range_m: tuple[float, float],
    disparity_subpixel: float,
    sensor_rng: np.random.Generator,
    rgb_rng: np.random.Generator,
    stamp_ns: int = 0,
    gripper: GripperParams | None = None,
) -> Frame:
    """Render and label one view of ``scene``."""
    model = get_sensor(sensor)
    out = render_view(scene, intrinsics, world_T_cam)
    instances = instance_map(out.segmentation, scene)
    normals = surface_normals(out.depth, out.segmentation, intrinsics, world_T_cam, scene)
    silhouettes = object_silhouettes(scene, world_T_cam, intrinsics)
    objects = object_labels(instances, scene, world_T_cam, intrinsics, silhouettes)
    grasps = grasp_labels(instances, silhouettes, out.depth, intrinsics, world_T_cam, scene.support_height, gripper)

    def render_depth(cam_T_other: np.ndarray) -> np.ndarray:
        return render_view(scene, intrinsics, world_T_cam @ cam_T_other, segmentation=False).depth

    context = SceneContext(
        normals=normals,
        instances=instances,
        baseline_m=baseline_m,
        depth_range_m=depth_range_m,
        disparity_subpixel=disparity_subpixel,
        render_depth=render_depth,
    )
    depth_sensor = model.apply(out.depth, intrinsics, sensor_rng, context)
    rgb = camera_effects(out.rgb, rgb_rng) if scene.family == "real_like" else out.rgb
    return Frame(
        stamp_ns=int(stamp_ns),
        intrinsics=intrinsics,
        rgb=rgb,
        depth_clean=out.depth,
        depth_sensor=depth_sensor,
        instances=instances,
        normals=normals,
        world_T_cam=world_T_cam,
        objects=objects,
        grasps=grasps,
        sensor=sensor,
        family=scene.family,
    )


def render_scene_frames(
    seed: int,
    frames: int,
    sensor: str = "empirical",
    family: str = "synthetic",
    camera: str = "realsense_d435",
    *,
    width: int | None = None,
    height: int | None = None,
    support: str | None = None,
    scene_params: SceneParams | None = None,
    gripper: GripperParams | None = None,
    start_stamp_ns: int = 0,
    frame_period_ns: int = DEFAULT_FRAME_PERIOD_NS,
) -> Iterator[Frame]:
    """Build the scene for ``seed`` and yield ``frames`` labelled frames from random camera poses around it.

    ``width``/``height`` rescale the camera preset's intrinsics (same field of view). Frame ``k`` is stamped
    ``start_stamp_ns + k * frame_period_ns``. The scene's physics client is closed when the iterator finishes or is
    closed.
    """
    if family not in FAMILIES:
        raise SceneError(f"unknown scene family {family!r}; known: {', '.join(FAMILIES)}")
    if frames < 0:
        raise SceneError(f"frames={frames} must be >= 0")
    get_sensor(sensor)  # fail before the expensive scene build
    preset = camera_preset(camera)
    intrinsics = preset.at_resolution(width or preset.intrinsics.width, height or preset.intrinsics.height)
    scene = build_scene(seed, family, params=scene_params, support=support)
    try:
        for k in range(frames):
            pose = sample_camera_pose(_rng(seed, k, _STREAM_CAMERA), scene.workspace_centre, preset.view_distance_m)
            yield render_frame(
                scene,
                intrinsics,
                pose,
                sensor=sensor,
                baseline_m=preset.baseline_m,
                depth_range_m=preset.depth_range_m,
                disparity_subpixel=preset.disparity_subpixel,
                sensor_rng=_rng(seed, k, _STREAM_SENSOR),
                rgb_rng=_rng(seed, k, _STREAM_RGB),
                stamp_ns=start_stamp_ns + k * frame_period_ns,
                gripper=gripper,
            )
    finally:
        scene.close()
