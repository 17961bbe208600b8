"""Real data: SR300 castel frames (visp-images-data) and Middlebury Motorcycle (scikit-image)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dcl_arc_ros.data import real
from dcl_arc_ros.data.errors import DatasetError, RealDataMissingError

CASTEL_REASON = real.missing_reason()
needs_castel = pytest.mark.skipif(not real.castel_available(), reason=CASTEL_REASON or "")
needs_skimage = pytest.mark.skipif(not real.middlebury_available(), reason="scikit-image is not installed")


def test_sr300_bin_reader_scales_units_and_marks_holes(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 2], [65535, 0, 8000]], dtype="<u2")
    path = tmp_path / "depth_image_0000.bin"
    path.write_bytes(np.array([2, 3], dtype="<u4").tobytes() + values.tobytes())
    depth = real.read_sr300_bin(path)
    assert depth.dtype == np.float32 and depth.shape == (2, 3)
    np.testing.assert_array_equal(np.isnan(depth), values == 0)
    np.testing.assert_allclose(depth[values > 0], values[values > 0] * real.SR300_DEPTH_SCALE, rtol=1e-6)
    path.write_bytes(np.array([4, 3], dtype="<u4").tobytes() + values.tobytes())
    with pytest.raises(DatasetError, match=r"header says 4x3"):
        real.read_sr300_bin(path)


def test_disparity_to_depth_follows_f_b_over_d_plus_doffs() -> None:
    calib = real.MOTORCYCLE_CALIBRATION
    d = np.array([[10.0, np.inf, np.nan, -calib.doffs]])
    z = real.disparity_to_depth(d, calib)
    assert z[0, 0] == pytest.approx(994.978 * 0.193001 / (10.0 + 31.086), rel=1e-6)
    assert np.isnan(z[0, 1:]).all()


def test_missing_castel_folder_raises_a_helpful_error(tmp_path: Path) -> None:
    assert not real.castel_available(tmp_path)
    assert "make real-data" in (real.missing_reason(tmp_path) or "")
    with pytest.raises(RealDataMissingError, match="make real-data"):
        real.CastelFrames(tmp_path)


@pytest.mark.real_data
@needs_castel
def test_castel_frames_match_the_documented_sensor() -> None:
    frames = real.CastelFrames()
    assert len(frames) == real.CASTEL_FRAMES
    intr = frames.depth_intrinsics
    assert (intr.fx, intr.cx, intr.cy) == pytest.approx((476.05, 311.48, 246.28), abs=0.01)
    for index in (0, 29):
        rec = frames[index]
        assert rec.depth.shape == (480, 640) and rec.intrinsics == intr
        holes = float(np.isnan(rec.depth).mean())
        assert 0.3 < holes < 0.6
        assert float(np.nanmin(rec.depth)) > 0.15 and float(np.nanmax(rec.depth)) < 0.9


@pytest.mark.real_data
@needs_castel
def test_castel_grey_image_is_registered_to_the_depth() -> None:
    """Depth discontinuities coincide with image edges best at zero shift, i.e. the resampling aligns them."""
    rec = real.CastelFrames()[0]
    grey = rec.rgb[:, :, 0].astype(np.float32)
    depth = np.nan_to_num(rec.depth)
    depth_edges = (np.abs(cv2.Sobel(depth, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(depth, cv2.CV_32F, 0, 1))) > 0.05
    depth_edges &= np.isfinite(rec.depth)
    depth_edges[:60], depth_edges[420:], depth_edges[:, :80], depth_edges[:, 560:] = False, False, False, False
    grey_edges = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    scores = {shift: float(grey_edges[np.roll(depth_edges, shift, axis=1)].mean()) for shift in (-8, 0, 8)}
    assert scores[0] > 1.15 * max(scores[-8], scores[8])


@pytest.mark.real_data
@needs_skimage
def test_middlebury_ground_truth_is_metric_and_sgbm_agrees() -> None:
    rec = real.middlebury_motorcycle()
    assert rec.rgb.shape == (500, 741, 3) and rec.depth_clean.shape == (500, 741)
    gt = rec.depth_clean
    assert float(np.nanmin(gt)) > 2.0 and float(np.nanmax(gt)) < 5.1
    both = np.isfinite(gt) & np.isfinite(rec.depth)
    assert both.mean() > 0.6
    error = np.abs(gt[both] - rec.depth[both])
    assert float(np.median(error)) < 0.05
    assert rec.intrinsics.fx == pytest.approx(994.978)
