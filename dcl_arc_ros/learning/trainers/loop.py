"""The common training loop: sharded infinite data, resume after a kill, tqdm, TensorBoard, checkpoints, DDP, seeds.

A trainer is a :class:`TrainTask`: it owns its networks and optimizers and does one optimisation step on a batch.
The loop does everything else. Usage::

    from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything, init_distributed

    dist_env = init_distributed()            # reads torchrun's RANK/WORLD_SIZE; gloo on CPU, NCCL on CUDA
    seed_everything(cfg.loop.seed)           # before building the networks: every replica starts equal
    task = MyTask(cfg)                       # implements TrainTask
    result = run_training(task, {"train": dataset}, cfg.loop, out_dir, run_config=cfg, resume=True, dist_env=dist_env)

``datasets`` maps a name to a map-style torch Dataset; each step the task receives ``{name: collated batch}`` with one
batch of ``cfg.batch_size`` per dataset (unpaired sets are simply two names). Under torchrun each rank reads its own
shard of every epoch, the task's trainable modules are wrapped in DistributedDataParallel (via
:meth:`TrainTask.distribute`) and only rank 0 writes logs and checkpoints. ``out_dir`` gets
``checkpoints/latest.pt`` + ``checkpoints/step_*.pt``, ``config.yaml`` and ``tb/`` (TensorBoard scalars and image
grids).

Resume: with ``resume=True`` the loop loads ``checkpoints/latest.pt`` when present and continues from its step, with
the optimizer states and each dataset's epoch and position inside the epoch (so no sample is seen twice or skipped).
The random stream is reseeded from ``(seed, rank, step)``, so a resumed run is deterministic, though not bit-identical
to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dcl_arc_ros.learning.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from dcl_arc_ros.learning.config import save_yaml
from dcl_arc_ros.learning.errors import ConfigError, DatasetError, DistributedError
from dcl_arc_ros.learning.registry import NetworkSpec

__all__ = [
    "DistEnv",
    "LoopConfig",
    "LoopResult",
    "TrainTask",
    "init_distributed",
    "make_image_grid",
    "run_training",
    "seed_everything",
]

Batch = Mapping[str, Any]


@dataclass(frozen=True)
class LoopConfig:
    max_steps: int = 1000
    batch_size: int = 16
    num_workers: int = 0
    seed: int = 0
    log_every: int = 10
    image_every: int = 200
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "log_every", "image_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"LoopConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ConfigError(f"LoopConfig.num_workers must be >= 0, got {self.num_workers}")


class TrainTask(Protocol):
    """What a trainer gives the loop."""

    primary: str  # the network that export/evaluation rebuild by default

    def networks(self) -> dict[str, tuple[NetworkSpec, nn.Module]]:
        """Every network to checkpoint, by name, with its spec (the unwrapped modules)."""
        ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap the trainable modules used in forward passes (DDP); called once, only when world_size > 1."""
        ...

    def train_step(self, batch: Mapping[str, Batch], step: int) -> dict[str, float]:
        """One optimisation step; returns scalar logs (the key ``"loss"`` is the headline number)."""
        ...

    def image_grids(self, batch: Mapping[str, Batch]) -> dict[str, torch.Tensor]:
        """Named (N, C, H, W) image stacks in [0, 1] to log as grids (C = 1 or 3)."""
        ...


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "cpu") -> DistEnv:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); gloo on CPU, NCCL on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except KeyError as exc:
        raise DistributedError(f"WORLD_SIZE={world} but {exc.args[0]} is not set; launch with torchrun") from exc
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (call before building networks so every replica starts from the same weights)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class LoopResult:
    step: int
    last_checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)  # the scalar logs of every step run here


# --------------------------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------------------------


class _ShardedStream:
    """Endless batches from one dataset: a fresh seeded permutation per epoch, this rank's shard, drop-last."""

    def __init__(self, name: str, dataset: Dataset, cfg: LoopConfig, env: DistEnv) -> None:
        self.name, self.dataset, self.cfg, self.env = name, dataset, cfg, env
        try:
            self.size = len(dataset)  # type: ignore[arg-type]
        except TypeError as exc:
            raise DatasetError(f"dataset {name!r} must be map-style with a length") from exc
        if self.size == 0:
            raise DatasetError(f"dataset {name!r} is empty")
        self.epoch = 0
        self.position = 0  # batches already consumed in the current epoch
        self._name_salt = sum(map(ord, name))

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch * 7_919 + self._name_salt)
        perm = torch.randperm(self.size, generator=gen)
        need = self.cfg.batch_size * self.env.world_size
        if self.size < need:  # tiny sets: repeat the permutation to fill one global batch
            perm = perm.repeat(math.ceil(need / self.size))
        usable = (len(perm) // need) * need
        shard = perm[:usable][self.env.rank :: self.env.world_size].tolist()
        return [shard[i : i + self.cfg.batch_size] for i in range(0, len(shard), self.cfg.batch_size)]

    def __iter__(self) -> Iterator[Any]:
        while True:
            batches = self._epoch_batches(self.epoch)[self.position :]
            loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.cfg.num_workers)
            for batch in loader:
                self.position += 1
                yield batch
            self.epoch += 1
            self.position = 0

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: Mapping[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


# --------------------------------------------------------------------------------------------------------------------
# logging helpers
# --------------------------------------------------------------------------------------------------------------------


def make_image_grid(images: torch.Tensor, *, ncol: int = 4, pad: int = 2) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> one (3, H', W') grid image (C = 1 is repeated to grey RGB)."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image grid expects (N, 1|3, H, W), got {tuple(images.shape)}")
    imgs = images.detach().float().cpu().clamp(0.0, 1.0)
    if imgs.shape[1] == 1:
        imgs = imgs.expand(-1, 3, -1, -1)
    n, _, h, w = imgs.shape
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    grid = torch.ones(3, nrow * (h + pad) + pad, ncol * (w + pad) + pad)
    for idx in range(n):
        r, c = divmod(idx, ncol)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, y : y + h, x : x + w] = imgs[idx]
    return grid


