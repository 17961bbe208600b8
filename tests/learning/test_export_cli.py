"""export/export_onnx.py is the one export entry point: it recognises ARC stage and pose checkpoints by their content
and exports each at its training resolution, and refuses a deploy size it would ignore."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from dcl_arc_ros.core.sidecar import read_sidecar
from dcl_arc_ros.learning.arc.batches import ARCData
from dcl_arc_ros.learning.arc.config import config_from_mapping
from dcl_arc_ros.learning.arc.stages import run_stage
from dcl_arc_ros.learning.arc.toy_data import ToySceneDataset
from dcl_arc_ros.learning.arc.variants import get_variant
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.pose import POSENET_PRESETS
from dcl_arc_ros.learning.pose.trainer import PoseDataConfig, PoseTask, PoseTrainConfig

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow  # two torch.export-based exports


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_arc_stage_checkpoint_exports_at_its_resolution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], load_script: Callable[[str], ModuleType]
) -> None:
    h, w = 32, 48
    config = config_from_mapping({
        "model": {"height": h, "width": w, "ngf": 8, "ndf": 8, "translator_blocks": 1, "inpainting_blocks": 1,
                  "attention_ngf": 4, "attention_blocks": 1, "depth_ngf": 8, "depth_levels": 3, "disc_layers": 2},
        "schedule": {"pretrain_d_steps": 1, "checkpoint_every": 0, "image_every": 0},
    })  # fmt: skip
    data = ARCData(ToySceneDataset(4, h, w, domain="synthetic"), ToySceneDataset(4, h, w, domain="real"))
    stage = run_stage(
        "pretrain_D", config, get_variant("mix"), data, tmp_path / "run", progress=False, tensorboard=False
    )
    cli = load_script("export/export_onnx.py")
    assert cli.checkpoint_family(stage.checkpoint) == "arc"

    out = tmp_path / "arc.onnx"
    refused = cli.main(["--checkpoint", str(stage.checkpoint), "--out", str(out), "--height", "480", "--width", "640"])
    assert refused == 2 and "training resolution" in capsys.readouterr().err and not out.exists()

    assert cli.main(["--checkpoint", str(stage.checkpoint), "--out", str(out), "--model-version", "0.3.0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["family"] == "arc" and summary["parity"]["max_rel"] <= 1e-4
    assert summary["mask_parity"]["mismatched_away_from_threshold"] == 0
    sidecar = read_sidecar(out.with_suffix(".json"))
    assert sidecar.model_version == "0.3.0" and sidecar.extra["method"] == "mix"


def test_pose_checkpoint_exports_and_missing_files_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], load_script: Callable[[str], ModuleType]
) -> None:
    net_cfg = POSENET_PRESETS["tiny"]
    cfg = PoseTrainConfig(network=net_cfg, data=PoseDataConfig(crop_size=net_cfg.crop_size))
    task = PoseTask(cfg)
    ckpt = save_checkpoint(tmp_path / "pose.pt", step=1, networks=task.networks(), run_config=cfg, primary="posenet")
    cli = load_script("export/export_onnx.py")
    assert cli.checkpoint_family(ckpt) == "pose"
    out = tmp_path / "pose.onnx"
    assert cli.main(["--checkpoint", str(ckpt), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["family"] == "pose" and summary["parity"]["max_rel"] <= 1e-4
    assert read_sidecar(out.with_suffix(".json")).task == "pose"

    missing = tmp_path / "nope.pt"
    assert cli.main(["--checkpoint", str(missing), "--out", str(tmp_path / "x.onnx")]) == 2
    assert str(missing) in capsys.readouterr().err
