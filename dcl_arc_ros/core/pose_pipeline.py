"""Object pose from depth: object-centric crops, translation from depth + intrinsics, rotation from a 6D representation.

Pure numpy + OpenCV.

Rotation representation. The pose network regresses 6 numbers, the first two columns of the rotation matrix, and
:func:`rotation_from_6d` turns them into a rotation by Gram-Schmidt (Zhou et al., "On the Continuity of Rotation
Representations in Neural Networks", CVPR 2019). Why this one:

- every 3D rotation representation with 4 or fewer numbers (Euler angles, axis-angle, quaternions) is discontinuous
  as a map from SO(3): a network has to learn a jump somewhere (e.g. q and -q, or the Euler wrap), which shows up as
  large errors near it; the 6D form is continuous, and Zhou et al. measure markedly lower errors with it;
- Gram-Schmidt is defined for any two non-parallel vectors, so any network output decodes to a valid rotation, and it
  is a few lines of differentiable arithmetic (no SVD) that exports to ONNX if needed;
- the MSE loss on the 6 numbers that the DCL paper's "MSE rotation regression" asks for is then well posed.

Object symmetries are not modelled by :func:`geodesic_distance` (a symmetric object has several correct 6D targets, so
the plain geodesic error is an upper bound for it). Training either maps each symmetric primitive's target to one
canonical equivalent pose or takes the smallest loss over its equivalent poses, and the evaluation uses the
symmetry-aware error of ``learning/pose/metrics.py``.

Allocentric rotation. A crop hides where in the image the object was, and an object translated sideways at a fixed
camera-frame rotation looks rotated. The network therefore predicts the *allocentric* rotation: the rotation relative
to a virtual camera looking straight at the object's centre. :func:`ray_rotation` gives that virtual camera, and
``R_cam_obj = ray_rotation(ray) @ R_allocentric``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import cv2
import numpy as np

from dcl_arc_ros.core.camera import DEFAULT_WORKING_WIDTH, Intrinsics, working_step
from dcl_arc_ros.core.errors import PipelineError
from dcl_arc_ros.core.proposals import ObjectCrop, ProposalParams, checked_depth, propose_objects
from dcl_arc_ros.core.sidecar import ModelSidecar

#: Output semantics a ``pose`` sidecar must declare (matched by semantic, then by name).
POSE_OUTPUT_SEMANTICS: Final[tuple[str, ...]] = ("class_logits", "rotation_6d")

# --------------------------------------------------------------------------------------------------------------------
# Rotations
# --------------------------------------------------------------------------------------------------------------------


def rotation_to_6d(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 6): the first column followed by the second column."""
    r = np.asarray(rotation, dtype=np.float64)
    return np.concatenate([r[..., :, 0], r[..., :, 1]], axis=-1)


