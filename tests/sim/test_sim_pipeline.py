"""End to end: render_scene_frames gives frames that honour the Frame contract, with sensors that behave."""

from __future__ import annotations

import numpy as np
import pytest

from dcl_arc_ros.sim.errors import CameraPresetError, SceneError, SensorError
from dcl_arc_ros.sim.pipeline import DEFAULT_FRAME_PERIOD_NS, render_scene_frames


def test_frames_honour_the_contract() -> None:
    frames = list(
        render_scene_frames(41, 2, "empirical", "real_like", "kinect_v1", width=160, height=120, start_stamp_ns=5_000)
    )
    assert [f.stamp_ns for f in frames] == [5_000, 5_000 + DEFAULT_FRAME_PERIOD_NS]
    for f in frames:
        h, w = 120, 160
        assert (f.intrinsics.width, f.intrinsics.height) == (w, h)
        assert f.intrinsics.fx == pytest.approx(525.0 / 4)
        assert f.rgb.shape == (h, w, 3) and f.rgb.dtype == np.uint8
        for depth in (f.depth_clean, f.depth_sensor):
            assert depth.shape == (h, w) and depth.dtype == np.float32
            finite = depth[np.isfinite(depth)]
            assert finite.size > 0.5 * h * w and finite.min() > 0.05 and finite.max() < 6.0
        assert f.instances.shape == (h, w) and f.instances.dtype == np.int32
        assert f.normals.shape == (h, w, 3) and f.normals.dtype == np.float32
        assert f.world_T_cam.shape == (4, 4)
        np.testing.assert_allclose(f.world_T_cam[3], [0, 0, 0, 1])
        assert f.sensor == "empirical" and f.family == "real_like"
        assert f.objects and len(f.grasps.instance_ids) == len(f.grasps.rects)
    assert any(o.class_id >= 2000 for f in frames for o in f.objects), "real-like scenes show distractors"


def test_active_stereo_on_a_rendered_scene_is_dense_and_accurate() -> None:
    (frame,) = render_scene_frames(5, 1, "active_stereo", "synthetic", "realsense_d435", width=320, height=240)
    both = np.isfinite(frame.depth_sensor) & np.isfinite(frame.depth_clean)
    assert both.mean() > 0.7
    rel = np.abs(frame.depth_sensor - frame.depth_clean)[both] / frame.depth_clean[both]
    assert np.median(rel) < 0.01
    assert np.mean(rel > 0.05) < 0.1  # gross mismatches (edge fattening, wrong matches) are a small minority


def test_empirical_sensor_is_noisier_than_clean_but_unbiased() -> None:
    (frame,) = render_scene_frames(6, 1, "empirical", "synthetic", "realsense_d435", width=320, height=240)
    both = np.isfinite(frame.depth_sensor) & np.isfinite(frame.depth_clean)
    err = (frame.depth_sensor - frame.depth_clean)[both]
    assert 0.0005 < np.median(np.abs(err)) < 0.01
    assert abs(np.median(err)) < 0.002
    assert 0.01 < 1.0 - both.mean() < 0.3  # some holes, not a ruined frame


def test_bad_arguments_fail_before_any_work() -> None:
    with pytest.raises(SensorError, match="'lidar'"):
        next(render_scene_frames(1, 1, "lidar"))
    with pytest.raises(CameraPresetError, match="'zed'"):
        next(render_scene_frames(1, 1, "clean", camera="zed"))
    with pytest.raises(SceneError, match="'photoreal'"):
        next(render_scene_frames(1, 1, "clean", family="photoreal"))
