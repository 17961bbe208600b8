"""Errors raised by the ARC training code. Every message names the bad value and, where there is one, the file."""

from __future__ import annotations

from dcl_arc_ros.learning.errors import CheckpointError, ConfigError, LearningError, RegistryError


class ARCError(LearningError):
    """Base class of every ARC training error."""


class ARCConfigError(ARCError, ConfigError):
    """A configuration value or file is invalid (unknown key, wrong type, out of range)."""


class ARCShapeError(ARCError, ValueError):
    """An input tensor or a resolution does not fit the network (e.g. not divisible by its downsampling factor)."""


class PerceptualWeightsError(ARCError):
    """The local VGG16 weights file is missing, unreadable or lacks a needed layer."""


class StageError(ARCError, CheckpointError):
    """A training stage cannot run: unknown name, missing prerequisite checkpoint, or a corrupt checkpoint."""


class VariantError(ARCError, RegistryError):
    """An unknown method (baseline or ablation) name."""
