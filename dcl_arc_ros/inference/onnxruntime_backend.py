"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers, chosen by ``device``.

When a requested GPU provider is not available, the session falls back along the device's provider chain and a
LOUD warning names the provider that was asked for and the one actually used (``model.provider``). Fallback is
never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from dcl_arc_ros.core.sidecar import ModelSidecar
from dcl_arc_ros.inference.errors import InferenceRunError, ModelLoadError
from dcl_arc_ros.inference.options import options_from_mapping
from dcl_arc_ros.inference.signature import TensorSignature, check_signature, prepare_inputs

_LOG = logging.getLogger(__name__)

#: ``device`` -> execution providers in order of preference (the first is the one asked for).
DEVICE_PROVIDERS: Final[dict[str, tuple[str, ...]]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}

#: Session config entries that let idle intra-/inter-op pool threads spin ("1", ONNX Runtime's default) or sleep.
SPINNING_CONFIG_KEYS: Final[tuple[str, ...]] = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")

#: ONNX tensor element types as ONNX Runtime names them -> numpy dtype names used in sidecars.
_ORT_DTYPES: Final[dict[str, str]] = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def choose_providers(device: str, available: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The providers to request for ``device``, keeping only those this ONNX Runtime build has.

    Logs a loud warning when the preferred provider is missing. Raises :class:`ValueError` for an unknown device.
    """
    chain = DEVICE_PROVIDERS.get(device)
    if chain is None:
        known = list(DEVICE_PROVIDERS)
        raise ValueError(f"unknown device {device!r} for the onnxruntime backend; expected one of {known}")
    chosen = tuple(p for p in chain if p in available)
    if not chosen:  # CPUExecutionProvider is always compiled in, but do not rely on it
        chosen = tuple(available)
    if chosen[0] != chain[0]:
        _warn_fallback(device, chain[0], chosen[0], f"this onnxruntime build only has {list(available)}")
    return chosen


def _warn_fallback(device: str, requested: str, used: str, why: str) -> None:
    _LOG.warning(
        "!!! onnxruntime device=%r asked for %s but it is NOT available (%s): running on %s instead. "
        "Expect much slower inference. Install onnxruntime-gpu with matching CUDA/TensorRT libraries to use the GPU.",
        device,
        requested,
        why,
        used,
    )


def _signature(args: list[Any]) -> list[TensorSignature]:
    sigs = []
    for arg in args:
        shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or ()))
        sigs.append(TensorSignature(name=arg.name, shape=shape, dtype=_ORT_DTYPES.get(arg.type, arg.type)))
    return sigs


class OnnxRuntimeModel:
    """A model running in one ``onnxruntime.InferenceSession``."""

    def __init__(self, path: Path, sidecar: ModelSidecar, session: Any) -> None:
        self.path = path
        self.sidecar = sidecar
        self._session = session
        self.provider: str = session.get_providers()[0]
        self._output_names = [spec.name for spec in sidecar.outputs]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = prepare_inputs(inputs, self.sidecar.inputs, self.path)
        try:
            results = self._session.run(self._output_names, feed)
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
            raise InferenceRunError(f"{self.path}: onnxruntime failed: {exc}") from exc
        return dict(zip(self._output_names, results, strict=True))

    def run_into(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`run`, with the named ``outputs`` written straight into the caller's arrays (no copy afterwards).

        Each array in ``outputs`` must be C-contiguous, writable, of the output's declared dtype and hold exactly the
        output's elements (any shape with that size, e.g. (H, W) for a (1, 1, H, W) output); the other outputs are
        allocated as :meth:`run` does. A per-frame pipeline uses it to let the model write into the outgoing
        message's buffer. Returns the same dict as :meth:`run`, with the given arrays for the bound outputs.
        """
        feed = prepare_inputs(inputs, self.sidecar.inputs, self.path)
        unknown = [name for name in outputs if name not in self._output_names]
        if unknown:
            raise InferenceRunError(f"{self.path}: no output named {unknown}; outputs are {self._output_names}")
        binding = self._session.io_binding()
        for name, value in feed.items():
            binding.bind_cpu_input(name, value)
        specs = {spec.name: spec for spec in self.sidecar.outputs}
        for name in self._output_names:
            target = outputs.get(name)
            if target is None:
                binding.bind_output(name, "cpu")
                continue
            spec = specs[name]
            dims = [int(d) for d in spec.shape]
            if any(d < 1 for d in dims) or int(np.prod(dims)) != target.size:
                raise InferenceRunError(
                    f"{self.path}: output {name!r} of shape {list(spec.shape)} cannot be written into an array of"
                    f" shape {list(target.shape)}"
                )
            if target.dtype != np.dtype(spec.dtype) or not target.flags.c_contiguous or not target.flags.writeable:
                raise InferenceRunError(
                    f"{self.path}: output {name!r} needs a writable C-contiguous {spec.dtype} array, got"
                    f" {target.dtype} (contiguous {target.flags.c_contiguous}, writable {target.flags.writeable})"
                )
            binding.bind_output(name, "cpu", 0, target.dtype, dims, target.ctypes.data)
        try:
            self._session.run_with_iobinding(binding)
            produced = binding.get_outputs()  # OrtValues; only the unbound ones are copied out below
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
            raise InferenceRunError(f"{self.path}: onnxruntime failed: {exc}") from exc
        return {
            name: outputs[name] if name in outputs else value.numpy()
            for name, value in zip(self._output_names, produced, strict=True)
        }

    def __repr__(self) -> str:
        return f"OnnxRuntimeModel({str(self.path)!r}, provider={self.provider!r})"


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """Backend options accepted by :func:`load_onnxruntime_model` (``load_model(..., **options)``).

    ``intra_op_num_threads`` / ``inter_op_num_threads``: ONNX Runtime thread pools (``None`` = its default).
    ``allow_spinning``: whether idle pool threads busy-wait for the next piece of work (ONNX Runtime's default).
    Off by default here: a perception node runs one inference per camera frame, and between frames spinning
    threads burn CPU that the camera driver, the DDS threads and the node's own conversions need (with more than
    one thread it cost ~12 ms of CPU per 30 Hz frame on the identity model). Turn it on for back-to-back batch runs.
    ``trt_fp16`` and ``trt_engine_cache_dir`` configure the TensorRT execution provider (the cache dir defaults to
    the engine cache of :mod:`dcl_arc_ros.inference.engine_cache`).
    """

    intra_op_num_threads: int | None = None
    inter_op_num_threads: int | None = None
    allow_spinning: bool = False
    trt_fp16: bool = True
    trt_engine_cache_dir: str | Path | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], model_path: Path) -> OnnxRuntimeOptions:
        return options_from_mapping(cls, options, model_path, "onnxruntime")


