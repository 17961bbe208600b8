"""core.image_cdr: serialized sensor_msgs/Image read and written without rclpy (CDR layout, alignment, errors).

The agreement with the real middleware's serialisation is tested in tests/ros/test_serialized_image.py; here the
codec is checked against itself and against buffers built by hand from the CDR rules.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from dcl_arc_ros.core.image_cdr import (
    CdrError,
    ImageCdrWriter,
    UnsupportedCdrError,
    decode_image_cdr,
)
from dcl_arc_ros.core.image_codec import decode_depth


def written(frame_id: str, height: int, width: int, encoding: str, step: int, data: bytes, **stamp: int) -> bytes:
    writer = ImageCdrWriter()
    region = writer.layout(
        stamp_sec=stamp.get("sec", 12),
        stamp_nanosec=stamp.get("nanosec", 34),
        frame_id=frame_id,
        height=height,
        width=width,
        encoding=encoding,
        step=step,
    )
    region[:] = data
    return writer.tobytes()


def hand_built_big_endian(frame_id: str, pixels: bytes, width: int) -> bytes:
    """A big-endian CDR Image built field by field, with the alignment the CDR rules ask for."""
    body = bytearray()

    def align(size: int) -> None:
        body.extend(bytes(-len(body) % size))

    def string(text: str) -> None:
        raw = text.encode() + b"\x00"
        align(4)
        body.extend(struct.pack(">I", len(raw)) + raw)

    body.extend(struct.pack(">iI", -3, 999))
    string(frame_id)
    align(4)
    body.extend(struct.pack(">II", 1, width))
    string("mono8")
    body.extend(b"\x00")  # is_bigendian (of the pixels, not of the CDR)
    align(4)
    body.extend(struct.pack(">II", width, len(pixels)))
    body.extend(pixels)
    return b"\x00\x00\x00\x00" + bytes(body)


@pytest.mark.parametrize("frame_id", ["", "a", "ab", "abc", "abcd", "camera_depth_optical_frame", "kamera_é"])
@pytest.mark.parametrize("width", [0, 1, 3, 4, 7])
def test_round_trip_keeps_every_field_for_any_alignment(frame_id: str, width: int) -> None:
    pixels = bytes(range(width * 2))
    buffer = written(frame_id, 2, width, "mono8", width, pixels, sec=-7, nanosec=4_000_000_000)
    image = decode_image_cdr(buffer)
    assert (image.stamp_sec, image.stamp_nanosec, image.frame_id) == (-7, 4_000_000_000, frame_id)
    assert image.stamp_ns == -7 * 1_000_000_000 + 4_000_000_000
    fields = image.fields
    assert (fields.height, fields.width, fields.encoding, fields.is_bigendian, fields.step) == (
        2,
        width,
        "mono8",
        False,
        width,
    )
    assert bytes(fields.data) == pixels
    assert buffer[:4] == b"\x00\x01\x00\x00"  # CDR little-endian, no options


def test_the_pixels_are_a_view_of_the_buffer_not_a_copy() -> None:
    buffer = bytearray(written("f", 1, 4, "mono8", 4, b"\x01\x02\x03\x04"))
    image = decode_image_cdr(buffer)
    buffer[-1] = 99
    assert bytes(image.fields.data) == b"\x01\x02\x03\x63"


def test_a_big_endian_buffer_is_read_with_its_byte_order() -> None:
    image = decode_image_cdr(hand_built_big_endian("left", b"\x05\x06\x07", 3))
    assert (image.stamp_sec, image.stamp_nanosec, image.frame_id) == (-3, 999, "left")
    assert (image.fields.width, image.fields.encoding, image.fields.step, bytes(image.fields.data)) == (
        3,
        "mono8",
        3,
        b"\x05\x06\x07",
    )


def test_every_truncation_is_an_error_naming_the_field_and_sizes() -> None:
    buffer = written("camera", 1, 3, "mono8", 3, b"abc")
    for cut in range(len(buffer)):
        with pytest.raises(CdrError) as caught:
            decode_image_cdr(buffer[:cut])
        text = str(caught.value)
        assert f"{cut} bytes" in text, text
    decode_image_cdr(buffer)  # the whole buffer reads


@pytest.mark.parametrize("representation", [b"\x00\x07", b"\x00\x03", b"\x00\x0b"])
def test_other_encapsulations_are_refused_for_the_middleware_to_read(representation: bytes) -> None:
    buffer = representation + written("f", 1, 1, "mono8", 1, b"\x00")[2:]
    with pytest.raises(UnsupportedCdrError, match="0x00"):
        decode_image_cdr(buffer)


def test_a_string_without_its_nul_is_corrupt() -> None:
    buffer = bytearray(written("abc", 1, 1, "mono8", 1, b"\x00"))
    buffer[4 + 8 + 4 + 3] = ord("x")  # the frame_id's NUL
    with pytest.raises(CdrError, match=r"header\.frame_id .* does not end in NUL"):
        decode_image_cdr(bytes(buffer))


def test_a_count_larger_than_the_buffer_is_corrupt_not_a_crash() -> None:
    buffer = bytearray(written("f", 1, 2, "mono8", 2, b"\x01\x02"))
    struct.pack_into("<I", buffer, len(buffer) - 2 - 4, 10**9)  # data length
    with pytest.raises(CdrError, match="data needs 1000000000 bytes"):
        decode_image_cdr(bytes(buffer))


def test_depth_array_is_the_32fc1_pixel_region_and_decodes_as_depth() -> None:
    writer = ImageCdrWriter()
    depth = writer.depth_array((3, 5), stamp_sec=1, stamp_nanosec=2, frame_id="depth")
    assert depth.dtype == np.float32 and depth.shape == (3, 5) and depth.flags.writeable
    depth[...] = np.arange(15, dtype=np.float32).reshape(3, 5) / 10 + 0.5
    image = decode_image_cdr(writer.tobytes())
    assert (image.fields.encoding, image.fields.step, image.fields.is_bigendian) == ("32FC1", 20, False)
    np.testing.assert_array_equal(decode_depth(image.fields).depth_m, depth)


def test_the_buffer_is_reused_for_the_same_layout_and_replaced_when_it_changes() -> None:
    writer = ImageCdrWriter()
    first = writer.depth_array((2, 2), stamp_sec=1, stamp_nanosec=0, frame_id="cam")
    first[...] = 1.0
    same = writer.depth_array((2, 2), stamp_sec=2, stamp_nanosec=5, frame_id="abc")
    assert np.shares_memory(first, same)
    assert decode_image_cdr(writer.tobytes()).stamp_sec == 2
    longer = writer.depth_array((2, 2), stamp_sec=3, stamp_nanosec=0, frame_id="a_longer_frame")
    assert not np.shares_memory(first, longer)
    first[...] = 7.0  # the caller's old array stays usable: it keeps the old buffer alive
    longer[...] = 2.0
    image = decode_image_cdr(writer.tobytes())
    assert image.frame_id == "a_longer_frame"
    np.testing.assert_array_equal(decode_depth(image.fields).depth_m, np.full((2, 2), 2.0, np.float32))


@pytest.mark.parametrize(
    ("stamp", "size", "message"),
    [
        ((2**31, 0), (1, 1, 1), "does not fit builtin_interfaces/Time"),
        ((0, -1), (1, 1, 1), "does not fit builtin_interfaces/Time"),
        ((0, 0), (1, -1, 1), "does not fit uint32"),
    ],
)
def test_values_that_do_not_fit_the_message_are_refused(
    stamp: tuple[int, int], size: tuple[int, int, int], message: str
) -> None:
    height, width, step = size
    with pytest.raises(CdrError, match=message):
        ImageCdrWriter().layout(
            stamp_sec=stamp[0],
            stamp_nanosec=stamp[1],
            frame_id="",
            height=height,
            width=width,
            encoding="mono8",
            step=step,
        )


def test_tobytes_before_any_layout_is_an_error() -> None:
    with pytest.raises(CdrError, match="before layout"):
        ImageCdrWriter().tobytes()
