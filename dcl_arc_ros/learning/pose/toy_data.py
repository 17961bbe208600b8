"""Procedural pose frames for tests and smoke runs (not for reported results).

Each frame shows two elongated objects lying on a table seen from above. The class sets the object's length and the
yaw its orientation in the image; a slope along the object's axis makes its direction visible in depth. Frames carry
the fields :func:`dcl_arc_ros.learning.pose.trainer.pose_samples_from_record` reads (``depth``, ``instances``,
``intrinsics``, ``object_poses``, ``object_info``), like ``dcl_arc_ros.data.bags.FrameRecord``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dcl_arc_ros.core.camera import Intrinsics

__all__ = ["TOY_INTRINSICS", "ToyPoseFrame", "ToyPoseFrames"]

TOY_INTRINSICS = Intrinsics(fx=150.0, fy=150.0, cx=47.5, cy=35.5, width=96, height=72)


@dataclass(frozen=True)
class ToyPoseFrame:
    depth: np.ndarray  # (H, W) float32 metres, NaN = invalid
    depth_clean: np.ndarray
    instances: np.ndarray  # (H, W) int32
    intrinsics: Intrinsics
    object_poses: np.ndarray  # (N, 4, 4) cam_T_obj
    object_info: np.ndarray  # (N, 4) rows (instance_id, class_id, novel, visible_fraction)
    source: str = "toy"


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class ToyPoseFrames:
    """An indexable sequence of :class:`ToyPoseFrame` (two classes: short and long)."""

    num_classes = 2

    def __init__(self, size: int, *, seed: int = 0) -> None:
        if size < 1:
            raise ValueError(f"toy pose frames need size >= 1, got {size}")
        self.size, self.seed = size, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> ToyPoseFrame:
        if not 0 <= index < self.size:
            raise IndexError(f"toy pose frame {index} out of range [0, {self.size})")
        k = TOY_INTRINSICS
        rng = np.random.default_rng((self.seed, index))
        depth = np.full((k.height, k.width), 0.8, np.float32)
        instances = np.zeros((k.height, k.width), np.int32)
        yy, xx = np.mgrid[0 : k.height, 0 : k.width].astype(np.float64)
        poses, info = [], []
        for inst, cx in ((1, 25.0), (2, 70.0)):
            cls = int(rng.integers(0, 2))
            yaw = float(rng.uniform(-1.2, 1.2))
            half_len = 14.0 if cls == 1 else 8.0
            du, dv = xx - cx, yy - 36.0
            along = du * math.cos(yaw) + dv * math.sin(yaw)
            across = -du * math.sin(yaw) + dv * math.cos(yaw)
            mask = (np.abs(along) <= half_len) & (np.abs(across) <= 4.0)
            instances[mask] = inst
            depth[mask] = 0.76 - 0.002 * along[mask]
            pose = np.eye(4)
            pose[:3, :3] = _rot_z(yaw)
            pose[:3, 3] = [(cx - k.cx) * 0.76 / k.fx, (36.0 - k.cy) * 0.76 / k.fy, 0.76]
            poses.append(pose)
            info.append((inst, cls, 0, 1.0))
        return ToyPoseFrame(
            depth, depth.copy(), instances, k, np.stack(poses), np.array(info, np.float32), f"toy:{self.seed}:{index}"
        )
