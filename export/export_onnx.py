"""Export a trained network (DCL generator, depth cleaner, ...) to ONNX + its JSON sidecar, and print the parity.

    python export/export_onnx.py --checkpoint runs/enh/dcl/checkpoints/latest.pt --out models/depth_cleaner.onnx \
        --height 480 --width 640
    python export/export_onnx.py --checkpoint runs/dcl/dcl/checkpoints/latest.pt --out models/dcl_synth.onnx \
        --height 480 --width 640 --network generator

The network is rebuilt from the config saved in the checkpoint; nothing about its architecture is passed here.
Parity with PyTorch is checked with onnxruntime on random inputs and the export fails beyond --rtol.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dcl_arc_ros.learning.errors import LearningError
from dcl_arc_ros.learning.export import DEFAULT_OPSET, export_checkpoint


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint written by a training script")
    parser.add_argument("--out", type=Path, required=True, help="output .onnx path (the sidecar goes next to it)")
    parser.add_argument("--height", type=int, required=True, help="deploy input height in pixels")
    parser.add_argument("--width", type=int, required=True, help="deploy input width in pixels")
    parser.add_argument("--network", help="network name inside the checkpoint (default: its primary network)")
    parser.add_argument("--name", help="model name in the sidecar (default: the file stem)")
    parser.add_argument("--model-version", default="1.0.0", help="model version recorded in the sidecar")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset")
    parser.add_argument("--rtol", type=float, default=1e-4, help="maximum relative ONNX/PyTorch difference")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.suffix != ".onnx":
        print(f"export_onnx: error: --out must end in .onnx, got {args.out}", file=sys.stderr)
        return 2
    try:
        result = export_checkpoint(
            args.checkpoint,
            args.out,
            height=args.height,
            width=args.width,
            network=args.network,
            opset=args.opset,
            rtol=args.rtol,
            model_version=args.model_version,
            name=args.name,
        )
    except LearningError as exc:
        print(f"export_onnx: error: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {"onnx": str(result.onnx_path), "sidecar": str(result.sidecar_path), "parity": result.parity.as_dict()},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
