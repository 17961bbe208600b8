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

from dcl_arc_ros.learning import cli
from dcl_arc_ros.learning.trainers.dcl import TRAINED_METHODS, load_dcl_config, make_task, open_unpaired_datasets


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = cli.training_parser(__doc__, config_help="YAML config: 'preset' (tiny/default) plus overrides")
    parser.add_argument("--method", choices=TRAINED_METHODS, help="overrides the config's method")
    return parser.parse_args(argv)


def train(args: argparse.Namespace) -> int:
    source = cli.config_source(args)
    cli.ensure_new_run(args.out, args.resume)
    cfg = load_dcl_config(cli.raw_config(source, args), source=str(source), method=args.method)
    env, result = cli.train_on_ranks(
        args,
        cfg,
        lambda device: (
            make_task(cfg, device),
            open_unpaired_datasets(
                cfg.data,
                use_rgb=cfg.method == "dcl_rgb",
                seed=cfg.loop.seed,
                with_rays=cfg.generator.ray_channels > 0,
            ),
        ),
    )
    if env.is_main:
        print(f"train_dcl: {cfg.method} reached step {result.step}; checkpoint {result.last_checkpoint}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return cli.run_cli("train_dcl", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
