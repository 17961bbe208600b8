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

from dcl_arc_ros.learning import cli
from dcl_arc_ros.learning.trainers.dcl import SYNTHESIS_METHODS
from dcl_arc_ros.learning.trainers.enhancer import EnhancerTask, load_enhancer_config, open_enhancer_dataset


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = cli.training_parser(__doc__, config_help="YAML config: 'preset' (tiny/default/deploy) plus overrides")
    parser.add_argument("--synthesis", choices=(*SYNTHESIS_METHODS, "paired"), help="overrides the config's synthesis")
    parser.add_argument("--synthesis-checkpoint", type=Path, help="generator checkpoint for trained synthesis methods")
    return parser.parse_args(argv)


def synthesis_overrides(args: argparse.Namespace) -> list[str]:
    """``--synthesis`` and ``--synthesis-checkpoint`` as config overrides."""
    overrides = [f"synthesis={args.synthesis}"] if args.synthesis else []
    if args.synthesis_checkpoint:
        overrides.append(f"synthesis_checkpoint={args.synthesis_checkpoint}")
    return overrides


def train(args: argparse.Namespace) -> int:
    source = cli.config_source(args)
    cli.ensure_new_run(args.out, args.resume)
    cfg = load_enhancer_config(cli.raw_config(source, args, synthesis_overrides(args)), source=str(source))
    env, result = cli.train_on_ranks(
        args,
        cfg,
        lambda device: (EnhancerTask(cfg, device), {"train": open_enhancer_dataset(cfg, seed=cfg.loop.seed)}),
    )
    if env.is_main:
        print(f"train_enhancer: {cfg.synthesis} reached step {result.step}; checkpoint {result.last_checkpoint}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.run_cli("train_enhancer", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
