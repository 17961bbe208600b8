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
from collections.abc import Sequence

from dcl_arc_ros.learning.cli import ensure_new_run, load_run_config, loss_note, run_cli, training_parser
from dcl_arc_ros.learning.grasp.toy_data import ToyGraspFrames
from dcl_arc_ros.learning.grasp.trainer import SAMPLE_MAP_KEYS, GraspSampleAdapter, GraspTask, GraspTrainConfig
from dcl_arc_ros.learning.trainers.loop import init_distributed, run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return training_parser(__doc__, out_help="run directory").parse_args(argv)


def resolve_config(args: argparse.Namespace) -> GraspTrainConfig:
    return load_run_config(GraspTrainConfig, args)


def build_frames(cfg: GraspTrainConfig) -> object:
    data = cfg.data
    if data.source == "toy":
        return ToyGraspFrames(data.toy_frames, height=max(data.crop_size, 48), width=max(data.crop_size, 48),
                              seed=cfg.loop.seed)
    from dcl_arc_ros.data.torch_datasets import build_dataset

    return build_dataset(data.source, *data.paths, depth_from=data.depth_from,
                         keys=("depth", *SAMPLE_MAP_KEYS.values()))


def train(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    ensure_new_run(args.out, args.resume)
    env = init_distributed(args.device)
    seed_everything(cfg.loop.seed)
    task = GraspTask(cfg, device=args.device)
    dataset = GraspSampleAdapter(build_frames(cfg), cfg.data, train=True,  # type: ignore[arg-type]
                                 width_scale_px=cfg.width_scale_px, seed=cfg.loop.seed)
    result = run_training(task, {"train": dataset}, cfg.loop, args.out, run_config=cfg, resume=args.resume,
                          dist_env=env)
    print(f"train_grasp: {result.step} steps{loss_note(result.history)} -> {result.last_checkpoint}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli("train_grasp", lambda: train(args))


if __name__ == "__main__":
    sys.exit(main())
