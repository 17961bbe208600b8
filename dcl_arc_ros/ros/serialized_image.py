"""Serialized ``sensor_msgs/Image`` in and out: the depth path that skips rclpy's message conversion.

A subscription created with ``raw=True`` hands the callback the middleware's serialized bytes, and ``publish`` accepts
serialized bytes; in between, rclpy's conversion (bytes -> C struct -> Python object, and back) costs about 0.6 ms
each way for a 640x480 32FC1 frame. This module reads and writes the image directly in its serialized form through
the pure codec (``dcl_arc_ros.core.image_cdr``):

- :func:`image_from_serialized` gives a :class:`SerializedImage`, which has the reading side of a ``sensor_msgs/Image``
  (``header``, ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``), so ``depth_from_msg`` and
  the input sync take it as they take a message; its ``data`` is a view of the received bytes (no copy);
- :class:`SerializedDepthImageBuffer` is the outgoing 32FC1 image: the pipeline writes the depth into it, and
  :meth:`SerializedDepthImageBuffer.serialized` is what ``publish`` sends;
- :func:`serialized_images_unavailable` checks, once at start-up, that the active middleware's wire format is the
  one the codec reads and writes (both directions, through ``rclpy.serialization``); a node falls back to typed
  messages when it is not.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dcl_arc_ros.core.image_cdr import CdrError, CdrImage, ImageCdrWriter, UnsupportedCdrError, decode_image_cdr
from dcl_arc_ros.ros.errors import BadInputError


class SerializedImage:
    """The reading side of a ``sensor_msgs/Image``, over one serialized message (``data`` is a view of its bytes)."""

    __slots__ = ("data", "encoding", "header", "height", "is_bigendian", "step", "width")

    def __init__(self, cdr: CdrImage) -> None:
        self.header = Header(stamp=Time(sec=cdr.stamp_sec, nanosec=cdr.stamp_nanosec), frame_id=cdr.frame_id)
        fields = cdr.fields
        self.height = fields.height
        self.width = fields.width
        self.encoding = fields.encoding
        self.is_bigendian = int(fields.is_bigendian)
        self.step = fields.step
        self.data = fields.data


def image_from_serialized(buffer: bytes) -> SerializedImage | Image:
    """Read one serialized Image; another encapsulation than plain CDR goes through the middleware's deserialiser.

    Raises ``BadInputError`` naming the problem for a buffer that neither can read.
    """
    try:
        return SerializedImage(decode_image_cdr(buffer))
    except UnsupportedCdrError as unsupported:
        try:
            image: Image = deserialize_message(buffer, Image)
        except Exception as exc:  # rclpy raises a bare RuntimeError-like _rclpy error
            raise BadInputError(f"cannot read serialized Image ({len(buffer)} bytes): {unsupported}; {exc}") from exc
        return image
    except CdrError as exc:
        raise BadInputError(f"cannot read serialized Image: {exc}") from exc


class SerializedDepthImageBuffer:
    """The outgoing 32FC1 image in serialized form: :meth:`array` is where the depth goes, :meth:`serialized` is sent.

    Same contract as ``conversions.DepthImageBuffer``: the array is valid until the next :meth:`array` call, rows are
    unpadded little-endian float32, and the header is a copy of the one given.
    """

    def __init__(self) -> None:
        self._writer = ImageCdrWriter()

    def array(self, shape: tuple[int, int], header: Header) -> np.ndarray:
        """The float32 (H, W) pixels of the next message, which will carry ``header``'s stamp and frame_id."""
        stamp = header.stamp
        return self._writer.depth_array(
            shape, stamp_sec=int(stamp.sec), stamp_nanosec=int(stamp.nanosec), frame_id=str(header.frame_id)
        )

    def serialized(self) -> bytes:
        """The whole message as it is now, for ``publisher.publish``."""
        return self._writer.tobytes()


def _probe_image() -> Image:
    """A small image whose every field differs from its default, with a frame_id that needs padding after it."""
    msg = Image()
    msg.header.stamp.sec = 1_700_000_123
    msg.header.stamp.nanosec = 987_654_321
    msg.header.frame_id = "probe_optical_frame"
    msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step = 2, 3, "32FC1", 0, 12
    msg.data = np.arange(6, dtype="<f4").tobytes()
    return msg


def serialized_images_unavailable() -> str | None:
    """``None`` when the middleware's serialized Image is what the codec reads and writes; otherwise the reason.

    Both directions are checked on a probe image: the middleware's serialisation decoded by the codec, and the
    codec's serialisation decoded by the middleware, must give back every field.
    """
    probe = _probe_image()
    try:
        theirs = serialize_message(probe)
        read = decode_image_cdr(theirs)
        written = SerializedDepthImageBuffer()
        written.array((probe.height, probe.width), probe.header)[...] = np.frombuffer(probe.data, "<f4").reshape(2, 3)
        back = deserialize_message(written.serialized(), Image)
    except (CdrError, RuntimeError, TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    fields = read.fields
    read_ok = (read.stamp_sec, read.stamp_nanosec, read.frame_id) == (
        probe.header.stamp.sec,
        probe.header.stamp.nanosec,
        probe.header.frame_id,
    ) and (
        fields.height,
        fields.width,
        fields.encoding,
        bool(fields.is_bigendian),
        fields.step,
        bytes(fields.data),
    ) == (
        probe.height,
        probe.width,
        probe.encoding,
        bool(probe.is_bigendian),
        probe.step,
        bytes(probe.data),
    )
    if not read_ok:
        return "the middleware's serialized Image does not decode to the message it came from"
    if back != probe:
        return "the middleware does not read the codec's serialized Image back as the same message"
    return None
