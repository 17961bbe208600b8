"""Pose network training: frames -> object crops (the deployed crop code), the run config, and the TrainTask.

Each object with enough visible pixels becomes one sample. Its crop comes from the ground-truth instance mask through
:func:`dcl_arc_ros.core.proposals.crops_from_labels` and :func:`dcl_arc_ros.core.pose_pipeline.prepare_pose_input`,
the same functions the deployed pipeline runs on proposals. The rotation target is the allocentric rotation (see
:mod:`dcl_arc_ros.core.pose_pipeline`) about the ray the pipeline itself will use, in the 6D representation.

Loss: cross-entropy on the class + ``rotation_weight`` x MSE on the 6D rotation (the DCL paper's pose set-up, with a
continuous rotation representation). ``rotation_loss`` says what the MSE is taken against:

- ``mse``: one target per object: the ground truth, or with ``data.symmetric_targets`` a canonical member of a
  symmetric primitive's symmetry class;
- ``symmetric_min_mse``: the smallest MSE over every rotation equivalent under the object's symmetries
  (:func:`~dcl_arc_ros.learning.pose.metrics.equivalent_rotations`), so no target jumps between nearby views; spheres
  add no rotation loss.

Input depth (``PoseDataConfig``, the :class:`~dcl_arc_ros.learning.frame_source.FrameSourceConfig` fields): the frames'
``depth_from`` depth, or depth *synthesized* from the clean depth (``synthesis`` + ``synthesis_checkpoint``, the DCL
paper's downstream protocol). ``synthesis_region`` says where the synthesizer runs:

- ``frame``: on the whole frame (:class:`~dcl_arc_ros.learning.frame_source.SynthesizedFrames`), exactly what the grasp
  trainer does; a 640x480 ResNet generator costs seconds per frame on one CPU thread;
- ``objects`` (default): on the windows of the frame's objects only: each window is the square the crop is cut from
  plus ``synthesis_context_px`` of scene around it, aligned to the generator's downsampling grid, and the generator
  runs once on the rectangle around all of them when that is no larger than the windows together (else once per
  window). The generator is fully convolutional, so inside a crop it sees the same neighbourhood as on the whole
  frame except for context beyond the window; this costs a fraction of a full frame (objects cover a small part of
  it) and is what makes synthesized training affordable on a CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.pose_pipeline import (
    PoseCropParams,
    egocentric_to_allocentric,
    prepare_pose_input,
    rotation_to_6d,
    translation_from_depth,
    turn_pose_crop,
)
from dcl_arc_ros.core.proposals import ProposalParams, crops_from_labels
from dcl_arc_ros.learning.config import OptimConfig
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.frame_source import FrameSourceConfig
from dcl_arc_ros.learning.pose.posenet import PoseNetConfig, geodesic_angle, rotation_6d_to_matrix
from dcl_arc_ros.learning.registry import NetworkSpec
from dcl_arc_ros.learning.trainers.loop import LoopConfig
from dcl_arc_ros.learning.trainers.single_network import SingleNetworkTask

if TYPE_CHECKING:
    from dcl_arc_ros.learning.trainers.dcl import Synthesizer

__all__ = [
    "POSE_TOPICS",
    "ROTATION_LOSSES",
    "FrameRecordLike",
    "ObjectWindowSynthesis",
    "PoseCropDataset",
    "PoseDataConfig",
    "PoseSample",
    "PoseTask",
    "PoseTrainConfig",
    "RotationLoss",
    "build_pose_samples",
    "labelled_rotation",
    "object_points",
    "open_pose_frames",
    "pose_samples_from_frame",
    "pose_samples_from_record",
]


@dataclass(frozen=True)
class PoseDataConfig(FrameSourceConfig):
    crop_size: int = 64
    margin: float = 0.2
    depth_scale_m: float = 0.15
    min_visible_fraction: float = 0.3  # skip heavily occluded objects
    min_pixels: int = 60
    # Train symmetric primitives (box, cylinder, sphere) on a canonical member of their symmetry class (see
    # dcl_arc_ros.learning.pose.metrics); False regresses the raw ground-truth rotation of every object.
    symmetric_targets: bool = True
    # Relabel each box's axes by the extent seen along them (x longest), for training and evaluation: the catalogue's
    # box axes are arbitrary (see dcl_arc_ros.learning.pose.metrics.order_box_axes). Uses the clean depth when the
    # frame has it.
    order_box_axes: bool = True
    # Catalogue class ids the network classifies, in output order (empty: the class id is the output index). Objects
    # of other classes are skipped. The exporter records this list so the pipeline reports catalogue ids.
    class_ids: tuple[int, ...] = ()
    # Where a synthesizer runs (see the module docstring): "objects" (a window per object) or "frame" (whole frames).
    synthesis_region: Literal["objects", "frame"] = "objects"
    synthesis_context_px: int = 32  # scene around each object window that the generator also sees ("objects")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.synthesis_context_px < 0:
            raise ConfigError(f"PoseDataConfig.synthesis_context_px must be >= 0, got {self.synthesis_context_px}")

    def crop_params(self) -> PoseCropParams:
        return PoseCropParams(crop_size=self.crop_size, margin=self.margin, depth_scale_m=self.depth_scale_m)


#: Members of the largest symmetry set (a cylinder: ``2 x CYLINDER_AXIAL_STEPS``); smaller sets are padded to it.
CYLINDER_AXIAL_STEPS = 24
SYMMETRY_SET_SIZE = 2 * CYLINDER_AXIAL_STEPS

RotationLoss = Literal["mse", "symmetric_min_mse"]
ROTATION_LOSSES: tuple[str, ...] = get_args(RotationLoss)


@dataclass(frozen=True)
class PoseTrainConfig:
    network: PoseNetConfig = field(default_factory=PoseNetConfig)
    rotation_weight: float = 1.0
    rotation_loss: RotationLoss = "mse"  # see the module docstring
    # Turn each training crop in the image plane by a random angle in +-augment_turn_deg (its targets turn with it):
    # 0 = off, 180 = any orientation. See core.pose_pipeline.turn_pose_crop.
    augment_turn_deg: float = 0.0
    init_from: str = ""  # checkpoint whose posenet weights start the run (fine-tuning); empty = random init
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, beta1=0.9, beta2=0.999))
    loop: LoopConfig = field(default_factory=LoopConfig)
    data: PoseDataConfig = field(default_factory=PoseDataConfig)

    def __post_init__(self) -> None:
        if self.rotation_weight < 0:
            raise ConfigError(f"PoseTrainConfig.rotation_weight must be >= 0, got {self.rotation_weight}")
        if not 0.0 <= self.augment_turn_deg <= 180.0:
            raise ConfigError(f"PoseTrainConfig.augment_turn_deg must be in [0, 180], got {self.augment_turn_deg}")
        if self.rotation_loss not in ROTATION_LOSSES:
            raise ConfigError(
                f"PoseTrainConfig.rotation_loss must be one of {list(ROTATION_LOSSES)}, got {self.rotation_loss!r}"
            )
        if self.data.class_ids and len(self.data.class_ids) != self.network.num_classes:
            raise ConfigError(
                f"data.class_ids lists {len(self.data.class_ids)} classes but network.num_classes is "
                f"{self.network.num_classes}"
            )
        if self.network.crop_size != self.data.crop_size:
            raise ConfigError(
                f"network.crop_size ({self.network.crop_size}) must equal data.crop_size ({self.data.crop_size})"
            )


class _ObjectLike(Protocol):
    """The fields of ``dcl_arc_ros.data.frame.ObjectLabel`` the pose samples need (read-only)."""

    @property
    def instance_id(self) -> int: ...
    @property
    def class_id(self) -> int: ...
    @property
    def novel(self) -> bool: ...
    @property
    def cam_T_obj(self) -> np.ndarray: ...
    @property
    def visible_fraction(self) -> float: ...


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class PoseSample:
    instance_id: int
    image: np.ndarray  # (1, S, S) float32
    class_id: int  # the network's class index (see PoseDataConfig.class_ids)
    rotation_allo: np.ndarray  # (3, 3)
    rotation_cam: np.ndarray  # (3, 3) camera_R_object, for evaluation
    translation_est: np.ndarray  # (3,) from depth, as the pipeline computes it
    novel: bool
    catalogue_id: int = -1  # the object's catalogue class id (class_id is the network's index, or unknown_class)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # (x0, y0, x1, y1) of the object's valid pixels, full-frame pixels
    frame: int = -1  # index of the frame in its sequence (set by build_pose_samples)


def pose_samples_from_frame(
    depth_m: np.ndarray,
    instances: np.ndarray,
    objects: Sequence[_ObjectLike],
    intrinsics: Intrinsics,
    cfg: PoseDataConfig,
    *,
    unknown_class: int | None = None,
    offset: tuple[int, int] = (0, 0),
    frame: int = -1,
    label_depth: np.ndarray | None = None,
) -> list[PoseSample]:
    """One sample per sufficiently visible object of one frame (``data.frame.Frame`` fields).

    Objects whose class is not in ``cfg.class_ids`` are skipped, or kept with ``class_id = unknown_class`` when that
    is given (evaluation: their rotation is still scored). ``offset`` is the (x, y) of ``depth_m`` in the full frame
    when it is a window of it (``intrinsics`` must then be the window's), so boxes come out in full-frame pixels.
    ``label_depth`` (same size as ``depth_m``, e.g. the clean depth) is what box axes are ordered from
    (``cfg.order_box_axes``); by default ``depth_m``.
    """
    by_id = {int(o.instance_id): o for o in objects if o.visible_fraction >= cfg.min_visible_fraction}
    class_index = {int(c): i for i, c in enumerate(cfg.class_ids)}
    params = ProposalParams(
        min_pixels=cfg.min_pixels,
        max_pixels=intrinsics.width * intrinsics.height,
        min_extent_m=0.0,
        max_extent_m=float("inf"),
    )
    crop_params = cfg.crop_params()
    out: list[PoseSample] = []
    for crop in crops_from_labels(instances, depth_m, intrinsics, params):
        obj = by_id.get(crop.label)
        if obj is None:
            continue
        label = class_index.get(int(obj.class_id)) if class_index else int(obj.class_id)
        if label is None:
            if unknown_class is None:
                continue
            label = unknown_class
        prepared = prepare_pose_input(crop, crop_params)
        if prepared is None:
            continue
        t = translation_from_depth(prepared.centre_uv, prepared.depth_m, intrinsics)
        r_cam = labelled_rotation(
            obj.cam_T_obj,
            int(obj.class_id),
            cfg,
            depth_m=label_depth if label_depth is not None else depth_m,
            instances=instances,
            instance_id=crop.label,
            intrinsics=intrinsics,
        )
        r_allo = egocentric_to_allocentric(r_cam, t)
        x0, y0, x1, y1 = crop.box
        box = (x0 + offset[0], y0 + offset[1], x1 + offset[0], y1 + offset[1])
        out.append(
            PoseSample(
                crop.label, prepared.image, label, r_allo, r_cam, t, bool(obj.novel), int(obj.class_id), box, frame
            )
        )
    return out


def object_points(depth_m: np.ndarray, instances: np.ndarray, instance_id: int, intrinsics: Intrinsics) -> np.ndarray:
    """(N, 3) camera-frame points of one instance's valid depth pixels."""
    rows, cols = np.nonzero((instances == instance_id) & np.isfinite(depth_m) & (depth_m > 0))
    z = depth_m[rows, cols].astype(np.float64)
    return intrinsics.deproject(cols.astype(np.float64), rows.astype(np.float64), z)


def labelled_rotation(
    cam_T_obj: np.ndarray,
    catalogue_id: int,
    cfg: PoseDataConfig,
    *,
    depth_m: np.ndarray,
    instances: np.ndarray,
    instance_id: int,
    intrinsics: Intrinsics,
) -> np.ndarray:
    """The camera-frame rotation a sample is labelled with: the ground truth, with a box's axes ordered by extent
    when ``cfg.order_box_axes``, from the instance's points in ``depth_m`` (see ``metrics.order_box_axes``)."""
    from dcl_arc_ros.learning.pose.metrics import order_box_axes, symmetry_of

    pose = np.asarray(cam_T_obj, dtype=np.float64)
    if cfg.order_box_axes and symmetry_of(catalogue_id) == "box":
        points = object_points(depth_m, instances, instance_id, intrinsics)
        return order_box_axes(pose[:3, :3], pose[:3, 3], points)
    return pose[:3, :3].copy()


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class _RecordObject:
    instance_id: int
    class_id: int
    novel: bool
    cam_T_obj: np.ndarray
    visible_fraction: float


class FrameRecordLike(Protocol):
    """The fields of ``dcl_arc_ros.data.bags.FrameRecord`` the pose samples need."""

    depth: np.ndarray | None
    depth_clean: np.ndarray | None
    instances: np.ndarray | None
    intrinsics: Intrinsics | None
    object_poses: np.ndarray | None  # (N, 4, 4)
    object_info: np.ndarray | None  # (N, 4) rows (instance_id, class_id, novel, visible_fraction)
    source: str


def _record_objects(record: FrameRecordLike, depth: np.ndarray | None, depth_name: str) -> list[_RecordObject]:
    missing = [
        name
        for name, value in (
            (depth_name, depth),
            ("instances", record.instances),
            ("intrinsics", record.intrinsics),
            ("object_poses", record.object_poses),
            ("object_info", record.object_info),
        )
        if value is None
    ]
    if missing:
        raise DatasetError(f"frame {record.source!r} lacks {missing}, needed for pose samples")
    assert record.object_poses is not None and record.object_info is not None
    return [
        _RecordObject(int(row[0]), int(row[1]), bool(row[2]), pose, float(row[3]))
        for row, pose in zip(record.object_info, record.object_poses, strict=True)
    ]


def pose_samples_from_record(
    record: FrameRecordLike,
    cfg: PoseDataConfig,
    *,
    synthesizer: Synthesizer | None = None,
    unknown_class: int | None = None,
    frame: int = -1,
) -> list[PoseSample]:
    """:func:`pose_samples_from_frame` for a decoded bag frame (``FrameRecord``).

    The depth is the record's ``depth`` when ``cfg`` synthesizes whole frames (the frame sequence already did it) or
    reads the sensor, its ``depth_clean`` for ``depth_from: clean``; with ``synthesizer`` (``synthesis_region:
    objects``) each object's window of the clean depth is synthesized first (:class:`ObjectWindowSynthesis`).
    """
    if synthesizer is not None:
        objects = _record_objects(record, record.depth_clean, "depth_clean")
        return _window_samples(record, objects, synthesizer, cfg, unknown_class=unknown_class, frame=frame)
    use_depth = cfg.depth_from == "sensor" or (cfg.synthesizes and cfg.synthesis_region == "frame")
    depth = record.depth if use_depth else record.depth_clean
    objects = _record_objects(record, depth, "depth" if use_depth else "depth_clean")
    assert depth is not None and record.instances is not None and record.intrinsics is not None
    clean = record.depth_clean
    return pose_samples_from_frame(
        depth,
        record.instances,
        objects,
        record.intrinsics,
        cfg,
        unknown_class=unknown_class,
        frame=frame,
        label_depth=clean if clean is not None and clean.shape == depth.shape else None,
    )


#: The generator halves the resolution this many times at most: windows are aligned to multiples of 2^n.
_WINDOW_ALIGN = 8


def _object_window(mask: np.ndarray, cfg: PoseDataConfig, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the synthesis window of one object mask: its crop square plus context, grid-aligned."""
    rows, cols = np.nonzero(mask)
    bx0, bx1, by0, by1 = int(cols.min()), int(cols.max()) + 1, int(rows.min()), int(rows.max()) + 1
    half = 0.5 * max(bx1 - bx0, by1 - by0) * (1.0 + cfg.margin) + cfg.synthesis_context_px
    cx, cy = 0.5 * (bx0 + bx1), 0.5 * (by0 + by1)
    a = _WINDOW_ALIGN
    x0 = max(0, int(np.floor((cx - half) / a)) * a)
    y0 = max(0, int(np.floor((cy - half) / a)) * a)
    x1 = min(width, int(np.ceil((cx + half) / a)) * a)
    y1 = min(height, int(np.ceil((cy + half) / a)) * a)
    return x0, y0, x1, y1


def synthesize_window(
    clean: np.ndarray, intrinsics: Intrinsics, window: tuple[int, int, int, int], synthesizer: Synthesizer
) -> np.ndarray:
    """The synthesizer run on ``clean[y0:y1, x0:x1]`` (NaN = no depth, as in records); float32 metres, NaN = hole.

    The window is padded (edge values) to the alignment grid when it meets an image border that is not on it.
    """
    x0, y0, x1, y1 = window
    patch = np.nan_to_num(np.asarray(clean[y0:y1, x0:x1], dtype=np.float32), nan=0.0)
    patch[patch < 0] = 0.0
    h, w = patch.shape
    ph, pw = (-h) % _WINDOW_ALIGN, (-w) % _WINDOW_ALIGN
    if ph or pw:
        patch = np.pad(patch, ((0, ph), (0, pw)), mode="edge")
    k = intrinsics
    intr = torch.tensor([[k.fx, k.fy, k.cx - x0, k.cy - y0]], dtype=torch.float32)
    with torch.no_grad():
        out = synthesizer(torch.from_numpy(patch)[None, None], None, intrinsics=intr)
    synth = out.detach().cpu().numpy().astype(np.float32, copy=False)[0, 0, :h, :w]
    return np.where(np.isfinite(synth) & (synth > 0), synth, np.float32(np.nan)).astype(np.float32)


def _window_samples(
    record: FrameRecordLike,
    objects: Sequence[_RecordObject],
    synthesizer: Synthesizer,
    cfg: PoseDataConfig,
    *,
    unknown_class: int | None,
    frame: int,
) -> list[PoseSample]:
    assert record.depth_clean is not None and record.instances is not None and record.intrinsics is not None
    k = record.intrinsics
    todo: list[tuple[_RecordObject, np.ndarray, tuple[int, int, int, int]]] = []
    for obj in objects:
        if obj.visible_fraction < cfg.min_visible_fraction:
            continue
        mask = record.instances == obj.instance_id
        if mask.any():
            todo.append((obj, mask, _object_window(mask, cfg, k.height, k.width)))
    if not todo:
        return []
    # One generator run on the windows' bounding rectangle when that is no larger than the windows together (objects
    # on a table cluster): each window then sees at least its own context, for less compute.
    union = (
        min(w[0] for _, _, w in todo),
        min(w[1] for _, _, w in todo),
        max(w[2] for _, _, w in todo),
        max(w[3] for _, _, w in todo),
    )
    area = sum((w[2] - w[0]) * (w[3] - w[1]) for _, _, w in todo)
    shared = None
    if (union[2] - union[0]) * (union[3] - union[1]) <= area:
        shared = synthesize_window(record.depth_clean, k, union, synthesizer)
    out: list[PoseSample] = []
    for obj, mask, window in todo:
        x0, y0, x1, y1 = window
        if shared is not None:
            synth = shared[y0 - union[1] : y1 - union[1], x0 - union[0] : x1 - union[0]]
        else:
            synth = synthesize_window(record.depth_clean, k, window, synthesizer)
        labels = np.where(mask[y0:y1, x0:x1], obj.instance_id, 0).astype(np.int32)
        out.extend(
            pose_samples_from_frame(
                synth,
                labels,
                [obj],
                k.crop(x0, y0, x1 - x0, y1 - y0),
                cfg,
                unknown_class=unknown_class,
                offset=(x0, y0),
                frame=frame,
                label_depth=record.depth_clean[y0:y1, x0:x1],
            )
        )
    return out


class ObjectWindowSynthesis:
    """The synthesizer of each frame for ``synthesis_region: objects``.

    Deterministic and trained methods share one synthesizer; the stochastic ``empirical`` one gets a fresh one seeded by
    ``(seed, frame index)``, as :class:`~dcl_arc_ros.learning.frame_source.SynthesizedFrames` does, so a frame's
    synthesized depth does not depend on the order frames are visited in.
    """

    def __init__(self, cfg: PoseDataConfig, *, seed: int = 0) -> None:
        from dcl_arc_ros.learning.trainers.dcl import make_synthesizer

        if not cfg.synthesizes:
            raise ConfigError("ObjectWindowSynthesis needs data.synthesis to name a method")
        self.method, self.checkpoint, self.seed = cfg.synthesis, cfg.synthesis_checkpoint or None, int(seed)
        self._make = make_synthesizer
        self._shared = (
            None
            if self.method == "empirical"
            else make_synthesizer(self.method, checkpoint=self.checkpoint, seed=self.seed)
        )

    def for_frame(self, index: int) -> Synthesizer:
        if self._shared is not None:
            return self._shared
        frame_seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        return self._make(self.method, checkpoint=None, seed=frame_seed)


#: Bag topics the pose samples read (the depth topics are added by :func:`open_pose_frames`).
POSE_TOPICS: tuple[str, ...] = (
    "/camera/depth/camera_info",
    "/ground_truth/instances",
    "/ground_truth/poses",
    "/ground_truth/poses/info",
)


def open_pose_frames(cfg: PoseDataConfig, *, seed: int = 0, extra_topics: Sequence[str] = ()) -> Any:
    """The frames of ``cfg`` as a sequence of FrameRecord-like objects (decoding only the topics pose samples read).

    Same order as :func:`~dcl_arc_ros.learning.frame_source.open_frame_records`: ``frame_fraction`` subset (drawn with
    ``seed``), ``frame_scale`` resize, ``in_memory`` cache, then whole-frame synthesis (``synthesis_region: frame``);
    per-object synthesis happens later, in :func:`build_pose_samples`.
    """
    from dcl_arc_ros.data import bags, torch_datasets

    if cfg.source == "toy":
        from dcl_arc_ros.learning.pose.toy_data import ToyPoseFrames

        frames: Any = ToyPoseFrames(cfg.toy_frames, seed=seed)
    elif cfg.source == "bags":
        from dcl_arc_ros.data.bag_index import BagIndex

        if not cfg.paths:
            raise DatasetError("the 'bags' pose source needs data.paths")
        depth_topics = [bags.GT_DEPTH] if cfg.synthesizes or cfg.depth_from == "clean" else [bags.DEPTH_IMAGE]
        topics = list(dict.fromkeys([bags.DEPTH_IMAGE, *depth_topics, *POSE_TOPICS, *extra_topics]))
        frames = BagIndex(list(cfg.paths), topics=topics)
    elif cfg.source in torch_datasets.SOURCES:
        frames = torch_datasets.SOURCES[cfg.source](*cfg.paths)
    else:
        known = sorted(torch_datasets.SOURCES)
        raise DatasetError(f"unknown data source {cfg.source!r}; expected 'toy' or one of {known}")
    from dcl_arc_ros.learning.frame_source import FrameSubset, ResizedFrames, SynthesizedFrames

    if cfg.frame_fraction < 1.0:  # the same seeded subset as the grasp trainer's (e.g. 10% of the real frames)
        frames = FrameSubset.fraction(frames, cfg.frame_fraction, seed=seed)
    if cfg.frame_scale != 1.0:
        frames = ResizedFrames(frames, cfg.frame_scale)
    if cfg.in_memory and cfg.source != "toy":
        frames = torch_datasets.InMemoryFrames(frames)
    if cfg.synthesizes and cfg.synthesis_region == "frame":
        frames = SynthesizedFrames(
            frames, cfg.synthesis, checkpoint=cfg.synthesis_checkpoint, seed=seed, cache=cfg.in_memory
        )
    return frames


def build_pose_samples(
    frames: Sequence[FrameRecordLike],
    cfg: PoseDataConfig,
    *,
    seed: int = 0,
    unknown_class: int | None = None,
    indices: Sequence[int] | None = None,
    progress: bool = True,
) -> list[PoseSample]:
    """Object crops of every frame (or of ``indices``), computed once: crops are small, frames are not.

    With ``synthesis_region: objects`` the synthesizer runs here, once per object (seeded by ``seed`` and the frame).
    """
    from tqdm.auto import tqdm

    windows = ObjectWindowSynthesis(cfg, seed=seed) if cfg.synthesizes and cfg.synthesis_region == "objects" else None
    order = list(range(len(frames))) if indices is None else [int(i) for i in indices]
    out: list[PoseSample] = []
    for i in tqdm(order, desc="pose crops", disable=not progress):
        synth = windows.for_frame(i) if windows is not None else None
        out.extend(pose_samples_from_record(frames[i], cfg, synthesizer=synth, unknown_class=unknown_class, frame=i))
    return out


class PoseCropDataset(Dataset[dict[str, torch.Tensor]]):
    """Precomputed object crops -> ``{"input", "class_id", "rot6d", "rotation"}`` tensors.

    With ``symmetric_targets`` the rotation targets of symmetric primitives are canonical members of their symmetry
    class (:func:`dcl_arc_ros.learning.pose.metrics.canonical_rotation`, by the sample's catalogue id).
    With ``symmetry_sets`` (for ``rotation_loss: symmetric_min_mse``) each item also carries ``rot6d_set``, the 6D
    forms of every equivalent rotation (``SYMMETRY_SET_SIZE`` rows, padded), and ``rot_weight``, 0 for spheres.
    With ``turn_deg`` > 0 every item is turned in the image plane by a random angle, uniform in +-``turn_deg``
    (:func:`~dcl_arc_ros.core.pose_pipeline.turn_pose_crop`, drawn from torch's seeded generator), and its targets
    turn with it.
    """

    def __init__(
        self,
        samples: Sequence[PoseSample],
        *,
        num_classes: int | None = None,
        symmetric_targets: bool = False,
        symmetry_sets: bool = False,
        turn_deg: float = 0.0,
        background: float = 1.0,
    ) -> None:
        from dcl_arc_ros.learning.pose.metrics import symmetry_of

        if not 0.0 <= turn_deg <= 180.0:
            raise ConfigError(f"the in-plane turn of pose crops must be in [0, 180] degrees, got {turn_deg}")
        self.samples = list(samples)
        self.kinds = [symmetry_of(s.catalogue_id) for s in self.samples]
        self.symmetric_targets, self.symmetry_sets = symmetric_targets, symmetry_sets
        self.turn_deg, self.background = float(turn_deg), float(background)
        if num_classes is not None:
            bad = sorted({s.class_id for s in self.samples if not 0 <= s.class_id < num_classes})
            if bad:
                raise DatasetError(
                    f"class ids {bad[:10]} are outside [0, {num_classes}): set data.class_ids to the catalogue ids "
                    f"the network classifies, or raise network.num_classes"
                )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from dcl_arc_ros.learning.pose.metrics import canonical_rotation, equivalent_rotations

        s, kind = self.samples[index], self.kinds[index]
        image, rotation = s.image, s.rotation_allo
        if self.turn_deg > 0.0:
            angle = (2.0 * float(torch.rand(())) - 1.0) * self.turn_deg
            image, r_turn = turn_pose_crop(image, angle, self.background)
            rotation = r_turn @ rotation
        target = canonical_rotation(rotation, kind) if self.symmetric_targets else rotation
        item = {
            "input": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "class_id": torch.tensor(s.class_id, dtype=torch.long),
            "rot6d": torch.from_numpy(rotation_to_6d(target).astype(np.float32)),
            "rotation": torch.from_numpy(target.astype(np.float32)),
        }
        if self.symmetry_sets:
            members = equivalent_rotations(rotation, kind, SYMMETRY_SET_SIZE, CYLINDER_AXIAL_STEPS)
            item["rot6d_set"] = torch.from_numpy(rotation_to_6d(members).astype(np.float32))
            item["rot_weight"] = torch.tensor(0.0 if kind == "sphere" else 1.0, dtype=torch.float32)
        return item

    @classmethod
    def for_training(
        cls, samples: Sequence[PoseSample], cfg: PoseTrainConfig, *, num_classes: int | None = None
    ) -> PoseCropDataset:
        """The dataset ``cfg`` trains on: its targets (``data.symmetric_targets``, ``rotation_loss``) and turns."""
        return cls(
            samples,
            num_classes=num_classes,
            symmetric_targets=cfg.data.symmetric_targets,
            symmetry_sets=cfg.rotation_loss == "symmetric_min_mse",
            turn_deg=cfg.augment_turn_deg,
            background=cfg.data.crop_params().background,
        )


class PoseTask(SingleNetworkTask):
    """The :class:`~dcl_arc_ros.learning.trainers.loop.TrainTask` of the pose network."""

    primary = "posenet"

    def __init__(self, cfg: PoseTrainConfig, device: str | torch.device = "cpu") -> None:
        self.cfg = cfg
        super().__init__(NetworkSpec("posenet", cfg.network), cfg.optim, device)
        if cfg.init_from:
            self.load_weights(cfg.init_from)

    def load_weights(self, checkpoint: str) -> None:
        """Start from the posenet weights of ``checkpoint`` (same architecture; the optimiser starts fresh)."""
        from dcl_arc_ros.learning.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        name = self.primary if self.primary in ckpt.networks else ckpt.primary
        if ckpt.networks[name].config != self.cfg.network:
            raise ConfigError(
                f"init_from {checkpoint}: its network {ckpt.networks[name].config} differs from {self.cfg.network}"
            )
        self.net.load_state_dict(ckpt.state_dicts[name])

    def loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["input"].to(self.device)
        cls = batch["class_id"].to(self.device)
        rot6d = batch["rot6d"].to(self.device)
        logits, pred6d = self._forward(x)
        ce = F.cross_entropy(logits, cls)
        if self.cfg.rotation_loss == "symmetric_min_mse":
            if "rot6d_set" not in batch:
                raise ConfigError("rotation_loss symmetric_min_mse needs a PoseCropDataset built with symmetry_sets")
            targets, weights = batch["rot6d_set"].to(self.device), batch["rot_weight"].to(self.device)
            mse, err = _symmetric_min_mse(pred6d, targets, weights)
        else:
            mse = F.mse_loss(pred6d, rot6d)
            with torch.no_grad():
                err = geodesic_angle(rotation_6d_to_matrix(pred6d), batch["rotation"].to(self.device)).mean()
        with torch.no_grad():
            acc = (logits.argmax(dim=1) == cls).float().mean()
        logs = {
            "loss_ce": float(ce.detach()),
            "loss_rot": float(mse.detach()),
            "class_acc": float(acc),
            "rot_err_deg": float(torch.rad2deg(err)),
        }
        return ce + self.cfg.rotation_weight * mse, logs

    def image_grids(self, batch: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        return {"crops": (batch["train"]["input"].float() + 1) / 2}


def _symmetric_min_mse(
    pred6d: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 6) predictions, (B, K, 6) equivalent targets, (B,) weights -> (loss, mean symmetry-aware error, rad).

    The loss is the weighted mean over objects of the smallest 6D MSE over each object's set (the plain MSE when every
    set has one member); objects of weight 0 (spheres) add nothing. The error is the smallest geodesic angle to a
    member of the set, over the weighted objects (0 when none).
    """
    per_member = ((pred6d[:, None, :] - targets) ** 2).mean(dim=-1)  # (B, K)
    per_object = per_member.min(dim=1).values
    total = weights.sum()
    loss = (per_object * weights).sum() / total.clamp_min(1.0)
    with torch.no_grad():
        angles = geodesic_angle(rotation_6d_to_matrix(pred6d)[:, None], rotation_6d_to_matrix(targets))
        angles = angles.min(dim=1).values
        err = (angles * weights).sum() / total.clamp_min(1.0)
    return loss, err
