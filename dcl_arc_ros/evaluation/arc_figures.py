"""Figures of ARC results (numpy + matplotlib only, no torch): reusable by the evaluation script and the demo.

    draw_examples(rgb, keep, decluttered, depth, truth, "arc_examples.png")   # one row per frame
    plot_rho_sweep(rhos, absrel, delta1, "arc_rho_sweep.png")                  # ARC Fig. 3
    plot_per_sample_gain(absrel_gain, delta1_gain, "arc_per_sample_gain.png")  # ARC Fig. 4

Masks follow the network's convention (True / 1 = pixel kept); the drawn mask shows REMOVED pixels in white, like the
arc_depth node's mono8 mask (255 = removed). Depth panels share one colour range per row (ground truth's valid range)
so prediction and truth are comparable; NaN or 0 means no ground truth and is drawn black.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def example_frames(count: int, wanted: int) -> list[int]:
    """``wanted`` frame indices spread evenly over ``count`` frames (different scenes, deterministic)."""
    wanted = max(0, min(wanted, count))
    return sorted({int(i) for i in np.linspace(0, count - 1, wanted).round()}) if wanted else []


def _depth_range(truth: np.ndarray) -> tuple[float, float]:
    valid = np.isfinite(truth) & (truth > 0)
    if not valid.any():
        return 0.0, 1.0
    lo, hi = np.percentile(truth[valid], [1, 99])
    return float(lo), float(max(hi, lo + 1e-3))


def draw_examples(
    rgb: np.ndarray,
    keep: np.ndarray,
    decluttered: np.ndarray,
    depth_m: np.ndarray,
    truth_m: np.ndarray,
    out_path: str | Path,
    *,
    baseline_depth: np.ndarray | None = None,
    baseline_label: str = "baseline",
    method_label: str = "ARC",
) -> Path:
    """Rows of RGB | removal mask | decluttered | predicted depth (| baseline depth) | ground truth.

    rgb, decluttered: (N, H, W, 3) uint8; keep: (N, H, W) bool / {0, 1} (1 = kept); depth_m, truth_m,
    baseline_depth: (N, H, W) metres. Frames may be at different resolutions from one another only if passed one by
    one; within one call all arrays share (H, W).
    """
    plt = _pyplot()
    n = len(rgb)
    panels = ["RGB", "removed (white)", "decluttered", f"{method_label} depth"]
    if baseline_depth is not None:
        panels.append(f"{baseline_label} depth")
    panels.append("ground truth")
    fig, axes = plt.subplots(n, len(panels), figsize=(2.6 * len(panels), 2.1 * n + 0.4), squeeze=False)
    for i in range(n):
        lo, hi = _depth_range(truth_m[i])
        truth = np.where(np.isfinite(truth_m[i]) & (truth_m[i] > 0), truth_m[i], np.nan)
        images: list[tuple[np.ndarray, dict[str, object]]] = [
            (rgb[i], {}),
            (1.0 - np.asarray(keep[i], dtype=np.float32), {"cmap": "gray", "vmin": 0, "vmax": 1}),
            (decluttered[i], {}),
            (depth_m[i], {"cmap": "viridis", "vmin": lo, "vmax": hi}),
        ]
        if baseline_depth is not None:
            images.append((baseline_depth[i], {"cmap": "viridis", "vmin": lo, "vmax": hi}))
        images.append((truth, {"cmap": "viridis", "vmin": lo, "vmax": hi}))
        for j, (image, style) in enumerate(images):
            ax = axes[i, j]
            ax.set_facecolor("black")
            shown = ax.imshow(image, interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(panels[j], fontsize=9)
            if j == len(images) - 1:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="m")
    fig.tight_layout()
    return _save(fig, out_path)


def plot_rho_sweep(
    rhos: Sequence[float], absrel: Sequence[float], delta1: Sequence[float], out_path: str | Path
) -> Path:
    """ARC Fig. 3: AbsRel (left axis, lower is better) and delta1 (right axis, higher is better) over rho."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot(rhos, absrel, "o-", color="tab:red", label="AbsRel")
    ax.set_xlabel("rho (share of pixels kept)")
    ax.set_ylabel("AbsRel (lower is better)", color="tab:red")
    twin = ax.twinx()
    twin.plot(rhos, delta1, "s--", color="tab:blue", label="delta < 1.25")
    twin.set_ylabel("delta < 1.25 (higher is better)", color="tab:blue")
    ax.grid(alpha=0.3)
    ax.set_title("arc_full over the sparsity target rho")
    fig.tight_layout()
    return _save(fig, out_path)


def plot_per_sample_gain(
    absrel_gain: Sequence[float],
    delta1_gain: Sequence[float],
    out_path: str | Path,
    *,
    method: str = "arc_full",
    baseline: str = "mix",
) -> Path:
    """ARC Fig. 4: per test frame, sorted, the AbsRel reduction and the delta1 increase of ``method`` over
    ``baseline`` (bars above zero = ``method`` better on that frame)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.2))
    for ax, values, name in ((axes[0], absrel_gain, "AbsRel reduction"), (axes[1], delta1_gain, "delta1 increase")):
        v = np.sort(np.asarray(values, dtype=np.float64))[::-1]
        colours = np.where(v > 0, "tab:green", "tab:red")
        ax.bar(np.arange(v.size), v, color=colours, width=0.9)
        ax.axhline(0.0, color="black", linewidth=0.8)
        better = int(np.sum(v > 0))
        ax.set_title(f"{name}: {method} vs {baseline} ({better}/{v.size} frames better)", fontsize=9)
        ax.set_xlabel("test frame (sorted)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out_path)


def _save(fig: object, out_path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)
    return path
