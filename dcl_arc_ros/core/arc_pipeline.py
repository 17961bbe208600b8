"""ARC monocular depth: the pure pre- and post-processing around the exported network (numpy + OpenCV, no torch).

The exported graph (dcl_arc_ros.learning.arc.model.ARCInference) has one input and three outputs, found in the
sidecar by their semantic (so a drop-in model may name them differently):

    input   semantic "rgb"        (1, 3, H, W) float32   uint8 RGB * scale + offset (ARC: [-1, 1])
    output  semantic "depth"      (1, 1, H, W) float32   metres in [min_m, max_m] mapped linearly to [-1, 1]
    output  semantic "keep_mask"  (1, 1, H, W) float32   1 = pixel KEPT, 0 = pixel REMOVED (and completed) by ARC
    output  semantic "rgb"        (1, 3, H, W) float32   the translated, masked and completed image D actually saw

H x W is the sidecar's ``deploy_resolution``; the value ranges are its ``normalisation`` entries (core.sidecar kinds):

    "rgb":   {"kind": "affine", "scale": 2/255, "offset": -1.0}    uint8 -> [-1, 1] (and back for the decluttered image)
    "depth": {"kind": "range", "min_m": 0.0, "max_m": 10.0}        official ARC: depth clipped to 10 m, in [-1, 1]

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

from dcl_arc_ros.core.errors import PipelineError, SidecarError

if TYPE_CHECKING:
    from dcl_arc_ros.core.camera import Intrinsics
    from dcl_arc_ros.core.sidecar import ModelSidecar

RGB_INPUT = "rgb"
DEPTH_OUTPUT = "depth"
MASK_OUTPUT = "mask"
IMAGE_OUTPUT = "decluttered"
RGB_SEMANTIC = "rgb"
DEPTH_SEMANTIC = "depth"
MASK_SEMANTIC = "keep_mask"
MASK_REMOVED = 255  # mono8 value of a removed (masked-out, completed) pixel
MASK_KEPT = 0


@dataclass(frozen=True)
class ARCNormalisation:
    """Value ranges of the network's tensors (see the module docstring for the sidecar form)."""

    depth_min_m: float = 0.0
    depth_max_m: float = 10.0
    rgb_scale: float = 2.0 / 255.0
    rgb_offset: float = -1.0

    def __post_init__(self) -> None:
        if not (self.depth_max_m > self.depth_min_m >= 0.0):
            raise PipelineError(f"ARC depth range [{self.depth_min_m}, {self.depth_max_m}] m: need 0 <= min < max")
        if self.rgb_scale == 0.0:
            raise PipelineError("ARC rgb normalisation scale must not be 0")

    def to_sidecar(self) -> dict[str, Any]:
        return {
            RGB_SEMANTIC: {"kind": "affine", "scale": self.rgb_scale, "offset": self.rgb_offset},
            DEPTH_SEMANTIC: {"kind": "range", "min_m": self.depth_min_m, "max_m": self.depth_max_m},
        }

    @classmethod
    def from_entries(
        cls, rgb: Mapping[str, Any] | None, depth: Mapping[str, Any] | None, source: str = "<sidecar>"
    ) -> ARCNormalisation:
        """From the sidecar's normalisation entries of the rgb input and the depth output."""
        if rgb is None or rgb.get("kind") != "affine":
            raise SidecarError(f"{source}: field 'normalisation.rgb': need kind 'affine' for ARC's input, got {rgb!r}")
        if depth is None or depth.get("kind") != "range":
            raise SidecarError(
                f"{source}: field 'normalisation.depth': need kind 'range' for the ARC depth output, got {depth!r}"
            )
        try:
            return cls(float(depth["min_m"]), float(depth["max_m"]), float(rgb["scale"]), float(rgb["offset"]))
        except (KeyError, TypeError, ValueError, PipelineError) as exc:
            raise SidecarError(f"{source}: field 'normalisation': unusable ARC normalisation ({exc})") from exc


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
    def from_sidecar(cls, sidecar: ModelSidecar, source: str | None = None) -> ARCModelSpec:
        """From a validated core.sidecar.ModelSidecar; SidecarError names ``source`` (default: the model name)."""
        source = source or sidecar.name
        height, width = sidecar.deploy_resolution

        def one(specs: tuple[Any, ...], what: str) -> Any:
            if len(specs) != 1:
                raise SidecarError(
                    f"{source}: field '{what}': an ARC model needs exactly one, found {[s.name for s in specs]}"
                )
            return specs[0]

        rgb_in = one(sidecar.inputs_with_semantic(RGB_SEMANTIC), f"inputs (semantic {RGB_SEMANTIC!r})")
        depth_out = one(sidecar.outputs_with_semantic(DEPTH_SEMANTIC), f"outputs (semantic {DEPTH_SEMANTIC!r})")
        mask_out = one(sidecar.outputs_with_semantic(MASK_SEMANTIC), f"outputs (semantic {MASK_SEMANTIC!r})")
        image_out = one(sidecar.outputs_with_semantic(RGB_SEMANTIC), f"outputs (semantic {RGB_SEMANTIC!r})")
        norm = ARCNormalisation.from_entries(
            sidecar.normalisation_for(rgb_in), sidecar.normalisation_for(depth_out), source
        )
        return cls(height, width, norm, rgb_in.name, depth_out.name, mask_out.name, image_out.name)


