"""TensorRT path: cache keys, cache hits and misses, atomic writes, sidecar validation; GPU tests skip without one.

The cache logic gets an injected builder that writes deterministic bytes: it stands in for the build step only, so
these tests check which builds happen and what lands in the cache, never a TensorRT result.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from dcl_arc_ros.core.sidecar import ModelSidecar, read_sidecar, sha256_file, sidecar_path_for
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.inference.engine_cache import (
    CACHE_DIR_ENV,
    EngineCacheKey,
    cached_engine,
    default_cache_dir,
    is_valid_entry,
)
from dcl_arc_ros.inference.errors import EngineBuildError, ModelLoadError
from dcl_arc_ros.inference.reference_models import write_affine_depth_model
from dcl_arc_ros.inference.signature import TensorSignature, check_signature
from dcl_arc_ros.inference.tensorrt_backend import parse_device, static_input_shapes

SHA_A = "a" * 64
SHA_B = "b" * 64


def key(**changes: object) -> EngineCacheKey:
    values: dict[str, object] = {
        "onnx_sha256": SHA_A,
        "gpu_name": "NVIDIA GeForce RTX 4090",
        "trt_version": "10.3.0",
        "precision": "fp16",
    }
    values.update(changes)
    return EngineCacheKey.create(**values)  # type: ignore[arg-type]


class RecordingBuilder:
    """Writes bytes derived from its arguments and records every call."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Path, bool, int, dict[str, tuple[int, ...]] | None]] = []
        self.fail = fail

    def __call__(
        self,
        onnx_path: Path,
        engine_path: Path,
        *,
        fp16: bool,
        workspace_bytes: int,
        input_shapes: Mapping[str, tuple[int, ...]] | None,
    ) -> None:
        self.calls.append((onnx_path, fp16, workspace_bytes, dict(input_shapes) if input_shapes else None))
        engine_path.write_bytes(b"partial")
        if self.fail:
            raise EngineBuildError(f"{onnx_path}: simulated parser failure")
        engine_path.write_bytes(b"engine for " + onnx_path.read_bytes()[:16] + (b" fp16" if fp16 else b" fp32"))


@pytest.fixture
def onnx_model(tmp_path: Path) -> tuple[Path, ModelSidecar]:
    path = tmp_path / "models" / "cleaner.onnx"
    path.parent.mkdir()
    return path, write_affine_depth_model(path, height=4, width=6)


# -- keys ---------------------------------------------------------------------------------------------------------


def test_key_file_name_is_readable_safe_and_stable() -> None:
    name = key().file_name("depth cleaner")
    assert name == key().file_name("depth cleaner")
    assert name.startswith("depth-cleaner-" + SHA_A[:16] + "-nvidia-geforce-rtx-4090-trt10-3-0-fp16-")
    assert name.endswith(".engine") and "/" not in name and " " not in name


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": SHA_B},
        {"gpu_name": "NVIDIA A100-SXM4-40GB"},
        {"trt_version": "10.4.0"},
        {"precision": "fp32"},
        {"input_shapes": {"depth": (1, 1, 240, 320)}},
    ],
)
def test_every_key_field_changes_the_file_name(change: dict[str, object]) -> None:
    assert key(**change).file_name() != key().file_name()


def test_same_prefix_different_hash_tail_still_differs() -> None:
    # Same first 16 hex digits: the full-key digest keeps the names apart.
    assert key(onnx_sha256=SHA_A[:16] + "c" * 48).file_name() != key().file_name()


def test_input_shape_order_does_not_matter() -> None:
    a = key(input_shapes={"x": (1, 2), "y": (3,)})
    b = key(input_shapes={"y": (3,), "x": (1, 2)})
    assert a == b and a.file_name() == b.file_name()


@pytest.mark.parametrize(
    "change", [{"onnx_sha256": "xyz"}, {"precision": "int4"}, {"gpu_name": ""}, {"trt_version": ""}]
)
def test_invalid_keys_are_rejected(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        key(**change)


def test_default_cache_dir_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "dcl_arc_ros" / "engines"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "engines"))
    assert default_cache_dir() == tmp_path / "engines"


# -- cache hits and misses ----------------------------------------------------------------------------------------


