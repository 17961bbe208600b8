"""One side of a bare DDS hop: publish or receive 32FC1 images with real rclpy, in its own process.

``benchmarks.dds_hop`` starts one subscriber and one publisher per configuration, each with its own environment (the
Fast DDS profile variables are set per side), so the profile is read when the participant is created.

    python -m benchmarks._dds_peer subscribe --topic T --qos best_effort --frames 300 --result sub.json
    python -m benchmarks._dds_peer publish   --topic T --qos best_effort --frames 300 --rate 30 --result pub.json

The publisher stamps each header with the wall clock just before ``publish`` and puts the frame index in frame_id;
the subscriber records the wall clock on arrival in its callback. Both run on the same machine, so receive time minus
stamp is the hop latency as a node sees it (transport + deserialisation into Python).

A publisher that sees no subscriber within ``--match-timeout`` publishes nothing and reports ``matched: false``.
The subscriber stops when it has every frame, when its standard input says ``stop`` (or closes), or at ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Image

QOS_PROFILES: dict[str, QoSProfile] = {
    # What camera drivers and our nodes use for images: best effort, keep last 5.
    "best_effort": qos_profile_sensor_data,
    "reliable": QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    ),
}


@dataclass
class PublisherReport:
    published: int
    matched: bool
    match_wait_s: float
    publish_duration_s: float
    achieved_rate_hz: float


@dataclass
class SubscriberReport:
    received: int
    indices: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    bad_frames: int = 0  # arrived with the wrong encoding, size or content


def frame_depth(width: int, height: int) -> np.ndarray:
    """The depth every frame carries (metres, a smooth ramp); the subscriber checks it arrived intact."""
    return np.linspace(0.3, 3.0, width * height, dtype=np.float32).reshape(height, width)


def make_frame(width: int, height: int) -> Image:
    """A 32FC1 image of ``frame_depth``, reused for every frame (only the header changes)."""
    depth = frame_depth(width, height)
    msg = Image()
    msg.height = height
    msg.width = width
    msg.encoding = "32FC1"
    msg.is_bigendian = 0
    msg.step = width * 4
    msg.data = depth.tobytes()
    return msg


def run_publisher(args: argparse.Namespace) -> PublisherReport:
    rclpy.init()
    node = Node("dds_hop_publisher")
    try:
        pub = node.create_publisher(Image, args.topic, QOS_PROFILES[args.qos])
        msg = make_frame(args.width, args.height)
        start = time.monotonic()
        while pub.get_subscription_count() < 1:
            if time.monotonic() - start > args.match_timeout:
                # A result, not an error: some transport combinations never discover each other.
                return PublisherReport(0, False, time.monotonic() - start, 0.0, 0.0)
            time.sleep(0.02)
        match_wait = time.monotonic() - start
        # Matching is not symmetric in time: give the subscriber's side of discovery a moment to finish too.
        time.sleep(args.settle)
        period = 1.0 / args.rate
        t0 = time.monotonic()
        for index in range(args.frames):
            deadline = t0 + index * period
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now_ns = time.time_ns()
            msg.header.stamp.sec = now_ns // 1_000_000_000
            msg.header.stamp.nanosec = now_ns % 1_000_000_000
            msg.header.frame_id = str(index)
            pub.publish(msg)
        duration = time.monotonic() - t0
        # Let reliable retransmissions and the last best-effort samples drain before the participant goes away.
        time.sleep(args.linger)
        rate = (args.frames - 1) / duration if args.frames > 1 and duration > 0 else 0.0
        return PublisherReport(args.frames, True, match_wait, duration, rate)
    finally:
        node.destroy_node()
        rclpy.shutdown()


def run_subscriber(args: argparse.Namespace) -> SubscriberReport:
    report = SubscriberReport(received=0)
    expected = frame_depth(args.width, args.height).view(np.uint8).reshape(-1)
    stop = threading.Event()

    def on_image(msg: Image) -> None:
        now_ns = time.time_ns()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        payload = np.frombuffer(msg.data, dtype=np.uint8)
        if msg.encoding != "32FC1" or not np.array_equal(payload, expected):
            report.bad_frames += 1
            return
        report.received += 1
        report.indices.append(int(msg.header.frame_id))
        report.latencies_ms.append((now_ns - stamp_ns) / 1e6)
        if report.received >= args.frames:
            stop.set()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    rclpy.init()
    node = Node("dds_hop_subscriber")
    try:
        node.create_subscription(Image, args.topic, on_image, QOS_PROFILES[args.qos])
        print("ready", flush=True)
        deadline = time.monotonic() + args.timeout
        while not stop.is_set() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        return report
    finally:
        node.destroy_node()
        rclpy.shutdown()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("publish", "subscribe"))
    parser.add_argument("--topic", required=True)
    parser.add_argument("--qos", choices=sorted(QOS_PROFILES), required=True)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0, help="publish rate, Hz")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--match-timeout", type=float, default=30.0, help="publisher: seconds to wait for a match")
    parser.add_argument("--settle", type=float, default=1.0, help="publisher: seconds between match and first frame")
    parser.add_argument("--linger", type=float, default=1.0, help="publisher: seconds to stay up after the last frame")
    parser.add_argument("--timeout", type=float, default=120.0, help="subscriber: hard stop, seconds")
    parser.add_argument("--result", type=Path, required=True, help="where to write this side's JSON report")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report: PublisherReport | SubscriberReport
    report = run_publisher(args) if args.role == "publish" else run_subscriber(args)
    args.result.write_text(json.dumps(asdict(report)), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
