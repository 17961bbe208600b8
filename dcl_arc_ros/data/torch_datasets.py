"""PyTorch datasets over any source of FrameRecords (bags, folder layout, NYUv2, real data), by name.

Every sample is a dict of tensors with fixed shapes, so the default collate batches it:

=================  ============  =============================================================================
key                shape         meaning
=================  ============  =============================================================================
depth              (1, H, W)     float32 metres, 0 where invalid (the sensor depth, or the clean one with
                                 ``depth_from="clean"``)
valid              (1, H, W)     float32 1/0 mask of ``depth``
rgb                (3, H, W)     float32 in [0, 1] (when the source has colour)
depth_clean        (1, H, W)     float32 metres ground truth, 0 where invalid; ``clean_valid`` is its mask
normals            (3, H, W)     float32 unit normals in the camera optical frame, 0 where unknown
instances          (1, H, W)     int64, 0 = background
grasp_quality      (1, H, W)     float32 GG-CNN maps; also grasp_cos2, grasp_sin2, grasp_width (pixels)
intrinsics         (4,)          float32 (fx, fy, cx, cy) of the returned pixels
=================  ============  =============================================================================

Geometric transforms (:class:`Resize`, :class:`CenterCrop`, :class:`RandomCrop`) act on the numpy record before
conversion and keep the intrinsics, the grasp widths and the grasp rectangles consistent with the pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dcl_arc_ros.data import bags
from dcl_arc_ros.data.bag_index import BagIndex
from dcl_arc_ros.data.bags import FrameRecord
from dcl_arc_ros.data.errors import DatasetError
from dcl_arc_ros.data.folder import FolderFrames
from dcl_arc_ros.data.nyuv2 import NYUv2Frames
from dcl_arc_ros.data.real import CastelFrames, MiddleburyFrames


class FrameSequence(Protocol):
    """Anything indexable that yields FrameRecords (BagIndex, FolderFrames, NYUv2Frames, CastelFrames, ...)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> FrameRecord: ...


class SampleTransform(Protocol):
    def __call__(self, record: FrameRecord, rng: np.random.Generator) -> FrameRecord: ...


_DENSE_FIELDS: Final[tuple[str, ...]] = (
    "rgb",
    "depth",
    "depth_clean",
    "normals",
    "instances",
    "grasp_quality",
    "grasp_cos2",
    "grasp_sin2",
    "grasp_width",
)
_SMOOTH_FIELDS: Final[frozenset[str]] = frozenset({"rgb"})


def _record_shape(record: FrameRecord) -> tuple[int, int]:
    for name in _DENSE_FIELDS:
        arr = getattr(record, name)
        if arr is not None:
            return int(arr.shape[0]), int(arr.shape[1])
    raise DatasetError(f"record {record.source!r} has no image to transform")


def crop_record(record: FrameRecord, x0: int, y0: int, width: int, height: int) -> FrameRecord:
    """``record`` cropped to ``[y0:y0+height, x0:x0+width]``, intrinsics and grasp rectangles shifted to match."""
    h, w = _record_shape(record)
    if x0 < 0 or y0 < 0 or width <= 0 or height <= 0 or x0 + width > w or y0 + height > h:
        raise DatasetError(f"crop x0={x0} y0={y0} {width}x{height} does not fit the {w}x{h} record {record.source!r}")
    changes: dict[str, Any] = {}
    for name in _DENSE_FIELDS:
        arr = getattr(record, name)
        if arr is not None:
            changes[name] = np.ascontiguousarray(arr[y0 : y0 + height, x0 : x0 + width])
    for name in ("intrinsics", "color_intrinsics"):
        intr = getattr(record, name)
        if intr is not None:
            changes[name] = intr.crop(x0, y0, width, height)
    if record.grasp_info is not None:
        info = record.grasp_info.copy()
        info[:, 0] -= x0
        info[:, 1] -= y0
        changes["grasp_info"] = info
    return replace(record, **changes)