def load_onnxruntime_model(
    model_path: Path, sidecar: ModelSidecar, *, device: str = "cpu", **options: Any
) -> OnnxRuntimeModel:
    """Open an ONNX file in ONNX Runtime and check it against its sidecar.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"tensorrt"`` (see :data:`DEVICE_PROVIDERS`); ``options``: the fields
    of :class:`OnnxRuntimeOptions`.
    """
    opts = OnnxRuntimeOptions.from_options(options, model_path)
    import onnxruntime as ort

    try:
        providers = choose_providers(device, ort.get_available_providers())
    except ValueError as exc:
        raise ModelLoadError(f"{model_path}: {exc}") from exc
    session_options = ort.SessionOptions()
    if opts.intra_op_num_threads is not None:
        session_options.intra_op_num_threads = int(opts.intra_op_num_threads)
    if opts.inter_op_num_threads is not None:
        session_options.inter_op_num_threads = int(opts.inter_op_num_threads)
    spinning = "1" if opts.allow_spinning else "0"
    for key in SPINNING_CONFIG_KEYS:
        session_options.add_session_config_entry(key, spinning)
    provider_args: list[Any] = []
    for provider in providers:
        if provider == "TensorrtExecutionProvider":
            from dcl_arc_ros.inference.engine_cache import default_cache_dir

            configured = opts.trt_engine_cache_dir
            cache_dir = Path(configured).expanduser() if configured is not None else default_cache_dir()
            cache_dir.mkdir(parents=True, exist_ok=True)
            provider_args.append(
                (
                    provider,
                    {
                        "trt_fp16_enable": bool(opts.trt_fp16),
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(cache_dir),
                    },
                )
            )
        else:
            provider_args.append(provider)
    try:
        session = ort.InferenceSession(str(model_path), sess_options=session_options, providers=provider_args)
    except Exception as exc:  # InvalidProtobuf, Fail, NoSuchFile, ... are not importable types
        raise ModelLoadError(f"{model_path}: onnxruntime cannot load the model: {exc}") from exc
    used = session.get_providers()[0]
    if used != providers[0]:
        _warn_fallback(device, providers[0], used, "its libraries failed to load or it rejected this model")
    check_signature(sidecar, _signature(session.get_inputs()), _signature(session.get_outputs()), model_path)
    return OnnxRuntimeModel(model_path, sidecar, session)
