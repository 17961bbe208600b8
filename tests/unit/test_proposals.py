"""Support-plane RANSAC and object proposals on a synthetic tabletop; GT masks give the same crops."""

from __future__ import annotations

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import DepthError, PipelineError
from dcl_arc_ros.core.proposals import (
    ProposalParams,
    _count_inliers,
    crops_from_labels,
    fit_support_plane,
    merge_convex_neighbours,
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


def test_ransac_accepts_a_flat_cloud_and_finds_the_same_plane() -> None:
    depth, _ = _scene()
    params = ProposalParams(seed=1, ransac_sample_stride=1)
    organised = fit_support_plane(K.points_from_depth(depth), params)
    flat = fit_support_plane(np.ascontiguousarray(K.points_from_depth(depth)).reshape(-1, 3), params)
    np.testing.assert_allclose(flat.normal, organised.normal, atol=1e-12)
    assert flat.offset == pytest.approx(organised.offset, abs=1e-12)


def test_blocked_inlier_counts_equal_the_direct_count() -> None:
    rng = np.random.default_rng(3)
    points = rng.uniform(-0.5, 0.5, (500, 3))
    normals = rng.normal(size=(75, 3))  # not a multiple of the block
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = rng.uniform(-0.05, 0.05, 75)
    distance = np.abs(points.astype(np.float32) @ normals.astype(np.float32).T + offsets.astype(np.float32))
    counts = _count_inliers(points, normals, offsets, 0.02)
    assert counts.shape == (75,) and counts.min() > 0
    # Float32 rounding may only move a point that lies within a hair of the band's edge.
    near_edge = np.abs(distance - np.float32(0.02)) < 1e-6
    expected = np.count_nonzero(distance < np.float32(0.02), axis=0)
    assert np.all(np.abs(counts - expected) <= np.count_nonzero(near_edge, axis=0))


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


def _depth_from_height(height: np.ndarray) -> np.ndarray:
    """Depth of the tilted table with every pixel raised by ``height`` (metres) along the plane normal."""
    v, u = np.mgrid[0 : K.height, 0 : K.width].astype(np.float64)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], axis=-1)
    return ((height - OFFSET) / (rays @ NORMAL)).astype(np.float32)


def _components(depth: np.ndarray, **changes: object) -> list[dict[int, int]]:
    """For each proposal, how many of its pixels lie on each part (ids of PARTS, 0 = neither)."""
    crops = propose_objects(depth, K, ProposalParams(**changes))  # type: ignore[arg-type]
    out = []
    for c in crops:
        x0, y0, x1, y1 = c.box
        ids, counts = np.unique(PARTS[y0:y1, x0:x1][c.mask], return_counts=True)
        out.append({int(i): int(n) for i, n in zip(ids, counts, strict=True)})
    return out


PARTS = np.zeros((K.height, K.width), np.int32)  # which part of the test scenes below a pixel belongs to
PARTS[30:90, 30:70] = 1
PARTS[30:90, 70:110] = 2
WHOLE = int((PARTS == 1).sum())  # both parts have this many pixels


def test_touching_boxes_of_different_heights_are_cut_apart_at_the_depth_jump() -> None:
    height = np.zeros((K.height, K.width))
    height[PARTS == 1] = 0.05
    height[PARTS == 2] = 0.09  # side by side, touching: one component above the plane
    depth = _depth_from_height(height)
    assert _components(depth, split_touching=False) == [{1: WHOLE, 2: WHOLE}]
    # Each box exactly: the cut band goes back across continuous surfaces only, so the boundary is the jump.
    assert _components(depth) == [{1: WHOLE}, {2: WHOLE}]


def test_a_concave_crease_is_cut_and_a_convex_ridge_is_not() -> None:
    u = np.arange(K.width, dtype=np.float64)[None, :].repeat(K.height, axis=0)
    inside = PARTS > 0
    # Two wedges whose tops slope down towards x = 70 at 45 deg: a valley between two objects (no depth jump).
    valley = np.where(inside, 0.03 + np.abs(u - 69.5) * 0.7 / K.fx, 0.0)
    # One roof: the same slopes the other way round, a ridge along x = 70, which is one object's convex edge.
    ridge = np.where(inside, 0.03 + (40.0 - np.abs(u - 69.5)) * 0.7 / K.fx, 0.0)
    assert _components(_depth_from_height(valley)) == [{1: WHOLE}, {2: WHOLE}]
    assert _components(_depth_from_height(valley), crease=2.0) == [{1: WHOLE, 2: WHOLE}]  # nothing folds that far
    assert _components(_depth_from_height(ridge)) == [{1: WHOLE, 2: WHOLE}]


