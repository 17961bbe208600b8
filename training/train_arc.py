"""Train one ARC method (baseline, ablation or full) by modular coordinate descent: one stage or all of them.

    python training/train_arc.py --config training/configs/arc_tiny.yaml --method arc_full --out runs/arc/arc_full
    python training/train_arc.py --method arc_full --out runs/arc/arc_full --stage finetune --resume
    python training/train_arc.py --config training/configs/arc_default.yaml --method mix --out runs/arc/mix \
        --set attention.rho=0.9 --set perceptual.weights_path=/path/to/vgg16.pth

The resolved config is written to <out>/config.yaml; with --resume and no --config it is read back from there.
Each stage checkpoints to <out>/<stage>/checkpoint.pt and logs TensorBoard scalars and image grids to <out>/<stage>/tb.
Methods: syn_only real_only mix arc_t arc_a arc_at arc_ai arc_full. Stages: see dcl_arc_ros.learning.arc.stages.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dcl_arc_ros.learning.arc.config import ARCConfig, load_config
from dcl_arc_ros.learning.arc.datasets import build_arc_data
from dcl_arc_ros.learning.arc.errors import ARCError
from dcl_arc_ros.learning.arc.stages import run_method
from dcl_arc_ros.learning.arc.variants import STAGE_ORDER, VARIANTS, get_variant
from dcl_arc_ros.learning.cli import SAVED_CONFIG, config_source, ensure_new_run, loss_note, run_cli, training_parser
from dcl_arc_ros.learning.config import save_yaml


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = training_parser(
        __doc__,
        out_help="output directory of this method's run",
        resume_help="continue from existing stage checkpoints",
        set_example="attention.rho=0.9",
        device=False,
    )
    parser.add_argument("--method", required=True, choices=sorted(VARIANTS), help="baseline, ablation or full ARC")
    parser.add_argument("--stage", default="all", choices=("all", *STAGE_ORDER), help="one stage, or all in order")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop after this many optimisation steps in this call (checkpointed; --resume goes on)",
    )
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> ARCConfig:
    return load_config(config_source(args, error=ARCError), args.overrides)


def train(args: argparse.Namespace) -> int:
    config = resolve_config(args)
    variant = get_variant(args.method)
    ensure_new_run(args.out, args.resume, marker=Path(SAVED_CONFIG), error=ARCError)
    if args.stage != "all" and args.stage not in variant.stages:
        raise ARCError(f"method {variant.name} has no stage {args.stage}; its stages: {list(variant.stages)}")
    save_yaml(config, args.out / SAVED_CONFIG)
    results = run_method(
        config,
        variant,
        build_arc_data(config),
        args.out,
        stage=args.stage,
        resume=args.resume,
        progress=not args.no_progress,
        max_steps=args.max_steps,
    )
    for result in results:
        state = "complete" if result.completed else "interrupted"
        print(
            f"{variant.name}/{result.stage}: {state}, {result.steps_run} steps run{loss_note(result.history)} "
            f"-> {result.checkpoint}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("train_arc", lambda: train(args), error=ARCError)


if __name__ == "__main__":
    sys.exit(main())
