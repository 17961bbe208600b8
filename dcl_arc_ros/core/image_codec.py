"""``sensor_msgs/Image`` fields <-> numpy arrays, with REP 118 depth units.

No ROS types are needed: :class:`ImageFields` carries the fields of a ``sensor_msgs/Image`` (the ROS layer copies
them from and to the real message). Decoding honours the row ``step`` (padded rows) and ``is_bigendian`` through
numpy strides and byte-order-aware dtypes, so no Python code ever runs per pixel.

Depth conventions (REP 118):

* ``32FC1``: metres, NaN = no reading. Non-finite or non-positive values are read as NaN.
* ``16UC1`` / ``mono16``: millimetres, 0 = no reading.

Every decoded array is a fresh, C-contiguous, native-endian array that never aliases the message buffer, except
where a caller asks for a view (:func:`decode_depth` with ``copy=False``): a 32FC1 frame that is already in REP 118
form (every pixel NaN or a finite positive depth, unpadded native-endian rows) is then returned as a read-only view of
the buffer. That is safe for rclpy messages, whose ``data`` is an ``array('B')`` owned by the Python message object
(the view keeps it alive; nothing else writes to it), and saves a full-frame copy per frame.
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal

import cv2
import numpy as np

from dcl_arc_ros.core.depth import nan_outside
from dcl_arc_ros.core.errors import EncodingError

#: Millimetres per metre, for the 16-bit depth encodings.
_MM_PER_M: Final = 1000.0
_UINT16_MAX: Final = int(np.iinfo(np.uint16).max)


@dataclass(frozen=True)
class _Layout:
    """How one encoding lays out a pixel: the channel dtype and the number of channels."""

    dtype: np.dtype
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


_LAYOUTS: Final[dict[str, _Layout]] = {
    "32FC1": _Layout(np.dtype(np.float32), 1),
    "16UC1": _Layout(np.dtype(np.uint16), 1),
    "mono8": _Layout(np.dtype(np.uint8), 1),
    "mono16": _Layout(np.dtype(np.uint16), 1),
    "rgb8": _Layout(np.dtype(np.uint8), 3),
    "bgr8": _Layout(np.dtype(np.uint8), 3),
    "rgba8": _Layout(np.dtype(np.uint8), 4),
    "bgra8": _Layout(np.dtype(np.uint8), 4),
}

SUPPORTED_ENCODINGS: Final[tuple[str, ...]] = tuple(_LAYOUTS)
DEPTH_ENCODINGS: Final[tuple[str, ...]] = ("32FC1", "16UC1", "mono16")
COLOUR_ENCODINGS: Final[tuple[str, ...]] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")


@dataclass(frozen=True)
class ImageFields:
    """The fields of ``sensor_msgs/Image`` without rclpy.

    ``data`` may be any object exposing the buffer protocol as bytes (``bytes``, ``bytearray``, ``memoryview`` or
    the ``array.array('B')`` rclpy uses for ``uint8[]``).
    """

    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: bytes | bytearray | memoryview | array.array

    @classmethod
    def of_message(cls, msg: Any, data: bytes | bytearray | memoryview | array.array) -> ImageFields:
        """The fields of any ``sensor_msgs/Image``-shaped message (rclpy's or a bag reader's), with ``data`` given:
        the caller decides whether it is a view of the message buffer or a copy."""
        return cls(
            height=int(msg.height),
            width=int(msg.width),
            encoding=str(msg.encoding),
            is_bigendian=bool(msg.is_bigendian),
            step=int(msg.step),
            data=data,
        )


def _layout_for(encoding: str, allowed: tuple[str, ...] = SUPPORTED_ENCODINGS) -> _Layout:
    if encoding not in allowed:
        raise EncodingError(f"unsupported image encoding {encoding!r}; expected one of {', '.join(allowed)}")
    return _LAYOUTS[encoding]


def _strided_view(img: ImageFields, layout: _Layout) -> np.ndarray:
    """A zero-copy (H, W, C) view of ``img.data`` with the message's byte order and row step."""
    height, width, step = int(img.height), int(img.width), int(img.step)
    sizes = f"height={height} width={width} step={step}"
    if height <= 0 or width <= 0:
        raise EncodingError(f"empty {img.encoding} image ({sizes})")
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise EncodingError(
            f"{img.encoding} image step {step} is smaller than width * bytes per pixel = {width} * "
            f"{layout.bytes_per_pixel} = {row_bytes} ({sizes})"
        )
    try:
        raw = np.frombuffer(img.data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise EncodingError(f"{img.encoding} image data is not a contiguous byte buffer ({sizes}): {exc}") from exc
    if raw.size != step * height:
        raise EncodingError(
            f"{img.encoding} image data has {raw.size} bytes but step * height = {step} * {height} = {step * height}"
            f" ({sizes})"
        )
    dtype = layout.dtype.newbyteorder(">" if img.is_bigendian else "<")
    return np.ndarray(
        shape=(height, width, layout.channels),
        dtype=dtype,
        buffer=raw,
        offset=0,
        strides=(step, layout.bytes_per_pixel, layout.dtype.itemsize),
    )


def image_to_array(img: ImageFields) -> np.ndarray:
    """Decode an image into a native-endian array: (H, W) for one channel, (H, W, C) otherwise."""
    layout = _layout_for(img.encoding)
    view = _strided_view(img, layout)
    arr = np.array(view, dtype=layout.dtype.newbyteorder("="), order="C", copy=True)
    return arr[:, :, 0] if layout.channels == 1 else arr


def array_to_image(arr: np.ndarray, encoding: str) -> ImageFields:
    """Encode an array as a little-endian image with unpadded rows (``step = width * bytes per pixel``).

    ``data`` is a new ``array('B')`` (one copy of the pixels; it never aliases ``arr``): the type rclpy stores for
    ``uint8[]``, so the ROS layer can hand it to a message without another copy.

    Float arrays convert to ``32FC1`` by ``same_kind`` casting (e.g. float64 -> float32). Integer arrays must cast
    safely to the encoding's channel type (uint8 -> uint16 is fine, int32 -> uint16 is not).
    """
    layout = _layout_for(encoding)
    arr = np.asarray(arr)
    expected = "(H, W)" if layout.channels == 1 else f"(H, W, {layout.channels})"
    if layout.channels == 1 and arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    shape_ok = arr.ndim == 2 if layout.channels == 1 else arr.ndim == 3 and arr.shape[2] == layout.channels
    if not shape_ok:
        raise EncodingError(f"cannot encode an array of shape {arr.shape} as {encoding}: expected {expected}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise EncodingError(f"cannot encode an empty array of shape {arr.shape} as {encoding}")
    casting: Literal["same_kind", "safe"] = "same_kind" if layout.dtype.kind == "f" else "safe"
    if not np.can_cast(arr.dtype, layout.dtype, casting=casting):
        raise EncodingError(f"cannot encode a {arr.dtype} array as {encoding} (channel type {layout.dtype})")
    little = np.ascontiguousarray(arr, dtype=layout.dtype.newbyteorder("<"))
    height, width = int(arr.shape[0]), int(arr.shape[1])
    data = array.array("B")
    data.frombytes(little.data.cast("B"))  # the one copy: rclpy takes an array('B') for uint8[] as it is
    return ImageFields(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=False,
        step=width * layout.bytes_per_pixel,
        data=data,
    )


def depth_from_image(img: ImageFields) -> np.ndarray:
    """Decode a depth image into float32 metres (H, W) with NaN where there is no reading (REP 118)."""
    return decode_depth(img).depth_m


def depth_and_holes_from_image(img: ImageFields) -> tuple[np.ndarray, int]:
    """:func:`depth_from_image`, and the number of pixels without a reading (NaN in the result), which the
    decoder knows for free."""
    decoded = decode_depth(img)
    return decoded.depth_m, decoded.holes


@dataclass(frozen=True)
class DecodedDepth:
    """A decoded depth image and what the decoder found in it.

    The number of holes of a 32FC1 frame in REP 118 form is counted only when asked for (a full-frame pass that a
    caller needing only :attr:`any_valid` never pays); the decoder already knows such a frame has a valid pixel.
    """

    depth_m: np.ndarray  # float32 (H, W) metres, NaN (or 0 with nan_holes=False) = no reading; read-only if a view
    infinite: int  # +-inf pixels of a 32FC1 image (read as no reading)
    negative: int  # negative pixels of a 32FC1 image (read as no reading)
    counted_holes: int | None = None  # None: not counted yet, and at least one pixel is valid

    @cached_property
    def holes(self) -> int:
        """Pixels without a reading."""
        if self.counted_holes is not None:
            return self.counted_holes
        return int(np.count_nonzero(np.isnan(self.depth_m)))

    @property
    def valid(self) -> int:
        """Pixels with a finite, positive depth."""
        return int(self.depth_m.size) - self.holes

    @property
    def any_valid(self) -> bool:
        """Whether at least one pixel has a reading (known without counting)."""
        return self.counted_holes is None or self.counted_holes < self.depth_m.size

    def problems(self) -> list[str]:
        """Human descriptions of suspicious content (empty when the frame looks normal)."""
        found = []
        if self.infinite:
            found.append(f"{self.infinite} pixels are +-inf (read as no reading; REP 118 prefers NaN)")
        if self.negative:
            found.append(f"{self.negative} pixels are negative depths (read as no reading)")
        return found


def decode_depth(img: ImageFields, *, copy: bool = True, nan_holes: bool = True) -> DecodedDepth:
    """Decode a depth image (32FC1 m, 16UC1 / mono16 mm) into float32 metres, NaN where there is no reading.

    ``copy=False`` lets a 32FC1 image that is already in REP 118 form (every pixel NaN or finite and > 0) with
    unpadded, native-endian rows come back as a read-only view of ``img.data`` instead of a copy; anything else
    (padded rows, the other byte order, 0 / inf / negative pixels to turn into NaN, 16-bit input) is decoded into a
    new array either way, and the values are the same in both cases.

    ``nan_holes=False`` leaves the holes of a 16-bit image at 0 m instead of turning them into NaN (a full-frame
    pass saved): for callers whose own validity test ("finite and > 0") reads 0 as no reading, as every depth
    pipeline here does. 32FC1 holes are NaN either way.
    """
    layout = _layout_for(img.encoding, DEPTH_ENCODINGS)
    view = _strided_view(img, layout)[:, :, 0]
    if layout.dtype == np.float32:
        return _decode_metres(view, copy)
    # Millimetres: an exact widening copy and one scaling pass (the same values as multiplying the integers by
    # float32(0.001) directly, a little faster), then 0 mm -> NaN by dividing by the "has a reading" mask:
    # x / 1 is x exactly, 0 / 0 is NaN.
    metres = np.empty(view.shape, np.float32)
    np.copyto(metres, view, casting="unsafe")
    np.multiply(metres, np.float32(1.0 / _MM_PER_M), out=metres)
    holes = metres.size - int(np.count_nonzero(view))
    if nan_holes and holes:
        with np.errstate(invalid="ignore"):
            np.divide(metres, np.not_equal(view, 0), out=metres)
    return DecodedDepth(metres, 0, 0, holes)


def _decode_metres(view: np.ndarray, copy: bool) -> DecodedDepth:
    """32FC1: NaN, inf and <= 0 become NaN (byte-swapped on the way if needed).

    Two NaN-ignoring reductions decide the usual case, a frame whose holes are NaN already (REP 118): its values
    need no change, so it is copied as it is (or not at all), and its NaN are counted only on demand. Every other
    frame goes through :func:`nan_outside`, and its infinities and negative depths are counted for the caller's
    reports.
    """
    lowest = float(np.fmin.reduce(view, axis=None))  # NaN only when every pixel is NaN
    highest = float(np.fmax.reduce(view, axis=None))
    if lowest > 0.0 and highest < math.inf:
        if not copy and view.dtype.isnative and view.flags.c_contiguous and view.flags.aligned:
            depth = view.view()
            depth.flags.writeable = False  # the message's own bytes: nobody may write through this view
            return DecodedDepth(depth, 0, 0)
        return DecodedDepth(np.array(view, dtype=np.float32, order="C", copy=True), 0, 0)
    negative = infinite = 0
    if not lowest >= 0.0:  # also true when every pixel is NaN
        negative = int(np.count_nonzero(view < 0.0))
        infinite = int(np.count_nonzero(view == -np.inf))
    if not highest < math.inf:
        infinite += int(np.count_nonzero(view == np.inf))
    depth, holes = nan_outside(view, 0.0, math.inf)
    return DecodedDepth(depth, infinite, negative, holes)


def depth_to_image(depth_m: np.ndarray, encoding: str = "32FC1") -> ImageFields:
    """Encode float metres as ``32FC1`` (metres, NaN kept) or ``16UC1`` (rounded millimetres, 0 = no reading).

    For ``16UC1``, NaN, infinities, non-positive depths and depths beyond 65.535 m become 0 (no reading): a value
    that cannot be represented is reported as missing rather than saturated.
    """
    _layout_for(encoding, ("32FC1", "16UC1"))
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise EncodingError(f"depth must be a 2-D (H, W) array to encode as {encoding}, got shape {depth.shape}")
    if depth.dtype.kind != "f":
        raise EncodingError(f"depth must be a float array in metres to encode as {encoding}, got {depth.dtype}")
    if encoding == "32FC1":
        return array_to_image(depth, "32FC1")
    mm = np.multiply(depth, _MM_PER_M, dtype=np.float32)  # float32 holds every integer up to 2**24 exactly
    np.rint(mm, out=mm)
    nan_outside(mm, 0.0, _UINT16_MAX, out=mm)  # NaN, inf, <= 0 and > 65535 mm become NaN ...
    cv2.patchNaNs(mm, 0.0)  # ... and then 0 = no reading
    out = mm.astype(np.uint16)
    return array_to_image(out, "16UC1")


def rgb_from_image(img: ImageFields) -> np.ndarray:
    """Decode a colour or mono8 image into uint8 RGB (H, W, 3)."""
    layout = _layout_for(img.encoding, COLOUR_ENCODINGS)
    view = _strided_view(img, layout)
    if img.encoding == "mono8":
        return np.array(np.broadcast_to(view, (*view.shape[:2], 3)), order="C", copy=True)
    if img.encoding in ("bgr8", "bgra8"):
        return np.array(view[:, :, 2::-1], order="C", copy=True)
    return np.array(view[:, :, :3], order="C", copy=True)