def test_miss_builds_then_hit_never_rebuilds(tmp_path: Path, onnx_model: tuple[Path, ModelSidecar]) -> None:
    onnx_path, sidecar = onnx_model
    cache = tmp_path / "cache"
    builder = RecordingBuilder()
    k = key(onnx_sha256=sha256_file(onnx_path), input_shapes=static_input_shapes(sidecar))
    first = cached_engine(onnx_path, sidecar, k, build=builder, cache_dir=cache, workspace_bytes=1 << 20)
    assert builder.calls == [(onnx_path, True, 1 << 20, {"depth": (1, 1, 4, 6)})]
    assert first.parent == cache and first.name == k.file_name("cleaner")
    engine_sidecar = read_sidecar(sidecar_path_for(first))
    assert engine_sidecar.model_sha256 == sha256_file(first)
    assert engine_sidecar.extra["engine"] == k.to_dict()
    assert engine_sidecar.inputs == sidecar.inputs and engine_sidecar.outputs == sidecar.outputs
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, sidecar_path_for(first).name])
    mtime = first.stat().st_mtime_ns
    for _ in range(3):
        assert cached_engine(onnx_path, sidecar, k, build=builder, cache_dir=cache) == first
    assert len(builder.calls) == 1
    assert first.stat().st_mtime_ns == mtime


def test_other_key_is_a_separate_entry(tmp_path: Path, onnx_model: tuple[Path, ModelSidecar]) -> None:
    onnx_path, sidecar = onnx_model
    builder = RecordingBuilder()
    fp16 = cached_engine(onnx_path, sidecar, key(), build=builder, cache_dir=tmp_path)
    fp32 = cached_engine(onnx_path, sidecar, key(precision="fp32"), build=builder, cache_dir=tmp_path)
    assert fp16 != fp32 and [c[1] for c in builder.calls] == [True, False]
    assert fp16.read_bytes().endswith(b"fp16") and fp32.read_bytes().endswith(b"fp32")


@pytest.mark.parametrize("damage", ["truncate_engine", "delete_sidecar", "corrupt_sidecar", "other_key"])
def test_invalid_entries_are_rebuilt(tmp_path: Path, onnx_model: tuple[Path, ModelSidecar], damage: str) -> None:
    onnx_path, sidecar = onnx_model
    builder = RecordingBuilder()
    engine = cached_engine(onnx_path, sidecar, key(), build=builder, cache_dir=tmp_path)
    side = sidecar_path_for(engine)
    if damage == "truncate_engine":
        engine.write_bytes(engine.read_bytes()[:5])
    elif damage == "delete_sidecar":
        side.unlink()
    elif damage == "corrupt_sidecar":
        side.write_text("{", encoding="utf-8")
    else:
        data = json.loads(side.read_text(encoding="utf-8"))
        data["extra"]["engine"]["trt_version"] = "9.0"
        side.write_text(json.dumps(data), encoding="utf-8")
    assert not is_valid_entry(engine, key())
    assert cached_engine(onnx_path, sidecar, key(), build=builder, cache_dir=tmp_path) == engine
    assert len(builder.calls) == 2
    assert is_valid_entry(engine, key())


def test_failed_build_leaves_nothing(tmp_path: Path, onnx_model: tuple[Path, ModelSidecar]) -> None:
    onnx_path, sidecar = onnx_model
    with pytest.raises(EngineBuildError, match=r"cleaner\.onnx: simulated"):
        cached_engine(onnx_path, sidecar, key(), build=RecordingBuilder(fail=True), cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []


def test_empty_build_output_is_an_error(tmp_path: Path, onnx_model: tuple[Path, ModelSidecar]) -> None:
    onnx_path, sidecar = onnx_model

    def empty_builder(onnx_path: Path, engine_path: Path, **_: object) -> None:
        engine_path.write_bytes(b"")

    with pytest.raises(EngineBuildError, match="empty"):
        cached_engine(onnx_path, sidecar, key(), build=empty_builder, cache_dir=tmp_path / "c")
    assert list((tmp_path / "c").iterdir()) == []


def test_onnx_engine_key_follows_the_onnx_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, onnx_model: tuple[Path, ModelSidecar]
) -> None:
    """The loader's key derivation: the GPU name and TensorRT version are the only stand-ins (no GPU here)."""
    from dcl_arc_ros.inference import tensorrt_backend

    monkeypatch.setattr(tensorrt_backend, "gpu_name", lambda index=0: f"Test GPU {index}")
    monkeypatch.setattr(tensorrt_backend, "tensorrt_version", lambda: "10.9.0")
    onnx_path, sidecar = onnx_model
    builder = RecordingBuilder()
    engine_for = tensorrt_backend.cached_engine_for_onnx
    first = engine_for(onnx_path, sidecar, device="cuda:1", cache_dir=tmp_path, build=builder)
    again = engine_for(onnx_path, sidecar, device="cuda:1", cache_dir=tmp_path, build=builder)
    assert first == again and len(builder.calls) == 1
    assert read_sidecar(sidecar_path_for(first)).extra["engine"] == {
        "onnx_sha256": sha256_file(onnx_path),
        "gpu_name": "Test GPU 1",
        "trt_version": "10.9.0",
        "precision": "fp16",
        "input_shapes": {"depth": [1, 1, 4, 6]},
    }
    new_sidecar = write_affine_depth_model(onnx_path, scale=3.0, height=4, width=6)  # new weights, same name
    rebuilt = engine_for(onnx_path, new_sidecar, cache_dir=tmp_path, build=builder)
    assert rebuilt != first and len(builder.calls) == 2


