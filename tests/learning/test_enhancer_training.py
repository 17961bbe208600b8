"""The depth cleaner and the normal estimator train on tiny pairs; losses are masked; the CLIs run end to end."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from dcl_arc_ros.learning.checkpoint import build_from_checkpoint, load_checkpoint
from dcl_arc_ros.learning.config import DepthRange, load_yaml
from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.losses.depth import masked_gradient_loss, masked_l1
from dcl_arc_ros.learning.trainers.dcl import ToyDepthDataset
from dcl_arc_ros.learning.trainers.enhancer import (
    ENHANCER_PRESETS,
    EnhancerDataConfig,
    EnhancerTask,
    clean_depth,
    load_enhancer_config,
)
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


def test_masked_losses_ignore_invalid_pixels() -> None:
    target = torch.zeros(1, 1, 4, 4)
    pred = torch.zeros(1, 1, 4, 4)
    pred[..., 0, 0] = 5.0  # a big error, but on an invalid pixel
    mask = torch.ones(1, 1, 4, 4)
    mask[..., 0, 0] = 0
    assert masked_l1(pred, target, mask) == 0
    assert masked_gradient_loss(pred, target, mask) == 0
    mask[..., 0, 0] = 1
    assert masked_l1(pred, target, mask) == pytest.approx(5.0 / 16)
    assert masked_gradient_loss(pred, target, mask) > 0
    assert masked_l1(pred, target, torch.zeros_like(mask)) == 0  # no valid pixel: 0, not NaN


def _tiny(synthesis: str, steps: int, **changes: object):
    cfg = ENHANCER_PRESETS["tiny"]
    loop = LoopConfig(max_steps=steps, batch_size=4, progress=False, checkpoint_every=1000, seed=0)
    data = EnhancerDataConfig(depth_range=DepthRange(0.0, 3.0))
    return dataclasses.replace(cfg, synthesis=synthesis, loop=loop, data=data, **changes)


def test_cleaner_learns_to_remove_noise_and_fill_holes(tmp_path: Path) -> None:
    seed_everything(0)
    cfg = _tiny("paired", 40)
    data = ToyDepthDataset(32, real_like=True, seed=3)  # sensor-like depth + its clean ground truth
    result = run_training(EnhancerTask(cfg), {"train": data}, cfg.loop, tmp_path, run_config=cfg)
    losses = [h["loss"] for h in result.history]
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])

    net = build_from_checkpoint(result.last_checkpoint)
    test = [ToyDepthDataset(8, real_like=True, seed=99)[i] for i in range(8)]
    noisy = torch.stack([s["depth"] for s in test])
    gt = torch.stack([s["depth_clean"] for s in test])
    cleaned = clean_depth(net, noisy, cfg.data.depth_range)
    holes = noisy == 0
    assert holes.any()
    assert (cleaned[holes] > 0).all()  # holes are filled
    err_cleaned = (cleaned - gt).abs()[holes].mean()
    assert err_cleaned < gt[holes].mean()  # better than leaving 0 m in the holes


def test_empirical_synthesis_makes_the_inputs(tmp_path: Path) -> None:
    seed_everything(0)
    task = EnhancerTask(_tiny("empirical", 1))
    sample = {k: torch.stack([ToyDepthDataset(4, seed=5)[i][k] for i in range(4)]) for k in ("depth_clean", "rgb")}
    x, _ = task.make_input(sample)
    clean_norm = sample["depth_clean"] / 1.5 - 1.0
    assert x.shape == clean_norm.shape
    assert not torch.allclose(x, clean_norm)  # the sensor model changed the depth
    logs = task.train_step({"train": sample}, 0)
    assert torch.isfinite(torch.tensor(logs["loss"]))


class _Planes(Dataset):
    """Tilted planes with their analytic normals (orthographic approximation)."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        a, b = (torch.rand(2, generator=g) - 0.5).tolist()
        yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        depth = 1.5 + a * (xx - 16) / 16 + b * (yy - 16) / 16
        n = torch.tensor([a / 16, b / 16, 1.0 / 32])  # from the depth gradient per pixel (a learnable target)
        n = n / n.norm()
        normals = n.view(3, 1, 1).expand(3, 32, 32).clone()
        return {"depth_clean": depth[None], "normals": normals}


