"""Export a trained network to ONNX + its JSON sidecar, and print the parity. Every checkpoint kind goes through here:

    # depth to depth (DCL generator, depth cleaner), GG-CNN: exported at the deploy size you give
    python export/export_onnx.py --checkpoint runs/enh/dcl/checkpoints/latest.pt --out models/depth_cleaner.onnx \
        --height 480 --width 640
    python export/export_onnx.py --checkpoint runs/dcl/dcl/checkpoints/latest.pt --out models/dcl_synth.onnx \
        --height 480 --width 640 --network generator
    # ARC (a stage checkpoint: T -> A's hard mask -> I -> D as one graph) and the pose network: exported at the
    # resolution they were trained at, so --height/--width are not needed
    python export/export_onnx.py --checkpoint runs/arc/arc_full/finetune/checkpoint.pt --out models/arc_depth.onnx
    python export/export_onnx.py --checkpoint runs/pose/checkpoints/latest.pt --out models/pose_estimator.onnx

The network is rebuilt from the config saved in the checkpoint; nothing about its architecture is passed here.
Parity with PyTorch is checked with onnxruntime on random inputs and the export fails beyond --rtol (ARC also checks
its binary mask exactly away from the 0.5 threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dcl_arc_ros.learning.errors import ExportError, LearningError
from dcl_arc_ros.learning.export import DEFAULT_OPSET, export_checkpoint

#: How a checkpoint is exported: "arc" (an ARC stage checkpoint), "pose" (a pose network), "network" (the rest).
CHECKPOINT_FAMILIES = ("arc", "pose", "network")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint written by a training script")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx path (the sidecar goes next to it)")
    parser.add_argument("--height", type=int, help="deploy input height in pixels (depth-to-depth and GG-CNN)")
    parser.add_argument("--width", type=int, help="deploy input width in pixels (depth-to-depth and GG-CNN)")
    parser.add_argument("--network", help="network name inside the checkpoint (default: its primary network)")
    parser.add_argument("--name", help="model name in the sidecar (default: the file stem)")
    parser.add_argument("--model-version", default="1.0.0", help="model version recorded in the sidecar")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset")
    parser.add_argument("--rtol", type=float, default=1e-4, help="maximum relative ONNX/PyTorch difference")
    parser.add_argument(
        "--intrinsics",
        type=float,
        nargs=4,
        metavar=("FX", "FY", "CX", "CY"),
        help="camera intrinsics at the export size, for a DCL generator trained with viewing rays (ray_channels)",
    )
    return parser.parse_args(argv)


def checkpoint_family(path: Path) -> str:
    """Which of :data:`CHECKPOINT_FAMILIES` a checkpoint belongs to (errors name the file)."""
    from dcl_arc_ros.learning.arc.errors import StageError
    from dcl_arc_ros.learning.arc.stages import read_checkpoint
    from dcl_arc_ros.learning.checkpoint import load_checkpoint

    try:
        read_checkpoint(path)
        return "arc"
    except StageError as exc:
        if "not an ARC stage checkpoint" not in str(exc):
            raise  # missing or unreadable: the same answer for every family
    ckpt = load_checkpoint(path)
    return "pose" if ckpt.networks[ckpt.primary].kind == "posenet" else "network"


def export(args: argparse.Namespace) -> dict[str, object]:
    """Export ``args.checkpoint`` by its family; the JSON-able summary that :func:`main` prints."""
    family = checkpoint_family(args.checkpoint)
    common = {"opset": args.opset, "rtol": args.rtol, "model_version": args.model_version, "name": args.name}
    if family != "network" and args.intrinsics:
        raise ExportError(f"{args.checkpoint}: --intrinsics is for DCL generators, not a {family} checkpoint")
    if family != "network" and (args.height or args.width):
        raise ExportError(
            f"{args.checkpoint}: a {family} checkpoint is exported at its training resolution; "
            f"drop --height/--width (got {args.height}x{args.width})"
        )
    summary: dict[str, object] = {"family": family}
    if family == "arc":
        from dcl_arc_ros.learning.arc.export import export_arc_checkpoint

        arc = export_arc_checkpoint(args.checkpoint, args.out, **common)
        summary["mask_parity"] = asdict(arc.mask_parity)
        result: Any = arc
    elif family == "pose":
        from dcl_arc_ros.learning.pose.export import export_pose_checkpoint

        result = export_pose_checkpoint(args.checkpoint, args.out, network=args.network, **common)
    else:
        if not args.height or not args.width:
            raise ExportError(f"{args.checkpoint}: give the deploy size with --height and --width")
        result = export_checkpoint(
            args.checkpoint,
            args.out,
            height=args.height,
            width=args.width,
            network=args.network,
            intrinsics=args.intrinsics,
            **common,
        )
    summary.update(
        onnx=str(result.onnx_path),
        sidecar=str(result.sidecar_path),
        parity=result.parity.as_dict(),
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.suffix != ".onnx":
        print(f"export_onnx: error: --out must end in .onnx, got {args.out}", file=sys.stderr)
        return 2
    try:
        summary = export(args)
    except LearningError as exc:
        print(f"export_onnx: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
