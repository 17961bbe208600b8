"""How realistic is a set of depth frames? Three statistics that real depth sensors are known for, and a figure.

The DCL paper's claim is that synthesized depth looks like a real sensor's: holes where a real sensor has them
(mostly at depth discontinuities) and noise that grows with distance. These statistics make that comparable between
a real set (no ground truth), a synthesized set and the empirical sensor model. Frames are (H, W) metres; NaN,
inf and values <= 0 are holes.

* **Hole fraction**: hole pixels / all pixels, pooled over the frames (per-frame spread reported beside it).
* **Edge-hole share**: the share of hole pixels that lie within ``edge_radius_px`` (3) pixels of a depth edge.
  The depth edge is found on a map without holes, so that a hole that swallows a discontinuity still has the edge
  inside it: holes are filled with their nearest valid reading (:func:`dcl_arc_ros.core.depth.fill_holes`), which
  puts the jump of a hole lying between a near and a far surface inside the hole (on the line equidistant from
  both rims), and leaves a hole surrounded by one surface without any jump. A pixel is an edge pixel when the depth
  differs from one of its 4-neighbours by more than ``max(edge_abs_m, edge_rel * depth)`` (5 mm or 2% of the
  depth by default: far above the noise of the sensors compared here, far below the steps between objects and the
  table). Given a clean ``reference`` (synthetic data), the edges come from it instead. Consequence to keep in
  mind: a hole band up to about 2 * radius + 1 = 7 px wide across a discontinuity counts entirely; only the
  part of a wider band within the radius of that middle line counts.
* **Noise against depth on planar patches**: the frame is cut into non-overlapping ``window`` x ``window`` tiles
  (7 x 7); a least-squares plane z = a u + b v + c is fitted to each hole-free tile, and the residual standard
  deviation sqrt(SSR / (n - 3)) is the noise of that tile, binned by the tile's mean depth (median per bin, so a
  few non-planar tiles that slip through do not dominate). A tile counts only where the scene is planar: it holds
  no depth-edge pixel (as defined above), and with a clean ``reference`` the reference's own plane-fit residual is
  below ``planar_abs_m`` (0.2 mm). Without one (real data), the reference is the frame itself after a 5 x 5 box
  filter (holes filled with their nearest reading first), and planar means the filtered tile's residual is at
  most ``planar_rel`` (0.5) times the raw tile's residual (or below ``planar_abs_m``). A linear filter maps a plane
  onto itself, however steep, and divides white noise by 5, while on a curved surface the filtered tile keeps most
  of its residual (a box filter smears steps into ramps that a plane follows, hence the separate edge test). A
  median filter was tried first: on planes that are steep in pixel terms (2.5 mm per pixel against 0.7 mm of
  noise) it removes little noise and rejected a fifth of the tiles of a perfectly planar test scene. The same rule
  is applied to every domain of a comparison so none is favoured; noise correlated over more than the filter size
  looks like shape to this rule and is then left out (a stated limitation).

Pure numpy + OpenCV (the evaluation layer never imports torch). The figure helper imports matplotlib lazily with
the Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from dcl_arc_ros.core.depth import fill_holes
from dcl_arc_ros.core.errors import DepthError

#: Default depth bins (metres) of the noise curve: 5 cm wide from 0.15 to 1.50 m (SR300 / D435 working ranges).
DEFAULT_DEPTH_BINS: Final[tuple[float, ...]] = tuple(float(v) for v in np.round(np.arange(0.15, 1.5001, 0.05), 3))


@dataclass(frozen=True)
class RealismParams:
    """The knobs of the three statistics (defaults documented in the module docstring)."""

    edge_abs_m: float = 0.005
    edge_rel: float = 0.02
    edge_radius_px: float = 3.0
    window: int = 7
    planar_abs_m: float = 0.0002
    planar_rel: float = 0.5
    smooth_ksize: int = 5
    depth_bins: tuple[float, ...] = DEFAULT_DEPTH_BINS
    min_windows_per_bin: int = 20

    def __post_init__(self) -> None:
        if self.window < 3:
            raise DepthError(f"RealismParams.window must be >= 3 (a plane has 3 parameters), got {self.window}")
        if self.smooth_ksize < 3 or self.smooth_ksize % 2 == 0:
            raise DepthError(f"RealismParams.smooth_ksize must be odd and >= 3, got {self.smooth_ksize}")
        if len(self.depth_bins) < 2 or np.any(np.diff(self.depth_bins) <= 0):
            raise DepthError(
                f"RealismParams.depth_bins must be increasing with at least 2 edges, got {self.depth_bins}"
            )


# ------------------------------------------------------------------------------------------------ single frames


def hole_mask(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: NaN, inf or <= 0."""
    d = np.asarray(depth)
    if d.ndim != 2:
        raise DepthError(f"depth must be (H, W), got shape {d.shape}")
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(d) & (d > 0))


