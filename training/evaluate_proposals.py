"""Score the pose_estimator's depth-only object proposals against ground-truth instance masks.

    python training/evaluate_proposals.py                    # real-like test split -> docs/results/proposals.*
    python training/evaluate_proposals.py --bags outputs/demo/bag --out outputs/proposals_demo

Each proposal is matched to the ground-truth object its mask overlaps most (mask IoU >= --iou, one proposal per
object); the targets are the objects at least --min-visible visible, as in the pose experiment. Recall is matched
objects / targets, precision matched proposals / proposals, and "largest N" the share of each frame's N largest
proposals (the ones pose_estimator poses, its ``max_objects``) that match an object. Three rows per depth source (the
sensor depth the node sees, and the clean depth, which isolates the segmentation from the sensor): the shipped
parameters (``core.proposals.ProposalParams``); the same without merging the pieces of one object
(``merge_convex`` off); and with ``split_touching`` and ``merge_convex`` off and ``min_top_height_m`` 0, the
segmentation before touching objects were cut apart. Writes <out>.json, <out>.md and <out>.png (the first frame's
masks).
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
from tqdm import tqdm

from dcl_arc_ros.core.errors import DepthError
from dcl_arc_ros.core.pose_pipeline import largest_crops
from dcl_arc_ros.core.proposals import ObjectCrop, ProposalParams, match_to_instances, propose_objects
from dcl_arc_ros.data import bags
from dcl_arc_ros.data.bag_index import BagIndex
from dcl_arc_ros.data.errors import DataError

TOPICS = (bags.DEPTH_IMAGE, bags.GT_DEPTH, bags.DEPTH_INFO, bags.GT_INSTANCES, bags.GT_POSES_INFO)
DEPTHS = {"sensor": "depth", "clean": "depth_clean"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bags", nargs="+", default=["outputs/data/real_test"], help="bags or folders of bags")
    parser.add_argument("--out", type=Path, default=Path("docs/results/proposals"), help="output path, no extension")
    parser.add_argument("--iou", type=float, default=0.5, help="mask IoU for a proposal to count as an object")
    parser.add_argument("--min-visible", type=float, default=0.3, help="visible fraction that makes an object a target")
    parser.add_argument("--largest", type=int, default=5, help="N of the 'largest N' column (the node's max_objects)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not 0.0 < args.iou <= 1.0:
        parser.error(f"--iou must be in (0, 1], got {args.iou}")
    if not 0.0 <= args.min_visible <= 1.0:
        parser.error(f"--min-visible must be in [0, 1], got {args.min_visible}")
    if args.largest < 1:
        parser.error(f"--largest must be >= 1, got {args.largest}")
    return args


def variants() -> dict[str, ProposalParams]:
    shipped = ProposalParams()
    unmerged = dataclasses.replace(shipped, merge_convex=False)
    before = dataclasses.replace(unmerged, split_touching=False, min_top_height_m=0.0)
    return {"shipped": shipped, "without merging": unmerged, "before (no cuts, no top filter)": before}


def _propose(depth: np.ndarray, record: Any, params: ProposalParams) -> tuple[list[ObjectCrop], float]:
    start = time.perf_counter()
    try:
        crops = propose_objects(depth, record.intrinsics, params)
    except DepthError:  # too little depth for a plane: no proposals, its objects still count
        crops = []
    return crops, time.perf_counter() - start


def score(frames: Any, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, list[ObjectCrop]]]:
    """One row per (depth source, variant); and the first frame's sensor-depth proposals per variant."""
    counts = {
        (d, v): {"targets": 0, "proposals": 0, "matched": 0, "largest": 0, "largest_matched": 0, "seconds": []}
        for d in DEPTHS
        for v in variants()
    }
    first: dict[str, list[ObjectCrop]] = {}
    for f in tqdm(range(len(frames)), desc="proposals", unit="frame", disable=args.no_progress):
        record = frames[f]
        if record.instances is None or record.object_info is None:
            raise DataError(f"{record.source}: frame {f} has no ground-truth instances or object table")
        visible = (row for row in record.object_info if row[3] >= args.min_visible)
        targets = {int(row[0]) for row in visible if (record.instances == row[0]).any()}
        for source, attribute in DEPTHS.items():
            depth = getattr(record, attribute)
            for name, params in variants().items():
                crops, seconds = _propose(depth, record, params)
                if f == 0 and source == "sensor":
                    first[name] = crops
                c = counts[(source, name)]
                c["targets"] += len(targets)
                c["proposals"] += len(crops)
                matched = match_to_instances(crops, record.instances, targets, iou=args.iou)
                largest = largest_crops(crops, args.largest)
                c["matched"] += len(matched)
                c["largest"] += len(largest)
                c["largest_matched"] += sum(i in matched for i in largest)
                c["seconds"].append(seconds)
    rows = []
    for (source, name), c in counts.items():
        rows.append(
            {
                "depth": source,
                "parameters": name,
                "targets": c["targets"],
                "proposals": c["proposals"],
                "matched": c["matched"],
                "recall": c["matched"] / c["targets"] if c["targets"] else float("nan"),
                "precision": c["matched"] / c["proposals"] if c["proposals"] else float("nan"),
                "largest": c["largest"],
                "largest_matched": c["largest_matched"],
                "ms_per_frame_median": 1000.0 * float(np.median(c["seconds"])),
            }
        )
    return rows, first


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, frames: int, figure: str) -> str:
    lines = [
        "# Depth-only object proposals against ground-truth masks",
        "",
        f"Generated by `python training/evaluate_proposals.py --bags {' '.join(args.bags)}`; do not edit by hand.",
        f"{frames} frames; a proposal counts when its mask IoU with an object is at least {args.iou:g}; targets are",
        f"the objects at least {args.min_visible:.0%} visible; largest {args.largest}: of each frame's {args.largest} "
        "largest proposals",
        "(the ones the pose node poses), those that match an object. Time: one call of `propose_objects` on one core.",
        "",
        f"| depth | parameters | targets | proposals | recall | precision | largest {args.largest} matched | "
        "ms per frame (median) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['depth']} | {r['parameters']} | {r['targets']} | {r['proposals']} | {r['recall']:.1%} | "
            f"{r['precision']:.1%} | {r['largest_matched']} of {r['largest']} | {r['ms_per_frame_median']:.0f} |"
        )
    lines += ["", f"![first frame]({figure})", ""]
    return "\n".join(lines)


