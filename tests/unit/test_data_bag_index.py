"""BagIndex: random access over many bags, the cached index, and nearest-stamp pairing for recordings."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from dcl_arc_ros.data import bag_index, bags
from dcl_arc_ros.data.bag_index import BagIndex, index_path_for
from dcl_arc_ros.data.errors import BagIndexError
from dcl_arc_ros.sim.generate import EPOCH_NS, SceneRequest, toy_frames

PERIOD = 33_333_333


def _frames(seed: int, count: int, first: int = 0):
    frames = toy_frames(
        SceneRequest(
            seed=seed, frames=count, sensor="empirical", family="synthetic", camera="d435", width=40, height=30
        )
    )
    return [dataclasses.replace(f, stamp_ns=EPOCH_NS + (first + i) * PERIOD) for i, f in enumerate(frames)]


@pytest.fixture()
def two_bags(tmp_path: Path) -> Path:
    bags.write_bag(tmp_path / "a", _frames(1, 3), storage="mcap")
    bags.write_bag(tmp_path / "b", _frames(2, 2, first=3), storage="sqlite3")
    return tmp_path


def test_random_access_matches_sequential_reading_across_bags(two_bags: Path) -> None:
    index = BagIndex(two_bags)
    sequential = [*bags.read_frames(two_bags / "a"), *bags.read_frames(two_bags / "b")]
    assert len(index) == len(sequential) == 5
    np.testing.assert_array_equal(index.stamps, [r.stamp_ns for r in sequential])
    for i in (4, 0, 3, 1, 2, -1):  # out of order on purpose
        got, want = index[i], sequential[i]
        assert got.stamp_ns == want.stamp_ns
        np.testing.assert_array_equal(got.depth_clean, want.depth_clean)
        np.testing.assert_array_equal(got.rgb, want.rgb)
        np.testing.assert_array_equal(got.grasp_info, want.grasp_info)
    assert index.locate(3) == (1, 0)
    with pytest.raises(IndexError):
        index[5]


def test_index_is_cached_beside_the_bag_and_rebuilt_when_the_bag_changes(
    two_bags: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    BagIndex(two_bags / "a")
    cached = index_path_for(two_bags / "a")
    assert cached.is_file()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached index should have been used")

    monkeypatch.setattr(bag_index, "build_single_index", no_rebuild)
    assert len(BagIndex(two_bags / "a")) == 3
    meta = two_bags / "a" / "metadata.yaml"
    stat = meta.stat()
    os.utime(meta, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(AssertionError, match="cached index"):
        BagIndex(two_bags / "a")
    monkeypatch.undo()
    assert len(BagIndex(two_bags / "a", topics=[bags.DEPTH_IMAGE])) == 3  # other options -> other index, rebuilt


def test_index_survives_pickling_for_dataloader_workers(two_bags: Path) -> None:
    index = BagIndex(two_bags)
    first = index[0]
    clone = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(clone[0].depth, first.depth)


def test_recording_with_offset_colour_stamps_pairs_by_nearest_stamp(tmp_path: Path) -> None:
    """A real camera's colour and depth streams are not stamped together: pair within max_offset_s."""
    frames = [dataclasses.replace(f, rgb=f.rgb // 2 + 10 * i) for i, f in enumerate(_frames(5, 4))]  # distinct
    store = bags.typestore()
    path = tmp_path / "recording"
    writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    # realsense-ros 4.x names its topics /camera/camera/...: the index maps them back with `remap`.
    recorded = {t: t.replace("/camera/", "/camera/camera/", 1) for t in bags.CAMERA_TOPICS}
    conns = {t: writer.add_connection(recorded[t], bags.TOPICS[t], typestore=store) for t in bags.CAMERA_TOPICS}
    offsets = {bags.COLOR_IMAGE: 9_000_000, bags.COLOR_INFO: 9_000_000}  # colour 9 ms after depth
    records = []
    for i, frame in enumerate(frames):
        if i == 2:
            # half-way between two depth frames: more than 15 ms from both, so frames 2 and 3 get no colour
            offsets = {bags.COLOR_IMAGE: PERIOD // 2, bags.COLOR_INFO: PERIOD // 2}
        messages = bags.frame_messages(frame)
        for topic in bags.CAMERA_TOPICS:
            stamp = frame.stamp_ns + offsets.get(topic, 0)
            header = dataclasses.replace(
                messages[topic].header,
                stamp=store.types["builtin_interfaces/msg/Time"](
                    sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000
                ),
            )
            msg = dataclasses.replace(messages[topic], header=header)
            writer.write(conns[topic], stamp + 2_000_000, store.serialize_cdr(msg, bags.TOPICS[topic]))  # receipt
        records.append(frame)
    writer.close()

    with pytest.raises(BagIndexError, match="no anchor topic"):
        BagIndex(path, cache=False)
    index = BagIndex(path, max_offset_s=0.015, remap={name: t for t, name in recorded.items()})
    assert len(index) == 4
    np.testing.assert_array_equal(index.stamps, [f.stamp_ns for f in frames])
    for i, frame in enumerate(frames):
        rec = index[i]
        assert rec.intrinsics == frame.intrinsics
        assert rec.depth_clean is None and rec.normals is None  # a recording has no ground truth
        if i < 2:
            np.testing.assert_array_equal(rec.rgb, frame.rgb)
        else:
            assert rec.rgb is None


def test_missing_anchor_topic_and_empty_folder_are_reported(tmp_path: Path, two_bags: Path) -> None:
    with pytest.raises(BagIndexError, match="no anchor topic '/nope'"):
        BagIndex(two_bags / "a", anchor_topic="/nope", cache=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagIndexError, match="holds no rosbag2 bag"):
        BagIndex(tmp_path / "empty")