def depth_edges(depth: np.ndarray, params: RealismParams = RealismParams()) -> np.ndarray:
    """(H, W) bool depth-edge pixels of ``depth`` after nearest-reading hole filling (see the module docstring)."""
    holes = hole_mask(depth)
    if holes.all():
        return np.zeros(holes.shape, dtype=bool)
    filled = fill_holes(np.asarray(depth, dtype=np.float32), "nearest", max_grid_pixels=10**9)
    edges = np.zeros(filled.shape, dtype=bool)
    for axis in (0, 1):
        a = filled[:-1, :] if axis == 0 else filled[:, :-1]
        b = filled[1:, :] if axis == 0 else filled[:, 1:]
        jump = np.abs(a - b) > np.maximum(params.edge_abs_m, params.edge_rel * np.minimum(a, b))
        if axis == 0:
            edges[:-1, :] |= jump
            edges[1:, :] |= jump
        else:
            edges[:, :-1] |= jump
            edges[:, 1:] |= jump
    return edges


def near_edges(edges: np.ndarray, radius_px: float) -> np.ndarray:
    """(H, W) bool: pixels within ``radius_px`` (Euclidean) of an edge pixel."""
    if not edges.any():
        return np.zeros(edges.shape, dtype=bool)
    dist = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist <= radius_px


def _tiles(image: np.ndarray, window: int) -> np.ndarray:
    """(N, window * window) non-overlapping tiles of the top-left part that the tiles cover, row-major."""
    h, w = image.shape
    th, tw = h // window, w // window
    cut = image[: th * window, : tw * window]
    return cut.reshape(th, window, tw, window).transpose(0, 2, 1, 3).reshape(th * tw, window * window)


def _plane_residual_std(tiles: np.ndarray, window: int) -> np.ndarray:
    """Per tile, sqrt(SSR / (n - 3)) of the least-squares plane z = a u + b v + c over the tile's pixel grid."""
    v, u = np.mgrid[0:window, 0:window]
    design = np.stack([u.ravel(), v.ravel(), np.ones(window * window)], axis=1).astype(np.float64)
    hat = design @ np.linalg.pinv(design)  # (n, n) projection onto planes; same for every tile
    z = tiles.astype(np.float64)
    resid = z - z @ hat.T
    return np.sqrt(np.sum(resid * resid, axis=1) / (window * window - 3))


def planar_tile_noise(
    depth: np.ndarray, reference: np.ndarray | None = None, params: RealismParams = RealismParams()
) -> tuple[np.ndarray, np.ndarray]:
    """(tile mean depth, tile noise std) of the hole-free, planar tiles of one frame (metres, 1-D arrays)."""
    d = np.asarray(depth, dtype=np.float32)
    holes = hole_mask(d)
    w = params.window
    tiles = _tiles(np.where(holes, np.float32(0), d), w)
    edges = depth_edges(d if reference is None else reference, params)
    keep = ~(_tiles(holes, w).any(axis=1) | _tiles(edges, w).any(axis=1))
    if reference is None:
        smooth_src = fill_holes(d, "nearest", max_grid_pixels=10**9) if holes.any() else d
        if np.isnan(smooth_src).all():
            return np.empty(0), np.empty(0)
        k = params.smooth_ksize
        ref = cv2.blur(np.ascontiguousarray(smooth_src, dtype=np.float32), (k, k), borderType=cv2.BORDER_REFLECT)
    else:
        ref = np.asarray(reference, dtype=np.float32)
        if ref.shape != d.shape:
            raise DepthError(f"reference of shape {ref.shape} does not match the depth's {d.shape}")
        ref_holes = hole_mask(ref)
        keep &= ~_tiles(ref_holes, w).any(axis=1)
        ref = np.where(ref_holes, np.float32(0), ref)
    if not keep.any():
        return np.empty(0), np.empty(0)
    noise = _plane_residual_std(tiles[keep], w)
    ref_resid = _plane_residual_std(_tiles(ref, w)[keep], w)
    if reference is None:
        planar = (ref_resid <= params.planar_abs_m) | (ref_resid <= params.planar_rel * noise)
    else:
        planar = ref_resid <= params.planar_abs_m
    means = tiles[keep].mean(axis=1)
    return means[planar].astype(np.float64), noise[planar]