def rotation_from_6d(x: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """(..., 6) -> (..., 3, 3) rotation matrices by Gram-Schmidt on the two 3-vectors (Zhou et al. 2019).

    Column 1 is the normalised first vector, column 2 the second vector made orthogonal to it and normalised, column 3
    their cross product (so the result is a proper rotation, det = +1).
    """
    v = np.asarray(x, dtype=np.float64)
    if v.shape[-1] != 6:
        raise PipelineError(f"a 6D rotation needs a last axis of 6, got shape {v.shape}")
    a1, a2 = v[..., :3], v[..., 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), eps)
    a2p = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2p / np.maximum(np.linalg.norm(a2p, axis=-1, keepdims=True), eps)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def geodesic_distance(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Angle (radians, in [0, pi]) of the rotation taking ``r1`` to ``r2``; both (..., 3, 3)."""
    a = np.asarray(r1, dtype=np.float64)
    b = np.asarray(r2, dtype=np.float64)
    trace = np.einsum("...ji,...ji->...", a, b)  # trace(a^T b)
    return np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))


def ray_rotation(direction: np.ndarray) -> np.ndarray:
    """(..., 3) viewing rays -> (..., 3, 3) the smallest rotation that takes the optical axis +z onto each ray."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(np.broadcast_to(z, d.shape), d)
    s = np.linalg.norm(axis, axis=-1)[..., None, None]
    c = d[..., 2][..., None, None]
    k = axis / np.maximum(s[..., 0], 1e-12)
    kx = np.zeros((*d.shape[:-1], 3, 3))
    kx[..., 0, 1], kx[..., 0, 2] = -k[..., 2], k[..., 1]
    kx[..., 1, 0], kx[..., 1, 2] = k[..., 2], -k[..., 0]
    kx[..., 2, 0], kx[..., 2, 1] = -k[..., 1], k[..., 0]
    eye = np.broadcast_to(np.eye(3), kx.shape)
    return eye + s * kx + (1.0 - c) * (kx @ kx)  # Rodrigues


def allocentric_to_egocentric(r_allo: np.ndarray, ray: np.ndarray) -> np.ndarray:
    return ray_rotation(ray) @ np.asarray(r_allo, dtype=np.float64)


def egocentric_to_allocentric(r_ego: np.ndarray, ray: np.ndarray) -> np.ndarray:
    return np.swapaxes(ray_rotation(ray), -1, -2) @ np.asarray(r_ego, dtype=np.float64)


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (x, y, z, w), normalised here -> (N, 3, 3) rotation matrices."""
    q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    x, y, z, w = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations drawn uniformly from SO(3): normalised Gaussian quaternions, as matrices."""
    return quaternion_to_matrix(rng.normal(size=(n, 4)))


def largest_crops(crops: Sequence[ObjectCrop], count: int) -> list[int]:
    """Indices of the ``count`` largest crops (most pixels first): the ones :class:`PosePipeline` poses."""
    return sorted(range(len(crops)), key=lambda i: -crops[i].pixels)[:count]


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (4,) quaternion (x, y, z, w) with w >= 0."""
    r = np.asarray(rotation, dtype=np.float64)
    w = 0.5 * np.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2]))
    x = 0.5 * np.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2]))
    y = 0.5 * np.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2]))
    z = 0.5 * np.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2]))
    x = np.copysign(x, r[2, 1] - r[1, 2])
    y = np.copysign(y, r[0, 2] - r[2, 0])
    z = np.copysign(z, r[1, 0] - r[0, 1])
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


# --------------------------------------------------------------------------------------------------------------------
# Crops and translation
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoseCropParams:
    """How an object becomes a network input.

    The crop is the square around the object's box, ``1 + margin`` times its longer side, resized to ``crop_size``.
    Depth is expressed relative to the median of the object's depth and divided by ``depth_scale_m``, clipped to
    [-1, 1]; background and invalid pixels are set to +1 (far behind the object).
    """

    crop_size: int = 64
    margin: float = 0.2
    depth_scale_m: float = 0.15
    background: float = 1.0

    def __post_init__(self) -> None:
        if self.crop_size < 8 or self.margin < 0 or self.depth_scale_m <= 0:
            raise PipelineError(
                f"PoseCropParams needs crop_size >= 8, margin >= 0, depth_scale_m > 0; got {self.crop_size}, "
                f"{self.margin}, {self.depth_scale_m}"
            )


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class PoseInput:
    """A prepared crop: the (1, S, S) network input and what is needed to go back to the camera frame."""

    image: np.ndarray  # (1, S, S) float32
    window: tuple[int, int, int]  # (x0, y0, side) of the square in full-image pixels (may extend past the image)
    centre_uv: tuple[float, float]  # mean pixel of the object's valid depth
    depth_m: float  # median of the object's valid depth


def prepare_pose_input(crop: ObjectCrop, params: PoseCropParams | None = None) -> PoseInput | None:
    """An :class:`ObjectCrop` -> the network input, or None when the object has no valid depth."""
    p = params or PoseCropParams()
    valid = crop.mask & np.isfinite(crop.depth) & (crop.depth > 0)
    if not valid.any():
        return None
    rows, cols = np.nonzero(valid)
    x0b, y0b, x1b, y1b = crop.box
    median = float(np.median(crop.depth[valid]))
    side = int(np.ceil(max(x1b - x0b, y1b - y0b) * (1.0 + p.margin)))
    cx, cy = 0.5 * (x0b + x1b), 0.5 * (y0b + y1b)
    x0, y0 = int(np.floor(cx - side / 2)), int(np.floor(cy - side / 2))
    canvas = np.full((side, side), np.float32(p.background), dtype=np.float32)
    rel = np.clip((crop.depth[valid] - median) / p.depth_scale_m, -1.0, 1.0)
    canvas[rows + (y0b - y0), cols + (x0b - x0)] = rel
    interp = cv2.INTER_AREA if side > p.crop_size else cv2.INTER_LINEAR
    image = cv2.resize(canvas, (p.crop_size, p.crop_size), interpolation=interp)[None]
    centre = (float(cols.mean() + x0b), float(rows.mean() + y0b))
    return PoseInput(image=image.astype(np.float32), window=(x0, y0, side), centre_uv=centre, depth_m=median)


def turn_pose_crop(image: np.ndarray, angle_deg: float, background: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Turn a pose crop in the image plane: the new image and the rotation ``R_turn`` the turn applies to the object.

    ``image`` is a (1, S, S) or (S, S) network input (:func:`prepare_pose_input`); it is turned by ``angle_deg``
    about its centre, counter-clockwise as displayed (rows down), and uncovered corners get ``background``. Seen by a
    camera looking straight at the object, that is the object turned about the viewing ray (the allocentric z axis)
    by ``-angle_deg``, so its allocentric rotation becomes ``R_turn @ R_allocentric``. Training uses it to show the
    network every in-plane orientation of an object it saw once; the crop is square and centred, so the turn is exact
    up to resampling and the perspective of off-centre objects.
    """
    img = np.asarray(image, dtype=np.float32)
    plane = img[0] if img.ndim == 3 else img
    if plane.ndim != 2 or plane.shape[0] != plane.shape[1]:
        raise PipelineError(f"a pose crop is (1, S, S) or (S, S), got shape {img.shape}")
    size = plane.shape[0]
    centre = ((size - 1) / 2.0, (size - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, float(angle_deg), 1.0)
    turned = cv2.warpAffine(
        plane, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background
    )
    a = -np.radians(float(angle_deg))
    r_turn = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return (turned[None] if img.ndim == 3 else turned).astype(np.float32), r_turn


def translation_from_depth(
    centre_uv: tuple[float, float], depth_m: float, intrinsics: Intrinsics, *, depth_offset_m: float = 0.0
) -> np.ndarray:
    """Object position: the pixel ``centre_uv`` deprojected at the object's median depth plus ``depth_offset_m``.

    The median depth is that of the visible surface; ``depth_offset_m`` (e.g. half a typical object's depth) moves it
    towards the object's centre along the optical axis. The result is (3,) metres in the camera frame.
    """
    return np.asarray(intrinsics.deproject(centre_uv[0], centre_uv[1], depth_m + depth_offset_m), dtype=np.float64)


# --------------------------------------------------------------------------------------------------------------------
# Pipeline
# --------------------------------------------------------------------------------------------------------------------


def _full_image_box(box: tuple[int, int, int, int], step: int, full: Intrinsics) -> tuple[int, int, int, int]:
    """A box on the ``step``-subsampled image in full-image pixels: its sampled pixels and the ones between them."""
    x0, y0, x1, y1 = box
    return x0 * step, y0 * step, min(x1 * step, full.width), min(y1 * step, full.height)


class PoseModel(Protocol):
    """The part of :class:`dcl_arc_ros.inference.backends.Model` this pipeline uses."""

    sidecar: ModelSidecar

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ObjectPose:
    """One detected object in the camera frame."""

    class_id: int  # catalogue class id (the sidecar's extra.class_ids maps network outputs to it)
    confidence: float  # softmax probability of that class
    rotation: np.ndarray  # (3, 3) camera_R_object
    translation: np.ndarray  # (3,) metres
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) full-image pixels

    def quaternion(self) -> np.ndarray:
        return rotation_to_quaternion(self.rotation)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _crop_params_from_sidecar(sc: ModelSidecar, size: int) -> PoseCropParams:
    """Crop preparation recorded by the exporter in ``extra.crop`` (defaults when absent)."""
    recorded = sc.extra.get("crop")
    crop: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    defaults = PoseCropParams(crop_size=size)
    return PoseCropParams(
        crop_size=size,
        margin=float(crop.get("margin", defaults.margin)),
        depth_scale_m=float(crop.get("depth_scale_m", defaults.depth_scale_m)),
        background=float(crop.get("background", defaults.background)),
    )


class PosePipeline:
    """Depth frame -> proposals -> one network run per object -> poses, largest objects first.

    The crop preparation and the rotation convention come from the sidecar (``extra.crop``, ``extra.rotation``) when
    the exporter recorded them; ``crop`` and ``allocentric`` are the fallbacks for models without them.

    Frames wider than ``working_width`` are segmented and posed on every n-th pixel (n = width // working_width), so
    that the proposals' pixel-valued parameters, tuned at 640x480, mean the same on a 1280x720 camera and the frame
    time stays flat; boxes come back in full-image pixels. ``working_width=0`` always uses the full frame.
    """

    def __init__(
        self,
        model: PoseModel,
        *,
        proposals: ProposalParams | None = None,
        crop: PoseCropParams | None = None,
        max_objects: int = 5,
        allocentric: bool = True,
        depth_offset_m: float = 0.0,
        working_width: int = DEFAULT_WORKING_WIDTH,
    ) -> None:
        if working_width < 0:
            raise PipelineError(f"working_width must be >= 0 (0 = full resolution), got {working_width}")
        self.working_width = int(working_width)
        sc = model.sidecar
        if sc.task != "pose":
            raise PipelineError(f"model {sc.name!r} has task {sc.task!r}; the pose pipeline needs 'pose'")
        if len(sc.inputs) != 1 or len(sc.inputs[0].shape) != 4:
            raise PipelineError(f"model {sc.name!r} must have one (N, 1, S, S) input, has {sc.inputs}")
        self.model = model
        self.input_name = sc.inputs[0].name
        size = int(sc.inputs[0].shape[-1])
        self.crop = crop or _crop_params_from_sidecar(sc, size)
        if self.crop.crop_size != size:
            raise PipelineError(f"crop_size {self.crop.crop_size} differs from model {sc.name!r} input size {size}")
        self.proposals = proposals or ProposalParams()
        self.max_objects = int(max_objects)
        class_ids = sc.extra.get("class_ids")
        self.class_ids: tuple[int, ...] | None = tuple(int(c) for c in class_ids) if class_ids else None
        rotation_kind = sc.extra.get("rotation", "allocentric_6d" if allocentric else "egocentric_6d")
        self.allocentric = rotation_kind == "allocentric_6d"
        self.depth_offset_m = float(depth_offset_m)
        by_semantic = {t.semantic: t.name for t in sc.outputs}
        if all(s in by_semantic for s in POSE_OUTPUT_SEMANTICS):
            self.output_names = tuple(by_semantic[s] for s in POSE_OUTPUT_SEMANTICS)
        elif all(s in {t.name for t in sc.outputs} for s in POSE_OUTPUT_SEMANTICS):
            self.output_names = POSE_OUTPUT_SEMANTICS
        else:
            raise PipelineError(f"model {sc.name!r} outputs {sc.outputs} do not declare {list(POSE_OUTPUT_SEMANTICS)}")
        logits_shape = next(t.shape for t in sc.outputs if t.name == self.output_names[0])
        classes = logits_shape[-1] if logits_shape else None
        if self.class_ids is not None and isinstance(classes, int) and classes > 0 and classes != len(self.class_ids):
            raise PipelineError(
                f"model {sc.name!r} has {classes} class logits but its sidecar lists {len(self.class_ids)} class_ids"
            )

    def __call__(self, depth_m: np.ndarray, intrinsics: Intrinsics) -> list[ObjectPose]:
        step = working_step(intrinsics.width, self.working_width)
        if step == 1:
            return self.poses_for_crops(propose_objects(depth_m, intrinsics, self.proposals), intrinsics)
        working = intrinsics.subsample(step)
        depth = np.ascontiguousarray(checked_depth(depth_m, intrinsics)[::step, ::step])  # strided views are slower
        poses = self.poses_for_crops(propose_objects(depth, working, self.proposals), working)
        return [replace(p, box=_full_image_box(p.box, step, intrinsics)) for p in poses]

    def poses_for_crops(self, crops: list[ObjectCrop], intrinsics: Intrinsics) -> list[ObjectPose]:
        """Poses of given crops (proposals or ground-truth masks), the ``max_objects`` largest first."""
        out: list[ObjectPose] = []
        for crop in (crops[i] for i in largest_crops(crops, self.max_objects)):
            prepared = prepare_pose_input(crop, self.crop)
            if prepared is None:
                continue
            result = self.model.run({self.input_name: prepared.image[None]})
            logits, rot6d = (np.asarray(result[n]).reshape(-1) for n in self.output_names)
            probs = softmax(logits)
            index = int(np.argmax(probs))
            t = translation_from_depth(
                prepared.centre_uv, prepared.depth_m, intrinsics, depth_offset_m=self.depth_offset_m
            )
            r = rotation_from_6d(rot6d)
            if self.allocentric:
                r = allocentric_to_egocentric(r, t)
            class_id = self.class_ids[index] if self.class_ids and index < len(self.class_ids) else index
            out.append(ObjectPose(class_id, float(probs[index]), r, t, crop.box))
        return out
