"""Exceptions raised by the inference runtime. Every message names the model file involved."""

from __future__ import annotations


class InferenceError(Exception):
    """Base class of every error raised by :mod:`dcl_arc_ros.inference`."""


class UnknownBackendError(InferenceError, ValueError):
    """The requested backend is not in the registry; the message lists the registered names."""


class ModelLoadError(InferenceError):
    """A model cannot be loaded: missing, corrupt, or not matching its sidecar. The message names the file."""


class InferenceRunError(InferenceError, ValueError):
    """A model was given inputs that do not match its sidecar, or the runtime failed on them."""


class EngineBuildError(InferenceError):
    """Building a TensorRT engine from ONNX failed; the message names the ONNX file and the parser/builder errors."""
