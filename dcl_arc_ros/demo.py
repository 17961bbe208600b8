"""``make demo``: the whole product on a generated bag, end to end over real DDS.

1. Render a small real-like tabletop scene with the active-stereo sensor into a rosbag2 bag (``dcl-arc-generate``).
2. Start the perception graph (``dcl-arc-perception``) with every node whose shipped model is present.
3. Replay the bag onto the camera topics, ground truth included (the ``dcl-arc-play`` player, in this process).
4. Collect every output by stamp beside the ground truth, print the errors and save PNGs in ``--out``.

    python -m dcl_arc_ros.demo --out outputs/demo [--frames 4] [--seed 7] [--keep-bag]

Each stage is a separate process talking real DDS, exactly as on a robot; nodes whose model is not shipped are
skipped with the reason the runner gives.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcl_arc_ros.bag_player import BagPlayer
from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.metrics import monocular_depth_metrics
from dcl_arc_ros.data.bags import bag_topics
from dcl_arc_ros.dds import apply_dds_profile, dds_environment
from dcl_arc_ros.graph import select_nodes
from dcl_arc_ros.paths import config_file

#: topic -> message type name, everything the demo listens to.
TOPICS: dict[str, str] = {
    "/camera/depth/image_rect_raw": "Image",
    "/camera/color/image_raw": "Image",
    "/camera/color/camera_info": "CameraInfo",
    "/camera/depth/camera_info": "CameraInfo",
    "/ground_truth/depth": "Image",
    "/ground_truth/grasps/info": "Float32MultiArray",
    "/ground_truth/poses": "PoseArray",
    "/dcl_arc/depth/cleaned": "Image",
    "/dcl_arc/arc/depth": "Image",
    "/dcl_arc/arc/mask": "Image",
    "/dcl_arc/arc/decluttered": "Image",
    "/dcl_arc/grasps": "PoseArray",
    "/dcl_arc/grasps/info": "Float32MultiArray",
    "/dcl_arc/poses": "PoseArray",
    "/dcl_arc/poses/info": "Float32MultiArray",
}

#: info table -> the stamped topic it belongs to (same publisher, same order, one table per message).
INFO_PARENTS: dict[str, str] = {
    "/ground_truth/grasps/info": "/ground_truth/depth",
    "/dcl_arc/grasps/info": "/dcl_arc/grasps",
    "/dcl_arc/poses/info": "/dcl_arc/poses",
}

#: node -> the camera topic it consumes and the output the demo waits for.
NODE_INPUTS: dict[str, str] = {
    "depth_cleaner": "/camera/depth/image_rect_raw",
    "arc_depth": "/camera/color/image_raw",
    "grasp_detector": "/camera/depth/image_rect_raw",
    "pose_estimator": "/camera/depth/image_rect_raw",
}
NODE_OUTPUTS: dict[str, str] = {
    "depth_cleaner": "/dcl_arc/depth/cleaned",
    "arc_depth": "/dcl_arc/arc/depth",
    "grasp_detector": "/dcl_arc/grasps",
    "pose_estimator": "/dcl_arc/poses",
}
#: node -> runner parameter overrides the demo needs (everything else is the shipped config).
NODE_PARAMS: dict[str, tuple[str, ...]] = {
    "arc_depth": ("arc_depth.publish_decluttered=true",),  # the figure shows what the depth network saw
}
#: seconds without a new message, after the replay ended, that mean nothing more is coming.
QUIET_S = 10.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="folder for the bag and the PNGs")
    parser.add_argument("--frames", type=int, default=4, help="frames (camera poses) in the demo scene")
    parser.add_argument("--seed", type=int, default=7, help="scene seed")
    parser.add_argument("--rate-hz", type=float, default=2.0, help="replay rate (slow enough for every node)")
    parser.add_argument("--models-dir", type=Path, help="models folder (default: the shipped models/)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the graph's outputs")
    return parser.parse_args(argv)


def generate_bag(out: Path, frames: int, seed: int, rate_hz: float) -> Path:
    from dcl_arc_ros.sim.generate import main as generate

    bag_root = out / "bag"
    code = generate(
        [
            "--out", str(bag_root), "--scenes", "1", "--frames-per-scene", str(frames), "--seed", str(seed),
            "--sensor", "active_stereo", "--family", "real_like", "--fps", str(rate_hz), "--no-progress",
        ]
    )  # fmt: skip
    bags = sorted(p for p in bag_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if code != 0 or not bags:
        raise SystemExit(f"demo: generating the bag in {bag_root} failed (exit {code})")
    return bags[0]


class Collector:
    """An rclpy node that keeps every message of :data:`TOPICS` by (topic, stamp)."""

    def __init__(self) -> None:
        import rclpy
        from geometry_msgs.msg import PoseArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import Float32MultiArray

        types = {
            "Image": Image,
            "CameraInfo": CameraInfo,
            "PoseArray": PoseArray,
            "Float32MultiArray": Float32MultiArray,
        }
        self.rclpy = rclpy
        self.node = rclpy.create_node("dcl_arc_demo_collector")
        self.messages: dict[str, dict[int, Any]] = defaultdict(dict)
        self.arrivals: dict[str, list[Any]] = defaultdict(list)
        for topic, type_name in TOPICS.items():
            # Best effort matches both reliable and best-effort publishers.
            self.node.create_subscription(types[type_name], topic, self._keeper(topic), qos_profile_sensor_data)

    def _keeper(self, topic: str) -> Any:
        def keep(msg: Any) -> None:
            if hasattr(msg, "header"):
                self.messages[topic][msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg
            else:  # info tables carry no header: kept in arrival order, paired with their parent topic later
                self.arrivals[topic].append(msg)

        return keep

    def paired(self) -> dict[str, dict[int, Any]]:
        """Every message by stamp; the k-th info table goes with the k-th (by stamp) message of its parent topic."""
        messages = {topic: dict(by_stamp) for topic, by_stamp in self.messages.items()}
        for topic, parent in INFO_PARENTS.items():
            stamps = sorted(messages.get(parent, {}))
            arrivals = self.arrivals.get(topic, [])
            if len(arrivals) != len(stamps):
                print(f"demo: {len(arrivals)} messages on {topic} for {len(stamps)} on {parent}; not pairing them")
                continue
            messages[topic] = dict(zip(stamps, arrivals, strict=True))
        return messages

    def wait_for_subscribers(self, wanted: dict[str, int], timeout_s: float) -> bool:
        """Spin until each topic has at least the given number of subscriptions (ours included)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.node.count_subscribers(topic) >= n for topic, n in wanted.items()):
                return True
            self.spin_for(0.1)
        return False

    def received(self) -> int:
        return sum(len(by_stamp) for by_stamp in self.messages.values())

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)


