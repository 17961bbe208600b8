"""Errors raised by the ROS layer: bad parameters, bad input messages, nodes that cannot start."""

from __future__ import annotations


class RosLayerError(Exception):
    """Base class of every error raised by ``dcl_arc_ros.ros``."""


class ParameterError(RosLayerError, ValueError):
    """A parameter has the wrong type, is out of range, or is not one of the allowed choices."""


class BadInputError(RosLayerError, ValueError):
    """An input message cannot be used (encoding, size, values); the node reports it and keeps running."""


class NodeStartupError(RosLayerError, RuntimeError):
    """A node cannot start (missing model, inconsistent parameters); ``main`` prints it and exits non-zero."""
