"""DepthImageBuffer: the cleaned depth is written into the outgoing message's own bytes, reused frame after frame.

The message it builds must serialise to exactly the bytes of the plain encode path (``depth_to_msg``), and once
serialised (what ``publish`` does before it returns) the buffer may be rewritten without changing what was sent.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dcl_arc_ros.ros.conversions import DepthImageBuffer, depth_from_msg, depth_to_msg

HEADER = Header(stamp=Time(sec=1700000000, nanosec=42), frame_id="camera_depth_optical_frame")


def depth(seed: int, shape: tuple[int, int] = (6, 8)) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(0.3, 4.0, shape).astype(np.float32)
    values[0, 1] = np.nan
    return values


def test_message_serialises_to_the_bytes_of_the_plain_encode_path() -> None:
    buffer = DepthImageBuffer()
    values = depth(0)
    buffer.array(values.shape)[...] = values
    msg = buffer.message(HEADER)
    assert serialize_message(msg) == serialize_message(depth_to_msg(values, HEADER))
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("32FC1", values.shape[1] * 4, 0)
    assert msg.header.stamp == HEADER.stamp and msg.header.frame_id == HEADER.frame_id
    assert msg.header is not HEADER


def test_buffer_is_reused_and_what_was_serialised_does_not_change() -> None:
    buffer = DepthImageBuffer()
    first = buffer.array((6, 8))
    first[...] = depth(1)
    sent = serialize_message(buffer.message(HEADER))
    second = buffer.array((6, 8))
    assert second is first  # same size: no new allocation
    second[...] = depth(2)
    assert buffer.message(HEADER).data is buffer.message(HEADER).data  # the same bytes, not copies
    received = deserialize_message(sent, Image)
    np.testing.assert_array_equal(depth_from_msg(received).depth_m, depth(1))
    np.testing.assert_array_equal(depth_from_msg(buffer.message(HEADER)).depth_m, depth(2))


def test_a_new_size_gets_a_new_buffer() -> None:
    buffer = DepthImageBuffer()
    buffer.array((6, 8))[...] = depth(3)
    bigger = buffer.array((10, 12))
    assert bigger.shape == (10, 12) and bigger.dtype == np.float32 and bigger.flags.writeable
    bigger[...] = depth(4, (10, 12))
    msg = buffer.message(HEADER)
    assert (msg.height, msg.width, len(msg.data)) == (10, 12, 10 * 12 * 4)
    np.testing.assert_array_equal(depth_from_msg(msg).depth_m, depth(4, (10, 12)))
