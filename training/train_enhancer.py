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

from dcl_arc_ros.learning.cli import (
    config_source,
    ensure_new_run,
    finish_distributed,
    raw_config,
    run_cli,
    start_distributed,
    training_parser,
)
from dcl_arc_ros.learning.trainers.dcl import SYNTHESIS_METHODS
from dcl_arc_ros.learning.trainers.enhancer import EnhancerTask, load_enhancer_config, open_enhancer_dataset
from dcl_arc_ros.learning.trainers.loop import run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = training_parser(__doc__, config_help="YAML config: 'preset' (tiny/default/deploy) plus overrides")
    parser.add_argument("--synthesis", choices=(*SYNTHESIS_METHODS, "paired"), help="overrides the config's synthesis")
    parser.add_argument("--synthesis-checkpoint", type=Path, help="generator checkpoint for trained synthesis methods")
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> int:
    source = config_source(args)
    ensure_new_run(args.out, args.resume)
    synthesis: list[str] = []
    if args.synthesis:
        synthesis.append(f"synthesis={args.synthesis}")
    if args.synthesis_checkpoint:
        synthesis.append(f"synthesis_checkpoint={args.synthesis_checkpoint}")
    cfg = load_enhancer_config(raw_config(source, args, synthesis), source=str(source))
    env, device = start_distributed(args.device)
    seed_everything(cfg.loop.seed)
    task = EnhancerTask(cfg, device)
    datasets = {"train": open_enhancer_dataset(cfg, seed=cfg.loop.seed)}
    result = run_training(task, datasets, cfg.loop, args.out, run_config=cfg, resume=args.resume, dist_env=env)
    if env.is_main:
        print(f"train_enhancer: {cfg.synthesis} reached step {result.step}; checkpoint {result.last_checkpoint}")
    finish_distributed(env)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("train_enhancer", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
