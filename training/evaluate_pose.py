"""Train and evaluate the pose network for the pose results table (clean, empirical, DCL-synthesized depth and the
DCL model fine-tuned on 10% of the real-like frames), on the real-like test frames' sensor depth:

    python training/evaluate_pose.py --config training/configs/pose_experiment.yaml
    python training/evaluate_pose.py --config training/configs/pose_experiment.yaml --set steps=100 \
        --set results_dir=outputs/experiments/pose/smoke

Writes docs/results/pose.md, pose.json, pose_frames.png and pose_metrics.png (``results_dir``); checkpoints and
TensorBoard logs go to ``out_dir``/<method>/seed_<s>. The DCL generator of seed s is read from the DONE file named by
``dcl_done``; without it the dcl rows are skipped and the report says so. See
dcl_arc_ros/learning/experiments/pose.py for the protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dcl_arc_ros.learning.config import apply_overrides, from_dict, load_yaml
from dcl_arc_ros.learning.errors import LearningError
from dcl_arc_ros.learning.experiments.pose import PoseExperimentConfig, run_pose_experiment


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("training/configs/pose_experiment.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        raw = apply_overrides(load_yaml(args.config), args.set)
        if args.no_progress:
            raw["progress"] = False
        cfg = from_dict(PoseExperimentConfig, raw, source=str(args.config))
        report = run_pose_experiment(cfg)
    except LearningError as exc:
        print(f"evaluate_pose: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"rows": report["rows"], "timings_s": report["timings_s"], "notes": report["notes"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
