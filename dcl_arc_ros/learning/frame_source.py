"""Where a frame-based trainer's frames come from: the shared head of the grasp and pose data configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FrameSourceConfig"]


@dataclass(frozen=True)
class FrameSourceConfig:
    source: str = "bags"  # a name in dcl_arc_ros.data.torch_datasets.SOURCES, or "toy" (procedural, smoke runs only)
    paths: tuple[str, ...] = ()  # arguments of that source, e.g. the training bags of one depth domain
    depth_from: Literal["sensor", "clean"] = "sensor"  # the frames' sensor depth, or their clean ground truth
    toy_frames: int = 64  # frames of the procedural source (source "toy" only)
