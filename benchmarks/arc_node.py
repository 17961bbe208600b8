"""End-to-end per-frame time of the arc_depth node at 320x240 with the deploy-sized ARC (configs/arc_deploy.yaml).

Target: 8 FPS or more (median frame time <= 125 ms) on this 2-core machine, with the node's default one ONNX Runtime
thread.

What is timed is one call of ``ARCDepthNode.process`` on a matched RGB + CameraInfo frame, i.e. everything the node
does per frame once the messages have arrived: decode the rgb8 (or bgr8) Image, read the intrinsics, run
``ARCDepthPipeline`` (area-resize to the network's resolution, normalise, ONNX Runtime over the whole T -> A -> I -> D
graph, decode depth, mask and decluttered image, rescale the intrinsics), and encode and publish the depth, the mask,
the CameraInfo (and the decluttered image with ``--decluttered``) to matched subscriptions. The DDS transport of the
input image is not included (``benchmarks.dds_hop`` measures it).

The node is the real one with its default parameters and the shipped Fast DDS profile; the model is the shipped
``models/arc_depth.onnx``, or with ``--fresh`` (or no shipped model) the ``--config`` configuration exported fresh with
untrained weights (timing does not depend on the weights: every layer runs on every pixel). Wall time is what a frame
waits; CPU time (``time.process_time``, all threads of the process) is what it costs and is much less sensitive to the
other load on the machine. The machine is shared, so the measurement is repeated (``--repeats``) with the load average
(as ``uptime`` shows it) recorded before and after each run.

The outputs are at the network's resolution (96x128 for arc_deploy) with a rescaled CameraInfo; what upsampling them
to the camera's 320x240 would add is measured separately (``upsample_to_input_ms``: nearest for depth and mask,
bilinear for the decluttered image), and is not part of the node.

    python -m benchmarks.arc_node --out benchmarks/results [--frames 150] [--repeats 3] [--threads N]
        [--model models/arc_depth.onnx] [--config training/configs/arc_deploy.yaml] [--encoding bgr8] [--decluttered]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks._common import (
    FrameTimes,
    LoadAverage,
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
from benchmarks.node_overhead import summarise

RESULT_FILE = "arc_node.json"
TARGET_FPS = 8.0
HEIGHT, WIDTH = 240, 320
#: A colour camera at 320x240 (a 640x480 D435 colour stream binned by 2).
FX = FY = 307.5
CX, CY = 159.5, 119.5
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "arc_deploy.yaml"


@dataclass(frozen=True)
class ARCRun:
    """One measured run, the load average around it and what the last frame gave."""

    times: FrameTimes
    load_average_before: LoadAverage
    load_average_after: LoadAverage
    removed_fraction_last_frame: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.times.summary(TARGET_FPS),
            "load_average_before": rounded(self.load_average_before),
            "load_average_after": rounded(self.load_average_after),
            "removed_fraction_last_frame": round(self.removed_fraction_last_frame, 3),
        }


def uptime_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def export_deploy_arc(folder: Path, config_path: Path) -> Path:
    """The ARC configuration of ``config_path`` (arc_full, untrained) exported to ONNX + sidecar in ``folder``."""
    import torch

    from dcl_arc_ros.learning.arc.config import load_config
    from dcl_arc_ros.learning.arc.export import export_arc
    from dcl_arc_ros.learning.arc.model import ARCInference
    from dcl_arc_ros.learning.arc.stages import build_system
    from dcl_arc_ros.learning.arc.variants import get_variant

    torch.manual_seed(0)
    config = load_config(config_path)
    variant = get_variant("arc_full")
    model = ARCInference.from_system(build_system(config, variant))
    return export_arc(model, config, variant, folder / "arc_depth.onnx").onnx_path


def camera_images(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """``count`` 320x240 uint8 RGB frames: a shaded table, a few coloured boxes, sensor noise."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    images = []
    for _ in range(count):
        shade = (90 + 0.3 * yy + 0.1 * xx)[..., None] * np.array([1.0, 0.9, 0.8])
        image = shade + rng.normal(0.0, 6.0, (HEIGHT, WIDTH, 3))
        for _box in range(4):
            u, v = rng.integers(30, WIDTH - 30), rng.integers(30, HEIGHT - 30)
            half_u, half_v = rng.integers(10, 30), rng.integers(10, 25)
            inside = (np.abs(xx - u) <= half_u) & (np.abs(yy - v) <= half_v)
            image[inside] = rng.uniform(30, 230, 3)
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images


def upsample_to_input_ms(height: int, width: int, frames: int) -> dict[str, float]:
    """What resizing the outputs (depth, mask, decluttered) from the network's size to 320x240 costs per frame."""
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 4.0, (height, width)).astype(np.float32)
    mask = np.where(rng.random((height, width)) < 0.15, 255, 0).astype(np.uint8)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        cv2.resize(depth, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST)
        cv2.resize(mask, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST)
        cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        times.append(time.perf_counter() - start)
    return summarise(times)