def resize_record(record: FrameRecord, width: int, height: int) -> FrameRecord:
    """``record`` resized to ``width`` x ``height`` (half-pixel convention, as :meth:`Intrinsics.resize`).

    Colour is interpolated (area when shrinking); depth, normals, instances and grasp maps use exact nearest
    neighbour so invalid pixels never blend into valid ones. Grasp widths (pixels) scale with the image; a resize
    that changes the aspect ratio would distort grasp angles, so it is refused when grasp labels are present.
    """
    h, w = _record_shape(record)
    sx, sy = width / w, height / h
    has_grasps = record.grasp_width is not None or record.grasp_info is not None
    if has_grasps and abs(sx / sy - 1.0) > 0.01:
        raise DatasetError(
            f"resizing {w}x{h} to {width}x{height} changes the aspect ratio, which would distort the "
            f"grasp angles of {record.source!r}; crop to the target aspect first"
        )
    changes: dict[str, Any] = {}
    for name in _DENSE_FIELDS:
        arr = getattr(record, name)
        if arr is None:
            continue
        if name in _SMOOTH_FIELDS:
            interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
        else:
            interp = cv2.INTER_NEAREST_EXACT
        source = arr.astype(np.float32) if name == "instances" else arr  # cv2 cannot resize int32 with nearest
        out = cv2.resize(source, (width, height), interpolation=interp)
        if name == "instances":
            out = np.rint(out).astype(arr.dtype)
        if name == "grasp_width":
            out = out * np.float32((sx + sy) / 2)
        changes[name] = out.reshape(height, width, *arr.shape[2:])
    for name in ("intrinsics", "color_intrinsics"):
        intr = getattr(record, name)
        if intr is not None:
            changes[name] = intr.resize(width, height)
    if record.grasp_info is not None:
        info = record.grasp_info.copy()
        info[:, 0] = (info[:, 0] + 0.5) * sx - 0.5
        info[:, 1] = (info[:, 1] + 0.5) * sy - 0.5
        info[:, 3] *= (sx + sy) / 2
        changes["grasp_info"] = info
    return replace(record, **changes)


@dataclass(frozen=True)
class Resize:
    width: int
    height: int

    def __call__(self, record: FrameRecord, rng: np.random.Generator) -> FrameRecord:
        return resize_record(record, self.width, self.height)


