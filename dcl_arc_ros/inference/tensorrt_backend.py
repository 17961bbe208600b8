"""TensorRT backend: load a serialized engine, or build one from ONNX through the engine cache.

Everything GPU-specific (``tensorrt``, ``cuda-python``) is imported lazily, inside the functions that need it, so
this module imports on machines without a GPU; loading a model there fails with a :class:`ModelLoadError` that says
what is missing. Written against the TensorRT 10 Python API (named I/O tensors, ``execute_async_v3``).
TensorRT 11 removed the FP16 builder flag (weak typing): with it, build with ``fp16=False`` from an ONNX file whose
precision is already in the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from dcl_arc_ros.core.sidecar import ModelSidecar, sha256_file
from dcl_arc_ros.inference.engine_cache import (
    DEFAULT_WORKSPACE_BYTES,
    ENGINE_SUFFIX,
    EngineBuilder,
    EngineCacheKey,
    cached_engine,
)
from dcl_arc_ros.inference.errors import EngineBuildError, InferenceRunError, ModelLoadError
from dcl_arc_ros.inference.options import options_from_mapping
from dcl_arc_ros.inference.signature import TensorSignature, check_signature, prepare_inputs

_LOG = logging.getLogger(__name__)

GPU_HINT: Final = "the tensorrt backend needs an NVIDIA GPU with the 'tensorrt' and 'cuda-python' packages"


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise ImportError(f"{GPU_HINT} (pip install '.[gpu]'): cannot import tensorrt: {exc}") from exc
    return tensorrt


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise ImportError(f"{GPU_HINT} (pip install cuda-python): cannot import cuda runtime: {exc}") from exc
    return cudart


def _cuda_check(result: Any, what: str) -> Any:
    """cuda-python returns ``(error, value...)`` tuples; raise on an error code, return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA call {what} failed with error {err}")
    return values[0] if len(values) == 1 else tuple(values)


def parse_device(device: str) -> int:
    """``"cuda"``/``"tensorrt"`` -> 0, ``"cuda:N"`` -> N. Anything else (e.g. ``"cpu"``) is a :class:`ValueError`."""
    if device in ("cuda", "tensorrt", "gpu"):
        return 0
    if device.startswith("cuda:") and device[5:].isdigit():
        return int(device[5:])
    raise ValueError(
        f"the tensorrt backend runs on a GPU: device must be 'cuda' or 'cuda:N', got {device!r}"
        " (use backend='onnxruntime' for the CPU)"
    )


def tensorrt_version() -> str:
    return str(_import_tensorrt().__version__)


def gpu_name(device_index: int = 0) -> str:
    """The CUDA device's name, e.g. ``"NVIDIA GeForce RTX 4090"``."""
    cudart = _import_cudart()
    props = _cuda_check(cudart.cudaGetDeviceProperties(device_index), "cudaGetDeviceProperties")
    name = props.name
    return (name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()


def static_input_shapes(sidecar: ModelSidecar) -> dict[str, tuple[int, ...]]:
    """The static shape profile implied by the sidecar: dynamic spatial dims take the deploy resolution (H, W),
    other dynamic dims 1."""
    height, width = sidecar.deploy_resolution
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in sidecar.inputs:
        dims = list(spec.shape)
        rank = len(dims)
        for i, dim in enumerate(dims):
            if dim == -1:
                dims[i] = height if rank >= 2 and i == rank - 2 else width if rank >= 2 and i == rank - 1 else 1
        shapes[spec.name] = tuple(dims)
    return shapes


def onnx_to_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    fp16: bool = True,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> Path:
    """Build a serialized TensorRT engine from ONNX with a static-shape profile; write it as a plain file.

    ``input_shapes`` fixes each input's shape (min = opt = max); inputs not listed must be static in the ONNX.
    Raises :class:`EngineBuildError` naming the ONNX file with the parser/builder messages.
    """
    trt = _import_tensorrt()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"{onnx_path}: TensorRT cannot parse the ONNX model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise EngineBuildError(
                f"{onnx_path}: TensorRT {trt.__version__} has no FP16 builder flag (strongly typed only): build with"
                " fp16=False from an ONNX model that already carries FP16 types"
            )
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    shapes = dict(input_shapes or {})
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        shape = tuple(shapes.pop(tensor.name, tuple(tensor.shape)))
        if any(dim < 1 for dim in shape):
            raise EngineBuildError(f"{onnx_path}: input {tensor.name!r} has dynamic shape {shape}: pass input_shapes")
        profile.set_shape(tensor.name, shape, shape, shape)
    if shapes:
        raise EngineBuildError(f"{onnx_path}: input_shapes names {sorted(shapes)} that the network does not have")
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT log above)")
    engine_path.write_bytes(bytes(serialized))
    return engine_path


def _engine_io(engine: Any, trt: Any) -> tuple[list[TensorSignature], list[TensorSignature]]:
    inputs: list[TensorSignature] = []
    outputs: list[TensorSignature] = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        sig = TensorSignature(
            name=name,
            shape=tuple(int(d) for d in engine.get_tensor_shape(name)),
            dtype=np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name,
        )
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(sig)
    return inputs, outputs


