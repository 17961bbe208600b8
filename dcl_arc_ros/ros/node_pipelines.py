"""The per-frame pipeline each node runs, built from the node's parameters.

Free of rclpy, so that a node and anything that must run the node's maths exactly as the node does (the real-world
check, :mod:`dcl_arc_ros.evaluation.real_world`) build it the same way. Bad parameters or a model that does not fit
raise the core's errors (``CoreError``); the nodes turn them into start-up errors that name the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcl_arc_ros.core.arc_pipeline import ARCDepthPipeline
from dcl_arc_ros.core.depth_cleaning import DepthCleaningPipeline
from dcl_arc_ros.core.grasp_pipeline import GraspPipeline
from dcl_arc_ros.core.grasps import GraspDecodeParams
from dcl_arc_ros.core.pose_pipeline import PosePipeline
from dcl_arc_ros.core.proposals import ProposalParams
from dcl_arc_ros.inference.backends import Model
from dcl_arc_ros.ros.model_loading import dataclass_from_params


def cleaner_pipeline(model: Model, params: Mapping[str, Any]) -> DepthCleaningPipeline:
    """``depth_cleaner``'s cleaning pipeline."""
    return DepthCleaningPipeline(model, fill_holes=params["fill_holes"], max_fill_px=params["max_fill_px"])


def grasp_pipeline(model: Model, params: Mapping[str, Any]) -> GraspPipeline:
    """``grasp_detector``'s pipeline; the peak-picking parameters are the node's ``GraspDecodeParams`` fields."""
    return GraspPipeline(
        model,
        crop_size=params["crop_size"],
        decode=dataclass_from_params(GraspDecodeParams, params),
        depth_half_window=params["depth_half_window"],
        fill_method=params["fill_method"],
        working_width=params["working_width"],
    )


def pose_pipeline(model: Model, params: Mapping[str, Any]) -> PosePipeline:
    """``pose_estimator``'s pipeline; the segmentation parameters are the node's ``ProposalParams`` fields."""
    return PosePipeline(
        model,
        proposals=dataclass_from_params(ProposalParams, params),
        max_objects=params["max_objects"],
        depth_offset_m=params["depth_offset_m"],
        working_width=params["working_width"],
    )


def arc_pipeline(model: Model, params: Mapping[str, Any]) -> ARCDepthPipeline:
    """``arc_depth``'s pipeline (everything it needs is in the model's sidecar)."""
    return ARCDepthPipeline(model)
