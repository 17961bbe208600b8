"""Exceptions raised by the synthetic data engine (:mod:`dcl_arc_ros.sim`).

Every message names the bad value and, where one is involved, the file it came from.
"""

from __future__ import annotations


class SimError(Exception):
    """Base class of every error raised by :mod:`dcl_arc_ros.sim`."""


class CatalogueError(SimError):
    """An object name, class id or mesh file that the object catalogue does not know or cannot read."""


class MeshFormatError(CatalogueError):
    """A Wavefront OBJ file that cannot be parsed into triangles."""


class CameraPresetError(SimError):
    """An unknown camera preset name or an invalid camera pose request."""


class SceneError(SimError):
    """An unknown scene family or support, or a scene that could not be built (e.g. every object fell off)."""


class RenderError(SimError):
    """The renderer returned something unusable (wrong size, no depth)."""


class SensorError(SimError):
    """An unknown sensor model name, or a sensor input with the wrong shape or units."""


class LabelError(SimError):
    """Labels could not be computed consistently (e.g. a segmentation id with no scene body)."""
