"""sensor_msgs <-> core conversions: round trips for every depth/colour encoding, padded and big-endian rows."""

from __future__ import annotations

import array
from collections.abc import Callable

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.image_codec import array_to_image
from dcl_arc_ros.ros.conversions import (
    camera_info_from_intrinsics,
    copy_header,
    depth_from_msg,
    depth_to_msg,
    fields_from_image_msg,
    image_msg_from_fields,
    intrinsics_from_camera_info,
    rgb_from_msg,
)
from dcl_arc_ros.ros.errors import BadInputError

HEADER = Header(stamp=Time(sec=1700000000, nanosec=123456789), frame_id="camera_depth_optical_frame")


def random_depth(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 4.0, (h, w)).astype(np.float32)
    depth[0, 0] = np.nan
    return depth


def padded_big_endian_msg(values: np.ndarray, encoding: str, pad: int) -> Image:
    """An Image with rows padded by ``pad`` bytes and big-endian pixels, built by hand."""
    h, w = values.shape
    dtype = {"32FC1": ">f4", "16UC1": ">u2"}[encoding]
    row = values.astype(dtype).tobytes()
    rows = [row[i * w * values.astype(dtype).itemsize : (i + 1) * w * values.astype(dtype).itemsize] for i in range(h)]
    data = b"".join(r + b"\xab" * pad for r in rows)
    return Image(
        header=HEADER,
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=1,
        step=len(rows[0]) + pad,
        data=array.array("B", data),
    )


def test_header_copy_is_equal_but_independent() -> None:
    copy = copy_header(HEADER)
    assert (copy.stamp.sec, copy.stamp.nanosec, copy.frame_id) == (1700000000, 123456789, HEADER.frame_id)
    copy.stamp.sec = 1
    assert HEADER.stamp.sec == 1700000000


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_depth_round_trip(encoding: str) -> None:
    depth = random_depth()
    msg = depth_to_msg(depth, HEADER, encoding)
    assert msg.encoding == encoding and msg.header.frame_id == HEADER.frame_id
    assert msg.header.stamp.nanosec == HEADER.stamp.nanosec
    back = depth_from_msg(msg).depth_m
    tolerance = 0.0 if encoding == "32FC1" else 0.0005 + 1e-6  # 16UC1 rounds to whole millimetres
    np.testing.assert_allclose(back, depth, atol=tolerance, equal_nan=True)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_depth_from_padded_big_endian_rows(encoding: str) -> None:
    metres = random_depth(4, 3, seed=1)
    metres[0, 0] = 1.0
    raw = metres if encoding == "32FC1" else np.round(metres * 1000)
    msg = padded_big_endian_msg(raw, encoding, pad=3)
    expected = metres if encoding == "32FC1" else raw / 1000.0
    np.testing.assert_allclose(depth_from_msg(msg).depth_m, expected, rtol=1e-6)


def test_image_fields_round_trip_keeps_every_field_and_byte() -> None:
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    fields = array_to_image(rgb, "rgb8")
    msg = image_msg_from_fields(fields, HEADER)
    back = fields_from_image_msg(msg)
    assert (back.height, back.width, back.encoding, back.step, back.is_bigendian) == (4, 5, "rgb8", 15, False)
    assert bytes(back.data) == bytes(fields.data)
    np.testing.assert_array_equal(rgb_from_msg(msg), rgb)


def test_incoming_data_is_not_copied() -> None:
    msg = depth_to_msg(random_depth(), HEADER)
    view = fields_from_image_msg(msg).data
    assert isinstance(view, memoryview)
    msg.data[0] ^= 0xFF
    assert view[0] == msg.data[0]


def test_outgoing_data_is_the_encoded_buffer() -> None:
    fields = array_to_image(random_depth(), "32FC1")
    msg = image_msg_from_fields(fields, HEADER)
    assert msg.data is fields.data  # rclpy kept the array('B') instead of copying it
    assert bytes(msg.data) == bytes(fields.data)


@pytest.mark.parametrize(
    ("values", "infinite", "negative"),
    [((np.inf,), 1, 0), ((-np.inf,), 1, 1), ((-0.5,), 0, 1), ((0.0, np.nan), 0, 0), ((np.inf, -np.inf, -2.0), 2, 2)],
)
def test_depth_reading_counts_each_kind_of_bad_pixel(values: tuple[float, ...], infinite: int, negative: int) -> None:
    depth = random_depth()
    depth[0, 0] = 1.0
    for index, value in enumerate(values):
        depth[1, index] = value
    reading = depth_from_msg(depth_to_msg(depth, HEADER))
    assert (reading.infinite, reading.negative) == (infinite, negative)
    assert reading.valid == depth.size - len(values)


def test_bgr_is_returned_as_rgb() -> None:
    rgb = np.random.default_rng(2).integers(0, 255, (3, 4, 3), dtype=np.uint8)
    msg = image_msg_from_fields(array_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8"), HEADER)
    np.testing.assert_array_equal(rgb_from_msg(msg), rgb)


def test_depth_reading_counts_infinities_and_negatives() -> None:
    depth = random_depth()
    depth[1, 1] = np.inf
    depth[2, 2] = -np.inf
    depth[3, 3] = -1.0
    reading = depth_from_msg(depth_to_msg(depth, HEADER))
    assert (reading.infinite, reading.negative) == (2, 2)  # -inf is both
    assert reading.valid == depth.size - 4  # NaN at (0, 0), +-inf and -1 are no reading
    assert np.isnan(reading.depth_m[1, 1]) and np.isnan(reading.depth_m[3, 3])
    assert any("inf" in p for p in reading.problems())


def _wrong_encoding(msg: Image) -> None:
    msg.encoding = "rgb8"


def _truncated(msg: Image) -> None:
    msg.data = array.array("B", bytes(msg.data)[:-7])


def _empty(msg: Image) -> None:
    msg.width = msg.height = 0
    msg.data = array.array("B")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(_wrong_encoding, "'rgb8' is not supported"), (_truncated, "bytes"), (_empty, "empty")],
)
def test_bad_depth_messages_raise_naming_the_problem(mutate: Callable[[Image], None], message: str) -> None:
    msg = depth_to_msg(random_depth(), HEADER)
    mutate(msg)
    with pytest.raises(BadInputError, match=message):
        depth_from_msg(msg)


def test_camera_info_round_trip() -> None:
    intrinsics = Intrinsics(fx=615.0, fy=616.5, cx=319.2, cy=241.7, width=640, height=480)
    msg = camera_info_from_intrinsics(intrinsics, HEADER)
    assert msg.header.frame_id == HEADER.frame_id
    assert intrinsics_from_camera_info(msg) == intrinsics


def test_uncalibrated_camera_info_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="not calibrated"):
        intrinsics_from_camera_info(CameraInfo(width=640, height=480))


def test_infinities_are_counted_in_padded_big_endian_rows_too() -> None:
    values = random_depth(4, 3, seed=3)
    values[1, 2] = np.inf
    values[2, 0] = -2.0
    reading = depth_from_msg(padded_big_endian_msg(values, "32FC1", pad=2))
    assert (reading.infinite, reading.negative) == (1, 1)
    assert reading.valid == values.size - 3  # NaN at (0, 0), inf and the negative
