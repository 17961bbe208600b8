"""Train the pose network (class + 6D rotation) on object-centric depth crops of one depth domain.

    python training/train_pose.py --config training/configs/pose_tiny.yaml --out runs/pose/tiny
    python training/train_pose.py --config training/configs/pose_tiny.yaml --out runs/pose/dcl \
        --set data.paths='[data/bags/dcl_train]' --set network.num_classes=20
    python training/train_pose.py --out runs/pose/dcl --resume
    # depth synthesized from the clean depth by a trained DCL generator (one window per object; see the trainer)
    python training/train_pose.py --config training/configs/pose_tiny.yaml --out runs/pose/dcl_synth \
        --set data.source=bags --set data.paths='[data/bags/syn_train]' --set data.synthesis=dcl \
        --set data.synthesis_checkpoint=runs/dcl/checkpoints/latest.pt

Crops are cut once before training with the same code the deployed pipeline uses (ground-truth masks through
core.proposals.crops_from_labels + core.pose_pipeline.prepare_pose_input). The resolved config goes to
<out>/config.yaml and into every checkpoint; TensorBoard logs to <out>/tb.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from dcl_arc_ros.learning.cli import ensure_new_run, load_run_config, loss_note, run_cli, training_parser
from dcl_arc_ros.learning.errors import DatasetError
from dcl_arc_ros.learning.pose.trainer import (
    PoseCropDataset,
    PoseTask,
    PoseTrainConfig,
    build_pose_samples,
    open_pose_frames,
)
from dcl_arc_ros.learning.trainers.loop import init_distributed, run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return training_parser(__doc__, out_help="run directory").parse_args(argv)


def resolve_config(args: argparse.Namespace) -> PoseTrainConfig:
    return load_run_config(PoseTrainConfig, args)


def build_frames(cfg: PoseTrainConfig) -> Any:
    """The training frames (procedural, or a data source with the pose labels), synthesized if configured."""
    return open_pose_frames(cfg.data, seed=cfg.loop.seed)


def train(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    ensure_new_run(args.out, args.resume)
    env = init_distributed(args.device)
    seed_everything(cfg.loop.seed)
    samples = build_pose_samples(
        build_frames(cfg), cfg.data, seed=cfg.loop.seed, progress=cfg.loop.progress and env.is_main
    )
    if not samples:
        raise DatasetError(f"no object crops in {cfg.data.source} {list(cfg.data.paths)}: check the filters")
    task = PoseTask(cfg, device=args.device)
    dataset = PoseCropDataset.for_training(samples, cfg, num_classes=cfg.network.num_classes)
    result = run_training(
        task, {"train": dataset}, cfg.loop, args.out, run_config=cfg, resume=args.resume, dist_env=env
    )
    note = loss_note(result.history)
    print(f"train_pose: {len(samples)} crops, {result.step} steps{note} -> {result.last_checkpoint}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("train_pose", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
