"""PoseNet: shapes, the 6D decoding twin of the core's, crops from frames, and a few steps that lower the loss."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from dcl_arc_ros.core.pose_pipeline import (
    egocentric_to_allocentric,
    rotation_from_6d,
    rotation_to_6d,
    turn_pose_crop,
)
from dcl_arc_ros.learning.checkpoint import build_from_checkpoint
from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.pose import POSENET_PRESETS, PoseNet
from dcl_arc_ros.learning.pose.posenet import geodesic_angle, rotation_6d_to_matrix
from dcl_arc_ros.learning.pose.toy_data import TOY_INTRINSICS, ToyPoseFrames
from dcl_arc_ros.learning.pose.trainer import (
    SYMMETRY_SET_SIZE,
    PoseCropDataset,
    PoseDataConfig,
    PoseSample,
    PoseTask,
    PoseTrainConfig,
    _symmetric_min_mse,
    build_pose_samples,
    pose_samples_from_frame,
)
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training

torch.set_num_threads(1)

K = TOY_INTRINSICS


def _frame(seed: int) -> tuple[np.ndarray, np.ndarray, list[_Obj]]:
    f = ToyPoseFrames(seed + 1)[seed]
    rows = zip(f.object_info, f.object_poses, strict=True)
    objects = [_Obj(int(r[0]), int(r[1]), bool(r[2]), p, float(r[3])) for r, p in rows]
    return f.depth, f.instances, objects


@dataclass(frozen=True)
class _Obj:
    instance_id: int
    class_id: int
    novel: bool
    cam_T_obj: np.ndarray
    visible_fraction: float


def test_output_shapes() -> None:
    for name in ("tiny", "deploy"):
        cfg = POSENET_PRESETS[name]
        net = PoseNet(cfg).eval()
        logits, rot = net(torch.zeros(3, 1, cfg.crop_size, cfg.crop_size))
        assert logits.shape == (3, cfg.num_classes) and rot.shape == (3, 6)
        # Untrained, the rotation head decodes to the identity.
        torch.testing.assert_close(rotation_6d_to_matrix(rot), torch.eye(3).expand(3, 3, 3))


def test_torch_6d_decoding_matches_the_core() -> None:
    x = np.random.default_rng(0).normal(size=(16, 6))
    got = rotation_6d_to_matrix(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, rotation_from_6d(x), atol=1e-10)
    r = torch.from_numpy(rotation_from_6d(x))
    assert float(geodesic_angle(r, r).max()) < 1e-3


def test_samples_from_frame_use_allocentric_targets() -> None:
    depth, instances, objects = _frame(0)
    cfg = PoseDataConfig(crop_size=32, min_pixels=20)
    samples = pose_samples_from_frame(depth, instances, objects, K, cfg)
    samples = sorted(samples, key=lambda s: s.instance_id)
    assert [s.class_id for s in samples] == [o.class_id for o in objects]
    for s, o in zip(samples, objects, strict=True):
        assert s.image.shape == (1, 32, 32)
        np.testing.assert_allclose(s.rotation_cam, o.cam_T_obj[:3, :3])
        np.testing.assert_allclose(s.rotation_allo, egocentric_to_allocentric(s.rotation_cam, s.translation_est))
    occluded = [_Obj(o.instance_id, o.class_id, o.novel, o.cam_T_obj, 0.1) for o in objects]
    assert pose_samples_from_frame(depth, instances, occluded, K, cfg) == []


@pytest.mark.parametrize("rotation_loss", ["mse", "symmetric_min_mse"])
def test_a_few_training_steps_lower_the_loss(tmp_path: Path, rotation_loss: str) -> None:
    torch.manual_seed(0)
    net_cfg = POSENET_PRESETS["tiny"]
    cfg = PoseTrainConfig(
        network=net_cfg,
        rotation_loss=rotation_loss,  # type: ignore[arg-type]
        loop=LoopConfig(
            max_steps=40, batch_size=8, log_every=10, image_every=1000, checkpoint_every=40, progress=False
        ),
        data=PoseDataConfig(crop_size=net_cfg.crop_size, min_pixels=20),
    )
    data = PoseCropDataset.for_training(build_pose_samples(ToyPoseFrames(8), cfg.data, progress=False), cfg)
    assert len(data) == 16
    task = PoseTask(cfg)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    task.net.eval()
    with torch.no_grad():
        before, _ = task.loss(batch)
    run_training(task, {"train": data}, cfg.loop, tmp_path, run_config=cfg)
    task.net.eval()
    with torch.no_grad():
        after, logs = task.loss(batch)
    assert float(after) < 0.7 * float(before), (float(before), float(after))
    assert {"loss_ce", "loss_rot", "class_acc", "rot_err_deg"} <= set(logs)
    rebuilt = build_from_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch["input"])[1], task.net(batch["input"])[1])


def _primitive(sample_rotation: np.ndarray, catalogue_id: int) -> PoseSample:
    image = np.zeros((1, 8, 8), np.float32)
    return PoseSample(1, image, 0, sample_rotation, sample_rotation, np.zeros(3), False, catalogue_id)


def test_symmetric_min_mse_accepts_any_equivalent_rotation_and_ignores_spheres() -> None:
    gt = rotation_from_6d(np.random.default_rng(3).normal(size=6))
    half_turn = np.diag([-1.0, 1.0, -1.0])  # 180 degrees about y: the same box
    data = PoseCropDataset([_primitive(gt, 1000), _primitive(gt, 1000), _primitive(gt, 1002)], symmetry_sets=True)
    batch = torch.utils.data.default_collate([data[i] for i in range(3)])
    assert batch["rot6d_set"].shape == (3, SYMMETRY_SET_SIZE, 6)
    assert batch["rot_weight"].tolist() == [1.0, 1.0, 0.0]
    turned = torch.from_numpy(rotation_to_6d(gt @ half_turn)).float()
    far = torch.from_numpy(rotation_to_6d(gt @ _rot_x(0.5))).float()
    sphere_anything = torch.randn(6)
    sets, weights = batch["rot6d_set"], batch["rot_weight"]
    loss, err = _symmetric_min_mse(torch.stack([turned, turned, sphere_anything]), sets, weights)
    assert float(loss) == pytest.approx(0.0, abs=1e-10) and float(err) < 1e-3
    # The plain MSE would punish the same correct answer against the one ground truth.
    assert float(torch.nn.functional.mse_loss(turned, batch["rot6d"][0])) > 0.1
    # A wrong answer costs the same as its plain MSE to the nearest member; the sphere still adds nothing.
    loss, err = _symmetric_min_mse(torch.stack([far, far, sphere_anything]), sets, weights)
    nearest = float(torch.nn.functional.mse_loss(far, batch["rot6d"][0]))
    assert float(loss) == pytest.approx(nearest, rel=1e-5) and math.degrees(float(err)) == pytest.approx(
        math.degrees(0.5), abs=1e-3
    )


def test_turned_items_turn_the_crop_and_every_target_together() -> None:
    gt = rotation_from_6d(np.random.default_rng(4).normal(size=6))
    image = np.random.default_rng(5).uniform(-1, 1, size=(1, 16, 16)).astype(np.float32)
    sample = PoseSample(1, image, 0, gt, gt, np.zeros(3), False, 1000)  # a box
    data = PoseCropDataset([sample], symmetry_sets=True, turn_deg=180.0)
    torch.manual_seed(0)
    angles = []
    for _ in range(6):
        item = data[0]
        r_turn = item["rot6d_set"].double().numpy()[0]  # member 0 is the turned rotation itself
        turned = rotation_from_6d(r_turn)
        rel = turned @ gt.T
        assert rel[2, 2] == pytest.approx(1.0, abs=1e-5)  # a turn about the viewing ray only
        angle = -math.degrees(math.atan2(rel[1, 0], rel[0, 0]))
        angles.append(angle)
        expected, _ = turn_pose_crop(image, angle)
        np.testing.assert_allclose(item["input"].numpy(), expected, atol=2e-3)
        # the single target (not canonical here) turned too
        np.testing.assert_allclose(item["rotation"].double().numpy(), turned, atol=1e-5)
    assert np.ptp(angles) > 30.0  # different draws, not one fixed angle
    with pytest.raises(ConfigError, match="180"):
        PoseCropDataset([sample], turn_deg=200.0)


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def test_config_rejects_unknown_rotation_loss() -> None:
    from dcl_arc_ros.learning.errors import ConfigError

    with pytest.raises(ConfigError, match=r"rotation_loss.*'l1'"):
        PoseTrainConfig(rotation_loss="l1")  # type: ignore[arg-type]


def test_config_rejects_mismatched_crop_sizes() -> None:
    from dcl_arc_ros.learning.errors import ConfigError

    with pytest.raises(ConfigError, match="crop_size"):
        PoseTrainConfig(network=POSENET_PRESETS["tiny"], data=PoseDataConfig(crop_size=64))


def test_class_ids_map_catalogue_classes_to_outputs() -> None:
    depth, instances, objects = _frame(0)
    wanted = objects[0].class_id
    cfg = PoseDataConfig(crop_size=32, min_pixels=20, class_ids=(wanted,))
    samples = pose_samples_from_frame(depth, instances, objects, K, cfg)
    expected = sum(o.class_id == wanted for o in objects)
    assert len(samples) == expected and all(s.class_id == 0 for s in samples)
    from dcl_arc_ros.learning.errors import DatasetError

    raw = pose_samples_from_frame(depth, instances, objects, K, PoseDataConfig(crop_size=32, min_pixels=20))
    with pytest.raises(DatasetError, match="outside"):
        PoseCropDataset([s for s in raw if s.class_id == 1], num_classes=1)
