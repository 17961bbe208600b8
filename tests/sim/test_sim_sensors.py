"""Sensor models keep the statistics they promise (pure numpy scenes: planes and a box over a plane)."""

from __future__ import annotations

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.sim.errors import SensorError
from dcl_arc_ros.sim.sensors import SENSORS, ActiveStereoSensor, EmpiricalParams, EmpiricalSensor, SceneContext
from dcl_arc_ros.sim.sensors import get_sensor as sensor_by_name
from dcl_arc_ros.sim.sensors.base import SensorModel
from dcl_arc_ros.sim.sensors.empirical import projector_shadow

KINECT_160 = Intrinsics(fx=131.25, fy=131.25, cx=79.5, cy=59.5, width=160, height=120)
D435_320 = Intrinsics(fx=307.5, fy=307.5, cx=159.75, cy=119.75, width=320, height=240)

QUIET = EmpiricalParams(
    lateral=False,
    quantise=False,
    shadows=False,
    edge_hole_probability=0.0,
    grazing_full_deg=0.0,
    dropout=0.0,
    apply_range=False,
)


def plane_depth(intr: Intrinsics, cam_T_view: np.ndarray, normal: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Depth seen by a camera at ``cam_T_view`` (in the reference camera frame) of the plane through ``point``."""
    n = normal / np.linalg.norm(normal)
    u = (np.arange(intr.width) - intr.cx) / intr.fx
    v = (np.arange(intr.height) - intr.cy) / intr.fy
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)
    rays_ref = rays @ cam_T_view[:3, :3].T
    t = (n @ (point - cam_T_view[:3, 3])) / (rays_ref @ n)
    return np.where(t > 0, t, np.nan).astype(np.float32)


def box_over_plane(intr: Intrinsics, cam_T_view: np.ndarray, z_back: float, z_box: float, half: float) -> np.ndarray:
    """A fronto-parallel background at ``z_back`` with a square slab facing the camera at ``z_box``."""
    back = plane_depth(intr, cam_T_view, np.array([0, 0, -1.0]), np.array([0, 0, z_back]))
    front = plane_depth(intr, cam_T_view, np.array([0, 0, -1.0]), np.array([0, 0, z_box]))
    u = (np.arange(intr.width) - intr.cx) / intr.fx
    v = (np.arange(intr.height) - intr.cy) / intr.fy
    x = u[None, :] * front + cam_T_view[0, 3]
    y = v[:, None] * front + cam_T_view[1, 3]
    inside = (np.abs(x) < half) & (np.abs(y) < half)
    return np.where(inside, front, back).astype(np.float32)


def test_registry_holds_the_three_models_behind_the_protocol() -> None:
    assert set(SENSORS) == {"clean", "empirical", "active_stereo"}
    for name, model in SENSORS.items():
        assert isinstance(model, SensorModel) and model.name == name
    with pytest.raises(SensorError, match="'kinect2'"):
        sensor_by_name("kinect2")


def test_millimetre_input_is_rejected_with_the_values() -> None:
    depth = np.full((120, 160), 600.0, dtype=np.float32)
    with pytest.raises(SensorError, match="600"):
        SENSORS["empirical"].apply(depth, KINECT_160, np.random.default_rng(0), SceneContext())


@pytest.mark.parametrize("theta_deg", [0.0, 72.0])
def test_empirical_axial_noise_std_follows_nguyen_formula(theta_deg: float) -> None:
    sensor = EmpiricalSensor(params=QUIET)
    theta = np.deg2rad(theta_deg)
    # the model reads the surface angle from the context normals: tilt them by theta about the x axis
    normals = np.zeros((120, 160, 3), dtype=np.float32)
    normals[..., 1], normals[..., 2] = np.sin(theta), -np.cos(theta)
    ctx = SceneContext(normals=normals)
    u = (np.arange(160) - KINECT_160.cx) / KINECT_160.fx
    v = (np.arange(120) - KINECT_160.cy) / KINECT_160.fy
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((1, 1))), axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    pixel_theta = np.arccos(np.abs(rays @ normals[0, 0]))  # the angle each pixel's ray makes with the surface
    stds = []
    for z in (0.5, 1.0, 1.5, 2.0, 3.0):
        depth = np.full((120, 160), z, dtype=np.float32)
        err = (sensor.apply(depth, KINECT_160, np.random.default_rng(7), ctx) - depth).astype(np.float64)
        expected = (
            0.0012
            + 0.0019 * (z - 0.4) ** 2
            + np.where(
                pixel_theta > np.deg2rad(60), 0.0001 / np.sqrt(z) * pixel_theta**2 / (np.pi / 2 - pixel_theta) ** 2, 0.0
            )
        )
        normalised = err / expected
        assert abs(normalised.mean()) < 0.03, f"z={z}: biased"
        assert normalised.std() == pytest.approx(1.0, abs=0.03), f"z={z}"
        stds.append(err.std())
    if theta_deg < 60:
        assert np.all(np.diff(stds) > 0)  # without the angle term (which falls as 1/sqrt(z)) noise grows with depth


def test_empirical_disparity_is_quantised_to_the_device_step() -> None:
    params = EmpiricalParams(
        lateral=False,
        axial=True,
        quantise=True,
        shadows=False,
        edge_hole_probability=0.0,
        grazing_full_deg=0.0,
        dropout=0.0,
        apply_range=False,
    )
    depth = np.linspace(0.6, 2.5, 120 * 160, dtype=np.float32).reshape(120, 160)
    ctx = SceneContext(baseline_m=0.075, disparity_subpixel=1 / 8)
    out = EmpiricalSensor(params=params).apply(depth, KINECT_160, np.random.default_rng(1), ctx)
    disparity_steps = KINECT_160.fx * 0.075 / out.astype(np.float64) * 8
    np.testing.assert_allclose(disparity_steps, np.round(disparity_steps), atol=1e-3)
    assert len(np.unique(out)) < 0.2 * out.size  # far fewer distinct depths than pixels


def test_empirical_holes_concentrate_at_occlusion_edges_and_shadow_side() -> None:
    depth = box_over_plane(KINECT_160, np.eye(4), z_back=1.0, z_box=0.6, half=0.1)
    ctx = SceneContext(baseline_m=0.075)
    out = SENSORS["empirical"].apply(depth, KINECT_160, np.random.default_rng(3), ctx)
    holes = np.isnan(out)
    fg = depth < 0.8
    cols_fg = np.flatnonzero(fg.any(axis=0))
    rows_fg = np.flatnonzero(fg.any(axis=1))
    left, right = cols_fg[0], cols_fg[-1]
    # distance (in pixels) to the nearest depth discontinuity, measured along rows and columns
    edge = np.zeros_like(fg)
    edge[:, 1:] |= fg[:, 1:] != fg[:, :-1]
    edge[1:, :] |= fg[1:, :] != fg[:-1, :]
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(~edge)
    near_rate = holes[dist <= 3].mean()
    far_rate = holes[dist > 6].mean()
    assert far_rate < 0.02
    assert near_rate > 10 * far_rate
    # projector on the right (+x): the shadow falls on the background left of the box, its width f B (1/z1 - 1/z2)
    rows = slice(rows_fg[0] + 2, rows_fg[-1] - 1)
    shadow_px = KINECT_160.fx * 0.075 * (1 / 0.6 - 1 / 1.0)
    assert holes[rows, left - int(shadow_px) + 1 : left - 1].mean() > 0.95
    assert holes[rows, right + 2 : right + 2 + int(shadow_px) - 1].mean() < 0.1


def test_projector_shadow_matches_geometry_for_a_step() -> None:
    depth = np.full((4, 100), 1.0, dtype=np.float32)
    depth[:, 50:] = 0.5
    shadow = projector_shadow(depth, fx=100.0, baseline_m=0.1)
    # projector column q = u - f B / z: background q = u - 10, step q = u - 20. The ray grazing the step's edge
    # (column 50, q = 30) lands on the background at column 40, so columns 41..49 are in its shadow.
    expected = np.zeros(100, dtype=bool)
    expected[41:50] = True
    np.testing.assert_array_equal(shadow[0], expected)


@pytest.mark.parametrize(
    ("normal", "z0"),
    [(np.array([0.0, 0.0, -1.0]), 0.6), (np.array([0.0, 0.5, -1.0]), 0.75), (np.array([0.4, 0.0, -1.0]), 0.9)],
)
def test_active_stereo_matches_ground_truth_on_flat_textured_surfaces(normal: np.ndarray, z0: float) -> None:
    point = np.array([0.0, 0.0, z0])
    ctx = SceneContext(
        baseline_m=0.05, depth_range_m=(0.2, 3.0), render_depth=lambda t: plane_depth(D435_320, t, normal, point)
    )
    clean = plane_depth(D435_320, np.eye(4), normal, point)
    out = ActiveStereoSensor().apply(clean, D435_320, np.random.default_rng(0), ctx)
    band = int(np.ceil(D435_320.fx * 0.05 / 0.3 / 16) * 16)  # the matcher cannot search left of its range
    valid = np.isfinite(out[:, band:])
    assert valid.mean() > 0.9
    err_m = np.abs(out - clean)[:, band:][valid]
    f_b = D435_320.fx * 0.05
    err_px = np.abs(f_b / out - f_b / clean)[:, band:][valid]  # in disparity, where a matcher's accuracy is stated
    assert np.median(err_px) < 0.15
    assert np.percentile(err_px, 90) < 0.4
    assert np.median(err_m) < 0.01 * z0


def test_active_stereo_leaves_holes_along_occlusion_edges() -> None:
    z_back, z_box = 0.9, 0.55

    def scene(t: np.ndarray) -> np.ndarray:
        return box_over_plane(D435_320, t, z_back=z_back, z_box=z_box, half=0.08)

    ctx = SceneContext(baseline_m=0.05, depth_range_m=(0.2, 3.0), render_depth=scene)
    clean = scene(np.eye(4))
    holes = np.isnan(ActiveStereoSensor().apply(clean, D435_320, np.random.default_rng(0), ctx))
    fg = clean < 0.7
    cols, rows = np.flatnonzero(fg.any(axis=0)), np.flatnonzero(fg.any(axis=1))
    left, right = cols[0], cols[-1]
    r = slice(rows[0] + 3, rows[-1] - 2)
    # background left of the box that the right camera cannot see: f B (1/z_box - 1/z_back) pixels wide
    occluded_px = D435_320.fx * 0.05 * (1 / z_box - 1 / z_back)
    assert occluded_px > 8
    assert holes[r, left - int(occluded_px) + 2 : left - 1].mean() > 0.8
    # elsewhere (box face, background right of the box and far from it) readings are dense
    band = int(np.ceil(D435_320.fx * 0.05 / 0.3 / 16) * 16)
    assert holes[r, left + 3 : right - 2].mean() < 0.02
    assert holes[r, right + 2 : right + 20].mean() < 0.05
    assert holes[:, band : left - 30].mean() < 0.02


def test_sensor_models_are_deterministic_for_a_generator_seed() -> None:
    ctx = SceneContext(
        baseline_m=0.05,
        render_depth=lambda t: box_over_plane(D435_320, t, z_back=0.9, z_box=0.55, half=0.08),
    )
    clean = box_over_plane(D435_320, np.eye(4), z_back=0.9, z_box=0.55, half=0.08)
    for model in SENSORS.values():
        a = model.apply(clean, D435_320, np.random.default_rng(5), ctx)
        b = model.apply(clean, D435_320, np.random.default_rng(5), ctx)
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32 and a.shape == clean.shape
