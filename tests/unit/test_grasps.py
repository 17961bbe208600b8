"""GG-CNN grasp maths: peaks equal scikit-image's, rectangle IoU, success rules, 3D deprojection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.grasps import (
    GraspDecodeParams,
    GraspRect,
    angle_difference,
    decode_grasp_maps,
    detect_grasp_rects,
    find_peaks,
    gaussian_blur,
    grasp_metrics,
    grasp_success,
    grasps_to_3d,
    quaternion_about_z,
    rect_corners,
    rect_iou,
    rect_iou_matrix,
    rects_from_labels,
    robust_depth_at,
    wrap_angle,
)

skimage_feature = pytest.importorskip("skimage.feature")
skimage_filters = pytest.importorskip("skimage.filters")


def _random_map(rng: np.random.Generator, kind: int) -> np.ndarray:
    h, w = (int(x) for x in rng.integers(24, 140, size=2))
    img = rng.random((h, w)).astype(np.float32)
    if kind == 1:
        img = gaussian_blur(img, float(rng.uniform(0.8, 4.0)))
    elif kind == 2:
        img = np.round(img * 6) / 6  # plateaus and exact ties
    return img


@pytest.mark.parametrize("seed", range(6))
def test_find_peaks_equals_peak_local_max(seed: int) -> None:
    rng = np.random.default_rng(seed)
    compared = 0
    for case in range(30):
        img = _random_map(rng, case % 3)
        min_distance = int(rng.integers(1, 15))
        threshold = [None, 0.2, 0.5, 0.8][case % 4]
        num_peaks = [None, 1, 3, 10][(case // 4) % 4]
        exclude_border: bool | int = [True, False, 2][case % 3]
        ref = skimage_feature.peak_local_max(
            img,
            min_distance=min_distance,
            threshold_abs=threshold,
            num_peaks=np.inf if num_peaks is None else num_peaks,
            exclude_border=exclude_border,
        )
        ours = find_peaks(
            img, min_distance=min_distance, threshold=threshold, num_peaks=num_peaks, exclude_border=exclude_border
        )
        np.testing.assert_array_equal(ours, ref, err_msg=f"case {case}: d={min_distance} thr={threshold}")
        compared += len(ref)
    assert compared > 0


def test_find_peaks_constant_map_has_no_peaks() -> None:
    assert find_peaks(np.full((30, 30), 0.7, np.float32), min_distance=3).shape == (0, 2)


def test_gaussian_blur_matches_skimage() -> None:
    img = np.random.default_rng(1).random((64, 80)).astype(np.float32)
    for sigma in (1.0, 2.0):
        ref = skimage_filters.gaussian(img.astype(np.float64), sigma=sigma, preserve_range=True)
        np.testing.assert_allclose(gaussian_blur(img, sigma), ref, atol=1e-6)


def test_decode_recovers_angle_and_width() -> None:
    h, w = 60, 60
    yy, xx = np.mgrid[0:h, 0:w]
    quality = np.exp(-((xx - 30) ** 2 + (yy - 25) ** 2) / 40.0).astype(np.float32)
    angle = 0.6
    cos2 = np.full((h, w), math.cos(2 * angle), np.float32)
    sin2 = np.full((h, w), math.sin(2 * angle), np.float32)
    width = np.full((h, w), 40.0 / 150.0, np.float32)
    for mode in ("angle", "vector"):
        params = GraspDecodeParams(min_distance=5, threshold=0.2, angle_smoothing=mode)
        maps = decode_grasp_maps(quality[None, None], cos2, sin2, width, params)
        rects = detect_grasp_rects(maps, params)
        assert rects.shape == (1, 6)
        assert (rects[0, 0], rects[0, 1]) == (30.0, 25.0)
        assert rects[0, 2] == pytest.approx(angle, abs=1e-5)
        assert rects[0, 3] == pytest.approx(40.0, rel=1e-5)
        assert rects[0, 4] == pytest.approx(20.0, rel=1e-5)


def test_vector_smoothing_keeps_angles_near_the_wrap() -> None:
    """Halves at +88 and -88 degrees are the same grasp direction; blurring the angle would give ~0 degrees."""
    h, w = 40, 40
    a = np.where(np.arange(w)[None, :] < 20, math.radians(88), math.radians(-88)) * np.ones((h, 1))
    maps = decode_grasp_maps(
        np.zeros((h, w)), np.cos(2 * a), np.sin(2 * a), np.zeros((h, w)), GraspDecodeParams(angle_smoothing="vector")
    )
    assert angle_difference(maps.angle[20, 20], math.pi / 2) < math.radians(3)
    naive = decode_grasp_maps(np.zeros((h, w)), np.cos(2 * a), np.sin(2 * a), np.zeros((h, w)))
    assert abs(naive.angle[20, 20]) < math.radians(30)  # the reference's behaviour we document


def test_rect_corners_of_axis_aligned_rect() -> None:
    corners = rect_corners(np.array([[10.0, 20.0, 0.0, 8.0, 4.0, 1.0]]))[0]
    assert sorted(map(tuple, corners.round(9))) == [(6.0, 18.0), (6.0, 22.0), (14.0, 18.0), (14.0, 22.0)]
    rotated = GraspRect(10.0, 20.0, math.pi / 2, 8.0, 4.0).corners()
    np.testing.assert_allclose(np.ptp(rotated[:, 0]), 4.0, atol=1e-9)
    np.testing.assert_allclose(np.ptp(rotated[:, 1]), 8.0, atol=1e-9)


def test_rect_iou_known_cases() -> None:
    a = np.array([50.0, 50.0, 0.3, 40.0, 20.0, 1.0])
    assert rect_iou(a, a) == pytest.approx(1.0)
    assert rect_iou(a, a + np.array([200.0, 0, 0, 0, 0, 0])) == 0.0
    # Axis-aligned 40x20 shifted by 10 px along x: intersection 30x20 = 600, union 800 + 800 - 600 = 1000.
    b = np.array([50.0, 50.0, 0.0, 40.0, 20.0, 1.0])
    c = np.array([60.0, 50.0, 0.0, 40.0, 20.0, 1.0])
    assert rect_iou(b, c) == pytest.approx(0.6)
    # A square and itself turned 45 degrees: intersection is the regular octagon of the same inradius.
    s = 20.0
    octagon = 8 * (s / 2) ** 2 * math.tan(math.pi / 8)  # regular octagon with inradius s / 2
    sq = np.array([0.0, 0.0, 0.0, s, s, 1.0])
    iou = rect_iou(sq, sq + np.array([0, 0, math.pi / 4, 0, 0, 0]))
    assert iou == pytest.approx(octagon / (2 * s**2 - octagon), rel=1e-9)
    m = rect_iou_matrix(np.stack([b, c]), np.stack([b, c, a + 300]))
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m[:, :2], [[1.0, 0.6], [0.6, 1.0]], atol=1e-12)
    assert np.all(m[:, 2] == 0)


def test_cornell_rule_angle_wraps_modulo_pi() -> None:
    gt = np.array([[50.0, 50.0, math.radians(-85), 40.0, 20.0, 1.0]])
    near_wrap = np.array([[50.0, 50.0, math.radians(85), 40.0, 20.0, 1.0]])  # 10 degrees apart modulo pi
    assert angle_difference(math.radians(85), math.radians(-85)) == pytest.approx(math.radians(10))
    assert wrap_angle(math.pi / 2) == pytest.approx(-math.pi / 2)
    assert grasp_success(near_wrap, gt, rule="cornell")
    far = np.array([[50.0, 50.0, math.radians(-40), 40.0, 20.0, 1.0]])  # 45 degrees apart
    assert not grasp_success(far, gt, rule="cornell")


def test_success_rules_differ_on_iou_and_top_k() -> None:
    gt = rects_from_labels(np.array([[50.0, 50.0, 0.0, 40.0, 1.0]]))  # length = width / 2
    assert gt.shape == (1, 6) and gt[0, 4] == 20.0
    shifted = np.array([[62.0, 50.0, 0.0, 40.0, 20.0, 1.0]])  # IoU = 560 / 1040 = 0.54
    shifted_more = np.array([[64.0, 50.0, 0.0, 40.0, 20.0, 1.0]])  # IoU = 520 / 1080 = 0.48
    assert grasp_success(shifted, gt, rule="iou50")
    assert not grasp_success(shifted_more, gt, rule="iou50")
    assert grasp_success(shifted_more, gt, rule="cornell")
    miss = np.array([[300.0, 300.0, 0.0, 40.0, 20.0, 1.0]])
    preds = np.concatenate([miss, miss, shifted])
    assert not grasp_success(preds, gt, rule="iou50", top_k=1)
    assert grasp_success(preds, gt, rule="iou50", top_k=3)
    assert not grasp_success(np.zeros((0, 6)), gt)


def test_grasp_deprojection_against_known_intrinsics() -> None:
    k = Intrinsics(fx=500.0, fy=500.0, cx=80.0, cy=60.0, width=160, height=120)
    depth = np.full((120, 160), 0.8, np.float32)
    depth[50, 100] = np.nan  # a hole at the grasp centre: the window median still gives 0.8
    depth[49, 99] = 5.0  # a flying pixel: the median ignores it
    rect = np.array([[100.0, 50.0, math.pi / 6, 50.0, 25.0, 0.9]])
    (g,) = grasps_to_3d(rect, depth, k, half_window=2)
    np.testing.assert_allclose(g.position, [(100 - 80) * 0.8 / 500, (50 - 60) * 0.8 / 500, 0.8], atol=1e-6)
    assert g.width_m == pytest.approx(50.0 * 0.8 / 500.0, rel=1e-6)
    assert g.angle == pytest.approx(math.pi / 6, abs=1e-9)
    np.testing.assert_allclose(g.quaternion, [0, 0, math.sin(math.pi / 12), math.cos(math.pi / 12)], atol=1e-12)
    assert g.quality == pytest.approx(0.9)


def test_deprojection_with_anisotropic_focal_lengths() -> None:
    k = Intrinsics(fx=400.0, fy=800.0, cx=50.0, cy=50.0, width=100, height=100)
    depth = np.full((100, 100), 1.0, np.float32)
    (g,) = grasps_to_3d(np.array([[50.0, 50.0, math.pi / 4, 40.0, 20.0, 1.0]]), depth, k)
    # Jaw tip offsets in the image are (14.14, 14.14) px -> (0.0354, 0.0177) m at 1 m.
    d = 20.0 * math.cos(math.pi / 4)
    assert g.width_m == pytest.approx(2 * math.hypot(d / 400.0, d / 800.0), rel=1e-9)
    assert g.angle == pytest.approx(math.atan2(1 / 800.0, 1 / 400.0), rel=1e-9)


def test_grasp_without_valid_depth_is_dropped() -> None:
    k = Intrinsics(fx=500.0, fy=500.0, cx=40.0, cy=40.0, width=80, height=80)
    depth = np.full((80, 80), np.nan, np.float32)
    depth[:, 60:] = 0.7
    rects = np.array([[20.0, 20.0, 0.0, 10.0, 5.0, 0.9], [70.0, 20.0, 0.0, 10.0, 5.0, 0.8]])
    grasps = grasps_to_3d(rects, depth, k)
    assert [g.rect.cx for g in grasps] == [70.0]
    assert np.isnan(robust_depth_at(depth, np.array([20.0]), np.array([20.0])))[0]


def test_quaternion_about_z_is_unit() -> None:
    q = quaternion_about_z(np.linspace(-3, 3, 7))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)


def test_robust_depth_is_the_median_of_valid_pixels() -> None:
    rng = np.random.default_rng(5)
    depth = rng.uniform(0.5, 1.5, (40, 50)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = np.nan
    depth[rng.random(depth.shape) < 0.1] = 0.0
    u = rng.uniform(0, 49, 30)
    v = rng.uniform(0, 39, 30)
    got = robust_depth_at(depth, u, v, half_window=2)
    for i in range(30):
        r, c = int(np.rint(v[i])), int(np.rint(u[i]))
        win = depth[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3].astype(np.float64)
        win = win[np.isfinite(win) & (win > 0)]
        if c - 2 >= 0 and r - 2 >= 0 and c + 3 <= 50 and r + 3 <= 40:  # interior: no clamped duplicates
            assert got[i] == pytest.approx(float(np.median(win)))


def test_grasp_metrics_agree_with_grasp_success() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        gt = np.column_stack([rng.uniform(20, 80, (4, 2)), rng.uniform(-1.5, 1.5, 4), rng.uniform(10, 40, 4)])
        gt = np.column_stack([gt, 0.5 * gt[:, 3], np.ones(4)])
        pred = gt[rng.integers(0, 4, 5)] + rng.normal(0, [6, 6, 0.4, 5, 2, 0], (5, 6))
        metrics = grasp_metrics(pred, gt)
        for rule in ("cornell", "iou50"):
            for k in (1, 3):
                assert metrics[f"{rule}_top{k}"] == grasp_success(pred, gt, rule=rule, top_k=k)