# ------------------------------------------------------------------------------------------------ frame sets


@dataclass
class NoiseCurve:
    """Median tile noise std per depth bin (NaN where a bin has fewer than ``min_windows_per_bin`` tiles)."""

    bin_edges: list[float]
    median_std_m: list[float]
    count: list[int]
    overall_median_std_m: float
    windows: int

    def bin_centres(self) -> np.ndarray:
        e = np.asarray(self.bin_edges)
        return (e[:-1] + e[1:]) / 2


@dataclass
class RealismStats:
    """The three statistics of one set of frames (JSON-able through :meth:`to_dict`)."""

    frames: int
    hole_fraction: float
    hole_fraction_std: float  # spread over frames
    edge_hole_share: float  # holes within the radius of a depth edge / all holes (pooled)
    edge_band_hole_rate: float  # holes / pixels inside the edge band (pooled): how often an edge loses its reading
    edge_pixel_fraction: float  # edge pixels / all pixels: how much edge the scenes have
    noise: NoiseCurve
    depth_range_m: tuple[float, float]  # 1st and 99th percentile of the valid readings
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["depth_range_m"] = list(self.depth_range_m)
        return _jsonable(out)


def _jsonable(obj: Any) -> Any:
    """NaN -> None (JSON has no NaN), numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if not np.isfinite(value) else value
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def noise_curve(means: np.ndarray, stds: np.ndarray, params: RealismParams = RealismParams()) -> NoiseCurve:
    """Bin tile noise by tile depth: the median per bin, NaN where a bin has too few tiles."""
    edges = np.asarray(params.depth_bins, dtype=np.float64)
    idx = np.digitize(means, edges) - 1
    medians, counts = [], []
    for b in range(len(edges) - 1):
        sel = stds[idx == b]
        counts.append(int(sel.size))
        medians.append(float(np.median(sel)) if sel.size >= params.min_windows_per_bin else float("nan"))
    overall = float(np.median(stds)) if stds.size else float("nan")
    return NoiseCurve([float(e) for e in edges], medians, counts, overall, int(stds.size))


def realism_stats(
    frames: Sequence[np.ndarray],
    references: Sequence[np.ndarray | None] | None = None,
    params: RealismParams = RealismParams(),
) -> RealismStats:
    """The statistics of ``frames`` (metres, holes = NaN/inf/<= 0). ``references`` (clean depth per frame, or
    None entries) switch the edge and planarity tests to the clean depth (see the module docstring)."""
    if not frames:
        raise DepthError("realism_stats needs at least one frame")
    if references is not None and len(references) != len(frames):
        raise DepthError(f"{len(references)} references for {len(frames)} frames")
    total = holes_total = holes_near = band_total = band_holes = edge_total = 0
    per_frame_holes: list[float] = []
    means: list[np.ndarray] = []
    stds: list[np.ndarray] = []
    valid_values: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        d = np.asarray(frame, dtype=np.float32)
        ref = None if references is None else references[i]
        holes = hole_mask(d)
        edges = depth_edges(d if ref is None else ref, params)
        band = near_edges(edges, params.edge_radius_px)
        total += holes.size
        holes_total += int(holes.sum())
        holes_near += int((holes & band).sum())
        band_total += int(band.sum())
        band_holes += int((holes & band).sum())
        edge_total += int(edges.sum())
        per_frame_holes.append(float(holes.mean()))
        m, s = planar_tile_noise(d, ref, params)
        means.append(m)
        stds.append(s)
        valid_values.append(d[~holes][:: max(1, int((~holes).sum()) // 20000 or 1)])
    values = np.concatenate(valid_values) if valid_values else np.empty(0)
    lo, hi = (float(np.percentile(values, 1)), float(np.percentile(values, 99))) if values.size else (np.nan, np.nan)
    return RealismStats(
        frames=len(frames),
        hole_fraction=holes_total / total,
        hole_fraction_std=float(np.std(per_frame_holes)),
        edge_hole_share=holes_near / holes_total if holes_total else float("nan"),
        edge_band_hole_rate=band_holes / band_total if band_total else float("nan"),
        edge_pixel_fraction=edge_total / total,
        noise=noise_curve(np.concatenate(means), np.concatenate(stds), params),
        depth_range_m=(lo, hi),
        params=asdict(params),
    )


def noise_curve_distance(curve: NoiseCurve, target: NoiseCurve) -> tuple[float, int]:
    """Mean |log(curve / target)| over the bins both curves populate (NaN if none), and that number of bins.

    A log ratio, because noise spans an order of magnitude over the range and "twice too noisy" should weigh the
    same at 0.3 m as at 0.8 m.
    """
    a, b = np.asarray(curve.median_std_m, float), np.asarray(target.median_std_m, float)
    both = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if not both.any():
        return float("nan"), 0
    return float(np.mean(np.abs(np.log(a[both] / b[both])))), int(both.sum())


def compare_to_real(stats: Mapping[str, RealismStats], real: str = "real") -> dict[str, dict[str, Any]]:
    """Per domain, its distance to the ``real`` domain on each statistic (absolute differences; noise: see
    :func:`noise_curve_distance`)."""
    target = stats[real]
    out: dict[str, dict[str, Any]] = {}
    for name, s in stats.items():
        if name == real:
            continue
        dist, bins = noise_curve_distance(s.noise, target.noise)
        out[name] = _jsonable(
            {
                "hole_fraction_abs_diff": abs(s.hole_fraction - target.hole_fraction),
                "edge_hole_share_abs_diff": abs(s.edge_hole_share - target.edge_hole_share),
                "noise_mean_abs_log_ratio": dist,
                "noise_shared_bins": bins,
            }
        )
    return out


# ------------------------------------------------------------------------------------------------ figure


def save_realism_figure(
    path: str | Path,
    panels: Mapping[str, np.ndarray],
    stats: Mapping[str, RealismStats],
    *,
    title: str = "",
    depth_limits_m: tuple[float, float] | None = None,
) -> Path:
    """A PNG: one row of depth panels side by side (holes in black, one colour scale for all), below it the noise
    curves (median tile std against depth, log scale) and the hole statistics as bars. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(1, len(panels))
    if depth_limits_m is None:
        finite = np.concatenate([np.asarray(p, np.float32)[~hole_mask(p)].ravel() for p in panels.values()] or [[]])
        depth_limits_m = (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (0, 1)
    fig = plt.figure(figsize=(4.0 * n, 7.6))
    grid = fig.add_gridspec(2, max(n, 2), height_ratios=(1.0, 0.9))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="black")
    image = None
    for i, (name, depth) in enumerate(panels.items()):
        ax = fig.add_subplot(grid[0, i])
        masked = np.ma.masked_where(hole_mask(depth), np.asarray(depth, np.float32))
        image = ax.imshow(masked, cmap=cmap, vmin=depth_limits_m[0], vmax=depth_limits_m[1], interpolation="nearest")
        holes = float(hole_mask(depth).mean())
        ax.set_title(f"{name}\nholes {100 * holes:.1f}% (black)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=fig.axes[: len(panels)], fraction=0.02, pad=0.01, label="depth (m)")

    half = max(n, 2) // 2
    ax_noise = fig.add_subplot(grid[1, :half])
    for name, s in stats.items():
        centres = s.noise.bin_centres()
        values = np.asarray(s.noise.median_std_m, float) * 1000.0
        ok = np.isfinite(values)
        if ok.any():
            ax_noise.plot(centres[ok], values[ok], "o-", label=f"{name} ({s.noise.windows} tiles)")
    ax_noise.set_yscale("log")
    ax_noise.set_xlabel("depth (m)")
    ax_noise.set_ylabel("noise std on planar 7x7 tiles (mm)")
    ax_noise.grid(True, which="both", alpha=0.3)
    ax_noise.legend(fontsize=8)
    ax_noise.set_title("noise against depth (median per 5 cm bin)", fontsize=10)

    ax_bar = fig.add_subplot(grid[1, half:])
    names = list(stats)
    x = np.arange(len(names))
    ax_bar.bar(x - 0.2, [stats[k].hole_fraction for k in names], 0.4, label="hole fraction")
    ax_bar.bar(
        x + 0.2,
        [np.nan_to_num(stats[k].edge_hole_share) for k in names],
        0.4,
        label="share of holes within 3 px of a depth edge",
    )
    ax_bar.set_xticks(x, names, rotation=15)
    ax_bar.set_ylim(0, 1)
    ax_bar.legend(fontsize=8)
    ax_bar.grid(True, axis="y", alpha=0.3)
    ax_bar.set_title("holes", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