@dataclass(frozen=True)
class CenterCrop:
    width: int
    height: int

    def __call__(self, record: FrameRecord, rng: np.random.Generator) -> FrameRecord:
        h, w = _record_shape(record)
        return crop_record(record, (w - self.width) // 2, (h - self.height) // 2, self.width, self.height)


@dataclass(frozen=True)
class RandomCrop:
    """A random ``width`` x ``height`` window; ``x_min`` keeps it right of that column (e.g. off an active-stereo
    camera's invalid band along the left edge, as wide as its disparity search range)."""

    width: int
    height: int
    x_min: int = 0

    def __call__(self, record: FrameRecord, rng: np.random.Generator) -> FrameRecord:
        h, w = _record_shape(record)
        if self.width > w - self.x_min or self.height > h or self.x_min < 0:
            raise DatasetError(
                f"random crop {self.width}x{self.height} right of column {self.x_min} does not fit the {w}x{h} "
                f"record {record.source!r}"
            )
        x0 = int(rng.integers(self.x_min, w - self.width + 1))
        y0 = int(rng.integers(0, h - self.height + 1))
        return crop_record(record, x0, y0, self.width, self.height)


def _map(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.nan_to_num(np.asarray(arr, np.float32), nan=0.0, posinf=0.0, neginf=0.0)[None])


def _depth_pair(depth: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    d = np.asarray(depth, np.float32)
    valid = np.isfinite(d) & (d > 0)
    return torch.from_numpy(np.where(valid, d, 0.0).astype(np.float32)[None]), torch.from_numpy(
        valid.astype(np.float32)[None]
    )


def record_to_sample(record: FrameRecord, *, depth_from: str = "sensor") -> dict[str, torch.Tensor]:
    """A FrameRecord -> the dict of tensors described in the module doc (only the keys the record has)."""
    if depth_from not in ("sensor", "clean"):
        raise DatasetError(f"depth_from must be 'sensor' or 'clean', got {depth_from!r}")
    depth = record.depth if depth_from == "sensor" else record.depth_clean
    if depth is None:
        raise DatasetError(f"record {record.source!r} has no {depth_from} depth")
    sample: dict[str, torch.Tensor] = {}
    sample["depth"], sample["valid"] = _depth_pair(depth)
    if record.rgb is not None:
        sample["rgb"] = torch.from_numpy(np.ascontiguousarray(record.rgb.transpose(2, 0, 1))).float().div_(255.0)
    if record.depth_clean is not None:
        sample["depth_clean"], sample["clean_valid"] = _depth_pair(record.depth_clean)
    if record.normals is not None:
        sample["normals"] = torch.from_numpy(
            np.ascontiguousarray(np.nan_to_num(record.normals.astype(np.float32), nan=0.0).transpose(2, 0, 1))
        )
    if record.instances is not None:
        sample["instances"] = torch.from_numpy(record.instances.astype(np.int64)[None])
    for name in ("grasp_quality", "grasp_cos2", "grasp_sin2", "grasp_width"):
        arr = getattr(record, name)
        if arr is not None:
            sample[name] = _map(arr)
    if record.intrinsics is not None:
        k = record.intrinsics
        sample["intrinsics"] = torch.tensor([k.fx, k.fy, k.cx, k.cy], dtype=torch.float32)
    return sample


class FrameDataset(Dataset):
    """A torch Dataset over a FrameSequence with optional transforms and a fixed set of keys.

    ``keys`` (when given) selects the sample keys and makes them required, so samples from mixed sources batch
    together; a record lacking one raises DatasetError. Random transforms draw from torch's RNG (seeded per
    DataLoader worker and epoch), so ``torch.manual_seed`` makes them reproducible.
    """

    def __init__(
        self,
        source: FrameSequence,
        *,
        transforms: Sequence[SampleTransform] = (),
        depth_from: str = "sensor",
        keys: Sequence[str] | None = None,
    ) -> None:
        self.source = source
        self.transforms = tuple(transforms)
        self.depth_from = depth_from
        self.keys = tuple(keys) if keys is not None else None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.source[index]
        if self.transforms:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
            for transform in self.transforms:
                record = transform(record, rng)
        sample = record_to_sample(record, depth_from=self.depth_from)
        if self.keys is None:
            return sample
        missing = [k for k in self.keys if k not in sample]
        if missing:
            raise DatasetError(f"sample {index} ({record.source!r}) lacks {missing}; it has {sorted(sample)}")
        return {k: sample[k] for k in self.keys}


class ConcatFrames:
    """Several FrameSequences one after the other."""

    def __init__(self, parts: Sequence[FrameSequence]) -> None:
        if not parts:
            raise DatasetError("no data source given (empty list of paths)")
        self.parts = tuple(parts)
        self._offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, index: int) -> FrameRecord:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for {n} samples")
        index %= n
        part = int(np.searchsorted(self._offsets, index, side="right") - 1)
        return self.parts[part][int(index - self._offsets[part])]


class InMemoryFrames:
    """A FrameSequence that decodes each record once and keeps it (before any random transform).

    Decoding a compressed 640x480 bag frame costs far more than a training step of a small network; for data sets that
    fit in memory this makes every epoch after the first one free of I/O. Memory is what the selected topics take
    (about 2.5 MB per 640x480 frame for clean + sensor depth).
    """

    def __init__(self, source: FrameSequence) -> None:
        self.source = source
        self._records: dict[int, FrameRecord] = {}

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> FrameRecord:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        index %= len(self)
        record = self._records.get(index)
        if record is None:
            record = self._records[index] = self.source[index]
        return record


#: Sample key -> the bag topics that produce it. The sensor depth is always read (every sample has "depth").
KEY_TOPICS: Final[Mapping[str, tuple[str, ...]]] = {
    "depth": (bags.DEPTH_IMAGE,),
    "valid": (bags.DEPTH_IMAGE,),
    "depth_clean": (bags.GT_DEPTH,),
    "clean_valid": (bags.GT_DEPTH,),
    "rgb": (bags.COLOR_IMAGE,),
    "normals": (bags.GT_NORMALS,),
    "instances": (bags.GT_INSTANCES,),
    "grasp_quality": (bags.GT_GRASP_QUALITY,),
    "grasp_cos2": (bags.GT_GRASP_COS2,),
    "grasp_sin2": (bags.GT_GRASP_SIN2,),
    "grasp_width": (bags.GT_GRASP_WIDTH,),
    "intrinsics": (bags.DEPTH_INFO,),
}


def topics_for_keys(keys: Sequence[str], *, depth_from: str = "sensor") -> list[str]:
    """The bag topics to decode for samples with ``keys`` (unknown keys read every topic). With
    ``depth_from="clean"`` the ``depth``/``valid`` keys come from the ground-truth depth topic."""
    if any(key not in KEY_TOPICS for key in keys):
        return list(bags.TOPICS)
    depth_topic = bags.GT_DEPTH if depth_from == "clean" else bags.DEPTH_IMAGE
    topic_map = {**KEY_TOPICS, "depth": (depth_topic,), "valid": (depth_topic,)}
    wanted = [depth_topic, *(topic for key in keys for topic in topic_map[key])]
    return list(dict.fromkeys(wanted))


def _bags(*paths: str | Path, **kwargs: Any) -> FrameSequence:
    if not paths:
        raise DatasetError("the 'bags' source needs at least one bag or folder of bags")
    return BagIndex(list(paths), **kwargs)


def _per_root(factory: Callable[..., FrameSequence]) -> Callable[..., FrameSequence]:
    def build(*roots: str | Path, **kwargs: Any) -> FrameSequence:
        if len(roots) == 1:
            return factory(roots[0], **kwargs)
        return ConcatFrames([factory(root, **kwargs) for root in roots])

    return build


def _castel(root: str | Path | None = None, **kwargs: Any) -> FrameSequence:
    return CastelFrames(root, **kwargs)


#: Data sources by name. Every factory takes the source's paths as positional arguments (several paths are
#: concatenated) plus keyword options, and returns a FrameSequence.
SOURCES: Final[Mapping[str, Callable[..., FrameSequence]]] = {
    "bags": _bags,
    "folder": _per_root(FolderFrames),
    "nyuv2": _per_root(NYUv2Frames),
    "castel": _castel,
    "middlebury": MiddleburyFrames,
}


def build_dataset(
    name: str,
    *args: Any,
    transforms: Sequence[SampleTransform] = (),
    depth_from: str = "sensor",
    keys: Sequence[str] | None = None,
    in_memory: bool = False,
    **kwargs: Any,
) -> FrameDataset:
    """``build_dataset("bags", "data/train", transforms=[RandomCrop(320, 240)])`` and so on (see :data:`SOURCES`).

    With ``keys``, a bag source decodes only the topics those keys need; ``in_memory`` keeps every decoded record
    (see :class:`InMemoryFrames`).
    """
    try:
        factory = SOURCES[name]
    except KeyError:
        raise DatasetError(f"unknown data source {name!r}; expected one of {', '.join(SOURCES)}") from None
    if name == "bags" and keys is not None and "topics" not in kwargs:
        kwargs["topics"] = topics_for_keys(keys, depth_from=depth_from)
    source = factory(*args, **kwargs)
    if in_memory:
        source = InMemoryFrames(source)
    return FrameDataset(source, transforms=transforms, depth_from=depth_from, keys=keys)
