"""Intrinsics: (de)projection round trips and reprojection after crop and resize (checked against cv2.resize)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics, points_from_depth
from dcl_arc_ros.core.errors import CameraError

K = Intrinsics(fx=525.0, fy=520.0, cx=319.3, cy=241.7, width=640, height=480)


def random_points(n: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.3, 4.0, n)
    u = rng.uniform(0, K.width - 1, n)
    v = rng.uniform(0, K.height - 1, n)
    return K.deproject(u, v, z).astype(np.float64)


def test_from_k_and_k_matrix_round_trip() -> None:
    k = [525.0, 0.0, 319.3, 0.0, 520.0, 241.7, 0.0, 0.0, 1.0]
    intr = Intrinsics.from_k(k, 640, 480)
    assert intr == K
    np.testing.assert_array_equal(intr.k_matrix().reshape(-1), k)


@pytest.mark.parametrize(
    "k",
    [
        [0.0] * 9,
        [525.0, 1.0, 320.0, 0.0, 525.0, 240.0, 0.0, 0.0, 1.0],
        [525.0, 0.0, 320.0, 0.0, 525.0, 240.0],
        [-1.0, 0.0, 320.0, 0.0, 525.0, 240.0, 0.0, 0.0, 1.0],
    ],
)
def test_from_k_rejects_bad_matrices(k: list[float]) -> None:
    with pytest.raises(CameraError):
        Intrinsics.from_k(k, 640, 480)


def test_deproject_project_round_trip() -> None:
    u = np.array([0.0, 100.5, 639.0])
    v = np.array([0.0, 240.25, 479.0])
    z = np.array([0.5, 1.0, 3.0])
    points = K.deproject(u, v, z)
    assert points.shape == (3, 3)
    np.testing.assert_allclose(points[:, 0], (u - K.cx) * z / K.fx)
    pu, pv, pz = K.project(points)
    np.testing.assert_allclose(pu, u, atol=1e-9)
    np.testing.assert_allclose(pv, v, atol=1e-9)
    np.testing.assert_allclose(pz, z)


def test_project_behind_camera_is_nan() -> None:
    u, v, _ = K.project(np.array([[0.1, 0.2, -1.0], [0.1, 0.2, 0.0]]))
    assert np.isnan(u).all() and np.isnan(v).all()


def test_points_from_depth_matches_deproject() -> None:
    intr = Intrinsics(fx=50.0, fy=40.0, cx=3.5, cy=2.0, width=8, height=5)
    depth = np.random.default_rng(1).uniform(0.5, 2.0, (5, 8)).astype(np.float32)
    depth[2, 3] = np.nan
    cloud = points_from_depth(depth, intr)
    assert cloud.shape == (5, 8, 3) and cloud.dtype == np.float32
    vv, uu = np.mgrid[0:5, 0:8]
    expected = intr.deproject(uu, vv, depth.astype(np.float64))
    np.testing.assert_allclose(cloud, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(cloud[2, 3]).all()
    with pytest.raises(CameraError, match="does not match"):
        intr.points_from_depth(np.ones((8, 5), np.float32))


def test_crop_reprojection() -> None:
    points = random_points()
    u, v, _ = K.project(points)
    x0, y0 = 101, 37
    cropped = K.crop(x0, y0, 300, 200)
    cu, cv, _ = cropped.project(points)
    np.testing.assert_allclose(cu, u - x0, atol=1e-9)
    np.testing.assert_allclose(cv, v - y0, atol=1e-9)
    assert (cropped.width, cropped.height) == (300, 200)


@pytest.mark.parametrize("step", [1, 2, 3])
def test_subsample_describes_every_nth_pixel(step: int) -> None:
    depth = np.random.default_rng(2).uniform(0.5, 2.0, (K.height, K.width)).astype(np.float32)
    sub = K.subsample(step)
    assert (sub.height, sub.width) == depth[::step, ::step].shape
    np.testing.assert_allclose(
        sub.points_from_depth(depth[::step, ::step]), K.points_from_depth(depth)[::step, ::step], rtol=1e-5, atol=1e-6
    )
    u, v, _ = K.project(random_points())
    su, sv, _ = sub.project(random_points())
    np.testing.assert_allclose(su, u / step, atol=1e-9)
    np.testing.assert_allclose(sv, v / step, atol=1e-9)
    with pytest.raises(CameraError, match="step"):
        K.subsample(0)


def test_crop_outside_the_image_is_rejected() -> None:
    with pytest.raises(CameraError, match="does not fit"):
        K.crop(600, 0, 100, 100)


@pytest.mark.parametrize(("width", "height"), [(320, 240), (300, 300), (1280, 720), (161, 97)])
def test_resize_matches_cv2_resize(width: int, height: int) -> None:
    """Images whose pixel values are their own (u, v) coordinates: after cv2.resize, the value at the pixel where the
    resized intrinsics project a 3D point must be the pixel where the original intrinsics project it."""
    vv, uu = np.mgrid[0 : K.height, 0 : K.width].astype(np.float32)
    ramp_u = cv2.resize(uu, (width, height), interpolation=cv2.INTER_LINEAR)
    ramp_v = cv2.resize(vv, (width, height), interpolation=cv2.INTER_LINEAR)
    resized = K.resize(width, height)
    # Points that land on integer pixels of the resized image, away from the clamped border.
    rng = np.random.default_rng(2)
    ru = rng.integers(2, width - 2, 100)
    rv = rng.integers(2, height - 2, 100)
    points = resized.deproject(ru.astype(np.float64), rv.astype(np.float64), rng.uniform(0.5, 3.0, 100))
    u, v, _ = K.project(points)
    np.testing.assert_allclose(ramp_u[rv, ru], u, atol=1e-3)
    np.testing.assert_allclose(ramp_v[rv, ru], v, atol=1e-3)


def test_resize_then_back_is_identity() -> None:
    back = K.resize(213, 157).resize(K.width, K.height)
    for name in ("fx", "fy", "cx", "cy"):
        assert getattr(back, name) == pytest.approx(getattr(K, name), abs=1e-9)


@pytest.mark.parametrize("kwargs", [{"fx": 0.0}, {"fy": -1.0}, {"cx": float("nan")}, {"width": 0}])
def test_invalid_intrinsics_are_rejected(kwargs: dict[str, float]) -> None:
    values = {"fx": 1.0, "fy": 1.0, "cx": 0.0, "cy": 0.0, "width": 4, "height": 4, **kwargs}
    with pytest.raises(CameraError):
        Intrinsics(**values)  # type: ignore[arg-type]
