"""GG-CNN: export to ONNX with a sidecar, parity with PyTorch, and the exported model inside GraspPipeline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.grasp_pipeline import GraspPipeline
from dcl_arc_ros.core.grasps import GraspDecodeParams
from dcl_arc_ros.core.sidecar import ModelSidecar
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.export import export_checkpoint
from dcl_arc_ros.learning.grasp.ggcnn import GGCNN_PRESETS
from dcl_arc_ros.learning.grasp.trainer import GraspDataConfig, GraspTask, GraspTrainConfig

torch.set_num_threads(1)
SIZE = 48


class _TorchModel:
    """The same network run by PyTorch behind the Model protocol."""

    def __init__(self, net: torch.nn.Module, sidecar: ModelSidecar) -> None:
        self.net, self.sidecar, self.provider = net.eval(), sidecar, "torch"

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = self.net(torch.from_numpy(np.asarray(inputs["depth"])))
        return {t.name: o.numpy() for t, o in zip(self.sidecar.outputs, out, strict=True)}


@pytest.mark.slow  # the torch.export-based exporter takes ~10 s
def test_export_parity_and_pipeline(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = GraspTrainConfig(ggcnn=GGCNN_PRESETS["tiny"], data=GraspDataConfig(input_size=SIZE, crop_size=SIZE))
    task = GraspTask(cfg)
    with torch.no_grad():  # make the quality head respond to the depth so that there are peaks to compare
        task.net.heads.quality.bias.fill_(0.3)
    ckpt = save_checkpoint(tmp_path / "ggcnn.pt", step=1, networks=task.networks(), run_config=cfg, primary="ggcnn")
    result = export_checkpoint(ckpt, tmp_path / "ggcnn.onnx", height=SIZE, width=SIZE)
    assert result.parity.max_rel <= 1e-4

    model = load_model(result.onnx_path)
    sc = model.sidecar
    assert sc.task == "grasp_maps" and sc.deploy_resolution == (SIZE, SIZE)
    assert [t.semantic for t in sc.outputs] == ["grasp_quality", "grasp_cos2", "grasp_sin2", "grasp_width"]

    k = Intrinsics(fx=100.0, fy=100.0, cx=39.5, cy=29.5, width=80, height=60)
    rng = np.random.default_rng(0)
    depth = (0.8 + 0.02 * rng.standard_normal((60, 80))).astype(np.float32)
    depth[20:35, 30:50] = 0.7
    depth[rng.random(depth.shape) < 0.05] = np.nan
    params = GraspDecodeParams(min_distance=3, threshold=-10.0, max_grasps=5)
    onnx_grasps = GraspPipeline(model, crop_size=SIZE, decode=params).detect(depth, k)
    torch_grasps = GraspPipeline(_TorchModel(task.net, sc), crop_size=SIZE, decode=params).detect(depth, k)
    assert len(onnx_grasps.grasps) > 0
    np.testing.assert_allclose(onnx_grasps.rects, torch_grasps.rects, rtol=1e-4, atol=1e-4)
