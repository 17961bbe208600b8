"""The per-frame GG-CNN grasp pipeline: depth image + intrinsics in, ranked 3D grasps out. Pure numpy + OpenCV.

Steps, in the order the original GG-CNN ROS node runs them, with our own faster pieces:

1. centre-crop a square of ``min(crop_size * n, H, W)`` pixels, where n = width // ``working_width`` (at least 1), so
   that the network sees the same field of view from a 1280x720 camera as from a 640x480 one;
2. fill invalid depth (NaN or <= 0) with :func:`dcl_arc_ros.core.depth.fill_holes`;
3. resize to the network's deploy resolution (from the sidecar), then depth minus its mean, clipped to [-1, 1];
4. run the model, decode the four maps (:func:`dcl_arc_ros.core.grasps.decode_grasp_maps`) and pick peaks;
5. map the rectangles back to full-image pixels and deproject them with the *raw* depth (median of the valid pixels
   around each grasp centre), so filled-in depth never becomes a grasp position.

The model is anything with ``.sidecar`` (a :class:`~dcl_arc_ros.core.sidecar.ModelSidecar`) and
``.run(dict) -> dict`` (the :class:`dcl_arc_ros.inference.backends.Model` protocol); the core does not import the
inference layer, it only relies on that shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import cv2
import numpy as np

from dcl_arc_ros.core import depth as depth_ops
from dcl_arc_ros.core.camera import DEFAULT_WORKING_WIDTH, Intrinsics, working_step
from dcl_arc_ros.core.errors import DepthError, PipelineError
from dcl_arc_ros.core.grasps import (
    GGCNN_WIDTH_SCALE_PX,
    Grasp3D,
    GraspDecodeParams,
    GraspMaps,
    decode_grasp_maps,
    detect_grasp_rects,
    grasps_to_3d,
    normalise_depth_for_ggcnn,
    robust_depth_at,
)
from dcl_arc_ros.core.sidecar import ModelSidecar

#: Output semantics a ``grasp_maps`` sidecar must declare (matched by semantic, then by name), in network order.
GRASP_OUTPUT_SEMANTICS: Final[tuple[str, ...]] = ("grasp_quality", "grasp_cos2", "grasp_sin2", "grasp_width")
_FALLBACK_OUTPUT_NAMES: Final[tuple[str, ...]] = ("quality", "cos2", "sin2", "width")
#: The sidecar normalisation kind of GG-CNN's input (depth minus its mean, clipped to [-clip, clip]).
GGCNN_NORMALISATION_KIND: Final = "mean_subtract_clip"


class GraspModel(Protocol):
    """The part of :class:`dcl_arc_ros.inference.backends.Model` this pipeline uses."""

    sidecar: ModelSidecar

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class CropWindow:
    """The square window of the full image that the network saw: ``image[y0:y0 + side, x0:x0 + side]``."""

    x0: int
    y0: int
    side: int
    net_width: int
    net_height: int

    def to_full(self, u_net: np.ndarray, v_net: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network pixel centres -> full-image pixel centres (half-pixel convention of cv2.resize)."""
        sx, sy = self.side / self.net_width, self.side / self.net_height
        return self.x0 + (u_net + 0.5) * sx - 0.5, self.y0 + (v_net + 0.5) * sy - 0.5


def centre_crop_window(height: int, width: int, crop_size: int, net_hw: tuple[int, int]) -> CropWindow:
    side = int(min(crop_size, height, width))
    if side <= 0:
        raise PipelineError(f"cannot crop {crop_size} pixels from a {width}x{height} image")
    return CropWindow(
        x0=(width - side) // 2, y0=(height - side) // 2, side=side, net_width=net_hw[1], net_height=net_hw[0]
    )


