"""Backend options: a typed dataclass per backend, built from the free-form ``**options`` of ``load_model``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from dcl_arc_ros.inference.errors import ModelLoadError

OptionsT = TypeVar("OptionsT")


def options_from_mapping(cls: type[OptionsT], options: Mapping[str, Any], model_path: Path, backend: str) -> OptionsT:
    """``cls(**options)``, refusing an option the backend does not have with the file and every known option named."""
    assert is_dataclass(cls), f"{cls!r} must be a dataclass"
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ModelLoadError(f"{model_path}: unknown {backend} backend options {unknown}; known: {known}")
    return cls(**options)
