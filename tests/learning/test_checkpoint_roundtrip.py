"""Checkpoints rebuild networks from their saved config alone, and the loop resumes where it stopped."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from dcl_arc_ros.learning.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from dcl_arc_ros.learning.errors import CheckpointError, ConfigError
from dcl_arc_ros.learning.registry import NetworkSpec
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("kind", "preset_name", "inputs"),
    [
        ("resnet_generator", "tiny", lambda: (torch.rand(2, 1, 32, 32) * 2 - 1,)),
        ("resnet_generator", "tiny_rgb", lambda: (torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32))),
        ("patchgan", "tiny", lambda: (torch.rand(2, 1, 32, 32),)),
        ("unet", "tiny", lambda: (torch.rand(2, 1, 32, 32) * 2 - 1,)),
    ],
)
def test_build_from_checkpoint_reproduces_outputs(
    tmp_path: Path, kind: str, preset_name: str, inputs: Callable[[], tuple[torch.Tensor, ...]]
) -> None:
    torch.manual_seed(0)
    spec = NetworkSpec.from_preset(kind, preset_name)
    net = spec.build()
    # Change weights and running statistics away from initialisation so a silent re-init would be caught.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.train()
    x = inputs()
    net(*x)
    net.eval()
    want = net(*x)
    path = save_checkpoint(tmp_path / "c.pt", step=7, networks={"net": (spec, net)}, run_config={"a": 1})

    rebuilt = build_from_checkpoint(path)
    assert not rebuilt.training
    torch.testing.assert_close(rebuilt(*x), want)
    ckpt = load_checkpoint(path)
    assert ckpt.step == 7
    assert ckpt.networks["net"] == spec
    assert ckpt.run_config == {"a": 1}


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"missing\.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        load_checkpoint(bad)
    spec = NetworkSpec.from_preset("unet", "tiny")
    path = save_checkpoint(tmp_path / "ok.pt", step=1, networks={"net": (spec, spec.build())})
    with pytest.raises(CheckpointError, match="'other'"):
        build_from_checkpoint(path, "other")


def test_unknown_config_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="ngff"):
        NetworkSpec.from_dict({"kind": "unet", "config": {"ngff": 3}}, source="x.yaml")


class _Ramp(Dataset):
    """depth_clean = a plane; depth = the same plane, offset (a trivially learnable mapping)."""

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(3)
        self.clean = [
            torch.rand(1, 1, 1, generator=g) * torch.linspace(-0.5, 0.5, 16).view(1, 1, 16).expand(1, 16, 16)
            for _ in range(n)
        ]

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"depth": self.clean[i] + 0.2, "depth_clean": self.clean[i]}


class _RegressionTask:
    """A minimal TrainTask: a tiny U-Net regresses depth_clean from depth."""

    primary = "net"

    def __init__(self) -> None:
        self.spec = NetworkSpec.from_preset("unet", "tiny", residual=True)
        self.net = self.spec.build()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)

    def networks(self) -> dict[str, tuple[NetworkSpec, nn.Module]]:
        return {"net": (self.spec, self.net)}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": self.opt}

    def distribute(self, wrap: Callable[[nn.Module], nn.Module]) -> None:  # pragma: no cover - single process here
        self.net = wrap(self.net)

    def train_step(self, batch: Mapping[str, Any], step: int) -> dict[str, float]:
        b = batch["train"]
        loss = (self.net(b["depth"]) - b["depth_clean"]).abs().mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def image_grids(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"input": (batch["train"]["depth"] + 1) / 2}


def test_resume_continues_step_count_and_state(tmp_path: Path) -> None:
    data = {"train": _Ramp()}
    seed_everything(0)
    first = _RegressionTask()
    cfg = LoopConfig(max_steps=4, batch_size=4, checkpoint_every=2, log_every=1, image_every=2, progress=False)
    r1 = run_training(first, data, cfg, tmp_path, run_config=cfg)
    assert r1.step == 4 and len(r1.history) == 4
    assert (tmp_path / "checkpoints" / "latest.pt").is_file()
    assert (tmp_path / "config.yaml").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert "images/input" in events.Tags()["images"]

    seed_everything(123)  # a different init: everything must come from the checkpoint
    second = _RegressionTask()
    cfg6 = LoopConfig(max_steps=6, batch_size=4, checkpoint_every=2, log_every=1, image_every=2, progress=False)
    r2 = run_training(second, data, cfg6, tmp_path, run_config=cfg6, resume=True)
    assert r2.step == 6
    assert len(r2.history) == 2  # only the two missing steps ran
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert ckpt.step == 6
    assert ckpt.extra["data"]["train"]["epoch"] == 1  # 16 samples / batch 4 = 4 batches per epoch
    assert ckpt.extra["data"]["train"]["position"] == 2
    # Adam's step counter continued from 4 rather than restarting.
    state = next(iter(second.opt.state.values()))
    assert int(state["step"]) == 6

    # Asking for fewer steps than already done runs nothing, and resuming a finished run keeps its last scalars.
    r3 = run_training(_RegressionTask(), data, cfg, tmp_path, resume=True)
    assert r3.step == 6 and r3.history == []
    r4 = run_training(_RegressionTask(), data, cfg6, tmp_path, resume=True)
    assert r4.step == 6 and r4.history == []
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