def test_a_low_mat_under_an_object_is_dropped_and_the_object_kept() -> None:
    height = np.zeros((K.height, K.width))
    height[25:95, 20:125] = 0.015  # a mat 1.5 cm thick, larger than any object (the table still dominates)
    height[PARTS == 1] = 0.06  # a box standing on it
    depth = _depth_from_height(height)
    (merged,) = propose_objects(depth, K, ProposalParams(split_touching=False))  # without the cuts: box + mat
    assert merged.pixels > 2 * WHOLE
    assert _components(depth) == [{1: WHOLE}]  # exactly the box
    # The cuts part the mat from the box, but the mat's pieces are too low to be objects.
    assert any(set(parts) == {0} for parts in _components(depth, min_top_height_m=0.0))


def _merged(height: np.ndarray, labels: np.ndarray, **changes: object) -> list[list[int]]:
    """The groups of ``labels`` ids that merge_convex_neighbours joins on the scene of ``height``, smallest id first."""
    depth = _depth_from_height(height)
    out = merge_convex_neighbours(labels, K.points_from_depth(depth), depth, ProposalParams(**changes))  # type: ignore[arg-type]
    groups: dict[int, list[int]] = {}
    for old in np.unique(labels[labels > 0]):
        (new,) = np.unique(out[labels == old])
        groups.setdefault(int(new), []).append(int(old))
    return sorted(groups.values())


# Three vertical strips of the two-part block: ids 1 | 2 | 3 (2 straddles x = 70).
STRIPS = np.zeros((K.height, K.width), np.int32)
STRIPS[30:90, 30:55], STRIPS[30:90, 55:85], STRIPS[30:90, 85:110] = 1, 2, 3


def test_pieces_of_a_flat_or_convex_surface_merge_and_keep_the_smallest_id() -> None:
    u = np.arange(K.width, dtype=np.float64)[None, :].repeat(K.height, axis=0)
    inside = PARTS > 0
    flat = np.where(inside, 0.05, 0.0)
    ridge = np.where(inside, 0.03 + (40.0 - np.abs(u - 69.5)) * 0.7 / K.fx, 0.0)  # one roof: convex at x = 70
    assert _merged(flat, STRIPS) == [[1, 2, 3]]  # transitive: 1-2 and 2-3 make one object
    assert _merged(ridge, PARTS) == [[1, 2]]


def test_a_concave_valley_a_depth_jump_or_a_short_contact_keeps_the_pieces_apart() -> None:
    u = np.arange(K.width, dtype=np.float64)[None, :].repeat(K.height, axis=0)
    inside = PARTS > 0
    valley = np.where(inside, 0.03 + np.abs(u - 69.5) * 0.7 / K.fx, 0.0)  # two objects meeting in a valley
    assert _merged(valley, PARTS) == [[1], [2]]
    assert _merged(valley, PARTS, merge_concavity=2.0) == [[1, 2]]  # a fold can be at most -2
    steps = np.where(PARTS == 1, 0.05, np.where(PARTS == 2, 0.09, 0.0))  # touching boxes, 4 cm apart in height
    assert _merged(steps, PARTS) == [[1], [2]]
    flat = np.where(inside, 0.05, 0.0)
    apart = PARTS.copy()
    apart[:, 69] = 0
    apart[40:45, 69] = 1  # the two halves touch along 5 pixel pairs only
    assert _merged(flat, apart) == [[1], [2]]
    assert _merged(flat, apart, merge_min_contact_px=5) == [[1, 2]]


@pytest.mark.parametrize(
    "change, name",
    [
        ({"edge_step_px": 0}, "edge_step_px"),
        ({"crease": -0.1}, "crease"),
        ({"min_top_height_m": -1.0}, "min_top"),
        ({"merge_concavity": -0.1}, "merge_concavity"),
        ({"merge_radius_px": 0}, "merge_radius_px"),
    ],
)
def test_bad_split_parameters_name_the_parameter(change: dict[str, float], name: str) -> None:
    with pytest.raises(PipelineError, match=name):
        ProposalParams(**change)  # type: ignore[arg-type]
