"""Where a frame-based trainer's frames come from: the shared head of the grasp and pose data configs.

Besides choosing the frames (``source``, ``paths``) and which of their depths the network sees (``depth_from``),
the config can *synthesize* the network's input depth from each frame's clean ground truth (``synthesis``): the
DCL paper's downstream protocol, where a task network trained on synthesized depth is tested on real scans.

- ``synthesis: none`` (default): the frame's own ``depth_from`` depth, exactly as before;
- ``synthesis: clean | empirical | dcl | dcl_rgb | cut | cyclegan``: the input depth is
  :func:`~dcl_arc_ros.learning.trainers.dcl.make_synthesizer` applied to the frame's *clean* depth (trained methods
  read their generator from ``synthesis_checkpoint``). ``clean`` equals ``depth_from: clean``.

Synthesis happens on the whole frame, before any crop, so the sensor model sees the true intrinsics and the generator
the whole scene. The synthesized depth of frame ``i`` is a function of ``(seed, i)`` only (stochastic methods get a
per-frame seed), so one seed gives one fixed synthesized data set, as the paper synthesizes its training set once; with
``in_memory`` it is computed once per frame and kept.

``frame_fraction`` keeps a seeded random part of the frames (the "fine-tuned on 10% of real" rows) and ``frame_scale``
shrinks every frame after synthesis (a cheaper network on a CPU budget; labels and intrinsics follow the pixels). The
synthesizer always runs at the frames' own resolution, the one its sensor model or generator was made for.

Both trainers use the same two entry points: :func:`open_frame_records` (a sequence of
:class:`~dcl_arc_ros.data.bags.FrameRecord` whose ``depth`` is the network's input depth, for record-based pipelines
such as the pose crops) and :func:`open_frame_dataset` (the same frames as torch samples, ``sample["depth"]`` = input
depth).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from dcl_arc_ros.learning.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from dcl_arc_ros.data.bags import FrameRecord
    from dcl_arc_ros.data.torch_datasets import FrameDataset, FrameSequence, SampleTransform
    from dcl_arc_ros.learning.trainers.dcl import Synthesizer

__all__ = [
    "NO_SYNTHESIS",
    "FrameSourceConfig",
    "FrameSubset",
    "ResizedFrames",
    "SynthesizedFrames",
    "open_frame_dataset",
    "open_frame_records",
    "synthesize_record",
]

#: ``synthesis`` value that keeps the frames' own ``depth_from`` depth.
NO_SYNTHESIS = "none"


def _synthesis_methods() -> tuple[str, ...]:
    from dcl_arc_ros.learning.trainers.dcl import SYNTHESIS_METHODS

    return SYNTHESIS_METHODS


@dataclass(frozen=True)
class FrameSourceConfig:
    source: str = "bags"  # a name in dcl_arc_ros.data.torch_datasets.SOURCES, or "toy" (procedural, smoke runs only)
    paths: tuple[str, ...] = ()  # arguments of that source, e.g. the training bags of one depth domain
    depth_from: Literal["sensor", "clean"] = "sensor"  # the frames' sensor depth, or their clean ground truth
    toy_frames: int = 64  # frames of the procedural source (source "toy" only)
    # "none", or a synthesis method (clean, empirical, dcl, dcl_rgb, cut, cyclegan) applied to the frames' clean depth
    synthesis: str = NO_SYNTHESIS
    synthesis_checkpoint: str = ""  # generator checkpoint of a trained synthesis method
    in_memory: bool = False  # keep decoded (and synthesized) frames in memory: after the first epoch no bag is read
    frame_fraction: float = 1.0  # keep this fraction of the frames, drawn with the trainer's seed (e.g. 10% of real)
    frame_scale: float = 1.0  # resize every frame by this factor after synthesis (labels and intrinsics follow)

    def __post_init__(self) -> None:
        if not 0.0 < self.frame_fraction <= 1.0:
            raise ConfigError(f"frame_fraction must be in (0, 1], got {self.frame_fraction}")
        if not 0.0 < self.frame_scale <= 1.0:
            raise ConfigError(f"frame_scale must be in (0, 1], got {self.frame_scale}")
        methods = _synthesis_methods()
        if self.synthesis != NO_SYNTHESIS and self.synthesis not in methods:
            raise ConfigError(f"synthesis {self.synthesis!r} is not one of {[NO_SYNTHESIS, *methods]}")
        if self.synthesis in methods[2:] and not self.synthesis_checkpoint:
            raise ConfigError(f"synthesis {self.synthesis!r} is a trained method: set synthesis_checkpoint")
        if self.synthesis in methods[:2] and self.synthesis_checkpoint:
            raise ConfigError(f"synthesis {self.synthesis!r} takes no checkpoint, got {self.synthesis_checkpoint!r}")

    @property
    def synthesizes(self) -> bool:
        """True when the network's input depth is synthesized from the clean depth."""
        return self.synthesis != NO_SYNTHESIS

    @property
    def read_depth_from(self) -> Literal["sensor", "clean"]:
        """The depth topic to decode: the clean one whenever the input is synthesized from it."""
        return "clean" if self.synthesizes else self.depth_from


