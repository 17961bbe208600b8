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
from pathlib import Path

from dcl_arc_ros.learning.config import apply_overrides, from_dict, load_yaml
from dcl_arc_ros.learning.errors import LearningError
from dcl_arc_ros.learning.grasp.toy_data import ToyGraspFrames
from dcl_arc_ros.learning.grasp.trainer import SAMPLE_MAP_KEYS, GraspSampleAdapter, GraspTask, GraspTrainConfig
from dcl_arc_ros.learning.trainers.loop import init_distributed, run_training, seed_everything


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML config (partial; defaults fill the rest)")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/latest.pt")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set loop.max_steps=100 (repeatable)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> GraspTrainConfig:
    source = args.config if args.config is not None else args.out / "config.yaml"
    if args.config is None and not (args.resume and source.exists()):
        raise LearningError(f"--config is required (no {source} to resume from)")
    raw = apply_overrides(load_yaml(source), args.overrides)
    if args.no_progress:
        raw = apply_overrides(raw, ["loop.progress=false"])
    return from_dict(GraspTrainConfig, raw, source=str(source))


def build_frames(cfg: GraspTrainConfig) -> object:
    data = cfg.data
    if data.source == "toy":
        return ToyGraspFrames(data.toy_frames, height=max(data.crop_size, 48), width=max(data.crop_size, 48),
                              seed=cfg.loop.seed)
    from dcl_arc_ros.data.torch_datasets import build_dataset

    return build_dataset(data.source, *data.paths, depth_from=data.depth_from,
                         keys=("depth", *SAMPLE_MAP_KEYS.values()))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = resolve_config(args)
        if not args.resume and (args.out / "checkpoints" / "latest.pt").exists():
            raise LearningError(f"{args.out} already holds a run; pass --resume to continue it, or choose a new --out")
        env = init_distributed(args.device)
        seed_everything(cfg.loop.seed)
        task = GraspTask(cfg, device=args.device)
        train = GraspSampleAdapter(build_frames(cfg), cfg.data, train=True,  # type: ignore[arg-type]
                                   width_scale_px=cfg.width_scale_px, seed=cfg.loop.seed)
        result = run_training(task, {"train": train}, cfg.loop, args.out, run_config=cfg, resume=args.resume,
                              dist_env=env)
    except LearningError as exc:
        print(f"train_grasp: error: {exc}", file=sys.stderr)
        return 2
    last = f", last loss {result.history[-1]['loss']:.4f}" if result.history else ""
    print(f"train_grasp: {result.step} steps{last} -> {result.last_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