def preprocess_rgb(rgb: np.ndarray, spec: ARCModelSpec) -> np.ndarray:
    """uint8 RGB (H, W, 3) at any size -> the network input (1, 3, h, w) float32 (uint8 * scale + offset)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise PipelineError(f"ARC input must be uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if rgb.shape[:2] != (spec.height, spec.width):
        shrink = rgb.shape[0] > spec.height and rgb.shape[1] > spec.width
        rgb = cv2.resize(rgb, (spec.width, spec.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    n = spec.normalisation
    scaled = rgb.astype(np.float32) * np.float32(n.rgb_scale) + np.float32(n.rgb_offset)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)[None])


def decode_depth(output: np.ndarray, spec: ARCModelSpec) -> np.ndarray:
    """Network depth (1, 1, h, w) in [-1, 1] -> float32 metres (h, w); NaN where not finite or <= 0 m (REP 118)."""
    n = spec.normalisation
    unit = np.clip(_plane(output, "depth"), -1.0, 1.0)  # NaN stays NaN
    depth = (unit + 1.0) * np.float32(0.5 * (n.depth_max_m - n.depth_min_m)) + np.float32(n.depth_min_m)
    depth = depth.astype(np.float32)
    depth[~np.isfinite(depth) | (depth <= 0.0)] = np.nan
    return depth


def decode_mask(output: np.ndarray) -> np.ndarray:
    """Network keep-mask (1, 1, h, w) in {0, 1} -> mono8 (h, w): 255 = removed, 0 = kept."""
    keep = _plane(output, "mask") >= 0.5
    return np.where(keep, np.uint8(MASK_KEPT), np.uint8(MASK_REMOVED))


def decode_image(output: np.ndarray, spec: ARCModelSpec) -> np.ndarray:
    """Network image (1, 3, h, w), normalised like the input -> uint8 RGB (h, w, 3)."""
    arr = np.asarray(output)
    if arr.ndim == 4:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise PipelineError(f"ARC decluttered output must be (1, 3, h, w), got {np.asarray(output).shape}")
    n = spec.normalisation
    scaled = (arr.transpose(1, 2, 0) - n.rgb_offset) / n.rgb_scale
    return np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)


def output_intrinsics(intrinsics: Intrinsics, spec: ARCModelSpec) -> Intrinsics:
    """The camera intrinsics rescaled to the outputs' (deploy) resolution."""
    return intrinsics.resize(spec.width, spec.height)


class _Model(Protocol):  # the part of dcl_arc_ros.inference.backends.Model this pipeline uses
    sidecar: ModelSidecar

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
            raise PipelineError(f"ARC model returned {sorted(outputs)}, missing {missing}")
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
    raise PipelineError(f"ARC {what} output must be (1, 1, h, w) or (h, w), got {arr.shape}")
