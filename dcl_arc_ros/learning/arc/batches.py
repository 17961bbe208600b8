"""Training batches for the ARC stages: the two datasets, step-indexed shuffling, network-ready tensors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from dcl_arc_ros.learning.arc.errors import StageError
from dcl_arc_ros.learning.arc.model import ARCSystem

Tensors = dict[str, torch.Tensor]


@dataclass
class ARCData:
    """The two training sets; samples are dicts with "rgb" [0, 1], "depth" metres (0 = invalid), "valid"."""

    synthetic: Dataset[Tensors] | None
    real: Dataset[Tensors] | None


@dataclass
class Batch:
    """Network-ready tensors: "rgb" in [-1, 1], "depth" in [-1, 1] units, "valid" in {0, 1}; None if not drawn."""

    synthetic: Tensors | None
    real: Tensors | None

    def need(self, domain: str) -> Tensors:
        value = getattr(self, domain)
        if value is None:
            raise StageError(f"this stage needs {domain} data, but no {domain} dataset was given")
        return value


class StepBatchSampler(Sampler[list[int]]):
    """Endless shuffled batches whose order depends only on (seed, batch index): a resumed stage sees the same data.

    Epoch e is a permutation drawn from seed + e; the last incomplete batch of an epoch is dropped.
    """

    def __init__(self, length: int, batch_size: int, seed: int, start_batch: int = 0) -> None:
        if length < 1:
            raise StageError("an ARC training dataset is empty")
        self.length, self.batch_size = length, min(batch_size, length)
        self.seed, self.start_batch = seed, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = self.length // self.batch_size
        epoch, offset = divmod(self.start_batch, per_epoch)
        while True:
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
            for b in range(offset, per_epoch):
                yield order[b * self.batch_size : (b + 1) * self.batch_size]
            epoch, offset = epoch + 1, 0


def infinite_batches(
    dataset: Dataset[Tensors], batch_size: int, seed: int, start: int, workers: int
) -> Iterator[Tensors]:
    """Endless batches from ``dataset`` starting at batch index ``start`` (see StepBatchSampler)."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start)  # type: ignore[arg-type]
    yield from DataLoader(dataset, batch_sampler=sampler, num_workers=workers)


def prepare_batch(sample: Tensors, system: ARCSystem) -> Tensors:
    """Resize to the config resolution when needed, scale RGB to [-1, 1], depth to network units, mask invalid."""
    m = system.config.model
    rgb, depth = sample["rgb"].float(), sample["depth"].float()
    valid = sample.get("valid", torch.ones_like(depth)).float() * system.depth_range.valid(depth)
    if rgb.shape[-2:] != (m.height, m.width):
        rgb = F.interpolate(rgb, size=(m.height, m.width), mode="bilinear", align_corners=False, antialias=True)
        depth = F.interpolate(depth, size=(m.height, m.width), mode="nearest")
        valid = F.interpolate(valid, size=(m.height, m.width), mode="nearest")
    device = torch.device(system.config.device)
    return {
        "rgb": (rgb * 2.0 - 1.0).to(device),
        "depth": system.depth_range.to_unit(depth).to(device),
        "valid": valid.to(device),
    }


def dataset_for(data: ARCData, domain: str) -> Dataset[Tensors]:
    dataset = getattr(data, domain)
    if dataset is None:
        raise StageError(f"this stage needs a {domain} dataset, but none was given")
    return dataset


def head_of_batch(batch: Batch, n: int) -> Batch:
    def cut(t: Tensors | None) -> Tensors | None:
        return None if t is None else {k: v[:n] for k, v in t.items()}

    return Batch(synthetic=cut(batch.synthetic), real=cut(batch.real))
