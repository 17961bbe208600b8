"""ARC monocular depth: the pure pre- and post-processing around the exported network (numpy + OpenCV, no torch).

The exported graph (dcl_arc_ros.learning.arc.model.ARCInference) takes one input and gives three outputs:

    rgb          (1, 3, H, W) float32 in [rgb_min, rgb_max] = [-1, 1]   the camera image resized to the deploy size
    depth        (1, 1, H, W) float32 in [-1, 1]   metres clipped to [min_m, max_m] and mapped linearly to [-1, 1]
    mask         (1, 1, H, W) float32 in {0, 1}    1 = pixel KEPT, 0 = pixel REMOVED (and completed) by ARC
    decluttered  (1, 3, H, W) float32 in [-1, 1]   the translated, masked and completed image D actually saw

H x W and both ranges come from the model's sidecar (``deploy_resolution`` and ``normalisation``), so nothing here
hard-codes an input size. The sidecar normalisation block this module reads and writes is

    {"rgb":   {"kind": "range", "min": -1.0, "max": 1.0},           # uint8 / 255 mapped to [min, max]
     "depth": {"kind": "range", "min_m": 0.0, "max_m": 10.0,        # official ARC: clipped to 10 m ...
               "unit_min": -1.0, "unit_max": 1.0}}                  # ... and mapped to [-1, 1]

Published mask convention (mono8): **255 = removed by ARC** (the attention module's "hard region", completed by the
inpainting module), **0 = kept**. Highlighting what was removed makes the image directly viewable as an overlay.

Every output is at the deploy resolution; ``ARCResult.intrinsics`` is the camera's intrinsics rescaled to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

if TYPE_CHECKING:
    from dcl_arc_ros.core.camera import Intrinsics

RGB_INPUT = "rgb"
DEPTH_OUTPUT = "depth"
MASK_OUTPUT = "mask"
IMAGE_OUTPUT = "decluttered"
MASK_REMOVED = 255  # mono8 value of a removed (masked-out, completed) pixel
MASK_KEPT = 0


class ARCPipelineError(ValueError):
    """A sidecar or an array does not fit the ARC pipeline; the message names the value and the model file."""


@dataclass(frozen=True)
class ARCNormalisation:
    """Value ranges of the network's tensors (see the module docstring for the sidecar form)."""

    depth_min_m: float = 0.0
    depth_max_m: float = 10.0
    depth_unit_min: float = -1.0
    depth_unit_max: float = 1.0
    rgb_min: float = -1.0
    rgb_max: float = 1.0

    def __post_init__(self) -> None:
        if not (self.depth_max_m > self.depth_min_m >= 0.0):
            raise ARCPipelineError(f"depth range [{self.depth_min_m}, {self.depth_max_m}] m: need 0 <= min < max")
        if not (self.depth_unit_max > self.depth_unit_min and self.rgb_max > self.rgb_min):
            raise ARCPipelineError(
                f"network ranges depth [{self.depth_unit_min}, {self.depth_unit_max}], "
                f"rgb [{self.rgb_min}, {self.rgb_max}] must have min < max"
            )

    def to_sidecar(self) -> dict[str, Any]:
        return {
            "rgb": {"kind": "range", "min": self.rgb_min, "max": self.rgb_max},
            "depth": {
                "kind": "range",
                "min_m": self.depth_min_m,
                "max_m": self.depth_max_m,
                "unit_min": self.depth_unit_min,
                "unit_max": self.depth_unit_max,
            },
        }

    @classmethod
    def from_sidecar(cls, normalisation: Mapping[str, Any], source: str = "<sidecar>") -> ARCNormalisation:
        try:
            rgb, depth = normalisation["rgb"], normalisation["depth"]
            for name, block in (("rgb", rgb), ("depth", depth)):
                if block.get("kind") != "range":
                    raise ARCPipelineError(f"{source}: normalisation.{name}.kind = {block.get('kind')!r}, need 'range'")
            return cls(
                depth_min_m=float(depth["min_m"]),
                depth_max_m=float(depth["max_m"]),
                depth_unit_min=float(depth.get("unit_min", -1.0)),
                depth_unit_max=float(depth.get("unit_max", 1.0)),
                rgb_min=float(rgb["min"]),
                rgb_max=float(rgb["max"]),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ARCPipelineError(f"{source}: normalisation lacks or mangles {exc} for an ARC model") from exc
        except ARCPipelineError as exc:
            if str(exc).startswith(source):
                raise
            raise ARCPipelineError(f"{source}: {exc}") from exc


@dataclass(frozen=True)
class ARCModelSpec:
    """What the pipeline needs to know about an exported ARC model."""

    height: int
    width: int
    normalisation: ARCNormalisation = ARCNormalisation()
    input_name: str = RGB_INPUT
    depth_name: str = DEPTH_OUTPUT
    mask_name: str = MASK_OUTPUT
    image_name: str = IMAGE_OUTPUT

    @classmethod
    def from_sidecar(cls, sidecar: Any, source: str = "<sidecar>") -> ARCModelSpec:
        """From a dcl_arc_ros.core.sidecar.ModelSidecar (read duck-typed: deploy_resolution, normalisation, I/O)."""
        source = getattr(sidecar, "name", source) if source == "<sidecar>" else source
        try:
            height, width = (int(v) for v in sidecar.deploy_resolution)
        except (TypeError, ValueError) as exc:
            raise ARCPipelineError(
                f"{source}: deploy_resolution {getattr(sidecar, 'deploy_resolution', None)!r} is not (height, width)"
            ) from exc
        if height <= 0 or width <= 0:
            raise ARCPipelineError(f"{source}: deploy_resolution {(height, width)} must be positive")
        inputs = [spec.name for spec in sidecar.inputs]
        outputs = [spec.name for spec in sidecar.outputs]
        missing = [name for name in (DEPTH_OUTPUT, MASK_OUTPUT, IMAGE_OUTPUT) if name not in outputs]
        if len(inputs) != 1 or missing:
            raise ARCPipelineError(
                f"{source}: an ARC model has 1 input and outputs {[DEPTH_OUTPUT, MASK_OUTPUT, IMAGE_OUTPUT]}; "
                f"got inputs {inputs}, outputs {outputs}"
            )
        return cls(height, width, ARCNormalisation.from_sidecar(sidecar.normalisation, source), input_name=inputs[0])


def preprocess_rgb(rgb: np.ndarray, spec: ARCModelSpec) -> np.ndarray:
    """uint8 RGB (H, W, 3) at any size -> the network input (1, 3, h, w) float32 in [rgb_min, rgb_max]."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ARCPipelineError(f"ARC input must be uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if rgb.shape[:2] != (spec.height, spec.width):
        shrink = rgb.shape[0] > spec.height and rgb.shape[1] > spec.width
        rgb = cv2.resize(rgb, (spec.width, spec.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    n = spec.normalisation
    scaled = rgb.astype(np.float32) * np.float32((n.rgb_max - n.rgb_min) / 255.0) + np.float32(n.rgb_min)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)[None])


def decode_depth(output: np.ndarray, spec: ARCModelSpec) -> np.ndarray:
    """Network depth (1, 1, h, w) in unit range -> float32 metres (h, w); NaN where not finite or <= 0 m (REP 118)."""
    n = spec.normalisation
    unit = np.clip(_plane(output, "depth"), n.depth_unit_min, n.depth_unit_max)
    scale = (n.depth_max_m - n.depth_min_m) / (n.depth_unit_max - n.depth_unit_min)
    depth = ((unit - n.depth_unit_min) * scale + n.depth_min_m).astype(np.float32)
    depth[~np.isfinite(depth) | (depth <= 0.0)] = np.nan
    return depth


def decode_mask(output: np.ndarray) -> np.ndarray:
    """Network keep-mask (1, 1, h, w) in {0, 1} -> mono8 (h, w): 255 = removed, 0 = kept."""
    keep = _plane(output, "mask") >= 0.5
    return np.where(keep, np.uint8(MASK_KEPT), np.uint8(MASK_REMOVED))


def decode_image(output: np.ndarray, spec: ARCModelSpec) -> np.ndarray:
    """Network image (1, 3, h, w) in [rgb_min, rgb_max] -> uint8 RGB (h, w, 3)."""
    arr = np.asarray(output)
    if arr.ndim == 4:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ARCPipelineError(f"ARC decluttered output must be (1, 3, h, w), got {np.asarray(output).shape}")
    n = spec.normalisation
    scaled = (arr.transpose(1, 2, 0) - n.rgb_min) * (255.0 / (n.rgb_max - n.rgb_min))
    return np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)


def output_intrinsics(intrinsics: Intrinsics, spec: ARCModelSpec) -> Intrinsics:
    """The camera intrinsics rescaled to the outputs' (deploy) resolution."""
    return intrinsics.resize(spec.width, spec.height)


class _Model(Protocol):  # the part of dcl_arc_ros.inference.backends.Model this pipeline uses
    sidecar: Any

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class ARCResult:
    depth_m: np.ndarray  # (h, w) float32 metres, NaN = no estimate
    mask: np.ndarray  # (h, w) uint8 mono8, 255 = removed, 0 = kept
    decluttered: np.ndarray  # (h, w, 3) uint8 RGB
    intrinsics: Intrinsics | None  # rescaled to (h, w) when the input's were given


class ARCDepthPipeline:
    """uint8 RGB (+ intrinsics) -> depth, mask, decluttered image and rescaled intrinsics, over any ``Model``."""

    def __init__(self, model: _Model, spec: ARCModelSpec | None = None) -> None:
        self.model = model
        self.spec = spec if spec is not None else ARCModelSpec.from_sidecar(model.sidecar)

    def __call__(self, rgb: np.ndarray, intrinsics: Intrinsics | None = None) -> ARCResult:
        outputs = self.model.run({self.spec.input_name: preprocess_rgb(rgb, self.spec)})
        missing = [k for k in (self.spec.depth_name, self.spec.mask_name, self.spec.image_name) if k not in outputs]
        if missing:
            raise ARCPipelineError(f"ARC model returned {sorted(outputs)}, missing {missing}")
        return ARCResult(
            depth_m=decode_depth(outputs[self.spec.depth_name], self.spec),
            mask=decode_mask(outputs[self.spec.mask_name]),
            decluttered=decode_image(outputs[self.spec.image_name], self.spec),
            intrinsics=None if intrinsics is None else output_intrinsics(intrinsics, self.spec),
        )


def _plane(output: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(output, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[:2] == (1, 1):
        return arr[0, 0]
    if arr.ndim == 2:
        return arr
    raise ARCPipelineError(f"ARC {what} output must be (1, 1, h, w) or (h, w), got {arr.shape}")