def measure_runs(
    model_path: Path,
    images: Sequence[np.ndarray],
    *,
    frames: int,
    warmup: int,
    repeats: int,
    encoding: str,
    threads: int | None,
    decluttered: bool,
) -> tuple[list[ARCRun], tuple[int, int]]:
    """Build the node once in a fresh context and time ``repeats`` runs of ``frames`` frames through ``process``."""
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from dcl_arc_ros.core.camera import Intrinsics
    from dcl_arc_ros.core.image_codec import array_to_image
    from dcl_arc_ros.ros import arc_depth
    from dcl_arc_ros.ros.conversions import camera_info_from_intrinsics, image_msg_from_fields

    args = node_args(model_path, threads, publish_decluttered=str(decluttered).lower())
    with node_session() as session:
        node = session.keep(arc_depth.ARCDepthNode(context=session.context, cli_args=args))
        timed = session.time_model(node)
        outputs: list[tuple[type, str]] = [
            (Image, arc_depth.DEPTH_TOPIC),
            (Image, arc_depth.MASK_TOPIC),
            (CameraInfo, arc_depth.OUTPUT_CAMERA_INFO_TOPIC),
        ]
        if decluttered:
            outputs.append((Image, arc_depth.DECLUTTERED_TOPIC))
        session.listen(node, outputs)
        header = Header(frame_id="camera_color_optical_frame")
        info = camera_info_from_intrinsics(Intrinsics(fx=FX, fy=FY, cx=CX, cy=CY, width=WIDTH, height=HEIGHT), header)
        pictures = [np.ascontiguousarray(img[..., ::-1]) if encoding == "bgr8" else img for img in images]
        msgs = [image_msg_from_fields(array_to_image(img, encoding), header) for img in pictures]
        topics = {"rgb": arc_depth.RGB_TOPIC, "camera_info": arc_depth.CAMERA_INFO_TOPIC}
        make_frame = round_robin_frames(msgs, info, topics, key="rgb")
        runs = []
        for repeat in range(repeats):
            load_before = load_average()
            desc = f"arc_depth {encoding} run {repeat + 1}/{repeats}"
            times = time_frames(node, timed, make_frame, frames=frames, warmup=warmup, desc=desc)
            runs.append(ARCRun(times, load_before, load_average(), node.last_removed_fraction))
        spec = node.pipeline.spec
        return runs, (spec.height, spec.width)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "arc_node").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--frames", type=int, default=150, help="measured frames per run")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="runs (the machine is shared: report the spread)")
    parser.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8", help="input colour encoding")
    parser.add_argument("--model", type=Path, default=None, help="an exported ARC model (default: the shipped one)")
    parser.add_argument(
        "--fresh", action="store_true", help="time a fresh untrained export of --config, not the shipped"
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="ARC config to export (without --model)")
    parser.add_argument("--threads", type=int, default=None, help="the node's threads parameter (default: its own)")
    parser.add_argument("--decluttered", action="store_true", help="also publish the decluttered image")
    parser.add_argument("--result-name", default=RESULT_FILE, help="file name of the JSON in --out")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from dcl_arc_ros.ros.params import ARC_DEPTH

    images = camera_images(np.random.default_rng(0), 8)
    uptime_before = uptime_line()
    shipped = None if args.fresh else shipped_model("arc_depth")
    with tempfile.TemporaryDirectory() as folder:
        model_path = args.model or shipped or export_deploy_arc(Path(folder), args.config)
        runs, (net_h, net_w) = measure_runs(
            model_path,
            images,
            frames=args.frames,
            warmup=args.warmup,
            repeats=args.repeats,
            encoding=args.encoding,
            threads=args.threads,
            decluttered=args.decluttered,
        )
    per_run = [run.as_dict() for run in runs]
    medians = [run.times.frame_ms["median"] for run in runs]
    best = runs[int(np.argmin(medians))]
    settings = node_settings(
        WIDTH,
        HEIGHT,
        args,
        ARC_DEPTH,
        repeats=args.repeats,
        model=describe_model(args.model, shipped, f"{args.config.name} (arc_full), exported untrained"),
        network_resolution=[net_h, net_w],
        outputs_resolution=[net_h, net_w],
        publish_decluttered=args.decluttered,
    )
    result = result_record(
        "arc_node",
        f">= {TARGET_FPS:g} FPS end to end per {WIDTH}x{HEIGHT} frame (median wall time), in every run",
        settings,
        uptime_before=uptime_before,
        uptime_after=uptime_line(),
        runs=per_run,
        frame_median_ms_per_run=medians,
        fps_from_median_per_run=[r["fps_from_median"] for r in per_run],
        frame_cpu_median_ms_per_run=[run.times.frame_cpu_ms["median"] for run in runs],
        meets_target=all(r["meets_target"] for r in per_run),
        upsample_to_input_ms=upsample_to_input_ms(net_h, net_w, 200),
    )
    path = write_result(args.out, args.result_name, result)
    for i, run in enumerate(runs):
        print(
            f"arc_depth run {i + 1}: {run.times.describe()}; load "
            f"{run.load_average_before[0]:.2f} -> {run.load_average_after[0]:.2f}"
        )
    print(
        f"arc_depth {WIDTH}x{HEIGHT} {args.encoding} -> {net_w}x{net_h}: "
        f"best median {best.times.frame_ms['median']:.1f} ms; "
        f"{'meets' if result['meets_target'] else 'MISSES'} the {TARGET_FPS:g} FPS target in "
        f"{sum(r['meets_target'] for r in per_run)}/{len(per_run)} runs"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
