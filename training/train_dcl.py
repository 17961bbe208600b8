"""Train a depth synthesizer: DCL (the paper), DCL w/ rgb, or the CUT / CycleGAN baselines, on unpaired depth.

    python training/train_dcl.py --config training/configs/dcl_tiny.yaml --method dcl --out runs/dcl/dcl
    python training/train_dcl.py --out runs/dcl/dcl --resume                        # continue after a kill
    python training/train_dcl.py --config training/configs/dcl_default.yaml --method cut --out runs/dcl/cut \
        --set data.source_paths=[data/synthetic] --set data.real_paths=[data/real_like] --set loop.max_steps=5000
    torchrun --nproc_per_node 2 training/train_dcl.py --config training/configs/dcl_tiny.yaml --out runs/dcl/ddp

The resolved config goes to <out>/config.yaml and into every checkpoint (<out>/checkpoints/latest.pt); export and
evaluation rebuild the generator from it. TensorBoard logs are in <out>/tb. ``clean`` and ``empirical`` are
synthesis methods without training (see dcl_arc_ros.learning.trainers.dcl.SYNTHESIZERS).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from dcl_arc_ros.learning.config import apply_overrides, load_yaml
from dcl_arc_ros.learning.errors import LearningError
from dcl_arc_ros.learning.trainers.dcl import TRAINED_METHODS, load_dcl_config, make_task, open_unpaired_datasets
from dcl_arc_ros.learning.trainers.loop import init_distributed, run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config: 'preset' (tiny/default) plus overrides")
    parser.add_argument("--method", choices=TRAINED_METHODS, help="overrides the config's method")
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, config.yaml, tb/)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/latest.pt")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set loop.max_steps=100 (repeatable)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    saved = args.out / "config.yaml"
    try:
        if args.config is not None:
            source = str(args.config)
        elif args.resume and saved.is_file():
            source = str(saved)
        else:
            raise LearningError(f"--config is required (no {saved} to resume from)")
        if not args.resume and (args.out / "checkpoints" / "latest.pt").exists():
            raise LearningError(f"{args.out} already holds a run; pass --resume or choose another --out")
        raw = apply_overrides(load_yaml(source), args.overrides)
        if args.no_progress:
            raw = apply_overrides(raw, ["loop.progress=false"])
        cfg = load_dcl_config(raw, source=source, method=args.method)
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise LearningError(f"--device {args.device} asked for but CUDA is not available")
        env = init_distributed(args.device)
        device = f"cuda:{env.local_rank}" if args.device.startswith("cuda") and env.distributed else args.device
        seed_everything(cfg.loop.seed)
        task = make_task(cfg, device)
        datasets = open_unpaired_datasets(cfg.data, use_rgb=cfg.method == "dcl_rgb", seed=cfg.loop.seed)
        result = run_training(task, datasets, cfg.loop, args.out, run_config=cfg, resume=args.resume, dist_env=env)
    except LearningError as exc:
        print(f"train_dcl: error: {exc}", file=sys.stderr)
        return 2
    if env.is_main:
        print(f"train_dcl: {cfg.method} reached step {result.step}; checkpoint {result.last_checkpoint}")
    if env.distributed:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
