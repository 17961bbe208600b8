"""Generated bags read back with an independent reader (mcap + mcap-ros2-support) and with rosbags (sqlite3)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from dcl_arc_ros.data import bags
from dcl_arc_ros.data.errors import BagError, BagFormatError
from dcl_arc_ros.data.frame import Frame
from dcl_arc_ros.sim.generate import EPOCH_NS, SceneRequest, toy_frames

PERIOD_NS = 33_333_333


@dataclass(frozen=True)
class Decoded:
    schema: str
    log_time_ns: int
    ros_msg: Any


def _frames(seed: int = 3, count: int = 3, sensor: str = "empirical") -> list[Frame]:
    from dataclasses import replace

    frames = list(
        toy_frames(
            SceneRequest(
                seed=seed, frames=count, sensor=sensor, family="synthetic", camera="sr300", width=64, height=48
            )
        )
    )
    return [replace(f, stamp_ns=EPOCH_NS + i * PERIOD_NS) for i, f in enumerate(frames)]


def _image_array(msg, dtype: str, channels: int = 1) -> np.ndarray:
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[
        :, : msg.width * channels * np.dtype(dtype).itemsize
    ]
    arr = np.ascontiguousarray(raw).view(dtype).reshape(msg.height, msg.width, channels)
    return arr[:, :, 0] if channels == 1 else arr


def _pybullet_frames() -> list[Frame]:
    pytest.importorskip("dcl_arc_ros.sim.pipeline", reason="the PyBullet renderer has not landed")
    from dcl_arc_ros.sim.generate import pybullet_frames

    request = SceneRequest(
        seed=5,
        frames=2,
        sensor="empirical",
        family="synthetic",
        camera="d435",
        width=160,
        height=120,
        start_stamp_ns=EPOCH_NS,
        frame_period_ns=PERIOD_NS,
    )
    return list(pybullet_frames(request))


@pytest.fixture(scope="module", params=["toy", "pybullet"])
def mcap_bag(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Frame]]:
    frames = _frames() if request.param == "toy" else _pybullet_frames()
    path = tmp_path_factory.mktemp("bags") / request.param
    stats = bags.write_bag(path, frames, storage="mcap")
    assert stats.frames == len(frames)
    return path, frames


def test_independent_reader_sees_every_topic_encoding_and_value(mcap_bag: tuple[Path, list[Frame]]) -> None:
    path, frames = mcap_bag
    files = list(path.glob("*.mcap"))
    assert len(files) == 1
    by_topic: dict[str, list] = defaultdict(list)
    with files[0].open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        for schema, channel, message, ros_msg in reader.iter_decoded_messages(log_time_order=True):
            by_topic[channel.topic].append(Decoded(schema.name, message.log_time, ros_msg))
    assert set(by_topic) == set(bags.TOPICS)
    for topic, messages in by_topic.items():
        assert len(messages) == len(frames), topic
        assert messages[0].schema == bags.TOPICS[topic]
        for frame, message in zip(frames, messages, strict=True):
            assert message.log_time_ns == frame.stamp_ns, topic
            if hasattr(message.ros_msg, "header"):
                stamp = message.ros_msg.header.stamp
                assert stamp.sec * 1_000_000_000 + stamp.nanosec == frame.stamp_ns, topic
                assert message.ros_msg.header.frame_id == bags.CAMERA_FRAME
    for topic, encoding in bags.ENCODINGS.items():
        assert {m.ros_msg.encoding for m in by_topic[topic]} == {encoding}, topic

    for i, frame in enumerate(frames):

        def msg(topic: str, i: int = i):
            return by_topic[topic][i].ros_msg

        np.testing.assert_array_equal(_image_array(msg(bags.COLOR_IMAGE), "<u1", 3), frame.rgb)
        expected_mm = np.nan_to_num(np.rint(frame.depth_sensor.astype(np.float64) * 1000), nan=0.0)
        np.testing.assert_array_equal(_image_array(msg(bags.DEPTH_IMAGE), "<u2"), expected_mm.astype(np.uint16))
        assert np.any(expected_mm == 0) and np.any(expected_mm > 0)
        np.testing.assert_array_equal(_image_array(msg(bags.GT_DEPTH), "<f4"), frame.depth_clean)
        np.testing.assert_array_equal(_image_array(msg(bags.GT_NORMALS), "<f4", 3), frame.normals)
        np.testing.assert_array_equal(_image_array(msg(bags.GT_INSTANCES), "<u2"), frame.instances)
        for topic, expected in (
            (bags.GT_GRASP_QUALITY, frame.grasps.quality_map),
            (bags.GT_GRASP_COS2, frame.grasps.cos2_map),
            (bags.GT_GRASP_SIN2, frame.grasps.sin2_map),
            (bags.GT_GRASP_WIDTH, frame.grasps.width_map),
        ):
            np.testing.assert_array_equal(_image_array(msg(topic), "<f4"), expected)

        info = msg(bags.DEPTH_INFO)
        k = frame.intrinsics.k_matrix().reshape(-1)
        np.testing.assert_allclose(np.asarray(info.k), k)
        assert (info.width, info.height) == (frame.intrinsics.width, frame.intrinsics.height)
        np.testing.assert_allclose(np.asarray(msg(bags.COLOR_INFO).k), k)

        rows = np.asarray(msg(bags.GT_POSES_INFO).data, dtype=np.float32).reshape(-1, 4)
        assert [d.label for d in msg(bags.GT_POSES_INFO).layout.dim] == ["objects", ",".join(bags.POSE_INFO_COLUMNS)]
        np.testing.assert_array_equal(rows[:, 0], [o.instance_id for o in frame.objects])
        np.testing.assert_array_equal(rows[:, 1], [o.class_id for o in frame.objects])
        np.testing.assert_allclose(rows[:, 3], [o.visible_fraction for o in frame.objects], rtol=1e-6)
        poses = msg(bags.GT_POSES).poses
        assert len(poses) == len(frame.objects)
        for pose, obj in zip(poses, frame.objects, strict=True):
            np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z], obj.cam_T_obj[:3, 3])
            quat = np.array([[pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]])
            np.testing.assert_allclose(bags.quaternion_to_matrix(quat)[0], obj.cam_T_obj[:3, :3], atol=1e-9)

        grasp_rows = np.asarray(msg(bags.GT_GRASPS_INFO).data, dtype=np.float32).reshape(-1, 7)
        assert len(grasp_rows) == len(frame.grasps.rects) > 0
        np.testing.assert_array_equal(grasp_rows[:, :5], frame.grasps.rects)
        np.testing.assert_array_equal(grasp_rows[:, 5], frame.grasps.width_m)
        np.testing.assert_array_equal(grasp_rows[:, 6], frame.grasps.instance_ids)
        grasp_poses = msg(bags.GT_GRASPS).poses
        assert len(grasp_poses) == len(grasp_rows)
        for pose, row in zip(grasp_poses, grasp_rows, strict=True):
            u = frame.intrinsics.fx * pose.position.x / pose.position.z + frame.intrinsics.cx
            v = frame.intrinsics.fy * pose.position.y / pose.position.z + frame.intrinsics.cy
            assert abs(u - row[0]) < 1e-3 and abs(v - row[1]) < 1e-3
            u0, v0 = round(float(row[0])), round(float(row[1]))
            window = frame.depth_clean[max(v0 - 2, 0) : v0 + 3, max(u0 - 2, 0) : u0 + 3]
            assert pose.position.z == pytest.approx(float(np.nanmedian(window)), abs=1e-6)

        transforms = msg(bags.TF_STATIC).transforms
        assert len(transforms) == 1
        tf = transforms[0]
        assert (tf.header.frame_id, tf.child_frame_id) == (bags.WORLD_FRAME, bags.CAMERA_FRAME)
        np.testing.assert_allclose(
            [tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z],
            frame.world_T_cam[:3, 3],
        )


def test_stats_are_stored_in_the_bag_metadata(mcap_bag: tuple[Path, list[Frame]]) -> None:
    path, frames = mcap_bag
    stats = bags.read_bag_stats(path)
    assert stats == bags.BagStats(
        frames=len(frames),
        objects=sum(len(f.objects) for f in frames),
        grasps=sum(len(f.grasps.rects) for f in frames),
    )
    assert bags.bag_topics(path)[bags.DEPTH_IMAGE] == (bags.IMAGE, len(frames))


@pytest.mark.parametrize(("storage", "compression"), [("sqlite3", "zstd"), ("sqlite3", "none"), ("mcap", "none")])
def test_rosbags_round_trip_restores_every_array(tmp_path: Path, storage: str, compression: str) -> None:
    frames = _frames(seed=11, count=2)
    path = tmp_path / "bag"
    bags.write_bag(path, frames, storage=storage, compression=compression)
    if storage == "sqlite3":
        assert list(path.glob("*.db3"))
    records = list(bags.read_frames(path))
    assert len(records) == len(frames)
    for frame, rec in zip(frames, records, strict=True):
        assert rec.stamp_ns == frame.stamp_ns
        assert rec.intrinsics == frame.intrinsics
        np.testing.assert_array_equal(rec.rgb, frame.rgb)
        mm = np.rint(frame.depth_sensor * 1000) / 1000
        np.testing.assert_allclose(rec.depth, mm, atol=1e-6)  # NaN positions must agree too
        np.testing.assert_array_equal(rec.depth_clean, frame.depth_clean)
        np.testing.assert_array_equal(rec.normals, frame.normals)
        np.testing.assert_array_equal(rec.instances, frame.instances)
        np.testing.assert_array_equal(rec.grasp_quality, frame.grasps.quality_map)
        np.testing.assert_array_equal(rec.grasp_width, frame.grasps.width_map)
        np.testing.assert_allclose(rec.object_poses, np.stack([o.cam_T_obj for o in frame.objects]), atol=1e-9)
        np.testing.assert_allclose(rec.world_T_cam, frame.world_T_cam, atol=1e-9)
        assert rec.grasp_info.shape == (len(frame.grasps.rects), 7)
        assert rec.object_info.shape == (len(frame.objects), 4)


def test_interrupted_write_leaves_no_bag_under_the_final_name(tmp_path: Path) -> None:
    frames = _frames(count=3)

    def failing():
        yield frames[0]
        yield frames[1]
        raise KeyboardInterrupt

    final = tmp_path / "bag"
    with pytest.raises(KeyboardInterrupt):
        bags.write_bag(final, failing())
    assert not final.exists()
    assert bags.partial_path(final).exists()
    bags.write_bag(final, frames)  # a re-run replaces the stale partial bag
    assert not bags.partial_path(final).exists()
    assert len(list(bags.read_frames(final))) == 3
    with pytest.raises(BagError, match="exists already"):
        bags.write_bag(final, frames)


def test_read_frames_selects_and_remaps_topics(mcap_bag: tuple[Path, list[Frame]]) -> None:
    path, frames = mcap_bag
    only_depth = list(bags.read_frames(path, topics=[bags.DEPTH_IMAGE, bags.DEPTH_INFO]))
    assert len(only_depth) == len(frames)
    assert only_depth[0].rgb is None and only_depth[0].depth is not None and only_depth[0].intrinsics is not None
    swapped = next(bags.read_frames(path, topics=[bags.GT_DEPTH], remap={bags.DEPTH_IMAGE: bags.GT_DEPTH}))
    np.testing.assert_allclose(
        swapped.depth_clean, np.rint(frames[0].depth_sensor.astype(np.float64) * 1000) / 1000, atol=1e-6
    )


def test_writer_rejects_non_increasing_stamps_and_unknown_storage(tmp_path: Path) -> None:
    frames = _frames(count=2)
    with pytest.raises(BagFormatError, match="stamps must increase"):
        bags.write_bag(tmp_path / "a", [frames[1], frames[0]])
    with pytest.raises(BagError, match="unknown bag storage 'rosbag1'"):
        bags.write_bag(tmp_path / "b", frames, storage="rosbag1")
    with pytest.raises(BagError, match="unknown bag compression 'lz4'"):
        bags.write_bag(tmp_path / "c", frames, compression="lz4")


def test_quaternion_conversions_round_trip() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1
    np.testing.assert_allclose(bags.matrix_to_quaternion(bags.quaternion_to_matrix(q)), q, atol=1e-12)


def test_message_key_reads_header_stamp_without_deserialising(mcap_bag: tuple[Path, list[Frame]]) -> None:
    path, frames = mcap_bag
    with bags.open_bag(path) as reader:
        for connection, log_time, data in reader.messages():
            assert bags.message_key(connection.msgtype, data, log_time + 7) in {f.stamp_ns for f in frames} | {
                log_time + 7
            }
            if connection.msgtype in (bags.IMAGE, bags.CAMERA_INFO, bags.POSE_ARRAY, bags.TF_MESSAGE):
                assert bags.message_key(connection.msgtype, data, log_time + 7) == log_time
