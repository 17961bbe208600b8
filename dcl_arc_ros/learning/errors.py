"""Exceptions raised by :mod:`dcl_arc_ros.learning`.

Every message names the offending value and, when a file is involved, the file, so a log line alone locates the cause.
"""

from __future__ import annotations


class LearningError(Exception):
    """Base class of every error raised by :mod:`dcl_arc_ros.learning`."""


class ConfigError(LearningError, ValueError):
    """A configuration is invalid: unknown key, wrong type, bad value, or an unreadable YAML file."""


class RegistryError(LearningError, KeyError):
    """A model kind, method or preset name is not registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class CheckpointError(LearningError, RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the network it is loaded into."""


class DatasetError(LearningError, ValueError):
    """A dataset sample lacks a required key or has the wrong shape."""


class ExportError(LearningError, RuntimeError):
    """A model cannot be exported, or the flags asked of the exporter do not fit the model kind."""


class ParityError(ExportError):
    """The exported artefact's outputs differ from PyTorch's beyond the stated tolerance."""


class DistributedError(LearningError, RuntimeError):
    """The distributed (torchrun) environment is inconsistent."""
