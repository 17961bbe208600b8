"""Pose maths: 6D rotation round trip, geodesic error, allocentric rotation, crops, translation, the pipeline."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import PipelineError
from dcl_arc_ros.core.pose_pipeline import (
    PoseCropParams,
    PosePipeline,
    allocentric_to_egocentric,
    egocentric_to_allocentric,
    geodesic_distance,
    prepare_pose_input,
    random_rotations,
    ray_rotation,
    rotation_from_6d,
    rotation_to_6d,
    rotation_to_quaternion,
    translation_from_depth,
    turn_pose_crop,
)
from dcl_arc_ros.core.proposals import ObjectCrop
from dcl_arc_ros.core.sidecar import ModelSidecar, TensorSpec


def _random_rotations(n: int, seed: int = 0) -> np.ndarray:
    return random_rotations(n, np.random.default_rng(seed))


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_6d_round_trip() -> None:
    r = _random_rotations(50)
    np.testing.assert_allclose(rotation_from_6d(rotation_to_6d(r)), r, atol=1e-12)


def test_6d_decodes_any_vector_to_a_rotation() -> None:
    x = np.random.default_rng(3).normal(size=(100, 6)) * 5
    r = rotation_from_6d(x)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-10)
    # The first column keeps the direction of the first vector.
    np.testing.assert_allclose(r[:, :, 0], x[:, :3] / np.linalg.norm(x[:, :3], axis=1, keepdims=True), atol=1e-12)
    # Scaling the two vectors or adding the first to the second does not change the rotation.
    y = np.concatenate([2 * x[:, :3], 0.5 * x[:, 3:] + x[:, :3]], axis=1)
    np.testing.assert_allclose(rotation_from_6d(y), r, atol=1e-9)


def test_geodesic_distance() -> None:
    r = _random_rotations(20, seed=1)
    np.testing.assert_allclose(geodesic_distance(r, r), 0.0, atol=1e-6)
    for angle in (0.1, 1.0, 2.5, math.pi):
        assert float(geodesic_distance(np.eye(3), _rot_z(angle))) == pytest.approx(angle, abs=1e-6)
    # Left-multiplying both by the same rotation keeps the distance.
    a, b = r[:10], r[10:]
    g = _random_rotations(1, seed=9)[0]
    np.testing.assert_allclose(geodesic_distance(g @ a, g @ b), geodesic_distance(a, b), atol=1e-9)


def _bar_crop(size: int, yaw: float) -> np.ndarray:
    """A crop of a bar from the centre towards image direction (cos yaw, sin yaw) (u right, v down), background +1.

    Seen on the optical axis, that is an object whose x axis is Rz(yaw)[:, 0] in the camera frame.
    """
    v, u = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
    along = u * math.cos(yaw) + v * math.sin(yaw)
    across = -u * math.sin(yaw) + v * math.cos(yaw)
    image = np.ones((1, size, size), np.float32)
    image[0][(along > 2) & (along < size / 2 - 3) & (np.abs(across) < 3)] = -0.5
    return image


def _bar_direction(image: np.ndarray) -> np.ndarray:
    v, u = np.nonzero(image[0] < 0.25)
    c = (image.shape[-1] - 1) / 2.0
    d = np.array([u.mean() - c, v.mean() - c])
    return d / np.linalg.norm(d)


@pytest.mark.parametrize("angle_deg", [90.0, -37.0, 150.0])
def test_turning_a_crop_turns_the_object_by_the_returned_rotation(angle_deg: float) -> None:
    yaw = 0.4
    rotation = _rot_z(yaw)  # the object's allocentric rotation (on the optical axis: the egocentric one)
    turned, r_turn = turn_pose_crop(_bar_crop(33, yaw), angle_deg)
    assert turned.shape == (1, 33, 33) and turned.dtype == np.float32
    np.testing.assert_allclose(r_turn.T @ r_turn, np.eye(3), atol=1e-12)
    # The bar in the turned image points where the turned rotation says the object's x axis now projects to.
    x_axis = (r_turn @ rotation)[:2, 0]
    np.testing.assert_allclose(_bar_direction(turned), x_axis / np.linalg.norm(x_axis), atol=0.03)
    # ... which is the crop of the same object drawn at the turned rotation.
    redrawn = _bar_crop(33, math.atan2(x_axis[1], x_axis[0]))
    a, b = turned[0] < 0.25, redrawn[0] < 0.25
    assert (a & b).sum() / (a | b).sum() > 0.7  # the same bar, up to resampling at its edges
    # Uncovered corners are background; (S, S) input gives (S, S) output.
    assert turned[0, 0, 0] == pytest.approx(1.0)
    assert turn_pose_crop(_bar_crop(33, yaw)[0], angle_deg)[0].shape == (33, 33)
    with pytest.raises(PipelineError, match="pose crop"):
        turn_pose_crop(np.zeros((2, 8, 9), np.float32), 10.0)


def test_ray_rotation_and_allocentric_round_trip() -> None:
    rays = np.array([[0.0, 0.0, 1.0], [0.3, -0.2, 1.0], [-0.5, 0.4, 0.8]])
    rr = ray_rotation(rays)
    np.testing.assert_allclose(
        rr @ np.array([0.0, 0.0, 1.0]), rays / np.linalg.norm(rays, axis=1, keepdims=True), atol=1e-12
    )
    np.testing.assert_allclose(rr[0], np.eye(3), atol=1e-12)
    r = _random_rotations(3, seed=4)
    np.testing.assert_allclose(egocentric_to_allocentric(allocentric_to_egocentric(r, rays), rays), r, atol=1e-12)


def test_quaternion_of_rotation() -> None:
    q = rotation_to_quaternion(_rot_z(1.0))
    np.testing.assert_allclose(q, [0.0, 0.0, math.sin(0.5), math.cos(0.5)], atol=1e-12)


def _crop_of_box(depth_value: float = 0.6) -> ObjectCrop:
    mask = np.zeros((20, 40), bool)
    mask[2:18, 5:35] = True
    depth = np.where(mask, np.float32(depth_value), np.float32(np.nan)).astype(np.float32)
    depth[10, 10] = depth_value + 0.03  # a bump: inside the normalised range
    return ObjectCrop(
        label=1,
        box=(100, 50, 140, 70),
        mask=mask,
        depth=depth,
        pixels=int(mask.sum()),
        extent_m=0.1,
        centroid_m=np.zeros(3),
    )


def test_prepare_pose_input_is_object_centric() -> None:
    params = PoseCropParams(crop_size=32, margin=0.2, depth_scale_m=0.15)
    prepared = prepare_pose_input(_crop_of_box(), params)
    assert prepared is not None
    assert prepared.image.shape == (1, 32, 32) and prepared.image.dtype == np.float32
    assert prepared.depth_m == pytest.approx(0.6)
    assert prepared.centre_uv == pytest.approx((100 + 19.5, 50 + 9.5))
    x0, y0, side = prepared.window
    assert side == 48 and x0 == 120 - 24 and y0 == 60 - 24
    img = prepared.image[0]
    assert img[0, 0] == pytest.approx(params.background)  # the border is background
    assert abs(float(img[16, 16])) < 1e-6  # the object's centre sits at its median depth -> 0
    assert img.max() <= 1.0 and img.min() >= -1.0


def test_translation_from_depth() -> None:
    k = Intrinsics(fx=500.0, fy=400.0, cx=320.0, cy=240.0, width=640, height=480)
    t = translation_from_depth((420.0, 140.0), 0.8, k, depth_offset_m=0.02)
    np.testing.assert_allclose(t, [100 * 0.82 / 500, -100 * 0.82 / 400, 0.82])


class _FakePoseModel:
    """Returns fixed logits and the 6D form of a fixed allocentric rotation."""

    def __init__(self, r_allo: np.ndarray, size: int = 32) -> None:
        self.sidecar = ModelSidecar(
            name="fake_pose",
            task="pose",
            model_version="0",
            inputs=(TensorSpec("depth", (1, 1, size, size), "float32", "depth_crop"),),
            outputs=(
                TensorSpec("logits", (1, 3), "float32", "class_logits"),
                TensorSpec("rot", (1, 6), "float32", "rotation_6d"),
            ),
            deploy_resolution=(size, size),
            normalisation={},
            training_config_sha256="0" * 64,
        )
        self.rot6d = rotation_to_6d(r_allo)
        self.seen: list[np.ndarray] = []

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.seen.append(np.asarray(inputs["depth"]))
        return {"logits": np.array([[0.1, 3.0, -1.0]], np.float32), "rot": self.rot6d[None].astype(np.float32)}


def test_pose_pipeline_on_crops() -> None:
    k = Intrinsics(fx=500.0, fy=500.0, cx=100.0, cy=60.0, width=200, height=120)
    r_allo = _rot_z(0.4)
    model = _FakePoseModel(r_allo)
    (pose,) = PosePipeline(model).poses_for_crops([_crop_of_box()], k)
    assert model.seen[0].shape == (1, 1, 32, 32)
    assert pose.class_id == 1
    assert pose.confidence == pytest.approx(math.exp(3.0) / (math.exp(0.1) + math.exp(3.0) + math.exp(-1.0)))
    np.testing.assert_allclose(pose.translation, k.deproject(119.5, 59.5, 0.6), atol=1e-9)
    np.testing.assert_allclose(egocentric_to_allocentric(pose.rotation, pose.translation), r_allo, atol=1e-9)
    with pytest.raises(PipelineError):
        PosePipeline(model, crop=PoseCropParams(crop_size=64))


def test_pose_pipeline_reports_catalogue_class_ids() -> None:
    import dataclasses

    k = Intrinsics(fx=500.0, fy=500.0, cx=100.0, cy=60.0, width=200, height=120)
    model = _FakePoseModel(np.eye(3))
    model.sidecar = dataclasses.replace(model.sidecar, extra={"class_ids": [7, 1002, 31], "rotation": "egocentric_6d"})
    (pose,) = PosePipeline(model).poses_for_crops([_crop_of_box()], k)
    assert pose.class_id == 1002  # output index 1
    np.testing.assert_allclose(pose.rotation, np.eye(3), atol=1e-12)  # egocentric: no ray correction


def test_pose_pipeline_refuses_class_ids_that_do_not_match_the_logits() -> None:
    import dataclasses

    model = _FakePoseModel(np.eye(3))
    model.sidecar = dataclasses.replace(model.sidecar, extra={"class_ids": [7, 31], "rotation": "egocentric_6d"})
    with pytest.raises(PipelineError, match="3 class logits but its sidecar lists 2 class_ids"):
        PosePipeline(model)


def _tabletop(k: Intrinsics) -> np.ndarray:
    """A fronto-parallel table 0.7 m away with three square blocks (centre, side and height in metres) on it, seen by
    ``k``: the same scene at any resolution. The largest block covers about 31,000 pixels at 640x480."""
    v, u = np.mgrid[0 : k.height, 0 : k.width]
    x, y = (u - k.cx) / k.fx * 0.7, (v - k.cy) / k.fy * 0.7
    depth = np.full((k.height, k.width), 0.7, np.float32)
    blocks = ((-0.15, -0.06, 0.05, 0.04), (-0.05, 0.09, 0.08, 0.05), (0.12, -0.04, 0.2, 0.06))
    for cx_m, cy_m, side_m, height_m in blocks:
        depth[(np.abs(x - cx_m) <= side_m / 2) & (np.abs(y - cy_m) <= side_m / 2)] -= np.float32(height_m)
    return depth


def test_a_wide_frame_is_posed_on_every_nth_pixel_with_boxes_in_full_image_pixels() -> None:
    low = Intrinsics(fx=615.0, fy=615.0, cx=319.5, cy=239.5, width=640, height=480)
    high = Intrinsics(fx=1230.0, fy=1230.0, cx=639.0, cy=479.0, width=1280, height=960)
    assert high.subsample(2) == low
    model = _FakePoseModel(_rot_z(0.4))
    depth = _tabletop(high)

    poses = PosePipeline(model)(depth, high)  # default working width 640: every 2nd pixel
    reference = PosePipeline(model, working_width=0)(depth[::2, ::2], low)
    assert len(poses) == len(reference) == 3
    for pose, ref in zip(poses, reference, strict=True):
        np.testing.assert_array_equal(pose.translation, ref.translation)
        assert pose.box == tuple(2 * c for c in ref.box)
        x0, y0, x1, y1 = pose.box
        assert depth[(y0 + y1) // 2, (x0 + x1) // 2] < 0.7  # the full-image box is on the block

    # At full resolution the pixel-valued size filter (max_pixels 80,000, tuned at 640x480) drops the largest block.
    assert len(PosePipeline(model, working_width=0)(depth, high)) == 2
    with pytest.raises(PipelineError, match="working_width"):
        PosePipeline(model, working_width=-1)
