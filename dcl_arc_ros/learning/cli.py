"""What every thin training CLI (``training/train_*.py``) shares: arguments, config source, run guards, devices.

A CLI builds its parser with :func:`training_parser`, adds its own options, and inside :func:`run_cli` resolves
its config with :func:`config_source` and :func:`raw_config`, refuses to overwrite a finished run with
:func:`ensure_new_run`, and gets its process group and device from :func:`start_distributed`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.utils.data import Dataset

from dcl_arc_ros.learning.config import apply_overrides, from_dict, load_yaml
from dcl_arc_ros.learning.errors import LearningError
from dcl_arc_ros.learning.trainers.loop import (
    DistEnv,
    LoopResult,
    TrainTask,
    init_distributed,
    run_training,
    seed_everything,
)

ConfigT = TypeVar("ConfigT")

LATEST_CHECKPOINT = Path("checkpoints") / "latest.pt"  # relative to --out; its presence means "a run is here"
SAVED_CONFIG = "config.yaml"  # the resolved config every run writes to --out


def training_parser(
    doc: str | None,
    *,
    config_help: str = "YAML config (partial; defaults fill the rest)",
    out_help: str = "run directory (checkpoints, config.yaml, tb/)",
    resume_help: str = "continue from <out>/checkpoints/latest.pt",
    set_example: str = "loop.max_steps=100",
    device: bool = True,
) -> argparse.ArgumentParser:
    """A parser with ``--config --out --resume --set KEY=VALUE [--device] --no-progress``; add the CLI's own next."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help=config_help)
    parser.add_argument("--out", type=Path, required=True, help=out_help)
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {set_example} (repeatable)",
    )
    if device:
        parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser


def config_source(args: argparse.Namespace, *, error: type[LearningError] = LearningError) -> Path:
    """``--config``, or with ``--resume`` and no ``--config`` the config saved in ``--out``."""
    saved = args.out / SAVED_CONFIG
    if args.config is not None:
        return Path(args.config)
    if args.resume and saved.is_file():
        return saved
    raise error(f"--config is required (no {saved} to resume from)")


def raw_config(source: Path, args: argparse.Namespace, extra: Iterable[str] = ()) -> dict[str, Any]:
    """The YAML at ``source`` with ``--set`` overrides, then ``extra`` ones, then ``--no-progress`` applied."""
    overrides = [*args.overrides, *extra]
    if args.no_progress:
        overrides.append("loop.progress=false")
    return apply_overrides(load_yaml(source), overrides)


def load_run_config(cls: type[ConfigT], args: argparse.Namespace) -> ConfigT:
    """The dataclass ``cls`` from :func:`config_source` with :func:`raw_config`'s overrides (defaults fill the rest)."""
    source = config_source(args)
    return from_dict(cls, raw_config(source, args), source=str(source))


def ensure_new_run(
    out: Path, resume: bool, *, marker: Path = LATEST_CHECKPOINT, error: type[LearningError] = LearningError
) -> None:
    """Refuse to start over a run that is already in ``out`` (``marker`` exists there) unless resuming it."""
    if not resume and (out / marker).exists():
        raise error(f"{out} already holds a run; pass --resume to continue it, or choose another --out")


def start_distributed(requested: str) -> tuple[DistEnv, str]:
    """Join torchrun's process group if there is one; the device this rank trains on (its own GPU under DDP)."""
    cuda = requested.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise LearningError(f"--device {requested} asked for but CUDA is not available")
    env = init_distributed(requested)
    return env, f"cuda:{env.local_rank}" if cuda and env.distributed else requested


def finish_distributed(env: DistEnv) -> None:
    """Leave the process group :func:`start_distributed` joined (nothing to do in a single process)."""
    if env.distributed:
        torch.distributed.destroy_process_group()


def train_on_ranks(
    args: argparse.Namespace, cfg: Any, build: Callable[[str], tuple[TrainTask, Mapping[str, Dataset[Any]]]]
) -> tuple[DistEnv, LoopResult]:
    """Join the process group, seed, ``build(device)`` the task and its datasets, train, leave the process group.

    ``cfg`` is the run config: its ``loop`` drives the loop and it is saved with every checkpoint.
    """
    env, device = start_distributed(args.device)
    seed_everything(cfg.loop.seed)
    task, datasets = build(device)
    result = run_training(task, datasets, cfg.loop, args.out, run_config=cfg, resume=args.resume, dist_env=env)
    finish_distributed(env)
    return env, result


def loss_note(history: Sequence[Mapping[str, float]]) -> str:
    """``", last loss 0.1234"`` for a run that logged steps, else empty."""
    return f", last loss {history[-1]['loss']:.4f}" if history else ""


def run_cli(prog: str, body: Callable[[], int], *, error: type[LearningError] = LearningError) -> int:
    """Run ``body``; an ``error`` becomes ``<prog>: error: ...`` on stderr and exit status 2."""
    try:
        return body()
    except error as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
