#!/usr/bin/env python3
"""Can the pose network learn the rotation of the symmetric primitives at all? A focused probe.

    python training/probe_pose_primitives.py --out docs/results/pose_primitives_probe.json \
        [--train outputs/data/syn_train ...] [--steps 2000] [--turn-deg 180] [--rotation-loss symmetric_min_mse]

The full pose experiment (``training/evaluate_pose.py``) mixes three primitives with hundreds of mesh classes that
occur in one scene each, whose rotations no network of this size can learn from so few views; their errors swamp the
table. This probe trains the experiment's network on the primitives only (box, cylinder, sphere; clean depth, one
seed) and scores it on the held-out real-like test frames (sensor depth) by symmetry, with three references:

- ``chance``: the median error of random rotations (what a network that learned nothing scores);
- ``train_fit``: the same network on its own training crops (memorising vs generalising);
- ``geometric_box``: no learning at all: the principal axes of each test box's visible points, ordered by extent
  like the labels (``order_box_axes``). It shows how much of a box's rotation the depth itself reveals.

Options map onto ``PoseTrainConfig`` (``--rotation-loss``, ``--turn-deg`` = ``augment_turn_deg``) and
``PoseDataConfig`` (``--raw-box-axes`` switches ``order_box_axes`` off).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcl_arc_ros.sim.objects import PRIMITIVE_CLASS_IDS

PRIMITIVES = tuple(PRIMITIVE_CLASS_IDS.values())  # box, cylinder, sphere
BOX = PRIMITIVE_CLASS_IDS["box"]
KINDS = ("box", "cylinder")


def geometric_box_errors(frames: Any, cfg: Any) -> list[float]:
    """Degrees between each visible test box's ordered principal axes and its (ordered) label, symmetry-aware."""
    from dcl_arc_ros.learning.pose.metrics import order_box_axes, symmetric_rotation_error
    from dcl_arc_ros.learning.pose.trainer import labelled_rotation, object_points

    errors: list[float] = []
    for i in range(len(frames)):
        rec = frames[i]
        depth = rec.depth_clean if rec.depth_clean is not None else rec.depth
        for row, pose in zip(rec.object_info, rec.object_poses, strict=True):
            if int(row[1]) != BOX or row[3] < cfg.min_visible_fraction:
                continue
            instance = int(row[0])
            points = object_points(depth, rec.instances, instance, rec.intrinsics)
            if len(points) < cfg.min_pixels:
                continue
            label = labelled_rotation(
                pose, BOX, cfg, depth_m=depth, instances=rec.instances, instance_id=instance, intrinsics=rec.intrinsics
            )
            _, _, vt = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)
            axes = vt.T * np.sign(np.linalg.det(vt.T))  # a proper rotation
            estimate = order_box_axes(axes, np.asarray(pose)[:3, 3], points)
            errors.append(float(np.degrees(symmetric_rotation_error(estimate, label, "box")[0])))
    return errors


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from dcl_arc_ros.data import bags
    from dcl_arc_ros.learning.config import OptimConfig, from_dict, load_yaml
    from dcl_arc_ros.learning.errors import DatasetError
    from dcl_arc_ros.learning.experiments.pose import PoseExperimentConfig, evaluate_samples, summarise
    from dcl_arc_ros.learning.pose.metrics import chance_rotation_error
    from dcl_arc_ros.learning.pose.trainer import (
        PoseCropDataset,
        PoseTask,
        PoseTrainConfig,
        build_pose_samples,
        open_pose_frames,
    )
    from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    exp = from_dict(PoseExperimentConfig, load_yaml(args.config), source=str(args.config))
    data = exp.data(args.train, class_ids=PRIMITIVES, depth_from="clean", order_box_axes=not args.raw_box_axes)
    train = build_pose_samples(open_pose_frames(data, extra_topics=[bags.GT_DEPTH]), data, progress=False)
    if not train:
        raise DatasetError(f"no box, cylinder or sphere crops in {list(args.train)}: nothing to train on")
    test_data = exp.data(args.test, class_ids=PRIMITIVES, order_box_axes=not args.raw_box_axes)
    test_frames = open_pose_frames(test_data, extra_topics=[bags.GT_DEPTH])
    test = build_pose_samples(test_frames, test_data, unknown_class=-1, progress=False)
    network = dataclasses.replace(exp.network, num_classes=len(PRIMITIVES))
    cfg = PoseTrainConfig(
        network=network,
        rotation_weight=exp.rotation_weight,
        rotation_loss=args.rotation_loss,
        augment_turn_deg=args.turn_deg,
        optim=OptimConfig(lr=exp.lr, beta1=0.9, beta2=0.999),
        loop=LoopConfig(
            max_steps=args.steps,
            batch_size=exp.batch_size,
            seed=args.seed,
            log_every=50,
            image_every=args.steps,
            checkpoint_every=args.steps,
            keep_checkpoints=1,
            progress=not args.no_progress,
        ),
        data=data,
    )
    seed_everything(args.seed)
    task = PoseTask(cfg)
    dataset = PoseCropDataset.for_training(train, cfg, num_classes=len(PRIMITIVES))
    run_training(task, {"train": dataset}, cfg.loop, args.out_dir, run_config=cfg)
    task.net.eval()
    tested = evaluate_samples(task.net, test, set(PRIMITIVES))
    fitted = evaluate_samples(task.net, train, set(PRIMITIVES))
    geometric = geometric_box_errors(test_frames, test_data)
    return {
        "settings": {
            "train": list(args.train),
            "test": list(args.test),
            "steps": args.steps,
            "turn_deg": args.turn_deg,
            "rotation_loss": args.rotation_loss,
            "order_box_axes": not args.raw_box_axes,
            "seed": args.seed,
            "network": dataclasses.asdict(network),
            "train_crops": len(train),
            "test_crops": len(test),
        },
        "test": {k: summarise(tested, symmetry=k) for k in KINDS},
        "train_fit": {k: summarise(fitted, symmetry=k) for k in KINDS},
        "chance_median_deg": {k: chance_rotation_error(k) for k in KINDS},
        "geometric_box": {"n": len(geometric), "median_deg": float(np.median(geometric)) if geometric else None},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("training/configs/pose_experiment.yaml"),
                        help="the pose experiment config whose network, lr and batch size are used")  # fmt: skip
    parser.add_argument("--train", nargs="+", default=["outputs/data/syn_train"], help="training bag folders")
    parser.add_argument("--test", nargs="+", default=["outputs/data/real_test"], help="test bag folders")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--turn-deg", type=float, default=180.0, help="augment_turn_deg (0: no turns)")
    parser.add_argument("--rotation-loss", default="symmetric_min_mse", choices=("mse", "symmetric_min_mse"))
    parser.add_argument("--raw-box-axes", action="store_true", help="keep the catalogue's arbitrary box axes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/experiments/pose_primitives_probe"))
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here too")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from dcl_arc_ros.data.errors import DataError
    from dcl_arc_ros.learning.errors import LearningError

    args = parse_args(argv)
    try:
        result = run(args)
    except (LearningError, DataError) as exc:
        print(f"probe_pose_primitives: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
