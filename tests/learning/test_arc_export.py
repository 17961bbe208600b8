"""The whole ARC inference path (T -> A's hard mask -> I -> D) as one ONNX graph: parity, exact mask, sidecar, and
the pure deployment pipeline running it through the ONNX Runtime backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dcl_arc_ros.core.arc_pipeline import ARCDepthPipeline, ARCModelSpec, preprocess_rgb
from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.sidecar import read_sidecar
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.learning.arc.batches import ARCData
from dcl_arc_ros.learning.arc.config import ARCConfig, config_from_mapping
from dcl_arc_ros.learning.arc.export import export_arc, export_arc_checkpoint
from dcl_arc_ros.learning.arc.model import ARCInference
from dcl_arc_ros.learning.arc.stages import build_system, run_stage
from dcl_arc_ros.learning.arc.toy_data import ToySceneDataset
from dcl_arc_ros.learning.arc.variants import get_variant

H, W = 32, 48
pytestmark = pytest.mark.slow  # the torch.export-based exporter takes tens of seconds per graph on this machine


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def tiny_config() -> ARCConfig:
    return config_from_mapping({
        "model": {"height": H, "width": W, "ngf": 8, "ndf": 8, "translator_blocks": 1, "inpainting_blocks": 1,
                  "attention_ngf": 4, "attention_blocks": 1, "depth_ngf": 8, "depth_levels": 3, "disc_layers": 2,
                  "depth_max_m": 8.0},
        "schedule": {"pretrain_d_steps": 1, "checkpoint_every": 0, "image_every": 0},
    })  # fmt: skip


def full_model_with_a_real_mask(config: ARCConfig) -> ARCInference:
    """arc_full with random weights and an attention head whose logits spread around 0 (about half removed)."""
    system = build_system(config, get_variant("arc_full"))
    assert system.attention is not None
    head = system.attention.net.head[-1]
    torch.nn.init.normal_(head.weight, std=1.0)
    torch.nn.init.zeros_(head.bias)
    return ARCInference.from_system(system).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ARCInference, ARCConfig, Path]:
    torch.manual_seed(0)
    config = tiny_config()
    model = full_model_with_a_real_mask(config)
    result = export_arc(model, config, get_variant("arc_full"), tmp_path_factory.mktemp("arc") / "arc_full.onnx")
    assert result.parity.max_rel <= 1e-4
    assert result.mask_parity.mismatched_away_from_threshold == 0
    return model, config, result.onnx_path


def test_onnx_matches_pytorch_on_random_inputs_and_the_mask_exactly(
    exported: tuple[ARCInference, ARCConfig, Path],
) -> None:
    model, _, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["rgb"]
    assert [o.name for o in session.get_outputs()] == ["depth", "mask", "decluttered"]
    generator = torch.Generator().manual_seed(123)
    identical_masks = 0
    for _ in range(3):
        rgb = torch.rand(1, 3, H, W, generator=generator) * 2 - 1
        depth, mask, decluttered = session.run(None, {"rgb": rgb.numpy()})
        with torch.no_grad():
            want = [t.numpy() for t in model(rgb)]
            logits = model.attention.logits(rgb).numpy()  # type: ignore[union-attr]
        assert set(np.unique(mask).tolist()) == {0.0, 1.0}  # exactly binary, and A really removes something
        away = np.abs(logits) > 1e-3
        assert np.array_equal(mask[away], want[1][away])
        if np.array_equal(mask, want[1]):  # with identical masks the continuous outputs must agree tightly
            identical_masks += 1
            for got, ref in ((depth, want[0]), (decluttered, want[2])):
                assert np.max(np.abs(got - ref)) <= 1e-4 * max(np.max(np.abs(ref)), 1e-6)
        kept = np.broadcast_to(mask == 1, decluttered.shape)
        translated = model.translator(rgb).detach().numpy()  # type: ignore[misc]
        np.testing.assert_allclose(decluttered[kept], translated[kept], atol=1e-5)  # Eq. 3 in the exported graph
    assert identical_masks >= 2  # a flip needs a logit within float error of 0: rare, so the check above really ran


def test_sidecar_describes_the_graph_and_the_pipeline_reads_it(exported: tuple[ARCInference, ARCConfig, Path]) -> None:
    _, config, path = exported
    sidecar = read_sidecar(path.with_suffix(".json"))
    assert sidecar.task == "rgb_to_depth" and sidecar.deploy_resolution == (H, W)
    assert sidecar.extra["method"] == "arc_full" and sidecar.extra["modules"] == ["T", "A", "I", "D"]
    spec = ARCModelSpec.from_sidecar(sidecar)
    assert (spec.height, spec.width) == (H, W)
    assert spec.normalisation.depth_max_m == config.model.depth_max_m == 8.0
    names = (spec.input_name, spec.depth_name, spec.mask_name, spec.image_name)
    assert names == ("rgb", "depth", "mask", "decluttered")


def test_pipeline_runs_the_exported_model_through_the_onnxruntime_backend(
    exported: tuple[ARCInference, ARCConfig, Path],
) -> None:
    model, _, path = exported
    pipeline = ARCDepthPipeline(load_model(path))
    rgb = np.random.default_rng(0).integers(0, 256, (H * 2, W * 2, 3), dtype=np.uint8)
    result = pipeline(rgb, Intrinsics(fx=100.0, fy=100.0, cx=47.5, cy=31.5, width=W * 2, height=H * 2))
    assert result.depth_m.shape == (H, W) and result.depth_m.dtype == np.float32
    assert np.nanmin(result.depth_m) >= 0.0 and np.nanmax(result.depth_m) <= 8.0
    assert set(np.unique(result.mask).tolist()) <= {0, 255} and result.decluttered.shape == (H, W, 3)
    assert result.intrinsics is not None and (result.intrinsics.width, result.intrinsics.height) == (W, H)
    assert result.intrinsics.fx == pytest.approx(50.0)
    with torch.no_grad():  # the removed pixels are the ones the PyTorch mask removes (away from the threshold)
        x = torch.from_numpy(preprocess_rgb(rgb, pipeline.spec))
        keep = model.attention.hard_mask(x)[0, 0].numpy()  # type: ignore[union-attr]
        logits = model.attention.logits(x)[0, 0].numpy()  # type: ignore[union-attr]
    away = np.abs(logits) > 1e-3
    assert np.array_equal((result.mask == 255)[away], (keep == 0)[away])


def test_export_from_a_stage_checkpoint_alone(tmp_path: Path) -> None:
    config = tiny_config()
    data = ARCData(ToySceneDataset(4, H, W, domain="synthetic"), ToySceneDataset(4, H, W, domain="real"))
    stage = run_stage(
        "pretrain_D", config, get_variant("mix"), data, tmp_path / "run", progress=False, tensorboard=False
    )
    result = export_arc_checkpoint(stage.checkpoint, tmp_path / "mix.onnx")
    sidecar = read_sidecar(result.sidecar_path)
    assert sidecar.extra["method"] == "mix" and sidecar.extra["checkpoint_stage"] == "pretrain_D"
    assert sidecar.extra["modules"] == ["D"] and result.parity.max_rel <= 1e-4
    assert len(sidecar.model_sha256) == 64 and len(sidecar.training_config_sha256) == 64
