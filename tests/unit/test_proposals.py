"""Support-plane RANSAC and object proposals on a synthetic tabletop; GT masks give the same crops."""

from __future__ import annotations

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import DepthError
from dcl_arc_ros.core.proposals import (
    ProposalParams,
    crops_from_labels,
    fit_support_plane,
    propose_objects,
    segment_above_plane,
)

K = Intrinsics(fx=300.0, fy=300.0, cx=79.5, cy=59.5, width=160, height=120)
# A tilted table: n . p + d = 0 with the normal towards the camera.
NORMAL = np.array([0.0, -0.5, -1.0]) / np.linalg.norm([0.0, -0.5, -1.0])
OFFSET = 0.7
BOXES = {  # instance id -> (x0, y0, x1, y1) in pixels, height above the table in metres
    3: ((20, 30, 45, 60), 0.05),
    7: ((90, 20, 130, 45), 0.08),
    9: ((60, 75, 100, 110), 0.03),
}


def _scene(holes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Depth of the plane, with each box's pixels raised by its height along the plane normal (a prism in the image)."""
    v, u = np.mgrid[0 : K.height, 0 : K.width].astype(np.float64)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], axis=-1)
    denom = rays @ NORMAL
    instances = np.zeros((K.height, K.width), np.int32)
    height = np.zeros((K.height, K.width))
    for inst, ((x0, y0, x1, y1), h) in BOXES.items():
        instances[y0:y1, x0:x1] = inst
        height[y0:y1, x0:x1] = h
    depth = ((height - OFFSET) / denom).astype(np.float32)  # n . (z ray) + d = h
    rng = np.random.default_rng(0)
    depth += rng.normal(0, 0.0008, depth.shape).astype(np.float32)
    if holes:
        depth[rng.random(depth.shape) < 0.03] = np.nan
        depth[0:8, 0:30] = np.nan
    return depth, instances


def test_ransac_finds_the_plane() -> None:
    depth, _ = _scene()
    plane = fit_support_plane(K.points_from_depth(depth), ProposalParams(seed=1))
    assert abs(float(plane.normal @ NORMAL)) == pytest.approx(1.0, abs=2e-3)
    assert plane.offset == pytest.approx(OFFSET, abs=3e-3)
    assert 0.6 < plane.inlier_fraction < 0.95  # the boxes are off the plane


def test_components_above_the_plane_are_the_boxes() -> None:
    depth, instances = _scene()
    labels, _ = segment_above_plane(depth, K)
    crops = propose_objects(depth, K)
    assert len(crops) == len(BOXES)
    expected = sorted(box for box, _ in BOXES.values())
    assert sorted(c.box for c in crops) == sorted((x0, y0, x1, y1) for x0, y0, x1, y1 in expected)
    for c in crops:
        x0, y0, x1, y1 = c.box
        ids = np.unique(instances[y0:y1, x0:x1][c.mask])
        assert ids.size == 1 and ids[0] > 0  # each component is exactly one object
        assert np.all(np.isnan(c.depth[~c.mask]))
    assert labels.max() >= len(BOXES)


def test_ground_truth_masks_give_the_same_crops() -> None:
    depth, instances = _scene()
    from_depth = propose_objects(depth, K)
    from_masks = crops_from_labels(instances, depth, K)
    assert len(from_depth) == len(from_masks) == len(BOXES)
    for a, b in zip(from_depth, from_masks, strict=True):
        assert a.box == b.box
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.depth, b.depth)
        assert a.pixels == b.pixels
    assert sorted(c.label for c in from_masks) == sorted(BOXES)


def test_size_filters_drop_small_and_large_objects() -> None:
    depth, instances = _scene(holes=False)
    small = crops_from_labels(instances, depth, K, ProposalParams(min_pixels=900))
    assert sorted(c.label for c in small) == [7, 9]  # box 3 has 25 x 30 = 750 pixels
    extents = {c.label: c.extent_m for c in crops_from_labels(instances, depth, K)}
    # Box 7 is 40 px wide at about 0.7 m (0.7 * 40 / 300 = 0.093 m plus the tilt); box 3 is 25 px (about 0.06 m).
    assert 0.09 < extents[7] < 0.11 and 0.06 < extents[3] < 0.08
    capped = crops_from_labels(instances, depth, K, ProposalParams(max_extent_m=0.08))
    assert {c.label for c in capped} == {3}
    floored = crops_from_labels(instances, depth, K, ProposalParams(min_extent_m=0.08))
    assert {c.label for c in floored} == {7, 9}


def test_empty_table_gives_no_crops_and_no_depth_raises() -> None:
    depth, _ = _scene(holes=False)
    flat = depth.copy()
    v, u = np.mgrid[0 : K.height, 0 : K.width].astype(np.float64)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], axis=-1)
    flat[:] = (-OFFSET / (rays @ NORMAL)).astype(np.float32)
    assert propose_objects(flat, K) == []
    with pytest.raises(DepthError):
        propose_objects(np.full_like(depth, np.nan), K)
