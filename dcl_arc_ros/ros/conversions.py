"""ROS messages <-> core types, in pairs: ``fields_from_image_msg`` / ``image_msg_from_fields``,
``depth_from_msg`` / ``depth_to_msg``, ``intrinsics_from_camera_info`` / ``camera_info_from_intrinsics``.

The pixel decoding itself lives in ``dcl_arc_ros.core.image_codec`` (pure, tested without ROS); this module only moves
fields between the message and ``ImageFields``. Incoming data is passed on as a ``memoryview`` of the message's
``array('B')`` (no copy); outgoing data is the ``array('B')`` the codec encoded into (its one copy), which rclpy
takes as it is (it checks the type code, not every element) and serialises with one memcpy.
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import CameraError, EncodingError
from dcl_arc_ros.core.image_codec import (
    DecodedDepth,
    ImageFields,
    decode_depth,
    depth_to_image,
    rgb_from_image,
)
from dcl_arc_ros.core.sync import stamp_to_ns
from dcl_arc_ros.ros.errors import BadInputError

DEPTH_INPUT_ENCODINGS: tuple[str, ...] = ("16UC1", "32FC1")


def copy_header(header: Header) -> Header:
    """A new Header with the same stamp and frame_id (outputs never share the input's message objects)."""
    return Header(stamp=Time(sec=header.stamp.sec, nanosec=header.stamp.nanosec), frame_id=header.frame_id)


def header_stamp_ns(header: Header) -> int:
    return stamp_to_ns(header.stamp.sec, header.stamp.nanosec)


def fields_from_image_msg(msg: Image) -> ImageFields:
    """The fields of a sensor_msgs/Image; ``data`` is a zero-copy memoryview of the message buffer."""
    return ImageFields.of_message(msg, memoryview(msg.data).cast("B"))


def image_msg_from_fields(fields: ImageFields, header: Header) -> Image:
    """A sensor_msgs/Image carrying ``fields`` under a copy of ``header``."""
    # check_fields=True is what makes the data setter keep an array('B') as it is; without it, it copies it.
    msg = Image(check_fields=True)
    msg.header = copy_header(header)
    msg.height = int(fields.height)
    msg.width = int(fields.width)
    msg.encoding = fields.encoding
    msg.is_bigendian = int(bool(fields.is_bigendian))
    msg.step = int(fields.step)
    data = fields.data
    if isinstance(data, array.array) and data.typecode == "B":
        msg.data = data
    else:
        buffer = array.array("B")
        buffer.frombytes(data)
        msg.data = buffer
    return msg


#: What :func:`depth_from_msg` returns: the core's decoded frame (depth in metres plus what the decoder discarded, with
#: ``problems()`` for the node's bad-input reports).
DepthReading = DecodedDepth


def depth_from_msg(
    msg: Image,
    *,
    encodings: tuple[str, ...] = DEPTH_INPUT_ENCODINGS,
    copy: bool = True,
    nan_holes: bool = True,
) -> DepthReading:
    """Decode a depth Image (16UC1 mm or 32FC1 m) into metres; ``BadInputError`` names the encoding and sizes.

    For a caller that only reads the depth while it holds the message and treats <= 0 as no reading itself (the
    depth pipelines), ``copy=False, nan_holes=False`` saves full-frame passes (``core.image_codec.decode_depth``):
    a 32FC1 frame already in REP 118 form (NaN holes, unpadded little-endian rows) comes back as a read-only view
    of ``msg.data``, and a 16UC1 frame's holes stay 0 m instead of NaN. Valid pixels have the same values.
    """
    sizes = f"{msg.width}x{msg.height}, step {msg.step}, {len(msg.data)} bytes"
    if msg.encoding not in encodings:
        raise BadInputError(
            f"depth image encoding {msg.encoding!r} is not supported here ({sizes}); expected one of "
            f"{', '.join(encodings)}"
        )
    if msg.width == 0 or msg.height == 0 or len(msg.data) == 0:
        raise BadInputError(f"empty depth image ({sizes}, encoding {msg.encoding})")
    try:
        decoded = decode_depth(fields_from_image_msg(msg), copy=copy, nan_holes=nan_holes)
    except EncodingError as exc:
        raise BadInputError(f"cannot decode depth image: {exc}") from exc
    return decoded


def depth_to_msg(depth_m: np.ndarray, header: Header, encoding: str = "32FC1") -> Image:
    """Encode float metres as a 32FC1 (metres, NaN) or 16UC1 (mm, 0) Image under a copy of ``header``."""
    return image_msg_from_fields(depth_to_image(depth_m, encoding), header)


class DepthImageBuffer:
    """A reusable outgoing 32FC1 image: a float32 (H, W) array that IS the message's ``data`` (no encode copy).

    A pipeline writes its result into :meth:`array`, and :meth:`message` wraps the same bytes in an Image: the
    float32 array is a view of the ``array('B')`` the message carries, so no copy is made between the two. rclpy
    copies ``data`` into the middleware's message inside ``publish()``, so once ``publish()`` has returned the
    buffer may be overwritten with the next frame. Do not keep the message (or the array) beyond that: both change
    with the next frame. Rows are unpadded and little-endian (``is_bigendian`` is false; the machine must be
    little-endian, which every platform ROS 2 supports is).
    """

    def __init__(self) -> None:
        self._data = array.array("B")
        self._depth = np.empty((0, 0), np.float32)

    def array(self, shape: tuple[int, int]) -> np.ndarray:
        """The float32 buffer for one (H, W) frame (re-allocated only when the size changes)."""
        height, width = int(shape[0]), int(shape[1])
        if self._depth.shape != (height, width):
            del self._depth  # release the view first: an exported array('B') cannot be replaced in place
            self._data = array.array("B", bytes(height * width * 4))
            self._depth = np.frombuffer(self._data, dtype="<f4").reshape(height, width)
        return self._depth

    def message(self, header: Header) -> Image:
        """The 32FC1 Image of what :meth:`array` holds now, under a copy of ``header``."""
        height, width = self._depth.shape
        fields = ImageFields(height, width, "32FC1", False, width * 4, self._data)
        return image_msg_from_fields(fields, header)


def rgb_from_msg(msg: Image) -> np.ndarray:
    """Decode a colour Image (rgb8, bgr8, rgba8, bgra8, mono8) into uint8 RGB (H, W, 3)."""
    if msg.width == 0 or msg.height == 0 or len(msg.data) == 0:
        raise BadInputError(f"empty colour image ({msg.width}x{msg.height}, encoding {msg.encoding!r})")
    try:
        return rgb_from_image(fields_from_image_msg(msg))
    except EncodingError as exc:
        raise BadInputError(f"cannot decode colour image: {exc}") from exc


def intrinsics_from_camera_info(msg: CameraInfo) -> Intrinsics:
    """Intrinsics from CameraInfo.k and its size; ``BadInputError`` for an uncalibrated or malformed K."""
    try:
        return Intrinsics.from_k(list(msg.k), int(msg.width), int(msg.height))
    except CameraError as exc:
        raise BadInputError(
            f"unusable CameraInfo (frame {msg.header.frame_id!r}, {msg.width}x{msg.height}): {exc}"
        ) from exc


def camera_info_from_intrinsics(intrinsics: Intrinsics, header: Header) -> CameraInfo:
    """A CameraInfo for a rectified pinhole camera (no distortion, P = [K | 0]) under a copy of ``header``."""
    k = intrinsics.k_matrix()
    msg = CameraInfo()
    msg.header = copy_header(header)
    msg.width = int(intrinsics.width)
    msg.height = int(intrinsics.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in k.reshape(-1)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(k[0, 0]), 0.0, float(k[0, 2]), 0.0, 0.0, float(k[1, 1]), float(k[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
