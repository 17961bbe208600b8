"""GG-CNN / GG-CNN2: output shapes, the sample adapter, and a few training steps that lower the loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcl_arc_ros.learning.checkpoint import build_from_checkpoint
from dcl_arc_ros.learning.grasp import GGCNN, GGCNN2, GGCNN2Config, GGCNNConfig
from dcl_arc_ros.learning.grasp.ggcnn import GGCNN2_PRESETS, GGCNN_PRESETS
from dcl_arc_ros.learning.grasp.losses import grasp_maps_loss
from dcl_arc_ros.learning.grasp.toy_data import ToyGraspFrames
from dcl_arc_ros.learning.grasp.trainer import GraspDataConfig, GraspSampleAdapter, GraspTask, GraspTrainConfig
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training

torch.set_num_threads(1)


@pytest.mark.parametrize("net_cls", [GGCNN, GGCNN2])
def test_output_shapes_at_300(net_cls: type[torch.nn.Module]) -> None:
    net = net_cls().eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 300, 300))
    assert len(out) == 4 and all(o.shape == (1, 1, 300, 300) for o in out)


@pytest.mark.parametrize("size", [24, 48, 50, 37])
def test_output_shapes_at_tiny_sizes(size: int) -> None:
    for net in (GGCNN(GGCNN_PRESETS["tiny"]), GGCNN2(GGCNN2_PRESETS["tiny"])):
        out = net(torch.zeros(2, 1, size, size + 12))
        assert all(o.shape == (2, 1, size, size + 12) for o in out)


def test_published_ggcnn_size() -> None:
    # The published GG-CNN has about 62k parameters; ours has the same layer sizes.
    n = sum(p.numel() for p in GGCNN(GGCNNConfig()).parameters())
    assert 60_000 < n < 65_000
    assert GGCNN2Config().dilations == (2, 4)


def test_adapter_prepares_inputs_and_flips_angles() -> None:
    base = ToyGraspFrames(4)
    cfg = GraspDataConfig(input_size=32, crop_size=40, flip=False)
    sample = GraspSampleAdapter(base, cfg, train=False)[0]
    assert set(sample) == {"input", "quality", "cos2", "sin2", "width"}
    assert all(v.shape == (1, 32, 32) for v in sample.values())
    assert torch.isfinite(sample["input"]).all() and abs(float(sample["input"].mean())) < 1e-4
    # Width: the toy's 12-px jaw opening in a 40-px crop resized to 32 px is 9.6 px, over the 150-px scale.
    assert float(base[0]["grasp_width"].max()) == 12.0
    assert float(sample["width"].max()) == pytest.approx(12.0 * 32 / 40 / 150.0, rel=1e-5)
    base_item = base[0]
    base_item["grasp_sin2"] = base_item["grasp_quality"].clone()  # a sin2 map that is visibly non-zero

    class _One(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return base_item

    torch.manual_seed(0)
    flipped = [
        GraspSampleAdapter(_One(), GraspDataConfig(input_size=48, crop_size=48), train=True)[0] for _ in range(8)
    ]
    signs = {float(torch.sign(f["sin2"].sum())) for f in flipped}
    assert signs == {-1.0, 1.0}  # some draws mirrored (sin 2a negated), some not


@pytest.mark.parametrize("network", ["ggcnn", "ggcnn2"])
def test_a_few_training_steps_lower_the_loss(network: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = GraspTrainConfig(
        network=network,  # type: ignore[arg-type]
        ggcnn=GGCNN_PRESETS["tiny"],
        ggcnn2=GGCNN2_PRESETS["tiny"],
        loop=LoopConfig(
            max_steps=40, batch_size=4, log_every=10, image_every=1000, checkpoint_every=40, progress=False
        ),
        data=GraspDataConfig(input_size=48, crop_size=48, flip=False),
    )
    data = GraspSampleAdapter(ToyGraspFrames(8), cfg.data, train=False)
    task = GraspTask(cfg)
    batch = torch.utils.data.default_collate([data[i] for i in range(8)])
    with torch.no_grad():
        before, _ = task.loss(batch)
    result = run_training(task, {"train": data}, cfg.loop, tmp_path, run_config=cfg)
    with torch.no_grad():
        after, parts = task.loss(batch)
    assert result.step == 40
    assert float(after) < 0.7 * float(before), (float(before), float(after))
    assert set(parts) == {"loss_quality", "loss_cos2", "loss_sin2", "loss_width"}
    assert (tmp_path / "tb").is_dir()
    rebuilt = build_from_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    with torch.no_grad():
        ref = task.net.eval()(batch["input"])
        got = rebuilt(batch["input"])
    for r, g in zip(ref, got, strict=True):
        torch.testing.assert_close(r, g)


def test_loss_is_zero_for_perfect_predictions() -> None:
    t = {k: torch.rand(2, 1, 8, 8) for k in ("quality", "cos2", "sin2", "width")}
    loss, _ = grasp_maps_loss((t["quality"], t["cos2"], t["sin2"], t["width"]), t)
    assert float(loss) == 0.0
