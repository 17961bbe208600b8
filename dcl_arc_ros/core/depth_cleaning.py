"""The per-frame depth-to-depth pipeline behind the ``depth_cleaner`` node (cleaner and DCL synthesis models).

Everything it needs to know about the network comes from the model's sidecar: the deploy resolution, which input
is depth and which (optional) input is a validity mask, and the normalisation. The model is anything with a
``sidecar`` and a ``run`` method (:class:`DepthModel`; ``dcl_arc_ros.inference.backends.Model`` is one): this module
does not import the inference layer.

Per frame (``__call__``), for a depth image in metres of any size:

1. sanitise: NaN for NaN, inf and <= 0;
2. build the validity-mask input (1 = valid) when the sidecar declares an input with semantic ``valid_mask``: it
   marks the pixels the sensor measured (before hole filling), resized with INTER_NEAREST;
3. resize to the deploy resolution. Shrinking averages valid pixels only (INTER_AREA weighted by validity, see
   :func:`dcl_arc_ros.core.depth.downscale_valid_mean`); growing is INTER_LINEAR after filling, or INTER_NEAREST
   when holes are kept, so that holes stay holes instead of smearing NaN;
4. optionally fill the remaining holes with the nearest valid value (:func:`dcl_arc_ros.core.depth.fill_nan_holes`),
   at the smaller of the two resolutions, which is where it is cheapest;
5. normalise (``range``: [min_m, max_m] -> [-1, 1], holes -> -1; ``metres``: unchanged, holes -> 0);
6. run, denormalise, resize back to the input size (INTER_LINEAR);
7. NaN wherever the result is non-finite or outside (min_m, max_m];
8. with ``max_fill_px`` > 0, NaN wherever the nearest measured input pixel is farther than that: a cleaner that
   fills every hole also paints a made-up surface over regions the sensor never saw (a stereo camera's blind band,
   the sky), and REP 118 consumers should see those as unknown.

At the deploy resolution (the usual case: a cleaner's ONNX input is the camera resolution, and a deploy-sized
network downsamples inside the graph), steps 1, 4 and 5 are fused: validity is a boolean mask, holes take their
nearest-fill value (computed on a subsampled grid) directly in the input buffer, measured pixels are copied over
it, and the normalisation writes the network tensor. No full-resolution NaN image is built on the way in; on the
way out, the denormalised result is written once into the returned array and checked in place.

Raw output (``raw_output=True`` or :meth:`DepthCleaningPipeline.raw`) is for DCL generators, whose output is
realistic noisy depth WITH holes: values <= min_m are holes (NaN), there is no upper clip, and the resize back
uses INTER_NEAREST so hole edges stay sharp and no value is invented by interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import cv2
import numpy as np

from dcl_arc_ros.core import depth as depth_ops
from dcl_arc_ros.core.errors import DepthError, PipelineError
from dcl_arc_ros.core.sidecar import ModelSidecar, TensorSpec

DEPTH_SEMANTIC: Final = "depth"
MASK_SEMANTIC: Final = "valid_mask"
TASK: Final = "depth_to_depth"
#: Hole filling labels at most this many pixels per frame (a 160x120 grid): ~1 ms, and holes take a measured value
#: within a couple of grid steps of their nearest valid pixel. Pass ``fill_grid_pixels`` for an exact fill.
FILL_GRID_PIXELS: Final = 160 * 120


class DepthModel(Protocol):
    """What the pipeline needs from a model (``inference.backends.Model`` satisfies it)."""

    sidecar: ModelSidecar

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class DepthNormalisation:
    """How metres map to network values. ``range``: [min_m, max_m] <-> [-1, 1]; ``metres``: identity.

    ``min_m``/``max_m`` also bound the valid output: a result is valid when ``min_m < value <= max_m``.
    """

    kind: str
    min_m: float = 0.0
    max_m: float = math.inf

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any] | None, where: str) -> DepthNormalisation:
        if entry is None:
            raise PipelineError(f"{where}: the sidecar has no normalisation entry for it")
        kind = entry.get("kind")
        if kind == "range":
            return cls("range", float(entry["min_m"]), float(entry["max_m"]))
        if kind == "metres":
            return cls("metres", float(entry.get("min_m", 0.0)), float(entry.get("max_m", math.inf)))
        raise PipelineError(f"{where}: normalisation kind {kind!r} is not a depth normalisation ('range' or 'metres')")

    @property
    def hole_value(self) -> float:
        """What an unknown pixel is fed as: the bottom of the range (-1), or 0 m."""
        return -1.0 if self.kind == "range" else 0.0

    def encode(self, depth_m: np.ndarray, out: np.ndarray, *, may_have_holes: bool = True) -> np.ndarray:
        """Metres -> network values into ``out``; NaN becomes the hole value (skipped when the caller knows there is
        no NaN: a full pass saved)."""
        if self.kind == "range":
            depth_ops.normalise_range(depth_m, self.min_m, self.max_m, out=out)
        elif out is not depth_m:  # metres in place: nothing to do (a full-frame self-copy saved)
            np.copyto(out, depth_m, casting="unsafe")
        if may_have_holes:
            cv2.patchNaNs(out, self.hole_value)
        return out

    def decode(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Network values -> float32 metres, into ``out`` when given (else possibly ``values`` itself)."""
        if self.kind == "range":
            return depth_ops.denormalise_range(values, self.min_m, self.max_m, out=out)
        if values.dtype == np.float32 and (out is None or out is values):
            return values  # metres already (in place, or the caller never writes into it)
        result = np.empty(values.shape, np.float32) if out is None else out
        np.copyto(result, values, casting="unsafe")
        return result


