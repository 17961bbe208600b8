"""PoseNet: export to ONNX with a sidecar, parity with PyTorch, and the exported model inside PosePipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from dcl_arc_ros.core.pose_pipeline import PosePipeline, allocentric_to_egocentric, rotation_from_6d
from dcl_arc_ros.core.proposals import crops_from_labels
from dcl_arc_ros.inference.backends import load_model
from dcl_arc_ros.learning.checkpoint import save_checkpoint
from dcl_arc_ros.learning.pose import POSENET_PRESETS
from dcl_arc_ros.learning.pose.export import export_pose_checkpoint
from dcl_arc_ros.learning.pose.toy_data import TOY_INTRINSICS, ToyPoseFrames
from dcl_arc_ros.learning.pose.trainer import PoseDataConfig, PoseTask, PoseTrainConfig

torch.set_num_threads(1)


@pytest.mark.slow  # the torch.export-based exporter takes ~10 s
def test_export_parity_and_pipeline(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net_cfg = POSENET_PRESETS["tiny"]
    cfg = PoseTrainConfig(network=net_cfg, data=PoseDataConfig(crop_size=net_cfg.crop_size, depth_scale_m=0.1))
    task = PoseTask(cfg)
    with torch.no_grad():  # a rotation head that depends on the input
        task.net.rotation_head.weight.normal_(0.0, 0.5)
    task.net.eval()
    ckpt = save_checkpoint(tmp_path / "pose.pt", step=3, networks=task.networks(), run_config=cfg, primary="posenet")
    result = export_pose_checkpoint(ckpt, tmp_path / "pose.onnx")
    assert result.parity.max_rel <= 1e-4

    model = load_model(result.onnx_path)
    assert model.sidecar.task == "pose"
    frame = ToyPoseFrames(1)[0]
    pipe = PosePipeline(model, max_objects=5)
    assert pipe.crop.depth_scale_m == pytest.approx(0.1)  # read back from the sidecar
    crops = crops_from_labels(frame.instances, frame.depth, TOY_INTRINSICS)
    poses = pipe.poses_for_crops(crops, TOY_INTRINSICS)
    assert len(poses) == 2
    from dcl_arc_ros.core.pose_pipeline import prepare_pose_input

    for pose in poses:
        crop = next(c for c in crops if c.box == pose.box)
        prepared = prepare_pose_input(crop, pipe.crop)
        assert prepared is not None
        with torch.no_grad():
            logits, rot6d = task.net(torch.from_numpy(prepared.image[None]))
        assert pose.class_id == int(logits.argmax())
        want = allocentric_to_egocentric(rotation_from_6d(rot6d.numpy()[0].astype(np.float64)), pose.translation)
        np.testing.assert_allclose(pose.rotation, want, atol=1e-4)