def synthesize_record(record: FrameRecord, synthesizer: Synthesizer) -> FrameRecord:
    """``record`` with ``depth`` = ``synthesizer`` applied to its clean depth (NaN = no reading, as in records)."""
    if record.depth_clean is None:
        raise DatasetError(f"frame {record.source!r} has no clean depth to synthesize from")
    clean = np.nan_to_num(np.asarray(record.depth_clean, dtype=np.float32), nan=0.0)
    clean[clean < 0] = 0.0
    depth_t = torch.from_numpy(clean)[None, None]
    intr = None
    if record.intrinsics is not None:
        k = record.intrinsics
        intr = torch.tensor([[k.fx, k.fy, k.cx, k.cy]], dtype=torch.float32)
    rgb = None
    if record.rgb is not None:
        rgb = torch.from_numpy(np.ascontiguousarray(record.rgb.transpose(2, 0, 1))).float().div_(255.0)[None]
    with torch.no_grad():
        out = synthesizer(depth_t, rgb, intrinsics=intr)
    synth = out.detach().cpu().numpy().astype(np.float32, copy=False).reshape(clean.shape)
    synth = np.where(np.isfinite(synth) & (synth > 0), synth, np.float32(np.nan)).astype(np.float32)
    return dataclasses.replace(record, depth=synth)


class FrameSubset:
    """The frames ``indices`` of ``source``, in that order."""

    def __init__(self, source: FrameSequence, indices: Sequence[int]) -> None:
        n = len(source)
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise DatasetError(f"frame indices {bad[:5]} are out of range for {n} frames")
        self.source, self.indices = source, [int(i) for i in indices]

    @classmethod
    def fraction(cls, source: FrameSequence, fraction: float, *, seed: int) -> FrameSubset:
        """``round(fraction * len(source))`` frames (at least one) drawn without replacement, in ascending order."""
        n = len(source)
        k = min(n, max(1, round(fraction * n)))
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EB5E7]))
        return cls(source, sorted(rng.choice(n, size=k, replace=False).tolist()))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> FrameRecord:
        return self.source[self.indices[index]]


class ResizedFrames:
    """Every frame of ``source`` scaled by ``scale`` (:func:`~dcl_arc_ros.data.torch_datasets.resize_record`)."""

    def __init__(self, source: FrameSequence, scale: float) -> None:
        self.source, self.scale = source, float(scale)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> FrameRecord:
        from dcl_arc_ros.data.torch_datasets import resize_record

        record = self.source[index]
        if self.scale == 1.0:
            return record
        for arr in (record.depth, record.depth_clean, record.rgb):
            if arr is not None:
                h, w = arr.shape[:2]
                break
        else:
            raise DatasetError(f"frame {record.source!r} has no image to resize")
        return resize_record(record, max(1, round(w * self.scale)), max(1, round(h * self.scale)))


