"""Pose network training: frames -> object crops (the deployed crop code), the run config, and the TrainTask.

Each object with enough visible pixels becomes one sample. Its crop comes from the ground-truth instance mask through
:func:`dcl_arc_ros.core.proposals.crops_from_labels` and :func:`dcl_arc_ros.core.pose_pipeline.prepare_pose_input`,
the same functions the deployed pipeline runs on proposals. The rotation target is the allocentric rotation (see
:mod:`dcl_arc_ros.core.pose_pipeline`) about the ray the pipeline itself will use, in the 6D representation.

Loss: cross-entropy on the class + ``rotation_weight`` x MSE on the 6D rotation (the DCL paper's pose set-up, with a
continuous rotation representation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
)
from dcl_arc_ros.core.proposals import ProposalParams, crops_from_labels
from dcl_arc_ros.learning.config import OptimConfig
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.frame_source import FrameSourceConfig
from dcl_arc_ros.learning.pose.posenet import PoseNetConfig, geodesic_angle, rotation_6d_to_matrix
from dcl_arc_ros.learning.registry import NetworkSpec
from dcl_arc_ros.learning.trainers.loop import LoopConfig
from dcl_arc_ros.learning.trainers.single_network import SingleNetworkTask

__all__ = [
    "FrameRecordLike",
    "PoseCropDataset",
    "PoseDataConfig",
    "PoseSample",
    "PoseTask",
    "PoseTrainConfig",
    "build_pose_samples",
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
    # Catalogue class ids the network classifies, in output order (empty: the class id is the output index). Objects
    # of other classes are skipped. The exporter records this list so the pipeline reports catalogue ids.
    class_ids: tuple[int, ...] = ()

    def crop_params(self) -> PoseCropParams:
        return PoseCropParams(crop_size=self.crop_size, margin=self.margin, depth_scale_m=self.depth_scale_m)


@dataclass(frozen=True)
class PoseTrainConfig:
    network: PoseNetConfig = field(default_factory=PoseNetConfig)
    rotation_weight: float = 1.0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, beta1=0.9, beta2=0.999))
    loop: LoopConfig = field(default_factory=LoopConfig)
    data: PoseDataConfig = field(default_factory=PoseDataConfig)

    def __post_init__(self) -> None:
        if self.rotation_weight < 0:
            raise ConfigError(f"PoseTrainConfig.rotation_weight must be >= 0, got {self.rotation_weight}")
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
    """The fields of ``dcl_arc_ros.sim.frame.ObjectLabel`` the pose samples need (read-only)."""

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


def pose_samples_from_frame(
    depth_m: np.ndarray,
    instances: np.ndarray,
    objects: Sequence[_ObjectLike],
    intrinsics: Intrinsics,
    cfg: PoseDataConfig,
) -> list[PoseSample]:
    """One sample per sufficiently visible object of one frame (``sim.frame.Frame`` fields)."""
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
            continue
        prepared = prepare_pose_input(crop, crop_params)
        if prepared is None:
            continue
        t = translation_from_depth(prepared.centre_uv, prepared.depth_m, intrinsics)
        r_cam = np.asarray(obj.cam_T_obj, dtype=np.float64)[:3, :3]
        r_allo = egocentric_to_allocentric(r_cam, t)
        out.append(PoseSample(crop.label, prepared.image, label, r_allo, r_cam, t, bool(obj.novel)))
    return out


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class _RecordObject:
    instance_id: int
    class_id: int
    novel: bool
    cam_T_obj: np.ndarray
    visible_fraction: float


class FrameRecordLike(Protocol):
    """The fields of ``dcl_arc_ros.bags.FrameRecord`` the pose samples need."""

    depth: np.ndarray | None
    depth_clean: np.ndarray | None
    instances: np.ndarray | None
    intrinsics: Intrinsics | None
    object_poses: np.ndarray | None  # (N, 4, 4)
    object_info: np.ndarray | None  # (N, 4) rows (instance_id, class_id, novel, visible_fraction)
    source: str


def pose_samples_from_record(record: FrameRecordLike, cfg: PoseDataConfig) -> list[PoseSample]:
    """:func:`pose_samples_from_frame` for a decoded bag frame (``FrameRecord``)."""
    depth = record.depth if cfg.depth_from == "sensor" else record.depth_clean
    missing = [
        name
        for name, value in (
            ("depth" if cfg.depth_from == "sensor" else "depth_clean", depth),
            ("instances", record.instances),
            ("intrinsics", record.intrinsics),
            ("object_poses", record.object_poses),
            ("object_info", record.object_info),
        )
        if value is None
    ]
    if missing:
        raise DatasetError(f"frame {record.source!r} lacks {missing}, needed for pose samples")
    assert depth is not None and record.instances is not None and record.intrinsics is not None
    assert record.object_poses is not None and record.object_info is not None
    objects = [
        _RecordObject(int(row[0]), int(row[1]), bool(row[2]), pose, float(row[3]))
        for row, pose in zip(record.object_info, record.object_poses, strict=True)
    ]
    return pose_samples_from_frame(depth, record.instances, objects, record.intrinsics, cfg)


def build_pose_samples(
    frames: Sequence[FrameRecordLike], cfg: PoseDataConfig, *, progress: bool = True
) -> list[PoseSample]:
    """Object crops of every frame (precomputed once: crops are small, frames are not)."""
    from tqdm.auto import tqdm

    out: list[PoseSample] = []
    for i in tqdm(range(len(frames)), desc="pose crops", disable=not progress):
        out.extend(pose_samples_from_record(frames[i], cfg))
    return out


class PoseCropDataset(Dataset[dict[str, torch.Tensor]]):
    """Precomputed object crops -> ``{"input", "class_id", "rot6d", "rotation"}`` tensors."""

    def __init__(self, samples: Sequence[PoseSample], *, num_classes: int | None = None) -> None:
        self.samples = list(samples)
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
        s = self.samples[index]
        return {
            "input": torch.from_numpy(np.ascontiguousarray(s.image, dtype=np.float32)),
            "class_id": torch.tensor(s.class_id, dtype=torch.long),
            "rot6d": torch.from_numpy(rotation_to_6d(s.rotation_allo).astype(np.float32)),
            "rotation": torch.from_numpy(s.rotation_allo.astype(np.float32)),
        }


class PoseTask(SingleNetworkTask):
    """The :class:`~dcl_arc_ros.learning.trainers.loop.TrainTask` of the pose network."""

    primary = "posenet"

    def __init__(self, cfg: PoseTrainConfig, device: str | torch.device = "cpu") -> None:
        self.cfg = cfg
        super().__init__(NetworkSpec("posenet", cfg.network), cfg.optim, device)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x = batch["input"].to(self.device)
        cls = batch["class_id"].to(self.device)
        rot6d = batch["rot6d"].to(self.device)
        logits, pred6d = self._forward(x)
        ce = F.cross_entropy(logits, cls)
        mse = F.mse_loss(pred6d, rot6d)
        with torch.no_grad():
            acc = (logits.argmax(dim=1) == cls).float().mean()
            err = geodesic_angle(rotation_6d_to_matrix(pred6d), batch["rotation"].to(self.device)).mean()
        logs = {
            "loss_ce": float(ce.detach()),
            "loss_rot": float(mse.detach()),
            "class_acc": float(acc),
            "rot_err_deg": float(torch.rad2deg(err)),
        }
        return ce + self.cfg.rotation_weight * mse, logs

    def image_grids(self, batch: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        return {"crops": (batch["train"]["input"].float() + 1) / 2}