def _net_shape(spec: TensorSpec, hw: tuple[int, int], model_name: str) -> tuple[int, ...]:
    """The concrete tensor shape for one (H, W) image: leading dims 1, the last two the deploy resolution."""
    if len(spec.shape) < 2:
        raise PipelineError(f"model {model_name!r}: input {spec.name!r} shape {list(spec.shape)} has no (H, W)")
    leading = [1 if d == -1 else d for d in spec.shape[:-2]]
    if math.prod(leading) != 1:
        raise PipelineError(
            f"model {model_name!r}: input {spec.name!r} shape {list(spec.shape)} is not a single 1-channel image"
        )
    for declared, wanted in zip(spec.shape[-2:], hw, strict=True):
        if declared not in (-1, wanted):
            raise PipelineError(
                f"model {model_name!r}: input {spec.name!r} shape {list(spec.shape)} does not end with the deploy"
                f" resolution {list(hw)}"
            )
    return (*leading, *hw)


class DepthCleaningPipeline:
    """Depth (H, W) metres in -> float32 metres (H, W) out, NaN where unknown. See the module doc for the steps."""

    def __init__(
        self,
        model: DepthModel,
        *,
        fill_holes: bool = True,
        raw_output: bool = False,
        fill_grid_pixels: int = FILL_GRID_PIXELS,
        max_fill_px: float = 0.0,
    ) -> None:
        sidecar = model.sidecar
        name = sidecar.name
        if not (math.isfinite(max_fill_px) and max_fill_px >= 0):
            raise PipelineError(f"max_fill_px must be a finite number >= 0 (0 = fill every hole), got {max_fill_px!r}")
        if sidecar.task != TASK:
            raise PipelineError(f"model {name!r} has task {sidecar.task!r}; the depth pipeline needs {TASK!r}")
        depth_inputs = sidecar.inputs_with_semantic(DEPTH_SEMANTIC)
        mask_inputs = sidecar.inputs_with_semantic(MASK_SEMANTIC)
        others = [s.name for s in sidecar.inputs if s.semantic not in (DEPTH_SEMANTIC, MASK_SEMANTIC)]
        if len(depth_inputs) != 1 or len(mask_inputs) > 1 or others:
            raise PipelineError(
                f"model {name!r} must have one input with semantic {DEPTH_SEMANTIC!r} and at most one with"
                f" {MASK_SEMANTIC!r}; it declares {[(s.name, s.semantic) for s in sidecar.inputs]}"
            )
        outputs = sidecar.outputs_with_semantic(DEPTH_SEMANTIC) or (
            sidecar.outputs if len(sidecar.outputs) == 1 else ()
        )
        if not outputs:
            raise PipelineError(
                f"model {name!r} has no output with semantic {DEPTH_SEMANTIC!r}: {[s.name for s in sidecar.outputs]}"
            )
        self.model = model
        # A model trained on raw holes (sidecar extra "fills_holes", e.g. the shipped cleaner, which sees holes as the
        # bottom of its range) must get them raw: pre-filling them would feed it inputs it never saw in training.
        self.model_fills_holes = bool(sidecar.extra.get("fills_holes", False))
        self.fill_holes = bool(fill_holes) and not self.model_fills_holes
        self.raw_output = bool(raw_output)
        self.fill_grid_pixels = int(fill_grid_pixels)
        self.max_fill_px = float(max_fill_px)
        self.deploy_resolution: tuple[int, int] = sidecar.deploy_resolution
        self._depth_spec = depth_inputs[0]
        self._mask_spec = mask_inputs[0] if mask_inputs else None
        self._output_spec = outputs[0]
        self.input_normalisation = DepthNormalisation.from_entry(
            sidecar.normalisation_for(self._depth_spec), f"model {name!r} input {self._depth_spec.name!r}"
        )
        out_entry = sidecar.normalisation_for(self._output_spec)
        self.output_normalisation = (
            DepthNormalisation.from_entry(out_entry, f"model {name!r} output {self._output_spec.name!r}")
            if out_entry is not None
            else self.input_normalisation
        )
        height, width = self.deploy_resolution
        self._depth_tensor = np.empty(_net_shape(self._depth_spec, (height, width), name), np.float32)
        self._net_in = self._depth_tensor.reshape(height, width)
        self._mask_tensor = (
            np.empty(_net_shape(self._mask_spec, (height, width), name), np.dtype(self._mask_spec.dtype))
            if self._mask_spec is not None
            else None
        )
        # The (H, W) of a float32 output whose shape is fully declared as one image (else None): the shape a result
        # array must have for the model to write into it directly (``_infer``).
        dims = self._output_spec.shape
        declared = self._output_spec.dtype == "float32" and len(dims) >= 2 and all(d > 0 for d in dims)
        self._bindable_shape = (dims[-2], dims[-1]) if declared and math.prod(dims[:-2]) == 1 else None
        self._sanitised: np.ndarray | None = None
        self._resized = np.empty((height, width), np.float32)
        self._decoded = np.empty((height, width), np.float32)

    # -- steps --------------------------------------------------------------------------------------------------------

    def _prepare(self, depth_m: np.ndarray) -> None:
        depth = np.asarray(depth_m)
        if depth.ndim != 2 or depth.size == 0:
            raise DepthError(f"depth must be a non-empty (H, W) array, got shape {depth.shape}")
        if depth.shape == self.deploy_resolution:
            self._prepare_same_size(depth)
        else:
            self._prepare_resized(depth)

    def _prepare_same_size(self, depth: np.ndarray) -> None:
        """Deploy resolution in: sanitise, fill and normalise fused, straight into the network's input tensor.

        Invalid pixels are never written as NaN first: the validity mask picks measured values, and holes take
        the nearest-fill values (or the hole value) directly, which saves the full-resolution sanitised copy.
        """
        src = depth if depth.dtype == np.float32 and depth.dtype.isnative else depth.astype(np.float32)
        valid = depth_ops.valid_mask(src)
        all_valid = bool(valid.all())
        self._write_mask_input(valid)
        if all_valid:
            self.input_normalisation.encode(src, out=self._net_in, may_have_holes=False)
            return
        # The network tensor itself holds the metres first and is normalised in place: one buffer less per frame.
        if self.fill_holes:  # no NaN left afterwards unless there was no valid pixel at all
            depth_ops.fill_nearest_into(src, valid, self._net_in, max_grid_pixels=self.fill_grid_pixels)
            self.input_normalisation.encode(self._net_in, out=self._net_in, may_have_holes=not valid.any())
            return
        self._net_in.fill(np.nan)
        cv2.copyTo(src, valid.view(np.uint8), self._net_in)
        self.input_normalisation.encode(self._net_in, out=self._net_in)

    def _prepare_resized(self, depth: np.ndarray) -> None:
        height, width = self.deploy_resolution
        if self._sanitised is None or self._sanitised.shape != depth.shape:
            self._sanitised = np.empty(depth.shape, np.float32)
        sanitised, n_bad = depth_ops.sanitize_depth(depth, out=self._sanitised)
        if self._mask_tensor is not None:
            # The mask tells the network where the SENSOR had readings, so it comes from before hole filling.
            valid: np.ndarray = depth_ops.valid_mask(sanitised).view(np.uint8)
            self._write_mask_input(cv2.resize(valid, (width, height), interpolation=cv2.INTER_NEAREST).view(bool))
        if sanitised.size > height * width:  # shrinking: fill afterwards, on fewer pixels
            if n_bad:
                depth_ops.downscale_valid_mean(sanitised, (width, height), out=self._resized)
            else:
                cv2.resize(sanitised, (width, height), dst=self._resized, interpolation=cv2.INTER_AREA)
        else:  # growing: fill first, on fewer pixels, then interpolate (holes stay holes when not filling)
            if n_bad and self.fill_holes:
                depth_ops.fill_nan_holes(sanitised, "nearest", max_grid_pixels=self.fill_grid_pixels)
            interpolation = cv2.INTER_NEAREST if n_bad and not self.fill_holes else cv2.INTER_LINEAR
            cv2.resize(sanitised, (width, height), dst=self._resized, interpolation=interpolation)
        if self.fill_holes and n_bad:
            depth_ops.fill_nan_holes(self._resized, "nearest", max_grid_pixels=self.fill_grid_pixels)
        self.input_normalisation.encode(self._resized, out=self._net_in)

    def _write_mask_input(self, valid: np.ndarray) -> None:
        """The validity-mask input (1 = the sensor measured this pixel), when the model has one."""
        if self._mask_tensor is not None:
            np.copyto(self._mask_tensor.reshape(self.deploy_resolution), valid, casting="unsafe")

    def _infer(self, result: np.ndarray) -> np.ndarray:
        """Run the model; its output plane (H, W). When the model can write into a given array (``run_into``, e.g.
        the ONNX Runtime backend) and its output has the result's size and dtype, it writes straight into
        ``result``, and the plane returned IS ``result``: the copy out of the model's own buffer is saved."""
        inputs = {self._depth_spec.name: self._depth_tensor}
        if self._mask_spec is not None and self._mask_tensor is not None:
            inputs[self._mask_spec.name] = self._mask_tensor
        run_into = getattr(self.model, "run_into", None)
        if run_into is not None and self._bindable_shape == result.shape:
            run_into(inputs, {self._output_spec.name: result})
            return result
        results = self.model.run(inputs)
        if self._output_spec.name not in results:
            raise PipelineError(
                f"model {self.model.sidecar.name!r} returned {sorted(results)}, not {self._output_spec.name!r}"
            )
        out = np.asarray(results[self._output_spec.name])
        if out.ndim < 2 or math.prod(out.shape[:-2]) != 1:
            raise PipelineError(
                f"model {self.model.sidecar.name!r} output {self._output_spec.name!r} has shape {list(out.shape)};"
                " expected a single (H, W) image"
            )
        return out.reshape(out.shape[-2:])

    @staticmethod
    def _result_array(out: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
        """A new float32 result array, or ``out`` once checked."""
        if out is None:
            return np.empty(shape, np.float32)
        if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous or not out.flags.writeable:
            raise DepthError(
                f"out must be a writable C-contiguous float32 array of shape {shape}, got {out.dtype} {out.shape}"
            )
        return out

    def _finish(self, plane: np.ndarray, shape: tuple[int, int], raw: bool, result: np.ndarray) -> np.ndarray:
        norm = self.output_normalisation
        if plane.shape == shape:  # decode straight into (or, when the model wrote there, in) the result array
            norm.decode(plane, out=result)
        else:
            decoded = norm.decode(plane, out=self._decoded if plane.shape == self._decoded.shape else None)
            interpolation = cv2.INTER_NEAREST if raw else cv2.INTER_LINEAR
            cv2.resize(decoded, (shape[1], shape[0]), dst=result, interpolation=interpolation)
        # Raw output: only holes (<= min_m) and non-finite values are invalid; cleaned output: outside (min, max].
        # The result is never the model's own buffer, so callers may keep it across frames.
        depth_ops.nan_outside(result, norm.min_m, math.inf if raw else norm.max_m, out=result)
        return result

    # -- public -------------------------------------------------------------------------------------------------------

    def __call__(self, depth_m: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """Cleaned depth (or raw output when ``raw_output``), float32 metres at the input resolution.

        ``out``: a writable C-contiguous float32 array of the input's shape to write the result into (and return),
        e.g. the reusable buffer of an outgoing message; by default a new array. ``depth_m`` is only read.
        """
        return self._run(depth_m, self.raw_output, out)

    def raw(self, depth_m: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """The network's output in metres with holes (<= min_m, non-finite) as NaN, at the input resolution."""
        return self._run(depth_m, True, out)

    def _run(self, depth_m: np.ndarray, raw: bool, out: np.ndarray | None) -> np.ndarray:
        self._prepare(depth_m)
        shape = np.shape(depth_m)
        result = self._result_array(out, shape)
        self._finish(self._infer(result), shape, raw, result)
        if self.max_fill_px > 0 and not raw:
            self._unknown_far_from_data(np.asarray(depth_m), result)
        return result

    def _unknown_far_from_data(self, depth: np.ndarray, result: np.ndarray) -> None:
        """NaN in ``result`` wherever the nearest measured pixel of ``depth`` is more than ``max_fill_px`` away."""
        with np.errstate(invalid="ignore"):
            unmeasured = ~(depth > 0) | ~np.isfinite(depth)
        if not unmeasured.any():
            return
        # distanceTransform measures to the nearest zero: measured pixels are the zeros here.
        distance = cv2.distanceTransform(unmeasured.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        result[distance > self.max_fill_px] = np.nan
