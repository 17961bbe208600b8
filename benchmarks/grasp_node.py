"""End-to-end per-frame time of the grasp_detector node at 640x480 with a deploy-preset GG-CNN.

Target: 20 FPS or more (median frame time <= 50 ms) on this 2-core machine.

What is timed is one call of ``GraspDetectorNode.process`` on a matched depth + CameraInfo frame, i.e. everything the
node does per frame once the messages have arrived: decode the 32FC1 (or 16UC1) Image, read the intrinsics, run
``GraspPipeline`` (centre crop, hole filling, resize, ONNX Runtime, map decoding, peak picking, 3D grasps), build the
PoseArray, the info table and the MarkerArray, and publish the three to matched subscriptions (serialisation and
hand-off to DDS). The DDS transport of the input image is not included (``benchmarks.dds_hop`` measures it).

The node is the real one, built with its default parameters (one ONNX Runtime thread) and the shipped Fast DDS
profile, and the shipped ``models/grasp_detector.onnx``. With ``--fresh`` (or no shipped model) the model file is a
freshly exported deploy-preset GG-CNN (``GGCNN_PRESETS["deploy"]``, 300x300) with untrained weights and a quality
bias of 0.5, so that the post-processing finds grasps as a trained model would (timing does not depend on the weights
otherwise). Wall time is what a frame waits; CPU time (``time.process_time``,
all threads of the process) is what it costs and is much less sensitive to the other load on the machine. The load
average before and after the run is recorded with the numbers.

    python -m benchmarks.grasp_node --out benchmarks/results [--frames 200] [--encoding 16UC1] [--threads N]
        [--input-size 224 --result-name grasp_node_224.json] [--scale 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    FrameTimes,
    describe_model,
    load_average,
    node_args,
    node_session,
    node_settings,
    result_record,
    round_robin_frames,
    rounded,
    shipped_model,
    time_frames,
    write_result,
)
from dcl_arc_ros.core.camera import Intrinsics

RESULT_FILE = "grasp_node.json"
TARGET_FPS = 20.0
HEIGHT, WIDTH = 480, 640
#: A D435-like depth camera at 640x480.
FX = FY = 615.0
CX, CY = 319.5, 239.5
DEPTH_TOPICS = {"depth": "/camera/depth/image_rect_raw", "camera_info": "/camera/depth/camera_info"}


@dataclass(frozen=True)
class NodeRun:
    """What one benchmark run measured plus what the node produced on the last frame."""

    times: FrameTimes
    outputs_on_last_frame: int


def tabletop_depth(rng: np.random.Generator, *, objects: int = 5, hole_fraction: float = 0.03) -> np.ndarray:
    """A tilted table 0.7 m below the camera with ``objects`` boxes (3-6 cm high) on it, with speckle holes."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    depth = (0.70 + 0.0002 * (yy - CY) + rng.normal(0.0, 0.001, (HEIGHT, WIDTH))).astype(np.float32)
    centres = [(160, 140), (330, 250), (490, 140), (200, 370), (470, 370), (330, 90)][:objects]
    for u, v in centres:
        half_u, half_v = rng.integers(25, 45), rng.integers(20, 35)
        box = (np.abs(xx - u) <= half_u) & (np.abs(yy - v) <= half_v)
        depth[box] -= np.float32(rng.uniform(0.03, 0.06))
    depth[rng.random((HEIGHT, WIDTH)) < hole_fraction] = np.nan
    return depth


def export_deploy_ggcnn(folder: Path, input_size: int = 300) -> Path:
    """A deploy-preset GG-CNN with untrained weights (quality bias 0.5) exported to ONNX + sidecar in ``folder``.

    ``input_size`` is the network's square input; the node's 300-pixel crop is resized to it.
    """
    import torch

    from dcl_arc_ros.learning.checkpoint import save_checkpoint
    from dcl_arc_ros.learning.export import export_checkpoint
    from dcl_arc_ros.learning.grasp.ggcnn import GGCNN_PRESETS
    from dcl_arc_ros.learning.grasp.trainer import GraspDataConfig, GraspTask, GraspTrainConfig

    torch.manual_seed(0)
    cfg = GraspTrainConfig(ggcnn=GGCNN_PRESETS["deploy"], data=GraspDataConfig(input_size=input_size, crop_size=300))
    task = GraspTask(cfg)
    with torch.no_grad():
        task.net.heads.quality.bias.fill_(0.5)
    ckpt = save_checkpoint(
        folder / "ggcnn_deploy.pt", step=0, networks=task.networks(), run_config=cfg, primary="ggcnn"
    )
    return export_checkpoint(ckpt, folder / "grasp_detector.onnx", height=input_size, width=input_size).onnx_path


def camera_intrinsics(scale: int = 1) -> Intrinsics:
    """The benchmark camera, or the same camera with ``scale`` x ``scale`` pixels for each of its pixels."""
    offset = (scale - 1) / 2  # the centre of pixel u of the 640x480 image is at scale * u + offset
    return Intrinsics(
        fx=FX * scale, fy=FY * scale, cx=CX * scale + offset, cy=CY * scale + offset, width=WIDTH * scale,
        height=HEIGHT * scale,
    )  # fmt: skip