def prepare_ggcnn_input(
    depth_crop_m: np.ndarray, net_hw: tuple[int, int], *, fill_method: depth_ops.FillMethod = "nearest"
) -> np.ndarray | None:
    """A depth crop (metres, NaN/<=0 invalid) -> the (1, 1, h, w) float32 network input, or None if all invalid.

    Shared by the pipeline and the grasp trainer so training and deployment prepare depth identically.
    """
    d = np.asarray(depth_crop_m, dtype=np.float32)
    if not np.any(np.isfinite(d) & (d > 0)):
        return None
    filled = depth_ops.fill_holes(d, fill_method)
    h, w = net_hw
    if filled.shape != (h, w):
        filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_AREA if filled.shape[0] > h else cv2.INTER_LINEAR)
    return normalise_depth_for_ggcnn(filled)[None, None]


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class GraspDetection:
    """Everything one frame produced: the grasps, their image rectangles and the decoded maps (network pixels)."""

    grasps: list[Grasp3D]
    rects: np.ndarray  # (N, 6) full-image rows (cx, cy, angle, width_px, length_px, quality), same order as grasps
    maps: GraspMaps | None  # None when the frame had no valid depth in the crop
    window: CropWindow
    notes: tuple[str, ...] = field(default=())


class GraspPipeline:
    """GG-CNN grasps for one depth frame.

    Parameters: ``crop_size`` is the side of the centre crop in pixels of a ``working_width``-wide image (GG-CNN uses
    300 of 640; a wider image's crop grows by the integer step ``width // working_width``, and 0 turns that off,
    making ``crop_size`` full-image pixels); ``decode`` holds
    the smoothing and peak parameters, in *network* pixels (sigmas, ``min_distance``; the same as image pixels when
    the deploy resolution equals the crop); ``depth_half_window`` sets the window of the robust grasp depth;
    ``fill_method`` is the hole filling of :func:`dcl_arc_ros.core.depth.fill_holes` (``"nearest"`` or ``"inpaint"``).
    """

    def __init__(
        self,
        model: GraspModel,
        *,
        crop_size: int = 300,
        decode: GraspDecodeParams | None = None,
        depth_half_window: int = 2,
        fill_method: depth_ops.FillMethod = "nearest",
        working_width: int = DEFAULT_WORKING_WIDTH,
    ) -> None:
        if working_width < 0:
            raise PipelineError(f"working_width must be >= 0 (0 = full resolution), got {working_width}")
        self.working_width = int(working_width)
        self.model = model
        self.fill_method: depth_ops.FillMethod = fill_method
        self.crop_size = int(crop_size)
        self.decode = decode or GraspDecodeParams()
        self.depth_half_window = int(depth_half_window)
        sc = model.sidecar
        if sc.task != "grasp_maps":
            raise PipelineError(f"model {sc.name!r} has task {sc.task!r}; the grasp pipeline needs 'grasp_maps'")
        if len(sc.inputs) != 1:
            raise PipelineError(f"model {sc.name!r} must have one depth input, has {[t.name for t in sc.inputs]}")
        kind = (sc.normalisation.get("depth") or sc.normalisation.get(sc.inputs[0].name) or {}).get("kind")
        if kind not in (None, GGCNN_NORMALISATION_KIND):
            raise PipelineError(
                f"model {sc.name!r} declares depth normalisation {kind!r}; GG-CNN expects {GGCNN_NORMALISATION_KIND!r}"
            )
        self.input_name = sc.inputs[0].name
        self.net_hw = (int(sc.deploy_resolution[0]), int(sc.deploy_resolution[1]))
        self.output_names = _grasp_output_names(sc)
        recorded = sc.extra.get("network_config")
        net_cfg: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
        width_scale = float(sc.extra.get("width_scale_px", net_cfg.get("width_scale_px", GGCNN_WIDTH_SCALE_PX)))
        if width_scale != self.decode.width_scale_px:
            self.decode = dataclasses.replace(self.decode, width_scale_px=width_scale)

    def __call__(self, depth_m: np.ndarray, intrinsics: Intrinsics) -> list[Grasp3D]:
        """Grasps sorted by quality (best first); empty when nothing passes the threshold or depth is all invalid."""
        return self.detect(depth_m, intrinsics).grasps

    def detect(self, depth_m: np.ndarray, intrinsics: Intrinsics) -> GraspDetection:
        depth = np.asarray(depth_m, dtype=np.float32)
        if depth.ndim != 2:
            raise DepthError(f"depth must be (H, W) metres, got shape {depth.shape}")
        if depth.shape != (intrinsics.height, intrinsics.width):
            raise DepthError(
                f"depth of shape {depth.shape} does not match the intrinsics ({intrinsics.height}x{intrinsics.width})"
            )
        side = self.crop_size * working_step(depth.shape[1], self.working_width)
        window = centre_crop_window(depth.shape[0], depth.shape[1], side, self.net_hw)
        crop = depth[window.y0 : window.y0 + window.side, window.x0 : window.x0 + window.side]
        net_input = prepare_ggcnn_input(crop, self.net_hw, fill_method=self.fill_method)
        if net_input is None:
            return GraspDetection([], np.zeros((0, 6)), None, window, ("no valid depth in the crop",))
        outputs = self.model.run({self.input_name: net_input})
        missing = [n for n in self.output_names if n not in outputs]
        if missing:
            raise PipelineError(f"model {self.model.sidecar.name!r} did not return outputs {missing}")
        quality, cos2, sin2, width = (outputs[n] for n in self.output_names)
        maps = decode_grasp_maps(quality, cos2, sin2, width, self.decode)
        rects_net = detect_grasp_rects(maps, self.decode)
        rects = _rects_to_full(rects_net, window)
        has_depth = np.isfinite(robust_depth_at(depth, rects[:, 0], rects[:, 1], half_window=self.depth_half_window))
        notes = () if has_depth.all() else (f"{int((~has_depth).sum())} grasp(s) had no valid depth",)
        rects = rects[has_depth]
        grasps = grasps_to_3d(rects, depth, intrinsics, half_window=self.depth_half_window)
        return GraspDetection(grasps, rects, maps, window, notes)