def test_normal_estimator_outputs_unit_vectors_and_learns() -> None:
    seed_everything(0)
    cfg = dataclasses.replace(_tiny("clean", 30), target="normals", net=ENHANCER_PRESETS["tiny_normals"].net)
    task = EnhancerTask(cfg)
    loader = torch.utils.data.DataLoader(_Planes(), batch_size=4, shuffle=True)
    losses = []
    for _ in range(8):
        for batch in loader:
            losses.append(task.train_step({"train": batch}, 0)["loss"])
    assert sum(losses[-4:]) < 0.5 * sum(losses[:4])
    x, _ = task.make_input(next(iter(loader)))
    with torch.no_grad():
        pred = task.net.eval()(x)
    assert pred.shape[1] == 3
    torch.testing.assert_close(pred.norm(dim=1), torch.ones(pred.shape[0], *pred.shape[2:]), atol=1e-4, rtol=0)


def test_config_validation_names_the_problem() -> None:
    raw = load_yaml(REPO / "training/configs/enhancer_tiny.yaml")
    cfg = load_enhancer_config(raw, source="enhancer_tiny.yaml")
    assert cfg.net.base_channels == 8 and cfg.data.depth_range.max_m == 3.0
    with pytest.raises(ConfigError, match="synthesis_checkpoint"):
        load_enhancer_config({**raw, "synthesis": "dcl"}, source="x.yaml")
    with pytest.raises(ConfigError, match=r"x\.yaml"):
        load_enhancer_config({**raw, "unknown_key": 1}, source="x.yaml")
    default = load_enhancer_config(load_yaml(REPO / "training/configs/enhancer_default.yaml"), source="d.yaml")
    assert default.net.internal_downsample == 4


@pytest.mark.slow
def test_train_and_export_clis_end_to_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = [
        sys.executable,
        "training/train_enhancer.py",
        "--config",
        "training/configs/enhancer_tiny.yaml",
        "--out",
        str(run),
        "--no-progress",
    ]
    proc = subprocess.run([*base, "--set", "loop.max_steps=3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = subprocess.run([*base, "--set", "loop.max_steps=3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = subprocess.run(
        [
            sys.executable,
            "training/train_enhancer.py",
            "--out",
            str(run),
            "--resume",
            "--set",
            "loop.max_steps=5",
            "--no-progress",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(run / "checkpoints" / "latest.pt").step == 5

    onnx = tmp_path / "cleaner.onnx"
    exported = subprocess.run(
        [
            sys.executable,
            "export/export_onnx.py",
            "--checkpoint",
            str(run / "checkpoints" / "latest.pt"),
            "--out",
            str(onnx),
            "--height",
            "48",
            "--width",
            "64",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    report = json.loads(exported.stdout[exported.stdout.index("{") :])
    assert report["parity"]["max_rel"] <= 1e-4
    assert onnx.is_file() and onnx.with_suffix(".json").is_file()


def test_fine_tuning_starts_from_the_given_cleaner(tmp_path: Path) -> None:
    seed_everything(0)
    cfg = _tiny("paired", 2)
    first = run_training(EnhancerTask(cfg), {"train": ToyDepthDataset(8, real_like=True)}, cfg.loop, tmp_path)
    assert first.last_checkpoint is not None
    seed_everything(7)
    tuned = EnhancerTask(dataclasses.replace(cfg, init_checkpoint=str(first.last_checkpoint)))
    saved = load_checkpoint(first.last_checkpoint).state_dicts["cleaner"]
    for key, value in tuned.net.state_dict().items():
        torch.testing.assert_close(value, saved[key])
    other = dataclasses.replace(cfg, init_checkpoint=str(first.last_checkpoint), net=ENHANCER_PRESETS["deploy"].net)
    with pytest.raises(ConfigError, match="differs"):
        EnhancerTask(other)
