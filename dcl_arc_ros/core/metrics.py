"""Evaluation metrics of the two papers, on numpy arrays (no torch).

- Depth enhancement (DCL Table I): RMSE, MAE, PSNR, SSIM of a cleaned depth map against ground truth.
- Monocular depth (ARC Table 1): AbsRel, SqRel, RMS, RMS-log and the delta < 1.25^k accuracies.
- Surface normals (DCL Table II): mean and median angular error, and the share of pixels under 11.25, 22.5, 30 deg.

Every function takes a prediction, a ground truth and an optional boolean mask of pixels to score. Pixels where either
array is not finite (NaN = no reading, REP 118) are left out. A map with no scorable pixel gives NaN metrics, never an
exception, so one empty frame cannot abort a whole evaluation; :func:`mean_metrics` then ignores it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cv2
import numpy as np

from dcl_arc_ros.core.errors import CoreError

NORMAL_THRESHOLDS_DEG = (11.25, 22.5, 30.0)


class MetricError(CoreError):
    """Arrays that cannot be compared (different shapes, wrong channel count)."""


def _scored(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if pred.shape != truth.shape:
        raise MetricError(f"prediction shape {pred.shape} differs from ground truth shape {truth.shape}")
    keep = np.isfinite(pred) & np.isfinite(truth)
    if mask is not None:
        if mask.shape != truth.shape[: mask.ndim]:
            raise MetricError(f"mask shape {mask.shape} does not match ground truth shape {truth.shape}")
        keep &= mask.astype(bool)
    return keep


def ssim(pred: np.ndarray, truth: np.ndarray, *, data_range: float, sigma: float = 1.5) -> np.ndarray:
    """Per-pixel SSIM map (Wang et al. 2004) with a Gaussian window; both inputs must be finite everywhere."""
    x = pred.astype(np.float64)
    y = truth.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ksize = (0, 0)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, ksize, sigma, borderType=cv2.BORDER_REFLECT)

    mu_x, mu_y = blur(x), blur(y)
    # Sample (N-1) covariances over the 7-sigma Gaussian window, as scikit-image's gaussian_weights mode does.
    radius = int(3.5 * sigma + 0.5)
    n = (2 * radius + 1) ** 2
    cov_norm = n / (n - 1)
    var_x = cov_norm * (blur(x * x) - mu_x * mu_x)
    var_y = cov_norm * (blur(y * y) - mu_y * mu_y)
    cov_xy = cov_norm * (blur(x * y) - mu_x * mu_y)
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return num / den


def depth_enhancement_metrics(
    pred_m: np.ndarray, truth_m: np.ndarray, *, max_depth_m: float, mask: np.ndarray | None = None
) -> dict[str, float]:
    """RMSE and MAE (metres), PSNR (dB, peak = ``max_depth_m``) and SSIM of a cleaned depth map.

    SSIM needs a complete image: unscored pixels are set to the ground truth in both maps before the SSIM map is
    computed, and only scored pixels are averaged (so missing predictions neither help nor hurt the structure term;
    the coverage is reported separately as ``coverage``).
    """
    keep = _scored(pred_m, truth_m, mask)
    truth_valid = np.isfinite(truth_m) if mask is None else np.isfinite(truth_m) & mask.astype(bool)
    out = {"rmse": np.nan, "mae": np.nan, "psnr": np.nan, "ssim": np.nan, "coverage": 0.0}
    if not keep.any():
        return out
    err = pred_m[keep].astype(np.float64) - truth_m[keep]
    mse = float(np.mean(err * err))
    out["rmse"] = float(np.sqrt(mse))
    out["mae"] = float(np.mean(np.abs(err)))
    out["psnr"] = float(10.0 * np.log10(max_depth_m**2 / mse)) if mse > 0 else float("inf")
    fill = np.where(np.isfinite(truth_m), truth_m, 0.0)
    x = np.where(keep, pred_m, fill)
    out["ssim"] = float(np.mean(ssim(x, fill, data_range=max_depth_m)[keep]))
    out["coverage"] = float(keep.sum() / max(int(truth_valid.sum()), 1))
    return out


def monocular_depth_metrics(
    pred_m: np.ndarray,
    truth_m: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    min_depth_m: float = 1e-3,
    max_depth_m: float | None = None,
) -> dict[str, float]:
    """ARC Table 1: AbsRel, SqRel, RMS, RMS-log, delta1..3 over ground-truth pixels in (min, max].

    Predictions are clipped to the same range, as is standard for these metrics (a prediction of 0 would make the
    log undefined).
    """
    keep = _scored(pred_m, truth_m, mask) & (truth_m > min_depth_m)
    if max_depth_m is not None:
        keep &= truth_m <= max_depth_m
    names = ("absrel", "sqrel", "rms", "rmslog", "delta1", "delta2", "delta3")
    if not keep.any():
        return dict.fromkeys(names, float("nan"))
    y = np.clip(pred_m[keep].astype(np.float64), min_depth_m, max_depth_m if max_depth_m is not None else np.inf)
    t = truth_m[keep].astype(np.float64)
    ratio = np.maximum(y / t, t / y)
    return {
        "absrel": float(np.mean(np.abs(y - t) / t)),
        "sqrel": float(np.mean((y - t) ** 2 / t)),
        "rms": float(np.sqrt(np.mean((y - t) ** 2))),
        "rmslog": float(np.sqrt(np.mean((np.log(y) - np.log(t)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
    }


def normal_angle_errors_deg(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Angle in degrees between (..., 3) normal fields; inputs need not be unit length (zero vectors give NaN)."""
    if pred.shape != truth.shape or pred.shape[-1] != 3:
        raise MetricError(f"normal fields must both be (..., 3); got {pred.shape} and {truth.shape}")
    p = pred.astype(np.float64)
    t = truth.astype(np.float64)
    norms = np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(p * t, axis=-1) / norms
    cos = np.where(norms > 0, cos, np.nan)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def normal_metrics(pred: np.ndarray, truth: np.ndarray, *, mask: np.ndarray | None = None) -> dict[str, float]:
    """DCL Table II: mean/median angular error (deg) and the share of pixels under 11.25, 22.5 and 30 deg."""
    angles = normal_angle_errors_deg(pred, truth)
    keep = np.isfinite(angles)
    if mask is not None:
        keep &= mask.astype(bool)
    names = ("normal_mean_deg", "normal_median_deg", "normal_11", "normal_22", "normal_30")
    if not keep.any():
        return dict.fromkeys(names, float("nan"))
    a = angles[keep]
    shares = [float(np.mean(a < threshold)) for threshold in NORMAL_THRESHOLDS_DEG]
    return dict(zip(names, [float(np.mean(a)), float(np.median(a)), *shares], strict=True))


def mean_metrics(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per-key mean over frames, ignoring NaN entries (a frame with nothing to score); NaN if no frame had one."""
    collected: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            collected.setdefault(key, []).append(float(value))
    means: dict[str, float] = {}
    for key, values in collected.items():
        finite = [v for v in values if np.isfinite(v)]
        means[key] = float(np.mean(finite)) if finite else float("nan")
    return means


def mean_and_spread(runs: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Across seeds: ``{metric: mean, metric_std: sample standard deviation}`` (std 0 for a single run)."""
    runs = list(runs)
    out: dict[str, float] = {}
    for key in runs[0] if runs else {}:
        values = np.array([run[key] for run in runs], dtype=np.float64)
        out[key] = float(np.mean(values))
        out[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return out
