"""TensorRT engine cache: one engine per (ONNX sha256, GPU name, TensorRT version, precision[, input shapes]).

Engines break across GPUs and TensorRT versions, so the key carries all of them, and a valid cached engine is
never rebuilt. A cached engine is a plain ``.engine`` file (no header prepended) with its JSON sidecar next to it;
the sidecar is the ONNX model's sidecar with ``model_sha256`` set to the engine's hash and ``extra["engine"]``
recording the key. An entry is valid when both files exist, the sidecar reads, its key matches, and the engine's
hash matches. Writes are atomic (temporary file + rename), so a crash mid-build never leaves an entry that looks
valid.

The cache logic takes the builder as an argument (:class:`EngineBuilder`), so it is testable without TensorRT; the
real builder is :func:`dcl_arc_ros.inference.tensorrt_backend.onnx_to_engine`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from dcl_arc_ros.core.errors import SidecarError
from dcl_arc_ros.core.sidecar import (
    ModelSidecar,
    config_sha256,
    read_sidecar,
    sha256_file,
    sidecar_path_for,
    write_sidecar,
)
from dcl_arc_ros.inference.errors import EngineBuildError

_LOG = logging.getLogger(__name__)

CACHE_DIR_ENV: Final = "DCL_ARC_ENGINE_CACHE"
ENGINE_SUFFIX: Final = ".engine"
PRECISIONS: Final[tuple[str, ...]] = ("fp32", "fp16")
DEFAULT_WORKSPACE_BYTES: Final = 1 << 30

_SLUG_RE: Final = re.compile(r"[^a-z0-9]+")


def default_cache_dir() -> Path:
    """``$DCL_ARC_ENGINE_CACHE`` when set, else ``~/.cache/dcl_arc_ros/engines``."""
    override = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(override).expanduser() if override else Path.home() / ".cache" / "dcl_arc_ros" / "engines"


def _slug(text: str) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-") or "unknown"


@dataclass(frozen=True)
class EngineCacheKey:
    """What an engine depends on. ``input_shapes`` is the static profile; empty when the ONNX is fully static."""

    onnx_sha256: str
    gpu_name: str
    trt_version: str
    precision: str
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.onnx_sha256):
            raise ValueError(f"onnx_sha256 must be 64 lowercase hex digits, got {self.onnx_sha256!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected one of {PRECISIONS}")
        if not self.gpu_name or not self.trt_version:
            raise ValueError(f"gpu_name and trt_version must be set, got {self.gpu_name!r}, {self.trt_version!r}")

    @classmethod
    def create(
        cls,
        onnx_sha256: str,
        gpu_name: str,
        trt_version: str,
        precision: str,
        input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    ) -> EngineCacheKey:
        shapes = tuple(sorted((name, tuple(int(d) for d in shape)) for name, shape in (input_shapes or {}).items()))
        return cls(onnx_sha256, gpu_name, trt_version, precision, shapes)

    def file_name(self, stem: str = "model") -> str:
        """A readable, filesystem-safe, collision-free name, e.g. ``cleaner-3f2a...-rtx-4090-trt10.3.0-fp16.engine``.

        The first 16 hex digits of the ONNX hash keep names short; a digest of the full key is appended so two
        keys never share a name.
        """
        digest = config_sha256(self.to_dict())[:8]
        parts = [
            _slug(stem),
            self.onnx_sha256[:16],
            _slug(self.gpu_name),
            f"trt{_slug(self.trt_version)}",
            self.precision,
            digest,
        ]
        return "-".join(parts) + ENGINE_SUFFIX

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnx_sha256": self.onnx_sha256,
            "gpu_name": self.gpu_name,
            "trt_version": self.trt_version,
            "precision": self.precision,
            "input_shapes": {name: list(shape) for name, shape in self.input_shapes},
        }


class EngineBuilder(Protocol):
    """Builds a serialized engine file at ``engine_path`` from ``onnx_path`` (see ``onnx_to_engine``)."""

    def __call__(
        self,
        onnx_path: Path,
        engine_path: Path,
        *,
        fp16: bool,
        workspace_bytes: int,
        input_shapes: Mapping[str, tuple[int, ...]] | None,
    ) -> Path | None: ...


def engine_sidecar(onnx_sidecar: ModelSidecar, key: EngineCacheKey, engine_sha256: str) -> ModelSidecar:
    """The sidecar of an engine built from a model with ``onnx_sidecar`` under ``key``."""
    extra = dict(onnx_sidecar.extra)
    extra["engine"] = key.to_dict()
    return dataclasses.replace(onnx_sidecar, model_sha256=engine_sha256, extra=extra)


def is_valid_entry(engine_path: Path, key: EngineCacheKey) -> bool:
    """True when ``engine_path`` and its sidecar exist, the sidecar's key equals ``key`` and the hash matches."""
    sidecar_path = sidecar_path_for(engine_path)
    if not engine_path.is_file() or not sidecar_path.is_file():
        return False
    try:
        sidecar = read_sidecar(sidecar_path)
    except SidecarError as exc:
        _LOG.warning("engine cache: ignoring %s: %s", engine_path, exc)
        return False
    if sidecar.extra.get("engine") != key.to_dict():
        _LOG.warning(
            "engine cache: %s was built for %s, not %s", engine_path, sidecar.extra.get("engine"), key.to_dict()
        )
        return False
    if sidecar.model_sha256 != sha256_file(engine_path):
        _LOG.warning(
            "engine cache: %s does not match the hash in %s (truncated or replaced)", engine_path, sidecar_path
        )
        return False
    return True


def cached_engine(
    onnx_path: str | Path,
    onnx_sidecar: ModelSidecar,
    key: EngineCacheKey,
    *,
    build: EngineBuilder,
    cache_dir: str | Path | None = None,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
) -> Path:
    """The engine for ``key``: the cached one when valid, else built now with ``build`` and stored atomically.

    Raises :class:`EngineBuildError` naming the ONNX file when the build fails; nothing is left in the cache then.
    """
    onnx_path = Path(onnx_path)
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    engine_path = directory / key.file_name(onnx_path.stem)
    if is_valid_entry(engine_path, key):
        _LOG.info("engine cache hit: %s", engine_path)
        return engine_path
    _LOG.warning("engine cache miss: building %s from %s (this can take minutes, once)", engine_path, onnx_path)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{engine_path.stem}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        build(
            onnx_path,
            tmp_path,
            fp16=key.precision == "fp16",
            workspace_bytes=workspace_bytes,
            input_shapes=dict(key.input_shapes) or None,
        )
        if tmp_path.stat().st_size == 0:
            raise EngineBuildError(f"{onnx_path}: the engine builder wrote an empty file")
        sidecar = engine_sidecar(onnx_sidecar, key, sha256_file(tmp_path))
        # Engine first, then its sidecar: until the sidecar (with the engine's hash) lands, the entry is invalid.
        os.replace(tmp_path, engine_path)
        write_sidecar(sidecar, sidecar_path_for(engine_path))
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return engine_path
