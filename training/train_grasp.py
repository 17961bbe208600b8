"""Train GG-CNN or GG-CNN2 on dense grasp maps (one depth domain per run: clean, empirical, DCL-synthesized, ...).

    python training/train_grasp.py --config training/configs/grasp_tiny.yaml --out runs/grasp/tiny
    python training/train_grasp.py --config training/configs/grasp_tiny.yaml --out runs/grasp/dcl \
        --set data.paths='[data/bags/dcl_train]' --set loop.max_steps=20000
    python training/train_grasp.py --out runs/grasp/dcl --resume          # continue after a kill

The resolved config is written to <out>/config.yaml and stored in every checkpoint (<out>/checkpoints/); TensorBoard
scalars and image grids go to <out>/tb. Under torchrun each rank trains on its own shard (DDP).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset

from dcl_arc_ros.learning.cli import ensure_new_run, load_run_config, loss_note, run_cli, training_parser
from dcl_arc_ros.learning.grasp.trainer import GraspSampleAdapter, GraspTask, GraspTrainConfig, open_grasp_frames
from dcl_arc_ros.learning.trainers.loop import init_distributed, run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return training_parser(__doc__, out_help="run directory").parse_args(argv)


def resolve_config(args: argparse.Namespace) -> GraspTrainConfig:
    return load_run_config(GraspTrainConfig, args)


def build_frames(cfg: GraspTrainConfig) -> Dataset[Mapping[str, Any]]:
    return open_grasp_frames(cfg)


def train(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    ensure_new_run(args.out, args.resume)
    env = init_distributed(args.device)
    seed_everything(cfg.loop.seed)
    task = GraspTask(cfg, device=args.device)
    frames = build_frames(cfg)
    dataset = GraspSampleAdapter(frames, cfg.data, train=True, width_scale_px=cfg.width_scale_px, seed=cfg.loop.seed)
    result = run_training(
        task, {"train": dataset}, cfg.loop, args.out, run_config=cfg, resume=args.resume, dist_env=env
    )
    print(f"train_grasp: {result.step} steps{loss_note(result.history)} -> {result.last_checkpoint}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("train_grasp", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
