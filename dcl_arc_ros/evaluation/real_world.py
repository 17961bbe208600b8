"""The shipped models on real captured depth, as the nodes run them: the real-world check behind
``training/evaluate_real_world.py``.

The frames are real RealSense SR300 depth with the colour camera's grey image registered to it
(:class:`dcl_arc_ros.data.real.CastelFrames`: one castle model on a table, a moving camera). There is no ground
truth beyond the sensor itself, so every number is a check a robot user can read without it:

- ``depth_cleaner``: holes before and after; how far it moves the pixels the sensor measured (a cleaner should
  mostly fill holes, not rewrite good readings);
- ``grasp_detector``: grasps per frame and the share whose centre stands on something above the table plane (a
  grasp on the bare table is a miss, whatever its quality);
- ``pose_estimator``: proposals and poses per frame (every proposal stands on the plane by construction, so without
  ground truth there is no landing check to make; the figure shows where they are);
- ``arc_depth``: the monocular depth of the grey image against the sensor's own depth (AbsRel and delta1 on the
  pixels the sensor measured, metric and after median scaling), a domain none of its training saw.

Each node's pipeline is built with the parameters it runs with: the schema defaults, overlaid with
``config/perception.yaml``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dcl_arc_ros.core.arc_pipeline import ARCDepthPipeline
from dcl_arc_ros.core.depth_cleaning import DepthCleaningPipeline
from dcl_arc_ros.core.errors import DepthError
from dcl_arc_ros.core.grasp_pipeline import GraspPipeline
from dcl_arc_ros.core.metrics import monocular_depth_metrics
from dcl_arc_ros.core.pose_pipeline import PosePipeline
from dcl_arc_ros.core.proposals import Plane, ProposalParams, crops_from_labels, segment_above_plane
from dcl_arc_ros.data.bags import FrameRecord
from dcl_arc_ros.graph import read_config
from dcl_arc_ros.inference.backends import Model
from dcl_arc_ros.paths import config_file
from dcl_arc_ros.ros.model_loading import load_node_model
from dcl_arc_ros.ros.node_pipelines import arc_pipeline, cleaner_pipeline, grasp_pipeline, pose_pipeline
from dcl_arc_ros.ros.params import NodeSchema, schema_for

NODES: tuple[str, ...] = ("depth_cleaner", "grasp_detector", "pose_estimator", "arc_depth")
ON_OBJECT_M = 0.01  # a grasp or pose whose centre is this far above the table plane stands on something


def node_parameters(executable: str, config: Path | None = None) -> dict[str, Any]:
    """The parameters a node runs with: its schema's defaults, overlaid with its section of the graph config (checked
    by the schema, as ``graph.load_graph`` does)."""
    schema = schema_for(executable)
    section = read_config(config or config_file("perception.yaml")).get(executable, {})
    return {**schema.defaults(), **schema.validate(section, node=executable)}


@dataclass
class NodeModels:
    """The four shipped pipelines, built as their nodes build them (any of them may be missing)."""

    cleaner: DepthCleaningPipeline | None = None
    grasps: GraspPipeline | None = None
    poses: PosePipeline | None = None
    arc: ARCDepthPipeline | None = None
    versions: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @classmethod
    def shipped(cls, config: Path | None = None) -> NodeModels:
        models = cls()
        for executable in NODES:
            params = node_parameters(executable, config)
            schema: NodeSchema = schema_for(executable)
            try:
                path, model = load_node_model(schema, params, executable)
            except Exception as exc:  # a missing or unloadable model is reported, not fatal for the others
                models.missing[executable] = f"{type(exc).__name__}: {exc}"
                continue
            models.versions[executable] = f"{path.name} v{model.sidecar.model_version}"
            models._build(executable, model, params)
        return models

    def _build(self, executable: str, model: Model, p: Mapping[str, Any]) -> None:
        if executable == "depth_cleaner":
            self.cleaner = cleaner_pipeline(model, p)
        elif executable == "grasp_detector":
            self.grasps = grasp_pipeline(model, p)
        elif executable == "pose_estimator":
            self.poses = pose_pipeline(model, p)
        else:
            self.arc = arc_pipeline(model, p)


def _height_above(plane: Plane | None, position: np.ndarray) -> float:
    return float(plane.signed_height(np.asarray(position, dtype=np.float64))) if plane is not None else float("nan")


def check_frame(record: FrameRecord, models: NodeModels, proposals: ProposalParams) -> dict[str, Any]:
    """Every node's numbers on one frame (see the module docstring); ``_arrays`` holds what the figure draws.

    ``proposals`` are the pose node's segmentation parameters (``models.poses.proposals`` when it runs).
    """
    depth = np.asarray(record.depth, dtype=np.float32)
    intr = record.intrinsics
    if intr is None:
        raise DepthError(f"{record.source}: the frame has no intrinsics")
    measured = np.isfinite(depth) & (depth > 0)
    out: dict[str, Any] = {"source": record.source, "holes": float(1.0 - measured.mean()), "_arrays": {}}
    try:  # one plane fit for every check: the pose node's segmentation, and the heights of grasps and poses
        labels, plane = segment_above_plane(depth, intr, proposals)
    except DepthError:
        labels, plane = None, None
    if models.cleaner is not None:
        start = time.perf_counter()
        cleaned = models.cleaner(depth)
        out["cleaner_ms"] = 1000.0 * (time.perf_counter() - start)
        moved = np.abs(cleaned[measured] - depth[measured]) * 1000.0
        moved = moved[np.isfinite(moved)]
        out["cleaned_holes"] = float(np.isnan(cleaned).mean())
        out["measured_moved_mm_median"] = float(np.median(moved)) if moved.size else float("nan")
        out["measured_moved_mm_p95"] = float(np.percentile(moved, 95)) if moved.size else float("nan")
        out["_arrays"]["cleaned"] = cleaned
    if models.grasps is not None:
        grasps = models.grasps(depth, intr)
        heights = [_height_above(plane, g.position) for g in grasps]
        out["grasps"] = len(grasps)
        out["grasps_on_object"] = int(sum(h > ON_OBJECT_M for h in heights))
        out["best_grasp_on_object"] = bool(heights and heights[0] > ON_OBJECT_M)
        out["_arrays"]["grasps"] = grasps
    if models.poses is not None:
        crops = crops_from_labels(labels, depth, intr, proposals) if labels is not None else []
        poses = models.poses.poses_for_crops(crops, intr)
        out["proposals"] = len(crops)
        out["poses"] = len(poses)
        out["pose_heights_m"] = [_height_above(plane, p.translation) for p in poses]
        out["_arrays"]["poses"] = poses
    if models.arc is not None and record.rgb is not None:
        result = models.arc(record.rgb)
        h, w = result.depth_m.shape
        truth = cv2.resize(np.where(measured, depth, 0.0).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
        pred = np.nan_to_num(result.depth_m, nan=0.0)
        valid = truth > 0
        out["arc_metric"] = monocular_depth_metrics(pred, truth)
        scalable = bool(valid.any()) and float(np.median(pred[valid])) > 0
        scale = float(np.median(truth[valid]) / np.median(pred[valid])) if scalable else 1.0
        out["arc_median_scaled"] = monocular_depth_metrics(pred * scale, truth)
        out["arc_scale"] = scale
        out["_arrays"]["arc"] = result.depth_m
    return out


def summarise(rows: Sequence[Mapping[str, Any]], models: NodeModels) -> dict[str, Any]:
    """Means over the frames of each number (and the shares of the grasp checks)."""

    def mean(key: str) -> float:
        values = [float(r[key]) for r in rows if key in r]
        return float(np.mean(values)) if values else float("nan")

    summary: dict[str, Any] = {"frames": len(rows), "models": models.versions, "missing": models.missing}
    summary["sensor_holes"] = mean("holes")
    if models.cleaner is not None:
        summary["depth_cleaner"] = {
            "cleaned_holes": mean("cleaned_holes"),
            "measured_moved_mm_median": mean("measured_moved_mm_median"),
            "measured_moved_mm_p95": mean("measured_moved_mm_p95"),
            "ms_per_frame": mean("cleaner_ms"),
        }
    if models.grasps is not None:
        total = sum(int(r["grasps"]) for r in rows)
        summary["grasp_detector"] = {
            "grasps_per_frame": mean("grasps"),
            "share_on_object": sum(int(r["grasps_on_object"]) for r in rows) / total if total else float("nan"),
            "best_on_object": float(np.mean([bool(r["best_grasp_on_object"]) for r in rows])),
        }
    if models.poses is not None:
        summary["pose_estimator"] = {"proposals_per_frame": mean("proposals"), "poses_per_frame": mean("poses")}
    if models.arc is not None and any("arc_metric" in r for r in rows):
        arc_rows = [r for r in rows if "arc_metric" in r]
        summary["arc_depth"] = {
            kind: {m: float(np.mean([r[kind][m] for r in arc_rows])) for m in ("absrel", "delta1")}
            for kind in ("arc_metric", "arc_median_scaled")
        }
        summary["arc_depth"]["median_scale"] = float(np.median([r["arc_scale"] for r in arc_rows]))
    return summary


def save_figure(records: Sequence[FrameRecord], rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One row per frame: sensor depth, cleaned depth, grasps and poses on the grey image, ARC depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(records), 4, figsize=(16, 3.2 * len(records)), squeeze=False)
    for ax_row, record, row in zip(axes, records, rows, strict=True):
        arrays = row["_arrays"]
        depth = np.asarray(record.depth, dtype=np.float32)
        finite = depth[np.isfinite(depth)]
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
        ax_row[0].imshow(depth, cmap="turbo", vmin=lo, vmax=hi)
        ax_row[0].set_title(f"SR300 depth ({row['holes']:.0%} holes)")
        if "cleaned" in arrays:
            ax_row[1].imshow(arrays["cleaned"], cmap="turbo", vmin=lo, vmax=hi)
            ax_row[1].set_title(f"cleaned (measured moved {row['measured_moved_mm_median']:.1f} mm median)")
        grey = record.rgb if record.rgb is not None else np.zeros((*depth.shape, 3), np.uint8)
        ax_row[2].imshow(grey)
        for rank, grasp in enumerate(arrays.get("grasps", [])):
            corners = np.vstack([grasp.rect.corners(), grasp.rect.corners()[:1]])
            ax_row[2].plot(corners[:, 0], corners[:, 1], color="lime" if rank == 0 else "yellow", lw=1.5)
        intr = record.intrinsics
        for pose in arrays.get("poses", []):
            assert intr is not None
            x0, y0, x1, y1 = pose.box
            ax_row[2].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="cyan", lw=1))
            origin = np.asarray(intr.project(pose.translation[None])[:2]).reshape(-1)
            for axis, colour in enumerate(("r", "g", "b")):
                tip = np.asarray(intr.project((pose.translation + 0.04 * pose.rotation[:, axis])[None])[:2]).reshape(-1)
                ax_row[2].plot([origin[0], tip[0]], [origin[1], tip[1]], color=colour, lw=1.5)
        ax_row[2].set_title(f"grasps ({row.get('grasps', 0)}; best green) and poses ({row.get('poses', 0)})")
        if "arc" in arrays:
            ax_row[3].imshow(arrays["arc"], cmap="turbo", vmin=lo, vmax=hi)
            ax_row[3].set_title(f"ARC from grey (AbsRel {row['arc_metric']['absrel']:.2f})")
        for ax in ax_row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
