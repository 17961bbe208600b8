"""Round trips and failure modes of the sensor_msgs/Image codec: every encoding, padded rows, big-endian data."""

from __future__ import annotations

import array

import numpy as np
import pytest

from dcl_arc_ros.core.errors import EncodingError
from dcl_arc_ros.core.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageFields,
    array_to_image,
    depth_and_holes_from_image,
    depth_from_image,
    depth_to_image,
    image_to_array,
    rgb_from_image,
)

# encoding -> (dtype, channels)
LAYOUT = {
    "32FC1": (np.float32, 1),
    "16UC1": (np.uint16, 1),
    "mono8": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
}


def random_array(encoding: str, height: int = 5, width: int = 7, seed: int = 0) -> np.ndarray:
    dtype, channels = LAYOUT[encoding]
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(-10.0, 10.0, size=shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def pack(arr: np.ndarray, encoding: str, *, pad: int, bigendian: bool) -> ImageFields:
    """Encode by hand, independently of the codec: explicit byte order and `pad` junk bytes after each row."""
    dtype, channels = LAYOUT[encoding]
    order = ">" if bigendian else "<"
    row_bytes = arr.shape[1] * channels * np.dtype(dtype).itemsize
    rows = arr.astype(np.dtype(dtype).newbyteorder(order)).reshape(arr.shape[0], -1).view(np.uint8)
    assert rows.shape[1] == row_bytes
    junk = np.full((arr.shape[0], pad), 0xAB, dtype=np.uint8)
    data = np.concatenate([rows, junk], axis=1).tobytes()
    return ImageFields(arr.shape[0], arr.shape[1], encoding, bigendian, row_bytes + pad, data)


def test_supported_encodings_are_the_documented_ones() -> None:
    assert set(SUPPORTED_ENCODINGS) == set(LAYOUT)


@pytest.mark.parametrize("encoding", sorted(LAYOUT))
def test_array_round_trip(encoding: str) -> None:
    arr = random_array(encoding)
    img = array_to_image(arr, encoding)
    assert img.encoding == encoding and not img.is_bigendian
    assert img.step == arr.shape[1] * LAYOUT[encoding][1] * np.dtype(LAYOUT[encoding][0]).itemsize
    assert len(img.data) == img.step * img.height
    out = image_to_array(img)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("encoding", sorted(LAYOUT))
@pytest.mark.parametrize("pad", [0, 1, 3])
@pytest.mark.parametrize("bigendian", [False, True])
def test_decode_padded_rows_and_byte_order(encoding: str, pad: int, bigendian: bool) -> None:
    arr = random_array(encoding, height=4, width=9, seed=pad)
    out = image_to_array(pack(arr, encoding, pad=pad, bigendian=bigendian))
    assert out.dtype.isnative and out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("encoding", ["mono8", "rgb8"])
def test_decoded_array_does_not_alias_the_message_buffer(encoding: str) -> None:
    channels = LAYOUT[encoding][1]
    buffer = bytearray(np.arange(6 * channels, dtype=np.uint8).tobytes())
    img = ImageFields(2, 3, encoding, False, 3 * channels, buffer)
    decoded = [image_to_array(img)] + ([rgb_from_image(img)] if encoding == "rgb8" else [])
    buffer[0] = 99
    for out in decoded:
        assert out.reshape(-1)[0] == 0


def test_accepts_the_array_type_rclpy_uses() -> None:
    values = np.arange(12, dtype=np.uint16).reshape(3, 4)
    data = array.array("B", values.astype("<u2").tobytes())
    np.testing.assert_array_equal(image_to_array(ImageFields(3, 4, "16UC1", False, 8, data)), values)


@pytest.mark.parametrize("bigendian", [False, True])
def test_depth_16uc1_is_millimetres_with_zero_invalid(bigendian: bool) -> None:
    mm = np.array([[0, 1, 1500], [65535, 0, 250]], dtype=np.uint16)
    depth = depth_from_image(pack(mm, "16UC1", pad=2, bigendian=bigendian))
    assert depth.dtype == np.float32
    expected = np.where(mm == 0, np.nan, mm.astype(np.float64) / 1000.0)
    np.testing.assert_allclose(depth, expected, rtol=1e-6, equal_nan=True)


def test_depth_mono16_decodes_like_16uc1() -> None:
    mm = np.array([[0, 1234]], dtype=np.uint16)
    depth = depth_from_image(pack(mm, "mono16", pad=0, bigendian=False))
    assert np.isnan(depth[0, 0]) and depth[0, 1] == pytest.approx(1.234)


@pytest.mark.parametrize("bigendian", [False, True])
def test_depth_32fc1_marks_non_finite_and_non_positive_invalid(bigendian: bool) -> None:
    values = np.array([[1.5, np.nan, np.inf], [-np.inf, 0.0, -2.0], [0.25, 3.0, 1e-6]], dtype=np.float32)
    depth = depth_from_image(pack(values, "32FC1", pad=1, bigendian=bigendian))
    valid = np.isfinite(values) & (values > 0)
    np.testing.assert_array_equal(np.isnan(depth), ~valid)
    np.testing.assert_array_equal(depth[valid], values[valid])


def test_depth_32fc1_round_trip_keeps_nan() -> None:
    depth = np.array([[0.5, np.nan], [2.25, 7.0]], dtype=np.float32)
    img = depth_to_image(depth, "32FC1")
    assert img.encoding == "32FC1" and img.step == 8
    np.testing.assert_array_equal(depth_from_image(img), depth)


def test_depth_16uc1_round_trip_rounds_to_millimetres_and_drops_unrepresentable() -> None:
    depth = np.array([[0.5004, np.nan, np.inf], [-1.0, 70.0, 0.0004], [1.0006, 65.535, 2.0]], dtype=np.float64)
    img = depth_to_image(depth, "16UC1")
    mm = image_to_array(img)
    np.testing.assert_array_equal(mm, [[500, 0, 0], [0, 0, 0], [1001, 65535, 2000]])
    back = depth_from_image(img)
    np.testing.assert_allclose(back, np.where(mm == 0, np.nan, mm / 1000.0), rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_rgb_from_image(encoding: str, pad: int) -> None:
    rgb = np.random.default_rng(3).integers(0, 255, size=(4, 6, 3), dtype=np.uint8)
    if encoding == "mono8":
        raw, expected = rgb[:, :, 0], np.repeat(rgb[:, :, :1], 3, axis=2)
    else:
        colour = rgb[:, :, ::-1] if encoding.startswith("bgr") else rgb
        alpha = np.full((4, 6, 1), 7, dtype=np.uint8)
        raw = np.concatenate([colour, alpha], axis=2) if encoding.endswith("a8") else colour
        expected = rgb
    out = rgb_from_image(pack(np.ascontiguousarray(raw), encoding, pad=pad, bigendian=False))
    assert out.dtype == np.uint8 and out.shape == (4, 6, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


def test_unsupported_encoding_is_named() -> None:
    with pytest.raises(EncodingError, match="yuv422"):
        image_to_array(ImageFields(2, 2, "yuv422", False, 4, bytes(8)))
    with pytest.raises(EncodingError, match="rgb8"):
        depth_from_image(ImageFields(2, 2, "rgb8", False, 6, bytes(12)))
    with pytest.raises(EncodingError, match="32FC1"):
        rgb_from_image(ImageFields(2, 2, "32FC1", False, 8, bytes(16)))
    with pytest.raises(EncodingError, match="mono8"):
        depth_to_image(np.ones((2, 2), np.float32), "mono8")


def test_wrong_data_length_names_encoding_and_sizes() -> None:
    with pytest.raises(EncodingError, match=r"16UC1.*10 bytes.*step \* height = 8 \* 2 = 16"):
        image_to_array(ImageFields(2, 4, "16UC1", False, 8, bytes(10)))


def test_step_smaller_than_row_is_rejected() -> None:
    with pytest.raises(EncodingError, match=r"step 10 is smaller than .* 4 \* 3 = 12"):
        image_to_array(ImageFields(2, 4, "rgb8", False, 10, bytes(20)))


@pytest.mark.parametrize(("height", "width"), [(0, 4), (3, 0)])
def test_empty_image_is_rejected(height: int, width: int) -> None:
    with pytest.raises(EncodingError, match="empty"):
        depth_from_image(ImageFields(height, width, "32FC1", False, width * 4, b""))


def test_array_to_image_checks_shape_and_dtype() -> None:
    with pytest.raises(EncodingError, match=r"shape \(2, 2\) as rgb8"):
        array_to_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(EncodingError, match="int32 array as 16UC1"):
        array_to_image(np.zeros((2, 2), np.int32), "16UC1")
    img = array_to_image(np.full((2, 2), 2.5, dtype=np.float64), "32FC1")
    np.testing.assert_array_equal(image_to_array(img), np.full((2, 2), 2.5, np.float32))


@pytest.mark.parametrize(
    ("encoding", "values"),
    [
        ("16UC1", np.array([[0, 1, 1500], [65535, 0, 250]], dtype=np.uint16)),
        ("32FC1", np.array([[1.5, np.nan, 0.0], [2.0, 0.0, 0.5]], dtype=np.float32)),  # NaN and 0 holes only
        ("32FC1", np.array([[1.5, np.nan, np.inf], [-np.inf, 0.0, -2.0]], dtype=np.float32)),
        ("32FC1", np.array([[1.5, 2.0, 3.0], [4.0, 0.5, 0.25]], dtype=np.float32)),  # no hole at all
    ],
)
@pytest.mark.parametrize("pad", [0, 3])
def test_hole_count_matches_the_decoded_nans(encoding: str, values: np.ndarray, pad: int) -> None:
    depth, holes = depth_and_holes_from_image(pack(values, encoding, pad=pad, bigendian=False))
    assert holes == int(np.count_nonzero(np.isnan(depth)))
    valid = np.isfinite(values.astype(np.float64)) & (values > 0)
    assert holes == int(np.count_nonzero(~valid))
    np.testing.assert_array_equal(np.isnan(depth), ~valid)


def test_encoded_data_is_a_byte_array_rclpy_takes_without_copying() -> None:
    depth = np.array([[0.5, np.nan], [2.25, 7.0]], dtype=np.float32)
    img = depth_to_image(depth, "32FC1")
    assert isinstance(img.data, array.array) and img.data.typecode == "B"
    depth[0, 0] = 9.0  # the encoded image does not alias the array it came from
    np.testing.assert_array_equal(np.frombuffer(img.data, "<f4")[:1], [0.5])
