"""The same seed gives identical frames; another seed gives another scene."""

from __future__ import annotations

import numpy as np
import pytest

from dcl_arc_ros.data.frame import Frame
from dcl_arc_ros.sim.pipeline import render_scene_frames

ARRAYS = ("rgb", "depth_clean", "depth_sensor", "instances", "normals", "world_T_cam")
GRASP_ARRAYS = ("rects", "instance_ids", "width_m", "quality_map", "cos2_map", "sin2_map", "width_map")


def _frames(seed: int, sensor: str, family: str) -> list[Frame]:
    return list(render_scene_frames(seed, 2, sensor, family, "realsense_sr300", width=160, height=120))


@pytest.mark.parametrize(("sensor", "family"), [("empirical", "synthetic"), ("active_stereo", "real_like")])
def test_same_seed_gives_identical_arrays(sensor: str, family: str) -> None:
    a, b = _frames(21, sensor, family), _frames(21, sensor, family)
    assert len(a) == len(b) == 2
    for fa, fb in zip(a, b, strict=True):
        for name in ARRAYS:
            np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name), err_msg=name)
        for name in GRASP_ARRAYS:
            np.testing.assert_array_equal(getattr(fa.grasps, name), getattr(fb.grasps, name), err_msg=name)
        assert [o.name for o in fa.objects] == [o.name for o in fb.objects]
        for oa, ob in zip(fa.objects, fb.objects, strict=True):
            np.testing.assert_array_equal(oa.cam_T_obj, ob.cam_T_obj)
            assert oa.visible_fraction == ob.visible_fraction
        assert fa.sensor == sensor and fa.family == family
    # frames of one scene come from different camera poses and are stamped in sequence
    assert not np.array_equal(a[0].world_T_cam, a[1].world_T_cam)
    assert a[1].stamp_ns > a[0].stamp_ns
    assert np.isfinite(a[0].depth_sensor).mean() > 0.5
    assert not np.array_equal(a[0].depth_sensor, a[0].depth_clean)


def test_different_seeds_give_different_scenes() -> None:
    a, b = _frames(21, "clean", "synthetic"), _frames(22, "clean", "synthetic")
    assert not np.array_equal(a[0].rgb, b[0].rgb)
    assert not np.array_equal(a[0].world_T_cam, b[0].world_T_cam)