def scaled_depth(depth: np.ndarray, scale: int = 1) -> np.ndarray:
    """``depth`` with every pixel repeated ``scale`` x ``scale`` times: the same scene on a finer sensor."""
    return depth if scale == 1 else np.repeat(np.repeat(depth, scale, axis=0), scale, axis=1)


def scaled_result_file(file_name: str, scale: int) -> str:
    """``file_name``, with ``_x<scale>`` before its extension when the frames are scaled (so 640x480 results stay)."""
    return file_name if scale == 1 else file_name.replace(".json", f"_x{scale}.json")


def measure_node(
    node_factory: Callable[[Any], Any],
    output_topics: Sequence[tuple[type, str]],
    depths: Sequence[np.ndarray],
    args: argparse.Namespace,
    *,
    desc: str,
) -> NodeRun:
    """Build the node in a fresh context, feed it ``depths`` round-robin through ``process`` and time each frame.

    ``node_factory(context)`` returns the node; ``output_topics`` get one matched subscription each (so publishing
    serialises); ``args`` are those of :func:`argument_parser` (frames, warm-up, encoding, scale). The node's
    ``last_count`` after the last frame says how many grasps/objects it gave.
    """
    from std_msgs.msg import Header

    from dcl_arc_ros.ros.conversions import camera_info_from_intrinsics, depth_to_msg

    with node_session() as session:
        node = session.keep(node_factory(session.context))
        timed = session.time_model(node)
        session.listen(node, output_topics)
        header = Header(frame_id="camera_depth_optical_frame")
        info = camera_info_from_intrinsics(camera_intrinsics(args.scale), header)
        msgs = [depth_to_msg(scaled_depth(d, args.scale), header, args.encoding) for d in depths]
        frames = round_robin_frames(msgs, info, DEPTH_TOPICS, key="depth")
        times = time_frames(node, timed, frames, frames=args.frames, warmup=args.warmup, desc=desc)
        return NodeRun(times, node.last_count)


def argument_parser(doc: str, frames: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--frames", type=int, default=frames, help="measured frames")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--encoding", choices=("32FC1", "16UC1"), default="32FC1", help="input depth encoding")
    parser.add_argument("--model", type=Path, default=None, help="an exported model (default: the shipped one)")
    parser.add_argument(
        "--fresh", action="store_true", help="time a fresh untrained deploy-size export, not the shipped"
    )
    parser.add_argument("--threads", type=int, default=None, help="the node's threads parameter (default: its own)")
    parser.add_argument(
        "--scale",
        type=int,
        default=1,
        help="repeat each pixel scale x scale times (2: the same scene at 1280x960, to time the node's working width)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(__doc__ or "grasp_node", frames=200)
    parser.add_argument(
        "--input-size", type=int, default=300, help="network input side of the exported model (the crop stays 300)"
    )
    parser.add_argument(
        "--result-name", default=None, help="file name of the JSON in --out (default grasp_node.json, or _x<scale>)"
    )
    args = parser.parse_args(argv)
    from geometry_msgs.msg import PoseArray
    from std_msgs.msg import Float32MultiArray
    from visualization_msgs.msg import MarkerArray

    from dcl_arc_ros.ros.grasp_detector import GRASPS_TOPIC, INFO_TOPIC, MARKERS_TOPIC, GraspDetectorNode
    from dcl_arc_ros.ros.params import GRASP_DETECTOR

    rng = np.random.default_rng(0)
    depths = [tabletop_depth(rng) for _ in range(8)]
    load_before = load_average()
    shipped = None if args.fresh else shipped_model("grasp_detector")
    with tempfile.TemporaryDirectory() as folder:
        model_path = args.model or shipped or export_deploy_ggcnn(Path(folder), args.input_size)
        run = measure_node(
            lambda ctx: GraspDetectorNode(context=ctx, cli_args=node_args(model_path, args.threads)),
            [(PoseArray, GRASPS_TOPIC), (Float32MultiArray, INFO_TOPIC), (MarkerArray, MARKERS_TOPIC)],
            depths,
            args,
            desc=f"grasp_detector ({args.encoding})",
        )
    summary = run.times.summary(TARGET_FPS)
    fresh = f"GG-CNN deploy preset, {args.input_size}x{args.input_size} input, untrained (quality bias 0.5)"
    model = describe_model(args.model, shipped, fresh)
    parameters = "defaults (crop 300, markers on, quality map off)"
    settings = node_settings(
        WIDTH * args.scale, HEIGHT * args.scale, args, GRASP_DETECTOR, model=model, node_parameters=parameters
    )
    result = result_record(
        "grasp_node",
        f">= {TARGET_FPS:g} FPS end to end per {WIDTH * args.scale}x{HEIGHT * args.scale} frame (median wall time)",
        settings,
        load_average_before=rounded(load_before),
        load_average_after=rounded(load_average()),
        **summary,
        grasps_on_last_frame=run.outputs_on_last_frame,
    )
    path = write_result(args.out, args.result_name or scaled_result_file(RESULT_FILE, args.scale), result)
    print(
        f"grasp_detector {args.encoding}: {run.times.describe()}, {run.outputs_on_last_frame} grasps; load "
        f"{load_before[0]:.2f} -> {result['load_average_after'][0]:.2f}; "
        f"{'meets' if summary['meets_target'] else 'MISSES'} the {TARGET_FPS:g} FPS target"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
