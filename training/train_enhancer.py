"""Train the depth cleaner (or the normal estimator) on pairs made by a synthesis method.

    python training/train_enhancer.py --config training/configs/enhancer_tiny.yaml --synthesis clean --out runs/enh/c
    python training/train_enhancer.py --config training/configs/enhancer_default.yaml --synthesis dcl \
        --synthesis-checkpoint runs/dcl/dcl/checkpoints/latest.pt --out runs/enh/dcl
    python training/train_enhancer.py --out runs/enh/dcl --resume

Synthesis methods: clean, empirical, dcl, dcl_rgb, cut, cyclegan (trained ones need --synthesis-checkpoint), or
paired (the dataset's own sensor depth against its ground truth). The resolved config is saved in <out>/config.yaml
and in every checkpoint; export/export_onnx.py rebuilds the cleaner from it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from dcl_arc_ros.learning.config import apply_overrides, load_yaml
from dcl_arc_ros.learning.errors import LearningError
from dcl_arc_ros.learning.trainers.dcl import SYNTHESIS_METHODS
from dcl_arc_ros.learning.trainers.enhancer import EnhancerTask, load_enhancer_config, open_enhancer_dataset
from dcl_arc_ros.learning.trainers.loop import init_distributed, run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config: 'preset' (tiny/default/deploy) plus overrides")
    parser.add_argument("--synthesis", choices=(*SYNTHESIS_METHODS, "paired"), help="overrides the config's synthesis")
    parser.add_argument("--synthesis-checkpoint", type=Path, help="generator checkpoint for trained synthesis methods")
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
        overrides = list(args.overrides)
        if args.synthesis:
            overrides.append(f"synthesis={args.synthesis}")
        if args.synthesis_checkpoint:
            overrides.append(f"synthesis_checkpoint={args.synthesis_checkpoint}")
        if args.no_progress:
            overrides.append("loop.progress=false")
        raw = apply_overrides(load_yaml(source), overrides)
        cfg = load_enhancer_config(raw, source=source)
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise LearningError(f"--device {args.device} asked for but CUDA is not available")
        env = init_distributed(args.device)
        device = f"cuda:{env.local_rank}" if args.device.startswith("cuda") and env.distributed else args.device
        seed_everything(cfg.loop.seed)
        task = EnhancerTask(cfg, device)
        dataset = open_enhancer_dataset(cfg, seed=cfg.loop.seed)
        result = run_training(
            task, {"train": dataset}, cfg.loop, args.out, run_config=cfg, resume=args.resume, dist_env=env
        )
    except LearningError as exc:
        print(f"train_enhancer: error: {exc}", file=sys.stderr)
        return 2
    if env.is_main:
        print(f"train_enhancer: {cfg.synthesis} reached step {result.step}; checkpoint {result.last_checkpoint}")
    if env.distributed:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
