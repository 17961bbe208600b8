"""The node benchmarks' ``--scale``: the same scene on a finer sensor, with a camera that matches it."""

from __future__ import annotations

import numpy as np

from benchmarks.grasp_node import camera_intrinsics, scaled_depth, scaled_result_file, tabletop_depth


def test_a_scaled_frame_is_the_same_scene_seen_by_a_finer_camera() -> None:
    depth = tabletop_depth(np.random.default_rng(0), objects=2)
    fine = scaled_depth(depth, 2)
    assert fine.shape == (2 * depth.shape[0], 2 * depth.shape[1])
    np.testing.assert_array_equal(fine[1::2, 1::2], depth)
    coarse, finer = camera_intrinsics(1), camera_intrinsics(2)
    assert (finer.width, finer.height) == (2 * coarse.width, 2 * coarse.height)
    point = np.array([[0.05, -0.03, 0.7]])
    (u, v, _), (fu, fv, _) = coarse.project(point), finer.project(point)
    # Pixel u of the coarse image spans fine pixels 2u and 2u + 1, whose shared corner is at 2u + 0.5.
    np.testing.assert_allclose([fu[0], fv[0]], [2 * u[0] + 0.5, 2 * v[0] + 0.5], atol=1e-9)
    assert scaled_result_file("pose_node.json", 1) == "pose_node.json"
    assert scaled_result_file("pose_node.json", 2) == "pose_node_x2.json"