class TensorRTModel:
    """A deserialized engine with preallocated device buffers and one CUDA stream."""

    def __init__(self, path: Path, sidecar: ModelSidecar, engine: Any, device_index: int) -> None:
        self.path = path
        self.sidecar = sidecar
        self._cudart = _import_cudart()
        trt = _import_tensorrt()
        _cuda_check(self._cudart.cudaSetDevice(device_index), "cudaSetDevice")
        self.provider = f"TensorRT {trt.__version__} on {gpu_name(device_index)}"
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = _cuda_check(self._cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._input_shapes = static_input_shapes(sidecar)
        self._device: dict[str, tuple[int, int]] = {}
        self._host_out: dict[str, np.ndarray] = {}
        for name, shape in self._input_shapes.items():
            self._context.set_input_shape(name, shape)
        for spec in (*sidecar.inputs, *sidecar.outputs):
            shape = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            nbytes = int(np.prod(shape)) * np.dtype(spec.dtype).itemsize
            pointer = int(_cuda_check(self._cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self._device[spec.name] = (pointer, nbytes)
            self._context.set_tensor_address(spec.name, pointer)
            if spec in sidecar.outputs:
                self._host_out[spec.name] = np.empty(shape, dtype=spec.dtype)

    def _copy(self, dst: int, src: int, nbytes: int, kind: Any) -> None:
        _cuda_check(self._cudart.cudaMemcpyAsync(dst, src, nbytes, kind, self._stream), "cudaMemcpyAsync")

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = prepare_inputs(inputs, self.sidecar.inputs, self.path)
        kinds = self._cudart.cudaMemcpyKind
        for name, array in feed.items():
            if array.shape != self._input_shapes[name]:
                raise InferenceRunError(
                    f"{self.path}: input {name!r} has shape {list(array.shape)}; this engine's static profile is"
                    f" {list(self._input_shapes[name])}"
                )
            pointer, nbytes = self._device[name]
            self._copy(pointer, array.ctypes.data, nbytes, kinds.cudaMemcpyHostToDevice)
        if not self._context.execute_async_v3(int(self._stream)):
            raise InferenceRunError(f"{self.path}: TensorRT execute_async_v3 failed (see the TensorRT log)")
        for name, host in self._host_out.items():
            pointer, nbytes = self._device[name]
            self._copy(host.ctypes.data, pointer, nbytes, kinds.cudaMemcpyDeviceToHost)
        _cuda_check(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return {name: host.copy() for name, host in self._host_out.items()}

    def close(self) -> None:
        for pointer, _ in self._device.values():
            self._cudart.cudaFree(pointer)
        self._device.clear()
        self._cudart.cudaStreamDestroy(self._stream)

    def __repr__(self) -> str:
        return f"TensorRTModel({str(self.path)!r}, provider={self.provider!r})"


def cached_engine_for_onnx(
    onnx_path: str | Path,
    sidecar: ModelSidecar,
    *,
    device: str = "cuda",
    fp16: bool = True,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    cache_dir: str | Path | None = None,
    build: EngineBuilder = onnx_to_engine,
) -> Path:
    """The engine for an ONNX model on this GPU and TensorRT version: cached, or built once now.

    The key is the ONNX file's sha256, the GPU name, the TensorRT version, the precision and the static input
    shapes implied by ``sidecar``. Needs TensorRT and a GPU (for the GPU name and version).
    """
    onnx_path = Path(onnx_path)
    key = EngineCacheKey.create(
        onnx_sha256=sha256_file(onnx_path),
        gpu_name=gpu_name(parse_device(device)),
        trt_version=tensorrt_version(),
        precision="fp16" if fp16 else "fp32",
        input_shapes=static_input_shapes(sidecar),
    )
    return cached_engine(onnx_path, sidecar, key, build=build, cache_dir=cache_dir, workspace_bytes=workspace_bytes)


@dataclass(frozen=True)
class TensorRTOptions:
    """Backend options accepted by :func:`load_tensorrt_model` (``load_model(..., **options)``).

    ``fp16``, ``workspace_bytes``: engine build settings for an ``.onnx`` input. ``cache_dir``: the engine cache
    (default :func:`~dcl_arc_ros.inference.engine_cache.default_cache_dir`). ``build``: the engine builder
    (tests inject one; default :func:`onnx_to_engine`).
    """

    fp16: bool = True
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES
    cache_dir: str | Path | None = None
    build: EngineBuilder = onnx_to_engine

    @classmethod
    def from_options(cls, options: Mapping[str, Any], model_path: Path) -> TensorRTOptions:
        return options_from_mapping(cls, options, model_path, "tensorrt")


def load_tensorrt_model(
    model_path: Path, sidecar: ModelSidecar, *, device: str = "cuda", **options: Any
) -> TensorRTModel:
    """Load a ``.engine`` (checked against its sidecar), or build/reuse a cached engine for a ``.onnx``.

    ``device``: ``"cuda"`` or ``"cuda:N"``; ``options``: the fields of :class:`TensorRTOptions`.
    """
    opts = TensorRTOptions.from_options(options, model_path)
    try:
        device_index = parse_device(device)
        trt = _import_tensorrt()
        _import_cudart()
    except (ValueError, ImportError) as exc:
        raise ModelLoadError(f"{model_path}: {exc}") from exc
    try:
        engine_path = (
            model_path
            if model_path.suffix == ENGINE_SUFFIX
            else cached_engine_for_onnx(
                model_path,
                sidecar,
                device=device,
                fp16=opts.fp16,
                workspace_bytes=opts.workspace_bytes,
                cache_dir=opts.cache_dir,
                build=opts.build,
            )
        )
    except EngineBuildError as exc:
        raise ModelLoadError(f"{model_path}: {exc}") from exc
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise ModelLoadError(
            f"{engine_path}: TensorRT {trt.__version__} cannot deserialize this engine (corrupt, or built for"
            " another GPU / TensorRT version)"
        )
    inputs, outputs = _engine_io(engine, trt)
    check_signature(sidecar, inputs, outputs, engine_path)
    return TensorRTModel(engine_path, sidecar, engine, device_index)


__all__ = [
    "TensorRTModel",
    "TensorRTOptions",
    "cached_engine_for_onnx",
    "gpu_name",
    "load_tensorrt_model",
    "onnx_to_engine",
    "parse_device",
    "static_input_shapes",
    "tensorrt_version",
]
