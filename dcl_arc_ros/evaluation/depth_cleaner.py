"""Score a deployed depth cleaner (ONNX/engine + sidecar) on frames with ground truth, through the node's own path.

The cleaner runs exactly as the ``depth_cleaner`` node runs it (:class:`DepthCleaningPipeline` over a loaded
:class:`Model`), so the numbers describe what a robot gets. Two references are scored on the same frames:

- ``sensor``: the raw sensor depth, on the pixels where it has a reading (its ``coverage`` says how many);
- ``nearest_fill``: the sensor depth with every hole filled from its nearest reading, no network (the floor any
  cleaner must beat).

Metrics are the DCL paper's Table I (RMSE, MAE, PSNR with the model's depth range as the peak, SSIM), averaged over
frames, plus per-frame rows and the cleaner's time per frame.

With ``aspect`` (width / height, e.g. 16 / 9), every frame is cut to its centred band of that aspect ratio, as a
camera of that shape would see it, and the cleaner gets the band alone: the pipeline stretches it to the model's
input. A fourth row, ``cleaner_full_frame``, scores on the same band the cleaner's output for the whole frame, which
the stretch did not touch; the two rows differ by what the stretch costs (and the lost context at the band's edges).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dcl_arc_ros.core.depth import fill_holes
from dcl_arc_ros.core.depth_cleaning import DepthCleaningPipeline
from dcl_arc_ros.core.metrics import depth_enhancement_metrics, mean_metrics
from dcl_arc_ros.data import bags
from dcl_arc_ros.data.bag_index import BagIndex
from dcl_arc_ros.inference.backends import load_model

METHODS = ("cleaner", "sensor", "nearest_fill")
FULL_FRAME_METHOD = "cleaner_full_frame"


def centred_band(height: int, width: int, aspect: float) -> tuple[slice, slice]:
    """Rows and columns of the largest centred window of a ``height`` x ``width`` image with ``width / height`` =
    ``aspect`` (a band of rows for a wider aspect, of columns for a narrower one)."""
    if aspect <= 0:
        raise ValueError(f"aspect (width / height) must be positive, got {aspect}")
    if width / height < aspect:
        rows = round(width / aspect)
        top = (height - rows) // 2
        return slice(top, top + rows), slice(0, width)
    cols = round(height * aspect)
    left = (width - cols) // 2
    return slice(0, height), slice(left, left + cols)


@dataclass
class CleanerEvaluation:
    model: str
    data: list[str]
    max_depth_m: float
    frames: int
    means: dict[str, dict[str, float]]  # method -> metric -> mean over frames
    per_frame: list[dict[str, Any]] = field(default_factory=list)
    cleaner_ms_median: float = float("nan")
    examples: list[dict[str, np.ndarray]] = field(default_factory=list)  # a few frames for figures

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "data": self.data,
            "frames": self.frames,
            "max_depth_m": self.max_depth_m,
            "cleaner_ms_median": self.cleaner_ms_median,
            "rows": self.means,
        }


def _depth_range_max(model: Any) -> float:
    entry: Any = model.sidecar.normalisation.get("depth") or next(iter(model.sidecar.normalisation.values()), {})
    return float(entry.get("max_m", 10.0)) if isinstance(entry, dict) else 10.0


def evaluate_depth_cleaner(
    model_path: str | Path,
    data_paths: Sequence[str | Path],
    *,
    backend: str = "onnxruntime",
    max_frames: int | None = None,
    keep_examples: int = 3,
    threads: int = 1,
    aspect: float | None = None,
) -> CleanerEvaluation:
    """Run the cleaner over every frame of ``data_paths`` (bags with sensor depth and /ground_truth/depth); with
    ``aspect``, on each frame's centred band of that aspect ratio (see the module doc)."""
    options: dict[str, Any] = {"intra_op_num_threads": threads} if backend == "onnxruntime" else {}
    model = load_model(model_path, backend, **options)
    pipeline = DepthCleaningPipeline(model)
    max_depth_m = _depth_range_max(model)
    frames = BagIndex([str(p) for p in data_paths], topics=[bags.DEPTH_IMAGE, bags.GT_DEPTH])
    count = len(frames) if max_frames is None else min(len(frames), max_frames)
    methods = METHODS if aspect is None else (*METHODS, FULL_FRAME_METHOD)
    rows: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    per_frame: list[dict[str, Any]] = []
    times: list[float] = []
    examples: list[dict[str, np.ndarray]] = []
    step = max(count // max(keep_examples, 1), 1)
    for index in range(count):
        record = frames[index]
        if record.depth is None or record.depth_clean is None:
            raise ValueError(f"frame {index} of {record.source} lacks sensor depth or ground truth")
        height, width = record.depth.shape
        band = (slice(None), slice(None)) if aspect is None else centred_band(height, width, aspect)
        sensor, truth = np.ascontiguousarray(record.depth[band]), record.depth_clean[band]
        start = time.perf_counter()
        cleaned = pipeline(sensor)
        times.append(time.perf_counter() - start)
        outputs = {"cleaner": cleaned, "sensor": sensor, "nearest_fill": fill_holes(sensor)}
        if aspect is not None:
            outputs[FULL_FRAME_METHOD] = pipeline(record.depth)[band]
        frame_row: dict[str, Any] = {"index": index, "source": record.source, "stamp_ns": record.stamp_ns}
        for method, depth in outputs.items():
            metrics = depth_enhancement_metrics(depth, truth, max_depth_m=max_depth_m)
            rows[method].append(metrics)
            frame_row[method] = metrics
        per_frame.append(frame_row)
        if len(examples) < keep_examples and index % step == 0:
            examples.append({"sensor": sensor, "cleaned": cleaned, "truth": truth})
    return CleanerEvaluation(
        model=str(model_path),
        data=[str(p) for p in data_paths],
        max_depth_m=max_depth_m,
        frames=count,
        means={method: mean_metrics(method_rows) for method, method_rows in rows.items()},
        per_frame=per_frame,
        cleaner_ms_median=float(np.median(times) * 1000.0) if times else float("nan"),
        examples=examples,
    )


def save_examples_png(evaluation: CleanerEvaluation, path: Path) -> Path:
    """Rows of sensor input / cleaned / ground truth / |cleaned - truth|, each titled with its RMSE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = evaluation.examples
    fig, axes = plt.subplots(len(rows), 4, figsize=(15, 3.2 * len(rows)), squeeze=False)
    for row, example in zip(axes, rows, strict=True):
        truth = example["truth"]
        lo, hi = np.nanpercentile(truth, 2), np.nanpercentile(truth, 98)
        for ax, key in zip(row[:3], ("sensor", "cleaned", "truth"), strict=True):
            ax.imshow(example[key], cmap="turbo", vmin=lo, vmax=hi)
            metrics = depth_enhancement_metrics(example[key], truth, max_depth_m=evaluation.max_depth_m)
            title = (
                "ground truth"
                if key == "truth"
                else (f"{key}: RMSE {metrics['rmse'] * 1000:.1f} mm over {metrics['coverage']:.0%}")
            )
            ax.set_title(title, fontsize=9)
        error = np.abs(example["cleaned"] - truth)
        image = row[3].imshow(error, cmap="magma", vmin=0.0, vmax=0.05)
        row[3].set_title("|cleaned - truth| (0 to 5 cm)", fontsize=9)
        fig.colorbar(image, ax=row[3], fraction=0.035)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
