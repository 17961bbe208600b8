"""Train the pose network (class + 6D rotation) on object-centric depth crops of one depth domain.

    python training/train_pose.py --config training/configs/pose_tiny.yaml --out runs/pose/tiny
    python training/train_pose.py --config training/configs/pose_tiny.yaml --out runs/pose/dcl \
        --set data.paths='[data/bags/dcl_train]' --set network.num_classes=20
    python training/train_pose.py --out runs/pose/dcl --resume

Crops are cut once before training with the same code the deployed pipeline uses (ground-truth masks through
core.proposals.crops_from_labels + core.pose_pipeline.prepare_pose_input). The resolved config goes to
<out>/config.yaml and into every checkpoint; TensorBoard logs to <out>/tb.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcl_arc_ros.learning.config import apply_overrides, from_dict, load_yaml
from dcl_arc_ros.learning.errors import DatasetError, LearningError
from dcl_arc_ros.learning.pose.toy_data import ToyPoseFrames
from dcl_arc_ros.learning.pose.trainer import PoseCropDataset, PoseTask, PoseTrainConfig, build_pose_samples
from dcl_arc_ros.learning.trainers.loop import init_distributed, run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (partial; defaults fill the rest)")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/latest.pt")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set loop.max_steps=100 (repeatable)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> PoseTrainConfig:
    source = args.config if args.config is not None else args.out / "config.yaml"
    if args.config is None and not (args.resume and source.exists()):
        raise LearningError(f"--config is required (no {source} to resume from)")
    raw = apply_overrides(load_yaml(source), args.overrides)
    if args.no_progress:
        raw = apply_overrides(raw, ["loop.progress=false"])
    return from_dict(PoseTrainConfig, raw, source=str(source))


def build_frames(cfg: PoseTrainConfig) -> Any:
    data = cfg.data
    if data.source == "toy":
        return ToyPoseFrames(data.toy_frames, seed=cfg.loop.seed)
    from dcl_arc_ros.data.torch_datasets import SOURCES

    if data.source not in SOURCES:
        raise DatasetError(f"unknown data source {data.source!r}; expected 'toy' or one of {sorted(SOURCES)}")
    return SOURCES[data.source](*data.paths)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = resolve_config(args)
        if not args.resume and (args.out / "checkpoints" / "latest.pt").exists():
            raise LearningError(f"{args.out} already holds a run; pass --resume to continue it, or choose a new --out")
        env = init_distributed(args.device)
        seed_everything(cfg.loop.seed)
        samples = build_pose_samples(build_frames(cfg), cfg.data, progress=cfg.loop.progress and env.is_main)
        if not samples:
            raise DatasetError(f"no object crops in {cfg.data.source} {list(cfg.data.paths)}: check the filters")
        task = PoseTask(cfg, device=args.device)
        train = PoseCropDataset(samples, num_classes=cfg.network.num_classes)
        result = run_training(task, {"train": train}, cfg.loop, args.out, run_config=cfg, resume=args.resume,
                              dist_env=env)
    except LearningError as exc:
        print(f"train_pose: error: {exc}", file=sys.stderr)
        return 2
    last = f", last loss {result.history[-1]['loss']:.4f}" if result.history else ""
    print(f"train_pose: {len(samples)} crops, {result.step} steps{last} -> {result.last_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