# -- sidecar validation and device parsing ------------------------------------------------------------------------


def test_engine_signature_is_checked_against_the_sidecar(onnx_model: tuple[Path, ModelSidecar]) -> None:
    _, sidecar = onnx_model
    good_in = [TensorSignature("depth", (1, 1, 4, 6), "float32")]
    good_out = [TensorSignature("depth_out", (1, 1, 4, 6), "float32")]
    check_signature(sidecar, good_in, good_out, "m.engine")
    with pytest.raises(ModelLoadError, match=r"m.engine: .*input 'depth': sidecar dtype float32, model dtype float16"):
        check_signature(sidecar, [TensorSignature("depth", (1, 1, 4, 6), "float16")], good_out, "m.engine")
    with pytest.raises(ModelLoadError, match=r"output names differ"):
        check_signature(sidecar, good_in, [TensorSignature("out", (1, 1, 4, 6), "float32")], "m.engine")


def test_static_profile_from_sidecar(onnx_model: tuple[Path, ModelSidecar]) -> None:
    import dataclasses

    _, sidecar = onnx_model
    dynamic = dataclasses.replace(sidecar.inputs[0], shape=(-1, 1, -1, -1))
    assert static_input_shapes(dataclasses.replace(sidecar, inputs=(dynamic,))) == {"depth": (1, 1, 4, 6)}


def test_parse_device() -> None:
    assert parse_device("cuda") == 0 and parse_device("cuda:2") == 2
    with pytest.raises(ValueError, match=r"'cpu'.*onnxruntime"):
        parse_device("cpu")


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
        from cuda.bindings import runtime as cudart
    except ImportError:
        return False
    err, count = cudart.cudaGetDeviceCount()
    return int(err) == 0 and count > 0


def test_load_without_tensorrt_is_a_clear_load_error(onnx_model: tuple[Path, ModelSidecar]) -> None:
    if tensorrt_available():
        pytest.skip("TensorRT and a GPU are present: the missing-dependency error cannot be observed")
    onnx_path, _ = onnx_model
    with pytest.raises(ModelLoadError, match=r"cleaner.onnx: .*needs an NVIDIA GPU"):
        load_model(onnx_path, backend="tensorrt", device="cuda")


# -- on a GPU -----------------------------------------------------------------------------------------------------

needs_gpu = pytest.mark.skipif(not tensorrt_available(), reason="needs an NVIDIA GPU")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fp16", [False, True])
def test_build_and_run_engine_on_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fp16: bool) -> None:
    onnx_path = tmp_path / "affine.onnx"
    write_affine_depth_model(onnx_path, scale=2.0, offset=0.5, height=16, width=24)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "engines"))
    model = load_model(onnx_path, backend="tensorrt", device="cuda", fp16=fp16)
    depth = np.random.default_rng(0).uniform(0.3, 3.0, (1, 1, 16, 24)).astype(np.float32)
    out = model.run({"depth": depth})["depth_out"]
    np.testing.assert_allclose(out, depth * 2.0 + 0.5, rtol=2e-3 if fp16 else 1e-5, atol=1e-3 if fp16 else 1e-6)
    engines = list((tmp_path / "engines").glob("*.engine"))
    assert len(engines) == 1
    mtime = engines[0].stat().st_mtime_ns
    load_model(onnx_path, backend="tensorrt", device="cuda", fp16=fp16)  # cache hit: no rebuild
    assert os.stat(engines[0]).st_mtime_ns == mtime
    # The cached engine also loads directly as a plain .engine with its sidecar.
    direct = load_model(engines[0], backend="tensorrt", device="cuda")
    np.testing.assert_allclose(direct.run({"depth": depth})["depth_out"], out)
