"""End-to-end per-frame time of the pose_estimator node at 640x480 with five objects and its shipped model.

Target: 10 FPS or more (median frame time <= 100 ms) with up to 5 objects, on this 2-core machine.

What is timed is one call of ``PoseEstimatorNode.process`` on a matched depth + CameraInfo frame: decode the Image,
read the intrinsics, run ``PosePipeline`` (support-plane RANSAC, connected components, size filters, one crop and one
ONNX Runtime run per object, rotation decoding), build the PoseArray, the info table and the MarkerArray and publish
them to matched subscriptions. The frames are the tabletop scenes of :mod:`benchmarks.grasp_node` (a tilted table
0.7 m away, five boxes 3-6 cm high, 3 % speckle holes); the node must find the five objects on each.

The node is the real one with its default parameters (one ONNX Runtime thread, at most 5 objects); the model is the
shipped ``models/pose_estimator.onnx`` (``--fresh``, or no shipped model: a freshly exported deploy-preset PoseNet,
``POSENET_PRESETS["deploy"]``, 64x64 crops, with untrained weights; timing does not depend on the weights). Wall
and CPU time are recorded as in :mod:`benchmarks.grasp_node`, with the load average before and after.

    python -m benchmarks.pose_node --out benchmarks/results [--frames 100] [--encoding 16UC1]
    python -m benchmarks.pose_node --out <folder> --scale 2     # the same scene at 1280x960 (working_width at work)
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks._common import (
    describe_model,
    load_average,
    node_args,
    node_settings,
    result_record,
    rounded,
    shipped_model,
    write_result,
)
from benchmarks.grasp_node import HEIGHT, WIDTH, argument_parser, measure_node, scaled_result_file, tabletop_depth

RESULT_FILE = "pose_node.json"
TARGET_FPS = 10.0
OBJECTS = 5


def export_deploy_posenet(folder: Path) -> Path:
    """A deploy-preset PoseNet with untrained weights exported to ONNX + sidecar in ``folder``."""
    import torch

    from dcl_arc_ros.learning.checkpoint import save_checkpoint
    from dcl_arc_ros.learning.pose import POSENET_PRESETS
    from dcl_arc_ros.learning.pose.export import export_pose_checkpoint
    from dcl_arc_ros.learning.pose.trainer import PoseDataConfig, PoseTask, PoseTrainConfig

    torch.manual_seed(0)
    net_cfg = POSENET_PRESETS["deploy"]
    cfg = PoseTrainConfig(network=net_cfg, data=PoseDataConfig(crop_size=net_cfg.crop_size))
    task = PoseTask(cfg)
    task.net.eval()
    ckpt = save_checkpoint(
        folder / "posenet_deploy.pt", step=0, networks=task.networks(), run_config=cfg, primary="posenet"
    )
    return export_pose_checkpoint(ckpt, folder / "pose_estimator.onnx").onnx_path


def main(argv: Sequence[str] | None = None) -> int:
    args = argument_parser(__doc__ or "pose_node", frames=100).parse_args(argv)
    from geometry_msgs.msg import PoseArray
    from std_msgs.msg import Float32MultiArray
    from visualization_msgs.msg import MarkerArray

    from dcl_arc_ros.ros.params import POSE_ESTIMATOR
    from dcl_arc_ros.ros.pose_estimator import INFO_TOPIC, MARKERS_TOPIC, POSES_TOPIC, PoseEstimatorNode

    rng = np.random.default_rng(0)
    depths = [tabletop_depth(rng, objects=OBJECTS) for _ in range(8)]
    load_before = load_average()
    shipped = None if args.fresh else shipped_model("pose_estimator")
    with tempfile.TemporaryDirectory() as folder:
        model_path = args.model or shipped or export_deploy_posenet(Path(folder))
        run = measure_node(
            lambda ctx: PoseEstimatorNode(context=ctx, cli_args=node_args(model_path, args.threads)),
            [(PoseArray, POSES_TOPIC), (Float32MultiArray, INFO_TOPIC), (MarkerArray, MARKERS_TOPIC)],
            depths,
            args,
            desc=f"pose_estimator ({args.encoding})",
        )
    if run.outputs_on_last_frame != OBJECTS:
        print(f"pose_node: the node found {run.outputs_on_last_frame} objects, not {OBJECTS}", file=sys.stderr)
        return 1
    summary = run.times.summary(TARGET_FPS)
    model = describe_model(args.model, shipped, "PoseNet deploy preset, 64x64 crops, untrained")
    parameters = "defaults (max_objects 5, markers on)"
    settings = node_settings(
        WIDTH * args.scale, HEIGHT * args.scale, args, POSE_ESTIMATOR, objects=OBJECTS, model=model,
        node_parameters=parameters,
    )  # fmt: skip
    result = result_record(
        "pose_node",
        f">= {TARGET_FPS:g} FPS end to end per {WIDTH * args.scale}x{HEIGHT * args.scale} frame with {OBJECTS} objects "
        "(median wall time)",
        settings,
        load_average_before=rounded(load_before),
        load_average_after=rounded(load_average()),
        **summary,
        objects_on_last_frame=run.outputs_on_last_frame,
    )
    path = write_result(args.out, scaled_result_file(RESULT_FILE, args.scale), result)
    print(
        f"pose_estimator {args.encoding}: {run.times.describe()} for {run.outputs_on_last_frame} objects; load "
        f"{load_before[0]:.2f} -> {result['load_average_after'][0]:.2f}; "
        f"{'meets' if summary['meets_target'] else 'MISSES'} the {TARGET_FPS:g} FPS target"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
