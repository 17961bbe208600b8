"""The grasp experiment (DCL Table IV): GG-CNN trained on clean, empirical and DCL-synthesized depth (+ fine-tuned on
10% of real-like frames), tested on held-out real-like SENSOR depth, seen vs novel objects, over seeds.

    python training/evaluate_grasp.py --out-dir outputs/experiments/grasp/v3 --results docs/results/grasp \
        --dcl-wait 3600

Writes <results>.json ({"rows": {method: {metric: mean, metric_std: spread}}, timings, config, ...}),
<results>.table.md, <results>.png (bar plot) and <results>_examples.png (grasps on test frames); the hand-written
<results>.md beside them is left alone. Networks and per-object trial results go to <out-dir>/<method>/seed_<s>/; a
finished run is reused, so the same command continues an interrupted experiment. The DCL generator of seed s is
read from the file named by --dcl-done (its first line is the checkpoint path); see
dcl_arc_ros/learning/experiments/grasp.py for the protocol.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dcl_arc_ros.learning.config import apply_overrides, from_dict, to_dict
from dcl_arc_ros.learning.experiments.grasp import (
    GraspExperimentConfig,
    markdown_table,
    run_grasp_experiment,
    write_results,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True, help="where the networks and per-run results go")
    parser.add_argument("--results", type=Path, required=True, help="results path without extension")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1)")
    parser.add_argument("--methods", nargs="+", help="methods (default clean empirical dcl dcl_finetuned)")
    parser.add_argument("--dcl-done", help="file naming seed s's DCL generator checkpoint; {seed} is replaced")
    parser.add_argument("--dcl-wait", type=float, default=0.0, help="seconds to wait for a missing DCL generator")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a GraspExperimentConfig field"
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> GraspExperimentConfig:
    raw = to_dict(GraspExperimentConfig())
    if args.seeds:
        raw["seeds"] = list(args.seeds)
    if args.methods:
        raw["methods"] = list(args.methods)
    if args.dcl_done:
        raw["dcl_done"] = args.dcl_done
    raw["dcl_wait_s"] = float(args.dcl_wait)
    raw = apply_overrides(raw, args.set)
    return from_dict(GraspExperimentConfig, raw, source="evaluate_grasp")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = resolve_config(args)
    payload = run_grasp_experiment(cfg, args.out_dir, repo=Path("."), progress=not args.no_progress)
    write_results(payload, args.results)
    print(markdown_table(payload))
    for method, why in payload["missing"].items():
        print(f"evaluate_grasp: {method} left out: {why}")
    print(f"evaluate_grasp: {payload['timings_s']['total_s']:.0f} s -> {args.results}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