def _grasp_output_names(sc: ModelSidecar) -> tuple[str, ...]:
    by_semantic = {t.semantic: t.name for t in sc.outputs}
    if all(s in by_semantic for s in GRASP_OUTPUT_SEMANTICS):
        return tuple(by_semantic[s] for s in GRASP_OUTPUT_SEMANTICS)
    names = {t.name for t in sc.outputs}
    if all(n in names for n in _FALLBACK_OUTPUT_NAMES):
        return _FALLBACK_OUTPUT_NAMES
    raise PipelineError(
        f"model {sc.name!r} outputs {[(t.name, t.semantic) for t in sc.outputs]} do not declare the semantics "
        f"{list(GRASP_OUTPUT_SEMANTICS)}"
    )


def _rects_to_full(rects_net: np.ndarray, window: CropWindow) -> np.ndarray:
    """Rectangles in network pixels -> full-image pixels (handles a non-square network input)."""
    r = np.array(rects_net, dtype=np.float64).reshape(-1, 6)
    sx, sy = window.side / window.net_width, window.side / window.net_height
    r[:, 0], r[:, 1] = window.to_full(r[:, 0], r[:, 1])
    c, s = np.cos(r[:, 2]), np.sin(r[:, 2])
    width_vec = np.stack([c * sx, s * sy], axis=1) * r[:, 3:4]
    length_scale = np.hypot(-s * sx, c * sy)
    r[:, 2] = np.arctan2(width_vec[:, 1], width_vec[:, 0])
    r[:, 2] = (r[:, 2] + np.pi / 2) % np.pi - np.pi / 2
    r[:, 3] = np.linalg.norm(width_vec, axis=1)
    r[:, 4] = r[:, 4] * length_scale
    return r