class SynthesizedFrames:
    """A FrameSequence whose records carry synthesized ``depth`` (from ``depth_clean``); the rest is unchanged.

    Stochastic methods (``empirical``) get a fresh synthesizer seeded by ``(seed, index)`` for every frame, so a frame's
    synthesized depth does not depend on access order (shuffling, DataLoader workers). ``cache`` keeps each result.
    """

    def __init__(
        self, source: FrameSequence, method: str, *, checkpoint: str = "", seed: int = 0, cache: bool = False
    ) -> None:
        from dcl_arc_ros.learning.trainers.dcl import make_synthesizer

        self.source, self.method, self.checkpoint, self.seed = source, method, checkpoint, int(seed)
        self._make = make_synthesizer
        self._shared: Synthesizer | None = None
        if method != "empirical":  # deterministic (or trained, and expensive to load): one for all frames
            self._shared = make_synthesizer(method, checkpoint=checkpoint or None, seed=self.seed)
        self._cache: dict[int, FrameRecord] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.source)

    def synthesizer_for(self, index: int) -> Synthesizer:
        if self._shared is not None:
            return self._shared
        frame_seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        return self._make(self.method, checkpoint=None, seed=frame_seed)

    def __getitem__(self, index: int) -> FrameRecord:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range for {n} frames")
        index %= n
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        record = synthesize_record(self.source[index], self.synthesizer_for(index))
        if self._cache is not None:
            self._cache[index] = record
        return record


def _topic_keys(cfg: FrameSourceConfig, keys: Sequence[str]) -> list[str]:
    """The sample keys whose topics must be decoded: ``keys`` plus what the synthesizer reads."""
    wanted = list(keys)
    if cfg.synthesizes:
        wanted.append("intrinsics")  # the empirical sensor model's noise and shadows depend on the focal length
        if cfg.synthesis == "dcl_rgb":
            wanted.append("rgb")
    return wanted


def open_frame_records(cfg: FrameSourceConfig, keys: Sequence[str] | None = None, *, seed: int = 0) -> FrameSequence:
    """The configured frames as FrameRecords whose ``depth`` is the network's input depth.

    ``keys`` (sample keys, see :mod:`dcl_arc_ros.data.torch_datasets`) limit the decoded bag topics; None decodes all.
    Order: ``frame_fraction`` subset (drawn with ``seed``), synthesis, ``frame_scale`` resize; ``in_memory`` keeps the
    final frames.
    With ``synthesis`` the records' ``depth`` is synthesized from the clean depth (``depth_clean`` stays as it was);
    with ``depth_from: clean`` and no synthesis, ``depth`` is *not* replaced: read ``depth_clean`` (or use
    :attr:`FrameSourceConfig.read_depth_from`).
    """
    from dcl_arc_ros.data import torch_datasets

    if cfg.source not in torch_datasets.SOURCES:
        raise DatasetError(f"unknown data source {cfg.source!r}; expected one of {sorted(torch_datasets.SOURCES)}")
    kwargs: dict[str, Any] = {}
    if cfg.source == "bags" and keys is not None:
        wanted = [*_topic_keys(cfg, keys), *(["depth_clean"] if cfg.synthesizes else [])]
        kwargs["topics"] = torch_datasets.topics_for_keys(wanted, depth_from=cfg.read_depth_from)
    frames: FrameSequence = torch_datasets.SOURCES[cfg.source](*cfg.paths, **kwargs)
    if cfg.frame_fraction < 1.0:
        frames = FrameSubset.fraction(frames, cfg.frame_fraction, seed=seed)
    resized = cfg.frame_scale != 1.0
    if cfg.in_memory and not resized:
        frames = torch_datasets.InMemoryFrames(frames)
    if cfg.synthesizes:  # at the frames' own resolution: the sensor model and the generator were made for it
        frames = SynthesizedFrames(
            frames, cfg.synthesis, checkpoint=cfg.synthesis_checkpoint, seed=seed, cache=cfg.in_memory and not resized
        )
    if resized:
        frames = ResizedFrames(frames, cfg.frame_scale)
        if cfg.in_memory:  # keep the small (synthesized) frames only: each frame is decoded and synthesized once
            frames = torch_datasets.InMemoryFrames(frames)
    return frames


def open_frame_dataset(
    cfg: FrameSourceConfig,
    keys: Sequence[str],
    *,
    seed: int = 0,
    transforms: Sequence[SampleTransform] = (),
) -> FrameDataset:
    """The configured frames as torch samples with ``keys``; ``sample["depth"]`` is the network's input depth:
    the ``depth_from`` depth, or the synthesized one (see the module docstring)."""
    from dcl_arc_ros.data.torch_datasets import FrameDataset

    frames = open_frame_records(cfg, _topic_keys(cfg, keys), seed=seed)
    depth_from = "sensor" if cfg.synthesizes else cfg.depth_from  # synthesized depth lives in the records' depth
    return FrameDataset(frames, transforms=transforms, depth_from=depth_from, keys=keys)
