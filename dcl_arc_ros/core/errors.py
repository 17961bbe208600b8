"""Exceptions raised by the pure core.

Every message names the offending value (and the file, when one is involved) so that a log line alone is enough to
find the cause.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of every error raised by :mod:`dcl_arc_ros.core`."""


class EncodingError(CoreError, ValueError):
    """An image cannot be converted: unsupported encoding, or sizes that do not add up."""


class CameraError(CoreError, ValueError):
    """Camera intrinsics are invalid, or a crop/resize does not fit the image."""


class DepthError(CoreError, ValueError):
    """A depth array has the wrong shape/dtype, or a depth operation got invalid arguments."""


class SidecarError(CoreError, ValueError):
    """A model sidecar JSON is missing, unreadable or invalid. The message names the file and the field."""


class PipelineError(CoreError, ValueError):
    """A per-frame pipeline cannot run its model: missing inputs/outputs or an unusable normalisation."""
