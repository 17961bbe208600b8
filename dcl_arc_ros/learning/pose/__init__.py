"""Object pose network (class + 6D rotation from depth crops) and its trainer. Importing this package registers the
network kind ``posenet`` for checkpoints."""

from __future__ import annotations

from dcl_arc_ros.learning.pose.posenet import POSENET_PRESETS, PoseNet, PoseNetConfig, build_posenet
from dcl_arc_ros.learning.registry import MODEL_KINDS, ModelKind, register_model_kind

__all__ = ["POSENET_PRESETS", "PoseNet", "PoseNetConfig"]

if "posenet" not in MODEL_KINDS:
    register_model_kind(
        "posenet", ModelKind(PoseNetConfig, build_posenet, POSENET_PRESETS, "depth-crop pose net: class + 6D rotation")
    )
