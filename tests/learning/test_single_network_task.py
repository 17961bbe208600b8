"""The one-network training task shared by GG-CNN and the pose network."""

from __future__ import annotations

import torch

from dcl_arc_ros.learning.config import OptimConfig, from_dict, to_dict
from dcl_arc_ros.learning.grasp import GGCNN_PRESETS
from dcl_arc_ros.learning.grasp.trainer import GraspDataConfig, GraspTask, GraspTrainConfig
from dcl_arc_ros.learning.pose import POSENET_PRESETS
from dcl_arc_ros.learning.pose.trainer import PoseDataConfig, PoseTask, PoseTrainConfig
from dcl_arc_ros.learning.trainers.single_network import adam


def test_adam_takes_every_optim_setting() -> None:
    opt = adam([torch.nn.Parameter(torch.zeros(2))], OptimConfig(lr=3e-3, beta1=0.8, beta2=0.95, weight_decay=1e-4))
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (3e-3, (0.8, 0.95), 1e-4)


def test_checkpoint_names_stay_the_primary_network() -> None:
    torch.manual_seed(0)
    grasp = GraspTask(GraspTrainConfig(ggcnn=GGCNN_PRESETS["tiny"]))
    net_cfg = POSENET_PRESETS["tiny"]
    pose = PoseTask(PoseTrainConfig(network=net_cfg, data=PoseDataConfig(crop_size=net_cfg.crop_size)))
    for task, name in ((grasp, "ggcnn"), (pose, "posenet")):
        assert set(task.networks()) == set(task.optimizers()) == {name}
        assert task.networks()[name][1] is task.net


def test_train_step_updates_the_network_and_reports_the_loss() -> None:
    torch.manual_seed(0)
    size = 32
    task = GraspTask(GraspTrainConfig(ggcnn=GGCNN_PRESETS["tiny"], data=GraspDataConfig(input_size=size)))
    batch = {"input": torch.randn(2, 1, size, size), **{k: torch.rand(2, 1, size, size) for k in ("quality", "width")}}
    batch |= {"cos2": torch.ones(2, 1, size, size), "sin2": torch.zeros(2, 1, size, size)}
    before = [p.detach().clone() for p in task.net.parameters()]
    expected, _ = task.loss(batch)
    logs = task.train_step({"train": batch}, step=0)
    assert logs["loss"] == float(expected.detach())
    assert any(not torch.equal(a, b) for a, b in zip(before, task.net.parameters(), strict=True))


def test_data_configs_keep_the_frame_source_keys() -> None:
    cfg = from_dict(GraspDataConfig, {"source": "toy", "toy_frames": 3, "input_size": 16, "crop_size": 16})
    assert (cfg.source, cfg.toy_frames, cfg.paths, cfg.depth_from) == ("toy", 3, (), "sensor")
    assert list(to_dict(cfg))[:4] == ["source", "paths", "depth_from", "toy_frames"]
