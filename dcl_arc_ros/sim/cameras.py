"""Camera presets with real intrinsics, and random camera poses that look at the workspace.

Poses are ``world_T_cam`` 4x4 matrices of the camera OPTICAL frame (x right, y down, z forward), as in ROS.

Preset numbers (640x480 streams):

* ``realsense_d435``: colour stream at 640x480 (depth aligned to colour, as grasping pipelines use it), nominal
  fx = fy = 615.0, principal point at the image centre; stereo baseline 50 mm (Intel D400 datasheet); depth
  range 0.2-3.0 m.
* ``realsense_sr300``: fx = fy = 476.05, cx = 311.48, cy = 246.28 (the calibration of the SR300 that recorded the
  ViSP "castel" frames); coded-light camera, projector-to-camera baseline taken as 25 mm; range 0.2-1.5 m.
* ``kinect_v1``: fx = fy = 525.0, cx = 319.5, cy = 239.5 (the de-facto standard calibration used by the TUM RGB-D
  and ROS openni defaults); structured light with a 75 mm baseline; range 0.5-4.0 m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.errors import CameraPresetError


@dataclass(frozen=True)
class CameraPreset:
    """A camera model: intrinsics plus the numbers the sensor models and the pose sampler need."""

    name: str
    intrinsics: Intrinsics
    baseline_m: float  # projector/IR-camera baseline used by the sensor models
    depth_range_m: tuple[float, float]  # readings outside are invalid
    view_distance_m: tuple[float, float]  # camera-to-workspace distance the pose sampler draws from
    disparity_subpixel: float  # disparity quantum in pixels (1/8 for Kinect v1)
    description: str = ""

    def at_resolution(self, width: int, height: int) -> Intrinsics:
        """The preset's intrinsics scaled to ``width`` x ``height`` (same field of view)."""
        if (width, height) == (self.intrinsics.width, self.intrinsics.height):
            return self.intrinsics
        return self.intrinsics.resize(width, height)


CAMERAS: dict[str, CameraPreset] = {
    "realsense_d435": CameraPreset(
        name="realsense_d435",
        intrinsics=Intrinsics(fx=615.0, fy=615.0, cx=319.5, cy=239.5, width=640, height=480),
        baseline_m=0.050,
        depth_range_m=(0.2, 3.0),
        view_distance_m=(0.45, 0.8),
        disparity_subpixel=1.0 / 16.0,
        description="Intel RealSense D435, colour-aligned 640x480",
    ),
    "realsense_sr300": CameraPreset(
        name="realsense_sr300",
        intrinsics=Intrinsics(fx=476.05, fy=476.05, cx=311.48, cy=246.28, width=640, height=480),
        baseline_m=0.025,
        depth_range_m=(0.2, 1.5),
        view_distance_m=(0.4, 0.75),
        disparity_subpixel=1.0 / 8.0,
        description="Intel RealSense SR300, 640x480",
    ),
    "kinect_v1": CameraPreset(
        name="kinect_v1",
        intrinsics=Intrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480),
        baseline_m=0.075,
        depth_range_m=(0.5, 4.0),
        view_distance_m=(0.7, 1.1),
        disparity_subpixel=1.0 / 8.0,
        description="Microsoft Kinect v1 (PrimeSense), 640x480",
    ),
}


def camera_preset(name: str) -> CameraPreset:
    try:
        return CAMERAS[name]
    except KeyError:
        raise CameraPresetError(f"unknown camera preset {name!r}; known: {', '.join(CAMERAS)}") from None


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """``world_T_cam`` (optical frame) of a camera at ``eye`` whose optical axis passes through ``target``.

    ``up`` (default world +z) fixes the roll: the image's -y axis points as close to it as possible.
    """
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    norm = np.linalg.norm(z)
    if norm < 1e-9:
        raise CameraPresetError(f"camera eye {eye.tolist()} coincides with its target")
    z /= norm
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-6:  # looking straight along `up`: pick any horizontal x
        x = np.cross(z, np.array([0.0, 1.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def sample_camera_pose(
    rng: np.random.Generator,
    target: np.ndarray,
    distance_m: tuple[float, float],
    *,
    elevation_deg: tuple[float, float] = (50.0, 88.0),
    target_jitter_m: float = 0.04,
    roll_deg: float = 10.0,
) -> np.ndarray:
    """A random camera on a spherical cap above ``target``, looking at a jittered target, with a small roll.

    Elevation is measured from the horizontal (90 = straight down).
    """
    lo, hi = distance_m
    if not 0 < lo <= hi:
        raise CameraPresetError(f"camera distance range {distance_m} must satisfy 0 < min <= max")
    dist = rng.uniform(lo, hi)
    elev = np.deg2rad(rng.uniform(*elevation_deg))
    azim = rng.uniform(-np.pi, np.pi)
    look = np.asarray(target, dtype=np.float64) + rng.uniform(-target_jitter_m, target_jitter_m, 3) * [1, 1, 0.25]
    eye = look + dist * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    pose = look_at(eye, look)
    roll = np.deg2rad(rng.uniform(-roll_deg, roll_deg))
    c, s = np.cos(roll), np.sin(roll)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    pose[:3, :3] = pose[:3, :3] @ rz
    return pose
