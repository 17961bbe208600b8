"""dcl-arc-play: restamping of serialised messages (pure) and an in-process replay received by a subscriber."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from dcl_arc_ros.bag_player import BagPlayer, restamp_cdr
from dcl_arc_ros.data import bags
from dcl_arc_ros.sim.generate import EPOCH_NS, SceneRequest, toy_frames

TIMEOUT_S = 20.0
PERIOD = 33_333_333


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = toy_frames(
        SceneRequest(seed=2, frames=3, sensor="empirical", family="synthetic", camera="d435", width=32, height=24)
    )
    path = tmp_path_factory.mktemp("play") / "bag"
    bags.write_bag(path, [dataclasses.replace(f, stamp_ns=EPOCH_NS + i * PERIOD) for i, f in enumerate(frames)])
    return path


def test_restamp_patches_headers_and_leaves_the_payload(bag: Path) -> None:
    store = bags.typestore()
    new = 1_234_567_890_123_456_789
    seen = set()
    with bags.open_bag(bag) as reader:
        for conn, _t, data in reader.messages():
            if conn.topic in seen:
                continue
            seen.add(conn.topic)
            out = restamp_cdr(conn.msgtype, data, new)
            before, after = store.deserialize_cdr(bytes(data), conn.msgtype), store.deserialize_cdr(out, conn.msgtype)
            if conn.msgtype == bags.FLOAT32_ARRAY:
                assert out == bytes(data)
                continue
            stamped = after.transforms[0].header if conn.msgtype == bags.TF_MESSAGE else after.header
            assert (stamped.stamp.sec, stamped.stamp.nanosec) == (1_234_567_890, 123_456_789)
            if conn.msgtype == bags.IMAGE:
                assert np.array_equal(before.data, after.data) and before.encoding == after.encoding
    assert seen == set(bags.TOPICS)


@pytest.fixture(scope="module")
def context() -> Iterator[Context]:
    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.shutdown(context=ctx)


def _replay(context: Context, bag: Path, *, keep_stamps: bool) -> dict[str, list]:
    sub_node = rclpy.create_node("play_listener", context=context)
    pub_node = rclpy.create_node("play_source", context=context)
    received: dict[str, list] = defaultdict(list)
    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    for topic, cls in (
        (bags.DEPTH_IMAGE, Image),
        (bags.COLOR_IMAGE, Image),
        (bags.COLOR_INFO, CameraInfo),
        (bags.DEPTH_INFO, CameraInfo),
    ):
        sub_node.create_subscription(cls, topic, lambda msg, t=topic: received[t].append(msg), qos)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sub_node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        player = BagPlayer(pub_node, bag, rate=4.0, keep_stamps=keep_stamps)
        assert player.wait_for_subscribers(TIMEOUT_S)
        assert player.play_once() == 3 * len(bags.CAMERA_TOPICS)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and min(len(received[t]) for t in bags.CAMERA_TOPICS) < 3:
            time.sleep(0.02)
    finally:
        executor.shutdown()
        thread.join(TIMEOUT_S)
        sub_node.destroy_node()
        pub_node.destroy_node()
    return received


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def test_replay_restamps_frames_to_now_and_keeps_them_together(context: Context, bag: Path) -> None:
    started = time.time_ns()
    received = _replay(context, bag, keep_stamps=False)
    assert {t: len(received[t]) for t in bags.CAMERA_TOPICS} == {t: 3 for t in bags.CAMERA_TOPICS}
    depth_stamps = [_stamp(m) for m in received[bags.DEPTH_IMAGE]]
    for topic in bags.CAMERA_TOPICS:
        assert [_stamp(m) for m in received[topic]] == depth_stamps, topic
    assert all(b > a for a, b in itertools.pairwise(depth_stamps))
    assert depth_stamps[0] >= started - 1_000_000_000
    records = list(bags.read_frames(bag))
    for msg, rec in zip(received[bags.DEPTH_IMAGE], records, strict=True):
        assert msg.encoding == "16UC1"
        mm = np.frombuffer(bytes(msg.data), dtype="<u2").reshape(msg.height, msg.width)
        np.testing.assert_array_equal(mm, np.nan_to_num(np.rint(rec.depth.astype(np.float64) * 1000)))


def test_replay_can_keep_the_recorded_stamps(context: Context, bag: Path) -> None:
    received = _replay(context, bag, keep_stamps=True)
    assert [_stamp(m) for m in received[bags.COLOR_IMAGE]] == [EPOCH_NS + i * PERIOD for i in range(3)]