def _first_batch_slice(batch: Mapping[str, Batch], n: int) -> dict[str, Batch]:
    out: dict[str, Batch] = {}
    for name, sample in batch.items():
        if isinstance(sample, Mapping):
            out[name] = {k: (v[:n] if isinstance(v, torch.Tensor) else v) for k, v in sample.items()}
        else:
            out[name] = sample
    return out


# --------------------------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------------------------


def _wrap_ddp(module: nn.Module) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    if not any(p.requires_grad for p in module.parameters()):
        # Frozen modules are not wrapped (DDP needs trainable parameters) but must still start equal everywhere.
        with torch.no_grad():
            for tensor in [*module.parameters(), *module.buffers()]:
                dist.broadcast(tensor, src=0)
        return module
    return DistributedDataParallel(module, broadcast_buffers=True)


def _save(
    task: TrainTask,
    ckpt_dir: Path,
    step: int,
    run_config: Any,
    streams: Mapping[str, _ShardedStream],
    keep: int,
) -> Path:
    step_path = ckpt_dir / f"step_{step:08d}.pt"
    save_checkpoint(
        step_path,
        step=step,
        networks=task.networks(),
        optimizers=task.optimizers(),
        run_config=run_config,
        primary=task.primary,
        extra={"data": {name: s.state() for name, s in streams.items()}},
    )
    tmp = ckpt_dir / ".latest.pt.tmp"
    shutil.copyfile(step_path, tmp)
    os.replace(tmp, ckpt_dir / "latest.pt")
    for old in sorted(ckpt_dir.glob("step_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    return step_path


def run_training(
    task: TrainTask,
    datasets: Mapping[str, Dataset],
    cfg: LoopConfig,
    out_dir: Path | str,
    *,
    run_config: Any = None,
    resume: bool = False,
    dist_env: DistEnv | None = None,
) -> LoopResult:
    """Train ``task`` until ``cfg.max_steps``; see the module docstring for what is written where."""
    env = dist_env or DistEnv()
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if not datasets:
        raise DatasetError("run_training needs at least one dataset")
    streams = {name: _ShardedStream(name, ds, cfg, env) for name, ds in datasets.items()}

    step = 0
    last_ckpt: Path | None = None
    if resume:
        found = latest_checkpoint(ckpt_dir)
        if found is not None:
            ckpt = load_checkpoint(found)
            ckpt.restore({name: module for name, (_, module) in task.networks().items()}, task.optimizers())
            step = ckpt.step
            for name, state in ckpt.extra.get("data", {}).items():
                if name in streams:
                    streams[name].load_state(state)
            last_ckpt = found
    if env.distributed:
        task.distribute(_wrap_ddp)

    writer = None
    if env.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        if run_config is not None:
            save_yaml(run_config if dataclasses.is_dataclass(run_config) else dict(run_config), out_dir / "config.yaml")
    result = LoopResult(step=step, last_checkpoint=last_ckpt)
    if step >= cfg.max_steps:
        # A finished run: nothing to train, and no writer either (its purge_step would delete the last scalars).
        return result
    if env.is_main:
        from torch.utils.tensorboard import SummaryWriter

        # Scalars are logged under the step just completed, so a run resumed from step k keeps step k and drops only
        # what a killed run logged after its last checkpoint.
        writer = SummaryWriter(log_dir=str(out_dir / "tb"), purge_step=step + 1 if step else None)

    torch.manual_seed(cfg.seed * 1_000_003 + env.rank * 7_919 + step)

    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.max_steps, initial=step, disable=not (cfg.progress and env.is_main), desc="train")
    iterators = {name: iter(s) for name, s in streams.items()}
    sums: dict[str, float] = {}
    count = 0
    try:
        while step < cfg.max_steps:
            batch = {name: next(it) for name, it in iterators.items()}
            logs = task.train_step(batch, step)
            step += 1
            result.history.append(dict(logs))
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
            bar.update(1)
            if writer is not None and (step % cfg.log_every == 0 or step == cfg.max_steps):
                for key, total in sums.items():
                    writer.add_scalar(f"train/{key}", total / count, step)
                bar.set_postfix({k: f"{v / count:.4g}" for k, v in list(sums.items())[:4]})
                sums, count = {}, 0
            if writer is not None and (step % cfg.image_every == 0 or step == 1):
                with torch.no_grad():
                    grids = task.image_grids(_first_batch_slice(batch, 4))
                for key, images in grids.items():
                    writer.add_image(f"images/{key}", make_image_grid(images), step)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                if env.is_main:
                    last_ckpt = _save(task, ckpt_dir, step, run_config, streams, cfg.keep_checkpoints)
                if env.distributed:
                    dist.barrier()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    result.step = step
    result.last_checkpoint = last_ckpt
    return result
