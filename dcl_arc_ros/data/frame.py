"""The in-memory form of one rendered, labelled frame: what the renderer produces and the bag writer stores.

All arrays are in the camera's optical frame (x right, y down, z forward), metres, REP 103/105 conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dcl_arc_ros.core.camera import Intrinsics


@dataclass(frozen=True)
class ObjectLabel:
    """One object instance in a frame."""

    instance_id: int  # value of this object's pixels in Frame.instances (> 0)
    class_id: int  # stable class index (see dcl_arc_ros.sim.objects for the catalogue and the seen/novel split)
    name: str  # catalogue name, e.g. "urdf_042" or "box"
    novel: bool  # True when the class is in the held-out "novel" split
    cam_T_obj: np.ndarray  # (4, 4) float64 pose of the object in the camera optical frame
    visible_fraction: float  # visible pixels / pixels when rendered alone (1.0 = unoccluded)


@dataclass(frozen=True)
class GraspLabels:
    """Antipodal parallel-jaw grasps as oriented image rectangles, plus GG-CNN dense maps.

    rects: (N, 5) float32 rows of (cx_px, cy_px, angle_rad, width_px, quality). angle is the jaw-closing direction in
    the image, measured from +u towards +v, wrapped to [-pi/2, pi/2). width_px is the jaw opening in pixels.
    """

    rects: np.ndarray
    instance_ids: np.ndarray  # (N,) int32: object each grasp belongs to
    width_m: np.ndarray  # (N,) float32: jaw opening in metres
    quality_map: np.ndarray  # (H, W) float32 in [0, 1]
    cos2_map: np.ndarray  # (H, W) float32
    sin2_map: np.ndarray  # (H, W) float32
    width_map: np.ndarray  # (H, W) float32, jaw width in pixels (GG-CNN convention), 0 where no grasp


@dataclass(frozen=True)
class Frame:
    """One rendered frame with every label."""

    stamp_ns: int
    intrinsics: Intrinsics
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_clean: np.ndarray  # (H, W) float32 metres, NaN where nothing was hit
    depth_sensor: np.ndarray  # (H, W) float32 metres from the chosen sensor model, NaN = no reading
    instances: np.ndarray  # (H, W) int32, 0 = background (table, floor), k = ObjectLabel.instance_id
    normals: np.ndarray  # (H, W, 3) float32 unit normals from the geometry, camera frame, facing the camera
    world_T_cam: np.ndarray  # (4, 4) float64 camera optical frame in the world
    objects: tuple[ObjectLabel, ...]
    grasps: GraspLabels
    sensor: str = "clean"
    family: str = "synthetic"  # "synthetic" or "real_like"
    extra: dict[str, np.ndarray] = field(default_factory=dict)
