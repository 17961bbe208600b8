"""``sensor_msgs/Image`` <-> its serialized (CDR) form, without rclpy: the depth path that skips message conversion.

rclpy turns every received message from the middleware's serialized bytes into a C struct and then into a Python
object, and every published one back again: for a 640x480 32FC1 frame each direction costs about 0.6 ms. A node that
subscribes with ``raw=True`` receives the serialized bytes instead; :func:`decode_image_cdr` reads the fields straight
from them (the pixels are a zero-copy ``memoryview`` of the buffer), and :class:`ImageCdrWriter` lays out an outgoing
image whose pixel region a pipeline writes into, ready for ``publish(bytes)``.

The format is the one ROS 2 middlewares use for ROS messages, OMG CDR (XCDR version 1):

- a 4-byte encapsulation header: the representation id (big-endian ``0x0000`` = CDR big-endian, ``0x0001`` = CDR
  little-endian) and two option bytes;
- then the fields in declaration order, each aligned to its own size counted from the end of that header;
- a ``string`` is a uint32 length that counts a terminating NUL, then the bytes and the NUL;
- a ``uint8[]`` is a uint32 count, then the bytes.

Padding bytes carry no meaning (Fast DDS leaves them uninitialised); this writer zeroes them. Any other representation
(XCDR2, parameter lists) raises :class:`UnsupportedCdrError`, so that the ROS layer can fall back to the middleware's
own deserialisation; a truncated or inconsistent buffer raises :class:`CdrError` naming the field and the sizes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

import numpy as np

from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.core.image_codec import ImageFields
from dcl_arc_ros.core.sync import stamp_to_ns

ENCAPSULATION_SIZE: Final = 4
CDR_BIG_ENDIAN: Final = 0x0000
CDR_LITTLE_ENDIAN: Final = 0x0001
_BYTE_ORDER: Final[dict[int, str]] = {CDR_BIG_ENDIAN: ">", CDR_LITTLE_ENDIAN: "<"}


class CdrError(CoreError, ValueError):
    """A serialized message is truncated or inconsistent; the message names the field, the offset and the sizes."""


class UnsupportedCdrError(CdrError):
    """The buffer uses an encapsulation other than plain CDR (e.g. XCDR2): decode it with the middleware instead."""


@dataclass(frozen=True)
class CdrImage:
    """The fields of one serialized ``sensor_msgs/Image``; ``fields.data`` is a view of the serialized buffer."""

    stamp_sec: int
    stamp_nanosec: int
    frame_id: str
    fields: ImageFields

    @property
    def stamp_ns(self) -> int:
        return stamp_to_ns(self.stamp_sec, self.stamp_nanosec)


class _Reader:
    """A cursor over a CDR body: aligned primitive reads that name what they were reading when the buffer ends."""

    def __init__(self, buffer: memoryview, order: str) -> None:
        self.buffer = buffer
        self.order = order
        self.offset = ENCAPSULATION_SIZE

    def _need(self, count: int, what: str) -> None:
        if count < 0 or self.offset + count > len(self.buffer):
            raise CdrError(
                f"serialized Image is truncated or corrupt: {what} needs {count} bytes at offset {self.offset} but "
                f"the buffer has {len(self.buffer)} bytes"
            )

    def _align(self, size: int) -> None:
        body = self.offset - ENCAPSULATION_SIZE
        self.offset += -body % size

    def primitive(self, code: str, what: str) -> int:
        size = struct.calcsize(code)
        self._align(size)
        self._need(size, what)
        (value,) = struct.unpack_from(self.order + code, self.buffer, self.offset)
        self.offset += size
        return int(value)

    def string(self, what: str) -> str:
        length = self.primitive("I", f"the length of {what}")
        if length == 0:  # some writers send an empty string as length 0, without the NUL
            return ""
        self._need(length, what)
        raw = self.buffer[self.offset : self.offset + length]
        self.offset += length
        if raw[-1] != 0:
            raise CdrError(f"serialized Image is corrupt: {what} ({length} bytes) does not end in NUL")
        try:
            return bytes(raw[:-1]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CdrError(f"serialized Image is corrupt: {what} is not UTF-8 ({exc})") from exc

    def octets(self, what: str) -> memoryview:
        count = self.primitive("I", f"the length of {what}")
        self._need(count, what)
        view = self.buffer[self.offset : self.offset + count]
        self.offset += count
        return view


def decode_image_cdr(buffer: bytes | bytearray | memoryview) -> CdrImage:
    """Read a serialized ``sensor_msgs/Image``; the pixel data is a zero-copy view of ``buffer``.

    Raises :class:`UnsupportedCdrError` for an encapsulation other than plain CDR, :class:`CdrError` for a buffer
    that ends early or whose strings are malformed. Whether the pixel bytes fit the image's size is the image
    codec's check (:mod:`dcl_arc_ros.core.image_codec`), as for a message rclpy decoded.
    """
    view = memoryview(buffer).cast("B")
    if len(view) < ENCAPSULATION_SIZE:
        raise CdrError(f"serialized Image has {len(view)} bytes, fewer than the {ENCAPSULATION_SIZE}-byte CDR header")
    representation = int.from_bytes(view[:2], "big")
    order = _BYTE_ORDER.get(representation)
    if order is None:
        raise UnsupportedCdrError(
            f"serialized Image uses encapsulation 0x{representation:04x}; only plain CDR (0x0000 big-endian, 0x0001 "
            "little-endian) is read directly"
        )
    reader = _Reader(view, order)
    stamp_sec = reader.primitive("i", "header.stamp.sec")
    stamp_nanosec = reader.primitive("I", "header.stamp.nanosec")
    frame_id = reader.string("header.frame_id")
    height = reader.primitive("I", "height")
    width = reader.primitive("I", "width")
    encoding = reader.string("encoding")
    is_bigendian = reader.primitive("B", "is_bigendian")
    step = reader.primitive("I", "step")
    data = reader.octets("data")
    fields = ImageFields(height, width, encoding, bool(is_bigendian), step, data)
    return CdrImage(stamp_sec, stamp_nanosec, frame_id, fields)


def _padded(offset: int, size: int) -> int:
    body = offset - ENCAPSULATION_SIZE
    return offset + (-body % size)


def _string_bytes(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


class ImageCdrWriter:
    """A reusable serialized outgoing image (little-endian CDR) whose pixel region a pipeline writes into.

    :meth:`layout` writes the header and the image fields and returns the pixel region; :meth:`depth_array` does the
    same for a 32FC1 depth image and returns the region as a float32 (H, W) array; :meth:`tobytes` returns the whole
    message for ``publish(bytes)``. The buffer is reused while the layout's size stays the same (a new one is made
    when it changes, so a caller may still hold the previous array); what the region held before is not cleared.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data_offset = 0
        self._data_size = 0

    def layout(
        self,
        *,
        stamp_sec: int,
        stamp_nanosec: int,
        frame_id: str,
        height: int,
        width: int,
        encoding: str,
        step: int,
        is_bigendian: bool = False,
    ) -> memoryview:
        """Write everything but the pixels; the returned ``step * height`` bytes are the pixel region."""
        if not -(2**31) <= stamp_sec < 2**31 or not 0 <= stamp_nanosec < 2**32:
            raise CdrError(f"stamp {stamp_sec} s {stamp_nanosec} ns does not fit builtin_interfaces/Time")
        if min(height, width, step) < 0 or max(height, width, step) >= 2**32:
            raise CdrError(f"image size height={height} width={width} step={step} does not fit uint32 fields")
        frame = _string_bytes(frame_id)
        name = _string_bytes(encoding)
        data_size = step * height
        prefix = bytearray()
        prefix += struct.pack("<iII", stamp_sec, stamp_nanosec, len(frame))
        prefix += frame
        prefix += bytes(_padded(ENCAPSULATION_SIZE + len(prefix), 4) - ENCAPSULATION_SIZE - len(prefix))
        prefix += struct.pack("<III", height, width, len(name)) + name
        prefix += struct.pack("<B", int(bool(is_bigendian)))
        prefix += bytes(_padded(ENCAPSULATION_SIZE + len(prefix), 4) - ENCAPSULATION_SIZE - len(prefix))
        prefix += struct.pack("<II", step, data_size)
        data_offset = ENCAPSULATION_SIZE + len(prefix)
        total = data_offset + data_size
        if len(self._buffer) != total or self._data_offset != data_offset:
            # A new buffer, not a resize: numpy views of the old one may still be alive (they keep it).
            self._buffer = bytearray(total)
        self._buffer[:ENCAPSULATION_SIZE] = CDR_LITTLE_ENDIAN.to_bytes(2, "big") + b"\x00\x00"
        self._buffer[ENCAPSULATION_SIZE:data_offset] = prefix
        self._data_offset, self._data_size = data_offset, data_size
        return memoryview(self._buffer)[data_offset:total]

    def depth_array(self, shape: tuple[int, int], *, stamp_sec: int, stamp_nanosec: int, frame_id: str) -> np.ndarray:
        """Lay out a 32FC1 image of ``shape`` (unpadded little-endian rows) and return its pixels as float32 (H, W)."""
        height, width = int(shape[0]), int(shape[1])
        region = self.layout(
            stamp_sec=stamp_sec,
            stamp_nanosec=stamp_nanosec,
            frame_id=frame_id,
            height=height,
            width=width,
            encoding="32FC1",
            step=width * 4,
        )
        return np.frombuffer(region, dtype="<f4").reshape(height, width)

    def tobytes(self) -> bytes:
        """The serialized message as laid out and filled so far (a copy: rclpy publishes ``bytes`` only)."""
        if not self._buffer:
            raise CdrError("ImageCdrWriter.tobytes() before layout(): there is no message yet")
        return bytes(self._buffer)
