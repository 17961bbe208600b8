"""ros.serialized_image against the real middleware: rclpy's serialized Images read by the codec, and back.

The depth_cleaner node's use of it (raw subscription, serialized publish) is tested in test_depth_cleaner_node.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dcl_arc_ros.ros import serialized_image
from dcl_arc_ros.ros.conversions import depth_from_msg, depth_to_msg
from dcl_arc_ros.ros.errors import BadInputError
from dcl_arc_ros.ros.serialized_image import (
    SerializedDepthImageBuffer,
    SerializedImage,
    image_from_serialized,
    serialized_images_unavailable,
)


def image(encoding: str, height: int, width: int, step: int, *, frame_id: str, bigendian: bool = False) -> Image:
    msg = Image()
    msg.header = Header(stamp=Time(sec=1_234, nanosec=999_999_999), frame_id=frame_id)
    msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian = height, width, encoding, step, int(bigendian)
    msg.data = np.random.default_rng(height * width + step).integers(0, 256, step * height, np.uint8).tobytes()
    return msg


CASES = [
    image("32FC1", 4, 6, 24, frame_id="camera_depth_optical_frame"),
    image("32FC1", 3, 5, 24, frame_id="padded_rows"),
    image("32FC1", 2, 3, 12, frame_id="be", bigendian=True),
    image("16UC1", 5, 7, 14, frame_id=""),
    image("mono8", 1, 3, 3, frame_id="abc"),
    image("rgb8", 2, 2, 6, frame_id="a"),
    image("mono8", 0, 0, 0, frame_id="empty"),
]


def case_id(msg: Image) -> str:
    return f"{msg.encoding}-{msg.width}x{msg.height}-{msg.header.frame_id or 'noframe'}"


@pytest.mark.parametrize("msg", CASES, ids=case_id)
def test_the_middlewares_serialized_image_reads_as_the_message(msg: Image) -> None:
    read = image_from_serialized(serialize_message(msg))
    assert isinstance(read, SerializedImage)
    assert (read.header.stamp.sec, read.header.stamp.nanosec, read.header.frame_id) == (
        msg.header.stamp.sec,
        msg.header.stamp.nanosec,
        msg.header.frame_id,
    )
    assert (read.height, read.width, read.encoding, read.is_bigendian, read.step) == (
        msg.height,
        msg.width,
        msg.encoding,
        msg.is_bigendian,
        msg.step,
    )
    assert bytes(read.data) == bytes(msg.data)


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_depth_decodes_the_same_from_the_serialized_and_the_typed_message(encoding: str) -> None:
    depth = np.linspace(0.2, 4.0, 48, dtype=np.float32).reshape(6, 8)
    depth[1, 2] = np.nan
    msg = depth_to_msg(depth, Header(frame_id="cam"), encoding)
    typed = depth_from_msg(msg).depth_m
    serialized = depth_from_msg(image_from_serialized(serialize_message(msg))).depth_m
    np.testing.assert_array_equal(serialized, typed)


def test_the_buffers_serialized_depth_is_read_by_the_middleware_as_the_same_message() -> None:
    header = Header(stamp=Time(sec=77, nanosec=5), frame_id="camera_depth_optical_frame")
    depth = np.linspace(0.3, 2.0, 12, dtype=np.float32).reshape(3, 4)
    depth[0, 0] = np.nan
    buffer = SerializedDepthImageBuffer()
    buffer.array(depth.shape, header)[...] = depth
    back = deserialize_message(buffer.serialized(), Image)
    expected = depth_to_msg(depth, header)
    assert back == expected


def test_a_truncated_buffer_is_bad_input_naming_the_sizes() -> None:
    data = serialize_message(image("32FC1", 4, 6, 24, frame_id="camera"))
    with pytest.raises(BadInputError, match=rf"data needs 96 bytes at offset \d+ but the buffer has {len(data) - 10}"):
        image_from_serialized(data[:-10])


def test_another_encapsulation_goes_through_the_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = image("mono8", 1, 3, 3, frame_id="abc")
    data = serialize_message(msg)
    calls: list[int] = []

    def deserialize(buffer: bytes, msg_type: type) -> Image:
        calls.append(len(buffer))
        return deserialize_message(b"\x00\x01" + buffer[2:], msg_type)

    monkeypatch.setattr(serialized_image, "deserialize_message", deserialize)
    read = image_from_serialized(b"\x00\x07" + data[2:])  # XCDR2 little-endian
    assert calls == [len(data)]
    assert read == msg


def test_an_unreadable_other_encapsulation_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="encapsulation 0x0007"):
        image_from_serialized(b"\x00\x07\x00\x00" + bytes(8))


def test_the_start_up_check_passes_on_this_middleware_and_fails_on_a_broken_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert serialized_images_unavailable() is None

    class SwappedStamp(SerializedDepthImageBuffer):
        def array(self, shape: tuple[int, int], header: Header) -> np.ndarray:
            swapped = Header(stamp=Time(sec=header.stamp.sec + 1, nanosec=header.stamp.nanosec), frame_id="x")
            return super().array(shape, swapped)

    monkeypatch.setattr(serialized_image, "SerializedDepthImageBuffer", SwappedStamp)
    assert "does not read the codec's serialized Image back" in (serialized_images_unavailable() or "")
