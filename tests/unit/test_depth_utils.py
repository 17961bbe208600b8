"""Depth utilities: validity, sanitising, hole filling (checked against an exact Euclidean transform), ranges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dcl_arc_ros.core.depth import (
    denormalise_range,
    downscale_valid_mean,
    fill_holes,
    fill_nan_holes,
    fill_nearest_into,
    nan_outside,
    normalise_range,
    sanitize_depth,
    valid_mask,
)
from dcl_arc_ros.core.errors import DepthError

RAW = np.array([[1.0, np.nan, np.inf], [-np.inf, 0.0, -0.5], [2.5, 1e-4, 3.0]], dtype=np.float64)


def test_valid_mask() -> None:
    np.testing.assert_array_equal(valid_mask(RAW), [[True, False, False], [False, False, False], [True, True, True]])
    np.testing.assert_array_equal(valid_mask(np.array([[0, 5]], dtype=np.uint16)), [[False, True]])


def test_sanitize_depth_counts_and_does_not_modify_input() -> None:
    before = RAW.copy()
    clean, n_bad = sanitize_depth(RAW)
    assert n_bad == 5 and clean.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(clean), ~valid_mask(RAW))
    np.testing.assert_array_equal(clean[valid_mask(RAW)], RAW[valid_mask(RAW)].astype(np.float32))
    np.testing.assert_array_equal(RAW, before)
    buffer = np.empty((3, 3), np.float32)
    again, _ = sanitize_depth(RAW, out=buffer)
    assert again is buffer
    with pytest.raises(DepthError, match="2-D"):
        sanitize_depth(np.ones(4))


def depth_with_holes(seed: int = 0, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 3.0, shape).astype(np.float32)  # unique values identify their pixel
    holes = ndimage.binary_dilation(rng.random(shape) > 0.97, iterations=3)
    depth[holes] = np.nan
    depth[0, :10] = 0.0
    depth[5, 5] = np.inf
    return depth


def test_fill_nearest_takes_a_nearest_valid_value() -> None:
    depth = depth_with_holes()
    before = depth.copy()
    filled = fill_holes(depth, "nearest")
    np.testing.assert_array_equal(depth, before, err_msg="input modified")
    valid = valid_mask(depth)
    holes = ~valid
    assert holes.sum() > 500
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[valid], depth[valid])
    # Exact nearest distances; the 3x3 L2 approximation may pick a slightly farther pixel, never a far one.
    exact_dist = ndimage.distance_transform_edt(holes)
    source = {float(v): (r, c) for (r, c), v in np.ndenumerate(depth) if valid[r, c]}
    rows, cols = np.nonzero(holes)
    chosen = np.array([source[float(v)] for v in filled[rows, cols]])
    dist = np.hypot(chosen[:, 0] - rows, chosen[:, 1] - cols)
    assert np.all(dist <= exact_dist[rows, cols] * 1.1 + 1.0)
    assert np.mean(dist <= exact_dist[rows, cols] + 1e-9) > 0.9


def test_fill_nearest_two_regions() -> None:
    depth = np.ones((5, 10), np.float32)
    depth[:, 5:] = 2.0
    depth[:, 3:7] = np.nan
    filled = fill_holes(depth)
    np.testing.assert_array_equal(filled[:, :5], 1.0)
    np.testing.assert_array_equal(filled[:, 5:], 2.0)


def test_fill_inpaint_follows_a_smooth_surface() -> None:
    vv, uu = np.mgrid[0:120, 0:160].astype(np.float32)
    surface = 1.0 + 0.01 * uu + 0.005 * vv
    depth = surface.copy()
    depth[40:70, 60:100] = np.nan
    filled = fill_holes(depth, "inpaint")
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[valid_mask(depth)], surface[valid_mask(depth)])
    error = np.abs(filled - surface)[40:70, 60:100]
    assert error.max() < 0.15  # the hole spans 0.4 m of depth; a nearest fill would be off by up to 0.2 m
    assert error.mean() < 0.05


@pytest.mark.parametrize("method", ["nearest", "inpaint"])
def test_fill_degenerate_inputs(method: str) -> None:
    empty = np.full((4, 4), np.nan, np.float32)
    assert np.isnan(fill_holes(empty, method)).all()  # type: ignore[arg-type]
    full = np.full((4, 4), 2.0, np.float32)
    np.testing.assert_array_equal(fill_holes(full, method), full)  # type: ignore[arg-type]
    single = empty.copy()
    single[1, 2] = 0.7
    np.testing.assert_allclose(fill_holes(single, method), 0.7)  # type: ignore[arg-type]


def test_fill_unknown_method() -> None:
    with pytest.raises(DepthError, match="'bilateral'"):
        fill_holes(np.ones((2, 2)), "bilateral")  # type: ignore[arg-type]


def test_normalise_range_round_trip_and_clipping() -> None:
    depth = np.array([[0.5, 1.0, 4.5], [np.nan, 2.75, 0.1]], dtype=np.float32)
    norm = normalise_range(depth, 0.5, 4.5)
    np.testing.assert_allclose(norm, [[-1.0, -0.75, 1.0], [np.nan, 0.125, -1.0]], atol=1e-6)
    back = denormalise_range(norm, 0.5, 4.5)
    np.testing.assert_allclose(back, [[0.5, 1.0, 4.5], [np.nan, 2.75, 0.5]], atol=1e-6)
    out = np.empty_like(depth)
    assert normalise_range(depth, 0.5, 4.5, out=out) is out
    with pytest.raises(DepthError, match="min_m < max_m"):
        normalise_range(depth, 2.0, 2.0)


def test_fill_nearest_on_a_subsampled_grid_stays_close_to_the_nearest() -> None:
    # Sensor-like blob holes (the grid may skip valid structures thinner than its step; these have none).
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 3.0, (120, 160)).astype(np.float32)
    blobs = ndimage.gaussian_filter(rng.normal(size=(120, 160)), 4) > 0.03
    depth[blobs] = np.nan
    filled = fill_holes(depth, "nearest", max_grid_pixels=60 * 80)  # step 2, as 640x480 with the default
    valid = valid_mask(depth)
    assert 0.2 < (~valid).mean() < 0.6
    np.testing.assert_array_equal(filled[valid], depth[valid])
    assert np.isfinite(filled).all()
    exact_dist = ndimage.distance_transform_edt(~valid)
    source = {float(v): (r, c) for (r, c), v in np.ndenumerate(depth) if valid[r, c]}
    rows, cols = np.nonzero(~valid)
    chosen = np.array([source[float(v)] for v in filled[rows, cols]])  # every fill is a measured value
    dist = np.hypot(chosen[:, 0] - rows, chosen[:, 1] - cols)
    assert np.all(dist <= exact_dist[rows, cols] + 2 * 2 * np.sqrt(2))


def test_fill_nan_holes_works_in_place_and_checks_its_input() -> None:
    depth, _ = sanitize_depth(depth_with_holes(seed=5))
    result = fill_nan_holes(depth)
    assert result is depth and np.isfinite(depth).all()
    with pytest.raises(DepthError, match="float32"):
        fill_nan_holes(np.ones((3, 3)))


def test_downscale_valid_mean_ignores_holes() -> None:
    depth = np.array(
        [[1.0, 3.0, np.nan, np.nan], [np.nan, 2.0, np.nan, np.nan], [4.0, 4.0, 5.0, 7.0], [4.0, 4.0, np.nan, 9.0]],
        dtype=np.float32,
    )
    small = downscale_valid_mean(depth, (2, 2))
    np.testing.assert_allclose(small, [[2.0, np.nan], [4.0, 7.0]], equal_nan=True)
    full = np.random.default_rng(0).uniform(1, 2, (8, 12)).astype(np.float32)
    # Without holes it is exactly INTER_AREA.
    import cv2

    area = cv2.resize(full, (6, 4), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(downscale_valid_mean(full, (6, 4)), area, rtol=1e-6)


@pytest.mark.parametrize("high", [3.0, np.inf])
def test_nan_outside_both_paths(high: float) -> None:
    inside = np.array([[0.5, 1.0], [2.0, 3.0]], dtype=np.float32)
    out, n_bad = nan_outside(inside, 0.5 - 1e-3, high)  # every value in range: the fast path
    assert n_bad == 0 and out is not inside
    np.testing.assert_array_equal(out, inside)
    mixed = np.array([[0.5, np.nan, np.inf], [-1.0, 3.0, 3.5]], dtype=np.float32)
    out, n_bad = nan_outside(mixed, 0.5, high)  # (0.5, high]: 0.5 itself is out
    keep = [[False, False, False], [False, True, bool(np.isinf(high))]]
    assert n_bad == 6 - sum(map(sum, keep))
    np.testing.assert_array_equal(~np.isnan(out), keep)
    np.testing.assert_array_equal(out[~np.isnan(out)], mixed[np.array(keep)])
    in_place, _ = nan_outside(mixed, 0.5, high, out=mixed)
    assert in_place is mixed
    np.testing.assert_array_equal(mixed, out)


def test_nan_outside_zero_and_nan_holes_path() -> None:
    # Readings all in range, holes NaN or exactly 0 (also -0.0): the mask-free path.
    depth = np.array([[0.0, 1.5, np.nan], [-0.0, 2.0, 4.0]], dtype=np.float32)
    out, n_bad = nan_outside(depth, 0.0, 5.0)
    assert n_bad == 3
    np.testing.assert_array_equal(np.isnan(out), [[True, False, True], [True, False, False]])
    np.testing.assert_array_equal(out[~np.isnan(out)], [1.5, 2.0, 4.0])
    # A reading above the upper bound is not this case: the general path drops it.
    out, n_bad = nan_outside(depth, 0.0, 3.0)
    assert n_bad == 4 and np.isnan(out[1, 2])
    in_place, n_bad = nan_outside(depth, 0.0, 5.0, out=depth)
    assert in_place is depth and n_bad == 3


def test_nan_outside_all_nan_image() -> None:
    out, n_bad = nan_outside(np.full((2, 3), np.nan, np.float32), 0.0, np.inf)
    assert n_bad == 6 and np.isnan(out).all()


@pytest.mark.parametrize("max_grid_pixels", [60 * 80, 300])  # exact, and on a subsampled grid
def test_fill_nearest_into_equals_fill_holes(max_grid_pixels: int) -> None:
    depth = depth_with_holes()
    valid = valid_mask(depth)
    garbage = depth.copy()
    garbage[~valid] = -7.0  # whatever the invalid pixels hold must not matter
    before = garbage.copy()
    out = np.empty_like(depth)
    assert fill_nearest_into(garbage, valid, out, max_grid_pixels=max_grid_pixels) is out
    np.testing.assert_array_equal(garbage, before, err_msg="input modified")
    np.testing.assert_array_equal(out, fill_holes(depth, "nearest", max_grid_pixels=max_grid_pixels))


def test_fill_nearest_into_without_valid_pixels_is_all_nan() -> None:
    out = np.zeros((4, 5), np.float32)
    fill_nearest_into(np.zeros((4, 5), np.float32), np.zeros((4, 5), bool), out)
    assert np.isnan(out).all()
    with pytest.raises(DepthError, match="boolean mask"):
        fill_nearest_into(np.zeros((4, 5), np.float32), np.zeros((4, 5), np.uint8), out)
