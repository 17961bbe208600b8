#!/usr/bin/env python3
"""Where do trained DCL / CUT generators put holes, compared with the real sensor on the same scenes?

    python training/probe_dcl_holes.py RUN_DIR [RUN_DIR ...] --out docs/results/dcl_hole_probes.json

Each RUN_DIR is a ``training/train_dcl.py`` run (its ``checkpoints/latest.pt`` is used). The generator synthesizes
the CLEAN depth of test frames that also have the real-like sensor's depth of the same view (default: 8 evenly spaced
frames of ``outputs/data/real_test``), so the synthesized holes can be compared with the real ones pixel by pixel:

- ``holes``: the fraction of pixels that are holes;
- ``iou_real_holes``: intersection over union of the synthesized and the real hole masks;
- ``holes_left_band`` / ``holes_elsewhere``: the hole fraction inside / outside the left ``--band`` share of the
  columns (the active-stereo camera's invalid band).

The row ``real_sensor`` gives the same numbers for the sensor depth itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from dcl_arc_ros.data.errors import DataError
from dcl_arc_ros.learning.errors import LearningError


def hole_placement(synth_holes: torch.Tensor, real_holes: torch.Tensor, band: float) -> dict[str, float]:
    """The statistics of the module docstring for boolean hole masks (N, 1, H, W) of the same views."""
    left = torch.zeros_like(real_holes)
    left[..., : round(real_holes.shape[-1] * band)] = True
    union = (synth_holes | real_holes).sum()
    return {
        "holes": float(synth_holes.float().mean()),
        "iou_real_holes": float((synth_holes & real_holes).sum() / union) if union else float("nan"),
        "holes_left_band": float(synth_holes[left].float().mean()),
        "holes_elsewhere": float(synth_holes[~left].float().mean()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="train_dcl.py run directories")
    parser.add_argument("--data", default="outputs/data/real_test", help="bags with clean AND sensor depth")
    parser.add_argument("--frames", type=int, default=8, help="evenly spaced frames (0: all)")
    parser.add_argument("--band", type=float, default=0.175, help="share of columns in the left invalid band")
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here too")
    args = parser.parse_args(argv)

    from dcl_arc_ros.learning.experiments.dcl import load_frames, synthesize_set

    missing = [str(run) for run in args.runs if not (run / "checkpoints" / "latest.pt").is_file()]
    if missing:
        print(f"probe_dcl_holes: error: no checkpoints/latest.pt in {missing}", file=sys.stderr)
        return 2
    try:
        frames = load_frames(args.data, depth_from="sensor", frames=args.frames)
        real = frames.depth <= 0
        rows = {"real_sensor": hole_placement(real, real, args.band)}
        for run in args.runs:
            synthesized = synthesize_set("dcl", frames, checkpoint=run / "checkpoints" / "latest.pt", seed=0)
            rows[run.name] = hole_placement(synthesized <= 0, real, args.band)
    except (LearningError, DataError) as exc:
        print(f"probe_dcl_holes: error: {exc}", file=sys.stderr)
        return 2
    for name, row in rows.items():
        print(f"{name:24s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    if args.out is not None:
        payload = {"data": args.data, "frames": len(frames), "band": args.band, "rows": rows}
        args.out.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
