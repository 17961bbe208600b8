"""dcl-arc-play: replay a bag's camera topics like a live camera (no ros2 bag needed).

    dcl-arc-play BAG [--rate R] [--loop] [--keep-stamps] [--ground-truth | --topics T ...] [--best-effort]

Messages are published at their recorded spacing divided by ``--rate``. By default every frame is restamped to the
time it is published (all messages that shared a stamp in the bag share the new one), so downstream nodes see a
live camera; ``--keep-stamps`` publishes the recorded stamps instead (use it with ``use_sim_time`` consumers).

Messages go out as the serialised bytes stored in the bag; restamping patches the header stamp in place, so a
640x480 frame is never deserialised. The shipped Fast DDS profile is applied first (large images are otherwise
dropped under best-effort QoS; see docs/dds.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dcl_arc_ros.data import bags
from dcl_arc_ros.data.errors import BagError, DataError

_STAMP: Final = struct.Struct("<iI")
_STAMP_BE: Final = struct.Struct(">iI")
_NS: Final = 1_000_000_000


def restamp_cdr(msgtype: str, data: bytes | memoryview, stamp_ns: int) -> bytes:
    """Serialised message with its header stamp (and, for TFMessage, every transform's stamp) set to ``stamp_ns``.

    Messages without a header are returned unchanged.
    """
    sec, nsec = int(stamp_ns) // _NS, int(stamp_ns) % _NS
    if msgtype in (bags.IMAGE, bags.CAMERA_INFO, bags.POSE_ARRAY, "sensor_msgs/msg/CompressedImage"):
        out = bytearray(data)
        little = len(out) >= 2 and out[1] in (1, 3)
        (_STAMP if little else _STAMP_BE).pack_into(out, 4, sec, nsec)
        return bytes(out)
    if msgtype == bags.TF_MESSAGE:
        store = bags.typestore()
        msg: Any = store.deserialize_cdr(bytes(data), msgtype)
        time_type = store.types["builtin_interfaces/msg/Time"]
        for transform in msg.transforms:
            transform.header.stamp = time_type(sec=sec, nanosec=nsec)
        return bytes(store.serialize_cdr(msg, msgtype))
    return bytes(data)


@dataclass(frozen=True)
class RecordedMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    key_ns: int  # the frame stamp it belongs to (see bags.message_key)
    data: bytes


def recorded_messages(bag: str | Path, topics: Sequence[str]) -> Iterator[RecordedMessage]:
    with bags.open_bag(bag) as reader:
        conns = [c for c in reader.connections if c.topic in set(topics)]
        if not conns:
            have = sorted(c.topic for c in reader.connections)
            raise BagError(f"{bag} has none of the topics {list(topics)}; it has {have}")
        for conn, log_time, data in reader.messages(connections=conns):
            yield RecordedMessage(
                conn.topic, conn.msgtype, log_time, bags.message_key(conn.msgtype, data, log_time), bytes(data)
            )


def message_class(msgtype: str) -> Any:
    """``"sensor_msgs/msg/Image"`` -> the rclpy message class (ImportError when its package is not installed)."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class BagPlayer:
    """Publishes a bag's messages on an rclpy node with the recorded timing."""

    def __init__(
        self,
        node: Any,
        bag: str | Path,
        *,
        topics: Sequence[str] = bags.CAMERA_TOPICS,
        rate: float = 1.0,
        keep_stamps: bool = False,
        best_effort: bool = False,
    ) -> None:
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        if not rate > 0:
            raise DataError(f"--rate must be positive, got {rate!r}")
        self.node, self.bag, self.rate, self.keep_stamps = node, Path(bag), float(rate), keep_stamps
        available = bags.bag_topics(self.bag)
        reliability = ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE
        self.publishers: dict[str, Any] = {}
        for topic in topics:
            if topic not in available:
                node.get_logger().warning(f"{self.bag} has no topic {topic}; skipping it")
                continue
            msgtype = available[topic][0]
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError):
                node.get_logger().warning(f"message type {msgtype} of {topic} is not installed; skipping it")
                continue
            if topic == bags.TF_STATIC:
                qos = QoSProfile(
                    depth=1,
                    history=HistoryPolicy.KEEP_LAST,
                    reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL,
                )
            else:
                qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=reliability)
            self.publishers[topic] = node.create_publisher(cls, topic, qos)
        if not self.publishers:
            raise BagError(f"nothing to play from {self.bag}: none of {list(topics)} can be published")
        self.published = 0

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait until every publisher has a subscriber (or the timeout); True when all matched."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.publishers.values()):
                return True
            time.sleep(0.02)
        return False

    def play_once(self) -> int:
        """Publish the bag once with its timing; returns the number of messages published."""
        start_wall = time.monotonic()
        first_log: int | None = None
        new_stamps: dict[int, int] = {}
        count = 0
        for message in recorded_messages(self.bag, tuple(self.publishers)):
            if first_log is None:
                first_log = message.log_time_ns
            due = start_wall + (message.log_time_ns - first_log) / _NS / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            data = message.data
            if not self.keep_stamps:
                if message.key_ns not in new_stamps:
                    new_stamps.clear()  # frames come in order: only the current one is needed
                    new_stamps[message.key_ns] = self.node.get_clock().now().nanoseconds
                data = restamp_cdr(message.msgtype, data, new_stamps[message.key_ns])
            self.publishers[message.topic].publish(data)
            count += 1
        self.published += count
        return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcl-arc-play", description="Replay a bag's camera topics like a camera.")
    parser.add_argument("bag", type=Path, help="rosbag2 directory (mcap or sqlite3)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    parser.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    parser.add_argument("--keep-stamps", action="store_true", help="publish the recorded stamps, not the current time")
    parser.add_argument("--ground-truth", action="store_true", help="also publish /ground_truth/* and /tf_static")
    parser.add_argument("--topics", nargs="+", default=None, help="publish exactly these topics")
    parser.add_argument("--best-effort", action="store_true", help="best-effort QoS (default: reliable)")
    parser.add_argument(
        "--delay",
        type=float,
        default=1.0,
        help="seconds to wait for subscribers to be discovered before the first message",
    )
    return parser


def _apply_dds_profile() -> None:
    """Apply the shipped Fast DDS profile when the module and the file can be found; warn otherwise."""
    try:
        dds = importlib.import_module("dcl_arc_ros.dds")
    except ImportError:
        return
    try:
        dds.apply_dds_profile()
    except OSError as exc:  # profile file not found in this install
        print(
            f"dcl-arc-play: warning: Fast DDS profile not applied ({exc}); large best-effort images may be lost",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.topics is not None:
        topics: tuple[str, ...] = tuple(args.topics)
    elif args.ground_truth:
        topics = tuple(bags.TOPICS)
    else:
        topics = bags.CAMERA_TOPICS
    _apply_dds_profile()
    import rclpy

    rclpy.init()
    node = rclpy.create_node("dcl_arc_play")
    try:
        player = BagPlayer(
            node, args.bag, topics=topics, rate=args.rate, keep_stamps=args.keep_stamps, best_effort=args.best_effort
        )
        player.wait_for_subscribers(args.delay)
        while True:
            count = player.play_once()
            node.get_logger().info(f"played {count} messages from {args.bag}")
            if not args.loop:
                break
    except DataError as exc:
        print(f"dcl-arc-play: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        node.destroy_node()
        with contextlib.suppress(Exception):
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
