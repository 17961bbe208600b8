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
from dcl_arc_ros.learning.config import save_yaml


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (partial; defaults fill the rest)")
    parser.add_argument("--method", required=True, choices=sorted(VARIANTS), help="baseline, ablation or full ARC")
    parser.add_argument("--stage", default="all", choices=("all", *STAGE_ORDER), help="one stage, or all in order")
    parser.add_argument("--out", type=Path, required=True, help="output directory of this method's run")
    parser.add_argument("--resume", action="store_true", help="continue from existing stage checkpoints")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set attention.rho=0.9 (repeatable)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop after this many optimisation steps in this call (checkpointed; --resume goes on)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> ARCConfig:
    saved = args.out / "config.yaml"
    if args.config is not None:
        return load_config(args.config, args.overrides)
    if args.resume and saved.exists():
        return load_config(saved, args.overrides)
    raise ARCError(f"--config is required (no {saved} to resume from)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = resolve_config(args)
        variant = get_variant(args.method)
        if not args.resume and (args.out / "config.yaml").exists():
            raise ARCError(f"{args.out} already holds a run; pass --resume to continue it, or choose another --out")
        if args.stage != "all" and args.stage not in variant.stages:
            raise ARCError(f"method {variant.name} has no stage {args.stage}; its stages: {list(variant.stages)}")
        save_yaml(config, args.out / "config.yaml")
        results = run_method(
            config, variant, build_arc_data(config), args.out, stage=args.stage, resume=args.resume,
            progress=not args.no_progress, max_steps=args.max_steps,
        )
    except ARCError as exc:
        print(f"train_arc: error: {exc}", file=sys.stderr)
        return 2
    for result in results:
        last = f", last loss {result.history[-1]['loss']:.4f}" if result.history else ""
        state = "complete" if result.completed else "interrupted"
        print(f"{variant.name}/{result.stage}: {state}, {result.steps_run} steps run{last} -> {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
