"""The small normal estimator of the DCL evaluation (training/configs/normals_eval.yaml) learns from depth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from dcl_arc_ros.learning.config import load_yaml
from dcl_arc_ros.learning.losses.depth import normal_angle_loss
from dcl_arc_ros.learning.trainers.enhancer import EnhancerTask, load_enhancer_config
from dcl_arc_ros.learning.trainers.loop import seed_everything

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


def _tilted_planes(n: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    """Planes z = a + b x + c y seen by a pinhole camera (f = size), with their exact camera-frame normals."""
    g = torch.Generator().manual_seed(seed)
    v, u = torch.meshgrid(torch.arange(size) - size / 2, torch.arange(size) - size / 2, indexing="ij")
    depth, normals = [], []
    for _ in range(n):
        a, b, c = 1.0 + torch.rand((), generator=g), *(0.6 * torch.rand(2, generator=g) - 0.3)
        z = a / (1.0 - b * u / size - c * v / size)  # the plane z = a + b X + c Y with X = z u / f, Y = z v / f
        depth.append(z)
        normal = torch.tensor([b, c, -1.0])
        normals.append((normal / normal.norm())[:, None, None].expand(3, size, size))
    return {
        "depth": torch.stack(depth)[:, None],
        "depth_clean": torch.stack(depth)[:, None],
        "normals": torch.stack(normals),
    }


def test_normal_net_of_the_evaluation_lowers_its_angle_loss_in_a_few_steps() -> None:
    cfg = load_enhancer_config(dict(load_yaml(REPO / "training/configs/normals_eval.yaml")), source="normals_eval")
    assert cfg.target == "normals" and cfg.net.out_kind == "normals"
    cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, batch_size=4, progress=False))
    seed_everything(0)
    task = EnhancerTask(cfg)
    batch = {"train": _tilted_planes(4, 32, seed=1)}

    def loss_now() -> float:
        task.net.eval()
        with torch.no_grad():
            x, _ = task.make_input(batch["train"])
            pred = task.net(x)
        task.net.train()
        assert torch.allclose(pred.norm(dim=1), torch.ones(()), atol=1e-4)  # unit normals out
        return float(normal_angle_loss(pred, batch["train"]["normals"], torch.ones_like(x)))

    before = loss_now()
    for step in range(30):
        task.train_step(batch, step)
    after = loss_now()
    assert after < 0.7 * before, (before, after)


def test_angle_loss_matches_cosine_similarity() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 3, 5, 6, generator=g), F.normalize(torch.randn(2, 3, 5, 6, generator=g), dim=1)
    mask = torch.ones(2, 1, 5, 6)
    expected = (1.0 - F.cosine_similarity(pred, target, dim=1)).mean()
    torch.testing.assert_close(normal_angle_loss(pred, target, mask), expected)