def _image(msg: Any) -> np.ndarray:
    from dcl_arc_ros.core.image_codec import depth_from_image, rgb_from_image
    from dcl_arc_ros.ros.conversions import fields_from_image_msg

    fields = fields_from_image_msg(msg)
    if msg.encoding in ("32FC1", "16UC1"):
        return depth_from_image(fields)
    if msg.encoding == "mono8":
        from dcl_arc_ros.core.image_codec import image_to_array

        return image_to_array(fields)
    return rgb_from_image(fields)


def _rmse(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """RMSE (m) over pixels where both are finite, and the fraction of ground-truth pixels that had a prediction."""
    both = np.isfinite(pred) & np.isfinite(truth)
    if not both.any():
        return float("nan"), 0.0
    return float(np.sqrt(np.mean((pred[both] - truth[both]) ** 2))), float(both.sum() / np.isfinite(truth).sum())


def _draw_axes(ax: Any, poses: Any, intr: Intrinsics, length_m: float = 0.05) -> None:
    from dcl_arc_ros.core.pose_pipeline import quaternion_to_matrix

    for pose in poses:
        p = np.array([pose.position.x, pose.position.y, pose.position.z])
        q = np.array([[pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]])
        rot = quaternion_to_matrix(q)[0]
        pts = np.vstack([p, p + length_m * rot.T])
        u, v, _ = intr.project(pts)
        for axis, colour in enumerate(("r", "g", "b")):
            ax.plot([u[0], u[axis + 1]], [v[0], v[axis + 1]], colour, linewidth=1.5)


def _draw_predicted_grasps(ax: Any, poses: Any, info: Any, intr: Intrinsics) -> None:
    """Each grasp as its jaw line: centre +- half the opening along the closing direction (grasp x axis)."""
    from dcl_arc_ros.core.pose_pipeline import quaternion_to_matrix

    widths: np.ndarray = np.asarray(info.data, dtype=float).reshape(-1, 2)[:, 1] if info is not None else np.zeros(0)
    for rank, (pose, width) in enumerate(zip(poses, widths, strict=False)):
        p = np.array([pose.position.x, pose.position.y, pose.position.z])
        q = np.array([[pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]])
        closing = quaternion_to_matrix(q)[0][:, 0]
        u, v, _ = intr.project(np.vstack([p - closing * width / 2, p + closing * width / 2]))
        ax.plot(u, v, "-", color="lime" if rank == 0 else "yellow", linewidth=2.5 if rank == 0 else 1.2)


def _draw_true_grasps(ax: Any, info: Any) -> None:
    rows = np.asarray(info.data, dtype=float).reshape(-1, 7) if info is not None else np.zeros((0, 7))
    for cx, cy, angle, width_px, *_ in rows:
        dx, dy = np.cos(angle) * width_px / 2, np.sin(angle) * width_px / 2
        ax.plot([cx - dx, cx + dx], [cy - dy, cy + dy], "-", color="cyan", linewidth=0.8, alpha=0.7)


def save_figures(messages: dict[str, dict[int, Any]], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dcl_arc_ros.ros.conversions import intrinsics_from_camera_info

    lines: list[str] = []
    for index, stamp in enumerate(sorted(messages["/ground_truth/depth"])):
        get = {topic: messages.get(topic, {}).get(stamp) for topic in TOPICS}
        truth = _image(get["/ground_truth/depth"])
        raw = _image(get["/camera/depth/image_rect_raw"]) if get["/camera/depth/image_rect_raw"] else None
        rgb = _image(get["/camera/color/image_raw"]) if get["/camera/color/image_raw"] else None
        info = get["/camera/depth/camera_info"]
        intr = intrinsics_from_camera_info(info) if info is not None else None
        panels: list[tuple[str, Any, str]] = []
        lo, hi = np.nanpercentile(truth, 2), np.nanpercentile(truth, 98)
        sensor_note = ""
        if raw is not None:
            rmse, cover = _rmse(raw, truth)
            panels.append((f"sensor input\nRMSE {rmse * 1000:.1f} mm, {cover:.0%} of pixels", raw, "depth"))
            sensor_note = f" (sensor input: {rmse * 1000:.1f} mm over its {cover:.0%} of pixels with a reading)"
        if get["/dcl_arc/depth/cleaned"] is not None:
            cleaned = _image(get["/dcl_arc/depth/cleaned"])
            rmse, cover = _rmse(cleaned, truth)
            panels.append(
                (f"cleaned (depth_cleaner)\nRMSE {rmse * 1000:.1f} mm, {cover:.0%} of pixels", cleaned, "depth")
            )
            lines.append(
                f"frame {index}: cleaned depth RMSE {rmse * 1000:.1f} mm over {cover:.0%} of pixels{sensor_note}"
            )
        if get["/dcl_arc/arc/depth"] is not None:
            arc = _image(get["/dcl_arc/arc/depth"])
            absrel = monocular_depth_metrics(arc, _on_grid(truth, arc.shape))["absrel"]  # as evaluate_arc scores it
            grid = f"{arc.shape[1]}x{arc.shape[0]}"
            panels.append((f"ARC depth from RGB ({grid})\nAbsRel {absrel:.3f}", arc, "depth"))
            lines.append(f"frame {index}: ARC depth AbsRel {absrel:.3f} on its {grid} output grid")
        if get["/dcl_arc/arc/mask"] is not None:
            panels.append(("ARC removal mask", _image(get["/dcl_arc/arc/mask"]), "mask"))
        panels.append(("ground truth depth", truth, "depth"))
        detections = get["/dcl_arc/grasps"] is not None or get["/dcl_arc/poses"] is not None
        if rgb is not None and intr is not None and detections:
            panels.append(("grasps (green best) and poses", rgb, "detections"))
            panels.append(("ground truth grasps and poses", rgb, "truth"))
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
        for ax, (title, image, kind) in zip(axes[0], panels, strict=True):
            if kind == "depth":
                ax.imshow(image, cmap="turbo", vmin=lo, vmax=hi)
            elif kind == "mask":
                ax.imshow(image, cmap="gray")
            else:
                ax.imshow(image)
                assert intr is not None
                if kind == "detections":
                    grasps = get["/dcl_arc/grasps"]
                    if grasps is not None:
                        _draw_predicted_grasps(ax, grasps.poses, get["/dcl_arc/grasps/info"], intr)
                    if get["/dcl_arc/poses"] is not None:
                        _draw_axes(ax, get["/dcl_arc/poses"].poses, intr)
                    n_g = len(grasps.poses) if grasps is not None else 0
                    n_p = len(get["/dcl_arc/poses"].poses) if get["/dcl_arc/poses"] is not None else 0
                    lines.append(f"frame {index}: {n_g} grasps, {n_p} object poses")
                else:
                    _draw_true_grasps(ax, get["/ground_truth/grasps/info"])
                    if get["/ground_truth/poses"] is not None:
                        _draw_axes(ax, get["/ground_truth/poses"].poses, intr)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        path = out / f"demo_frame_{index}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        lines.append(f"frame {index}: wrote {path}")
    lines += save_arc_figure(messages, out)
    return lines


def _on_grid(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image`` resampled to ``shape`` (nearest neighbour, so NaN stays NaN and no depth is invented)."""
    import cv2

    if image.shape[:2] == tuple(shape[:2]):
        return image
    return cv2.resize(image, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST)


def save_arc_figure(messages: dict[str, dict[int, Any]], out: Path) -> list[str]:
    """``demo_arc.png``: RGB, removal mask, decluttered image, ARC depth and ground truth, one row per frame, all on
    the ARC node's output grid."""
    from dcl_arc_ros.evaluation.arc_figures import draw_examples

    topics = ("/camera/color/image_raw", "/dcl_arc/arc/mask", "/dcl_arc/arc/decluttered", "/dcl_arc/arc/depth")
    stamps = [
        stamp
        for stamp in sorted(messages.get("/ground_truth/depth", {}))
        if all(messages.get(topic, {}).get(stamp) is not None for topic in topics)
    ]
    if not stamps:
        return []
    rows: dict[str, list[np.ndarray]] = defaultdict(list)
    for stamp in stamps:
        depth = _image(messages["/dcl_arc/arc/depth"][stamp])
        rows["rgb"].append(_on_grid(_image(messages["/camera/color/image_raw"][stamp]), depth.shape))
        rows["keep"].append(_image(messages["/dcl_arc/arc/mask"][stamp]) == 0)  # mono8: 255 = removed
        rows["decluttered"].append(_image(messages["/dcl_arc/arc/decluttered"][stamp]))
        rows["depth"].append(depth)
        rows["truth"].append(_on_grid(_image(messages["/ground_truth/depth"][stamp]), depth.shape))
    path = draw_examples(
        np.stack(rows["rgb"]), np.stack(rows["keep"]), np.stack(rows["decluttered"]), np.stack(rows["depth"]),
        np.stack(rows["truth"]), out / "demo_arc.png",
    )  # fmt: skip
    return [f"ARC: wrote {path} ({len(stamps)} frames)"]


def _stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"demo: rendering a real-like scene ({args.frames} frames, active-stereo sensor) into a bag")
    bag = generate_bag(args.out, args.frames, args.seed, args.rate_hz)

    selection = select_nodes(config_file("perception.yaml"), models_dir=args.models_dir)
    specs = selection.nodes
    for reason in selection.skipped:
        print(f"demo: skipping {reason}")
    if not specs:
        print("demo: no node has its model; nothing to run (ship models/*.onnx, see README)")
        return 1
    names = [spec.name for spec in specs]
    print(f"demo: starting the graph: {', '.join(names)}")
    apply_dds_profile()
    env = dds_environment(os.environ)
    command = [sys.executable, "-m", "dcl_arc_ros.runner", "--only", ",".join(names)]
    command += [arg for name in names for param in NODE_PARAMS.get(name, ()) for arg in ("--param", param)]
    if args.models_dir is not None:
        command += ["--models-dir", str(args.models_dir)]
    graph = subprocess.Popen(command, env=env)

    import rclpy

    rclpy.init()
    try:
        collector = Collector()
        # The player publishes from the collector's own participant, so it sees exactly which subscriptions exist:
        # our own on every topic, plus each node's on the camera topic it consumes. Replaying before the nodes are
        # discovered would lose the first frames.
        player = BagPlayer(collector.node, bag, topics=tuple(t for t in TOPICS if not t.startswith("/dcl_arc/")))
        consumers = {topic: 1 for topic in player.publishers}
        for name in names:
            consumers[NODE_INPUTS[name]] += 1
        if not collector.wait_for_subscribers(consumers, timeout_s=60.0):
            print(f"demo: the nodes did not subscribe within 60 s (wanted {consumers}); replaying anyway")
        print(f"demo: replaying {bag} at {args.rate_hz:g} Hz")
        replay = threading.Thread(target=player.play_once, name="replay", daemon=True)
        replay.start()
        deadline = time.monotonic() + args.timeout
        wanted = [NODE_OUTPUTS[name] for name in names]
        # Count the frames from the bag, not from what has arrived: the last frame may still be on its way when the
        # replay thread ends, and the nodes may still be working on it.
        frames = bag_topics(bag)["/ground_truth/depth"][1]
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            collector.spin_for(0.5)
            count = collector.received()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            complete = all(len(collector.messages[t]) >= frames for t in [*wanted, "/ground_truth/depth"])
            quiet = time.monotonic() - last_change > QUIET_S
            if not replay.is_alive() and (complete or quiet):
                break
        # Every output is in: stop the graph before the figures, which take seconds to draw, so that the nodes do
        # not warn about a camera that has (deliberately) gone quiet.
        _stop(graph)
        for line in save_figures(collector.paired(), args.out):
            print(f"demo: {line}")
        missing = [t for t in wanted if not collector.messages[t]]
        if missing:
            print(f"demo: no output arrived on {', '.join(missing)} within {args.timeout:.0f} s")
            return 1
        return 0
    finally:
        _stop(graph)
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