def save_figure(record: Any, first: dict[str, list[ObjectCrop]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("ground truth (objects)", record.instances)]
    for name, crops in first.items():
        labels = np.zeros(record.instances.shape, np.int32)
        for i, crop in enumerate(crops, start=1):
            x0, y0, x1, y1 = crop.box
            labels[y0:y1, x0:x1][crop.mask] = i
        panels.append((f"proposals, {name} ({len(crops)})", labels))
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.4))
    axes[0].imshow(record.depth, cmap="turbo")
    axes[0].set_title("sensor depth")
    for ax, (title, labels) in zip(axes[1:], panels, strict=True):
        shown = np.ma.masked_equal(labels % 20 + (labels > 0), 0)
        ax.imshow(np.isfinite(record.depth), cmap="gray", vmin=0, vmax=2)
        ax.imshow(shown, cmap="tab20", interpolation="nearest")
        ax.set_title(title)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        frames = BagIndex(list(args.bags), topics=list(TOPICS))
        if len(frames) == 0:
            raise DataError(f"no frames in {args.bags}")
        rows, first = score(frames, args)
    except DataError as exc:
        print(f"evaluate_proposals: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure = args.out.with_suffix(".png")
    save_figure(frames[0], first, figure)
    settings = {
        "bags": args.bags,
        "frames": len(frames),
        "iou": args.iou,
        "min_visible": args.min_visible,
        "largest": args.largest,
    }
    payload = {"settings": settings, "parameters": dataclasses.asdict(ProposalParams()), "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    text = markdown(rows, args, len(frames), figure.name)
    args.out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
