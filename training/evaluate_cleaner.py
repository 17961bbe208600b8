"""Evaluate a deployed depth cleaner on bags with ground truth (e.g. the held-out real-like active-stereo set).

    python training/evaluate_cleaner.py --model models/depth_cleaner.onnx --data data/real_like_test \
        --out docs/results/depth_cleaner_default

    python training/evaluate_cleaner.py --model models/depth_cleaner.onnx --data outputs/data/real_test \
        --aspect 16:9 --out outputs/cleaner_16x9     # a 16:9 camera: the band alone, stretched to the model

Writes <out>.json (means per method and per frame), <out>.table.md (a table) and <out>.png (examples); a
hand-written <out>.md beside them is left alone. The cleaner runs
through the same pipeline as the depth_cleaner node; see dcl_arc_ros/evaluation/depth_cleaner.py for the references.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from dcl_arc_ros.evaluation.depth_cleaner import FULL_FRAME_METHOD, evaluate_depth_cleaner, save_examples_png

METRICS = ("rmse", "mae", "psnr", "ssim", "coverage")


def markdown_table(summary: dict) -> str:
    lines = [
        f"Model `{summary['model']}` on {summary['frames']} frames of {', '.join(summary['data'])}; "
        f"PSNR peak = {summary['max_depth_m']:g} m; cleaner {summary['cleaner_ms_median']:.1f} ms/frame (median).",
        "",
        "| method | RMSE (mm) | MAE (mm) | PSNR (dB) | SSIM | coverage |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, m in summary["rows"].items():
        lines.append(
            f"| {method} | {m['rmse'] * 1000:.1f} | {m['mae'] * 1000:.1f} | {m['psnr']:.2f} | {m['ssim']:.4f} "
            f"| {m['coverage']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def parse_aspect(text: str) -> float:
    """``"16:9"`` -> 16 / 9; anything else is an argparse error naming the value."""
    try:
        width, height = (float(part) for part in text.split(":"))
        if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"--aspect must be W:H with positive numbers, got {text!r}") from None
    return width / height


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help=".onnx (or .engine) with its .json sidecar")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="bags or folders of bags with ground truth")
    parser.add_argument("--out", type=Path, required=True, help="output path without extension")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument(
        "--aspect",
        type=parse_aspect,
        default=None,
        help="W:H, e.g. 16:9: score each frame's centred band of that shape, cleaned on its own (and, as "
        f"{FULL_FRAME_METHOD}, cut from the cleaned full frame)",
    )
    args = parser.parse_args(argv)

    evaluation = evaluate_depth_cleaner(
        args.model, args.data, backend=args.backend, max_frames=args.max_frames, aspect=args.aspect
    )
    summary = evaluation.summary()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {**summary, "per_frame": evaluation.per_frame}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    table = markdown_table(summary)
    args.out.with_name(args.out.name + ".table.md").write_text(table, encoding="utf-8")
    save_examples_png(evaluation, args.out.with_suffix(".png"))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
