"""core.metrics against independent reference implementations and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dcl_arc_ros.core.metrics import (
    MetricError,
    depth_enhancement_metrics,
    mean_and_spread,
    mean_metrics,
    monocular_depth_metrics,
    normal_angle_errors_deg,
    normal_metrics,
    ssim,
)


@pytest.fixture
def depth_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:128]
    truth = (0.8 + 0.004 * xx + 0.002 * yy).astype(np.float32)
    truth[30:60, 40:80] -= 0.2  # a box in front of a slanted plane
    pred = (truth + rng.normal(0.0, 0.01, truth.shape)).astype(np.float32)
    return pred, truth


def test_ssim_and_psnr_match_scikit_image(depth_pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, truth = depth_pair
    ours = depth_enhancement_metrics(pred, truth, max_depth_m=4.0)
    ref_ssim = structural_similarity(
        pred.astype(np.float64), truth.astype(np.float64), data_range=4.0, gaussian_weights=True, sigma=1.5
    )
    ref_psnr = peak_signal_noise_ratio(truth.astype(np.float64), pred.astype(np.float64), data_range=4.0)
    # scikit-image crops a 3-sigma border before averaging; ours averages every pixel: compare on the interior too.
    interior = ssim(pred, truth, data_range=4.0)[5:-5, 5:-5].mean()
    assert interior == pytest.approx(ref_ssim, abs=2e-3)
    assert ours["ssim"] == pytest.approx(ref_ssim, abs=1e-2)
    assert ours["psnr"] == pytest.approx(ref_psnr, rel=1e-6)
    assert ours["coverage"] == 1.0


def test_enhancement_errors_by_hand_and_holes_left_out() -> None:
    truth = np.full((4, 4), 2.0, dtype=np.float32)
    pred = truth + 0.1
    pred[0, 0] = np.nan  # a hole in the prediction: not scored
    pred[1, 1] = 2.5  # one large error
    truth[3, 3] = np.nan  # no ground truth: not scored
    m = depth_enhancement_metrics(pred, truth, max_depth_m=4.0)
    errors = np.array([0.5] + [0.1] * 13)
    assert m["mae"] == pytest.approx(errors.mean(), rel=1e-5)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-5)
    assert m["coverage"] == pytest.approx(14 / 15)


def test_monocular_metrics_by_hand() -> None:
    truth = np.array([[1.0, 2.0], [4.0, np.nan]])
    pred = np.array([[1.1, 1.0], [4.0, 3.0]])
    m = monocular_depth_metrics(pred, truth)
    assert m["absrel"] == pytest.approx((0.1 / 1 + 1.0 / 2 + 0) / 3)
    assert m["sqrel"] == pytest.approx((0.01 / 1 + 1.0 / 2 + 0) / 3)
    assert m["rms"] == pytest.approx(np.sqrt((0.01 + 1.0 + 0) / 3))
    assert m["rmslog"] == pytest.approx(np.sqrt((np.log(1.1) ** 2 + np.log(0.5) ** 2) / 3))
    # ratios 1.1, 2.0, 1.0 -> under 1.25: 2 of 3; under 1.5625: 2 of 3; under 1.953: 2 of 3
    assert m["delta1"] == pytest.approx(2 / 3)
    assert m["delta3"] == pytest.approx(2 / 3)
    assert monocular_depth_metrics(pred, truth, max_depth_m=3.0)["absrel"] == pytest.approx((0.1 + 0.5) / 2)


def test_normal_metrics() -> None:
    truth = np.zeros((2, 2, 3))
    truth[..., 2] = -1.0
    tilt = np.radians([[0.0, 10.0], [20.0, 40.0]])
    pred = np.stack([np.sin(tilt), np.zeros_like(tilt), -np.cos(tilt)], axis=-1) * 3.0  # not unit length
    angles = normal_angle_errors_deg(pred, truth)
    np.testing.assert_allclose(angles, np.degrees(tilt), atol=1e-6)
    m = normal_metrics(pred, truth)
    assert m["normal_mean_deg"] == pytest.approx(17.5)
    assert m["normal_median_deg"] == pytest.approx(15.0)
    assert (m["normal_11"], m["normal_22"], m["normal_30"]) == (0.5, 0.75, 0.75)


def test_empty_frames_give_nan_and_are_ignored_in_means() -> None:
    truth = np.full((3, 3), np.nan)
    empty = depth_enhancement_metrics(np.ones((3, 3)), truth, max_depth_m=4.0)
    assert np.isnan(empty["rmse"]) and empty["coverage"] == 0.0
    full = depth_enhancement_metrics(np.ones((3, 3)) * 1.5, np.ones((3, 3)), max_depth_m=4.0)
    assert mean_metrics([empty, full])["rmse"] == pytest.approx(0.5)


def test_shape_mismatch_is_named() -> None:
    with pytest.raises(MetricError, match=r"\(2, 2\).*\(3, 3\)"):
        monocular_depth_metrics(np.ones((2, 2)), np.ones((3, 3)))


def test_mean_and_spread_over_seeds() -> None:
    summary = mean_and_spread([{"rmse": 1.0}, {"rmse": 3.0}])
    assert summary == {"rmse": 2.0, "rmse_std": pytest.approx(np.sqrt(2.0))}
    assert mean_and_spread([{"mae": 0.5}]) == {"mae": 0.5, "mae_std": 0.0}
