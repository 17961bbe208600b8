"""DCL and its baselines train on tiny unpaired 32x32 data; the MLP head learns unless frozen; synthesizers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dcl_arc_ros.learning.config import DepthRange, apply_overrides, load_yaml
from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.trainers.dcl import (
    DCL_PRESETS,
    DataConfig,
    GeneratorSynthesizer,
    SynthesisTask,
    ToyDepthDataset,
    config_for_method,
    load_dcl_config,
    make_synthesizer,
    make_task,
)
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


def _cfg(method: str, steps: int, **changes: object):
    cfg = config_for_method(DCL_PRESETS["tiny"], method)
    loop = LoopConfig(max_steps=steps, batch_size=4, progress=False, checkpoint_every=1000, seed=0)
    return dataclasses.replace(cfg, data=DataConfig(depth_range=DepthRange(0.0, 3.0)), loop=loop, **changes)


def _data() -> dict[str, ToyDepthDataset]:
    return {"source": ToyDepthDataset(32, seed=1), "real": ToyDepthDataset(32, seed=2, real_like=True)}


def _one_batch(use_rgb: bool = False) -> dict[str, dict[str, torch.Tensor]]:
    out = {}
    for name, ds in _data().items():
        batch = next(iter(DataLoader(ds, batch_size=4)))
        out[name] = batch if use_rgb else {k: v for k, v in batch.items() if k != "rgb"}
    return out


@pytest.mark.parametrize("method", ["dcl", "cut", "cyclegan"])
def test_a_few_steps_lower_the_loss(tmp_path: Path, method: str) -> None:
    seed_everything(0)
    cfg = _cfg(method, 24)
    result = run_training(make_task(cfg), _data(), cfg.loop, tmp_path, run_config=cfg)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 24
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    if method == "dcl":
        dc = [h["dc"] for h in result.history]
        assert sum(dc[-5:]) < sum(dc[:5])  # the differential NCE itself goes down


def test_dcl_rgb_uses_the_rgb_encoder() -> None:
    seed_everything(0)
    task = SynthesisTask(_cfg("dcl_rgb", 1))
    assert task.generator.rgb_encoder is not None
    before = [p.detach().clone() for p in task.generator.rgb_encoder.parameters()]
    logs = task.train_step(_one_batch(use_rgb=True), 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    after = list(task.generator.rgb_encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("freeze", [False, True])
def test_projection_head_is_trained_unless_frozen(freeze: bool) -> None:
    seed_everything(0)
    task = SynthesisTask(_cfg("dcl", 1, freeze_projector=freeze))
    head_before = [p.detach().clone() for p in task.projector.parameters()]
    gen_before = [p.detach().clone() for p in task.generator.parameters()]
    task.train_step(_one_batch(), 0)
    head_changed = [not torch.equal(a, b) for a, b in zip(head_before, task.projector.parameters(), strict=True)]
    gen_changed = [not torch.equal(a, b) for a, b in zip(gen_before, task.generator.parameters(), strict=True)]
    assert any(gen_changed)
    if freeze:
        assert not any(head_changed)
        assert "projector" not in task.optimizers()
    else:
        assert all(head_changed)  # every layer of the MLP head moves (the official code never steps it)
        assert "projector" in task.optimizers()


def test_yaml_configs_load_for_every_method() -> None:
    for name in ("dcl_tiny.yaml", "dcl_default.yaml"):
        path = REPO / "training" / "configs" / name
        raw = load_yaml(path)
        for method in ("dcl", "dcl_rgb", "cut", "cyclegan"):
            cfg = load_dcl_config(raw, source=str(path), method=method)
            assert cfg.method == method
            assert (cfg.generator.rgb_channels > 0) == (method == "dcl_rgb")
    tiny = load_yaml(REPO / "training/configs/dcl_tiny.yaml")
    assert load_dcl_config(tiny, source="t", method="cut").weights.dc == 1.0  # CUT's lambda_NCE
    assert load_dcl_config(tiny, source="t", method="cyclegan").weights.idt == 5.0  # 0.5 * lambda_cycle
    assert load_dcl_config(tiny, source="t").weights.dc == 1.5  # alpha
    default = load_dcl_config(load_yaml(REPO / "training/configs/dcl_default.yaml"), source="dcl_default.yaml")
    assert (default.weights.dc, default.weights.idt, default.contrastive.tau) == (1.5, 1.0, 0.07)
    assert (default.optim.lr, default.optim.beta1, default.loop.batch_size) == (2e-4, 0.5, 16)
    assert default.generator.n_blocks == 5 and default.generator.ngf == 32 and default.projector_units == 128
    with pytest.raises(ConfigError, match="sigmaa"):
        load_dcl_config(
            apply_overrides(load_yaml(REPO / "training/configs/dcl_tiny.yaml"), ["contrastive.sigmaa=1"]), source="x"
        )


def test_generator_synthesizer_from_checkpoint_keeps_metres_and_holes(tmp_path: Path) -> None:
    seed_everything(0)
    cfg = _cfg("dcl", 2)
    result = run_training(make_task(cfg), _data(), cfg.loop, tmp_path, run_config=cfg)
    assert result.last_checkpoint is not None
    synth = make_synthesizer("dcl", checkpoint=result.last_checkpoint)
    assert isinstance(synth, GeneratorSynthesizer)
    clean = torch.stack([ToyDepthDataset(4, seed=5)[i]["depth"] for i in range(4)])
    out = synth(clean)
    assert out.shape == clean.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 3.0
    # Force every pixel to be a hole: the synthesizer returns exactly 0 m there.
    with torch.no_grad():
        synth.generator.head[-1].bias[1] = 1e4
    assert torch.count_nonzero(synth(clean)) == 0
    assert torch.equal(make_synthesizer("clean")(clean), clean)
    with pytest.raises(ConfigError, match="checkpoint"):
        make_synthesizer("cut")


@pytest.mark.parametrize("method", ["dcl", "cut"])
def test_the_metric_anchor_applies_to_dcl_and_cut_alike(method: str) -> None:
    seed_everything(0)
    base = _cfg(method, 1)
    with_anchor = dataclasses.replace(base, weights=dataclasses.replace(base.weights, metric=1.0))
    logs = SynthesisTask(with_anchor).train_step(_one_batch(), 0)
    assert np.isfinite(logs["metric"]) and logs["metric"] >= 0.0
    assert "metric" not in SynthesisTask(base).train_step(_one_batch(), 0)
