"""Export a trained pose network to ONNX + sidecar (the pose outputs are vectors, not images, so it has its own
function next to :func:`dcl_arc_ros.learning.export.export_checkpoint`, built from the same two steps).

The sidecar tells :class:`dcl_arc_ros.core.pose_pipeline.PosePipeline` everything it needs: the crop size (input
shape), the crop preparation (``extra.crop``: margin, depth scale, background), that the rotation is allocentric
6D (``extra.rotation``) and the class vocabulary: ``extra.class_ids`` maps output i to a catalogue class id
(``extra.num_classes`` entries, also the logits' width; ``extra.class_names`` names them when the catalogue knows them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dcl_arc_ros.learning.errors import ExportError
from dcl_arc_ros.learning.export import DEFAULT_OPSET, ExportResult, check_parity, torch_to_onnx

__all__ = ["POSE_INPUT_NAME", "POSE_OUTPUT_NAMES", "export_pose_checkpoint"]

POSE_INPUT_NAME = "depth_crop"
POSE_OUTPUT_NAMES = ("class_logits", "rotation_6d")


def _class_names(class_ids: list[int]) -> list[str]:
    """Catalogue names of ``class_ids`` (``class_<id>`` for ids the catalogue does not know)."""
    try:
        from dcl_arc_ros.sim.objects import CLASS_NAMES
    except ImportError:  # the simulator's optional dependencies are missing: ids only
        CLASS_NAMES = {}
    return [CLASS_NAMES.get(c, f"class_{c}") for c in class_ids]


def export_pose_checkpoint(
    checkpoint: Path | str,
    out_path: Path | str,
    *,
    network: str | None = None,
    opset: int = DEFAULT_OPSET,
    rtol: float = 1e-4,
    model_version: str = "1.0.0",
    name: str | None = None,
    seed: int = 0,
) -> ExportResult:
    """Rebuild the pose network from its checkpoint, export it (batch 1), check parity, write the sidecar."""
    from dcl_arc_ros.core.sidecar import (
        ModelSidecar,
        TensorSpec,
        config_sha256,
        sha256_file,
        sidecar_path_for,
        write_sidecar,
    )
    from dcl_arc_ros.learning.checkpoint import load_checkpoint
    from dcl_arc_ros.learning.pose.posenet import PoseNetConfig

    ckpt = load_checkpoint(checkpoint)
    net_name = network or ckpt.primary
    if net_name not in ckpt.networks:
        raise ExportError(f"{checkpoint}: no network {net_name!r}; it holds {sorted(ckpt.networks)}")
    spec = ckpt.networks[net_name]
    if spec.kind != "posenet" or not isinstance(spec.config, PoseNetConfig):
        raise ExportError(f"{checkpoint}: network {net_name!r} is of kind {spec.kind!r}, not 'posenet'")
    cfg: PoseNetConfig = spec.config
    data_cfg: dict[str, Any] = dict(ckpt.run_config.get("data", {}) or {})
    crop = {
        "crop_size": cfg.crop_size,
        "margin": float(data_cfg.get("margin", 0.2)),
        "depth_scale_m": float(data_cfg.get("depth_scale_m", 0.15)),
        "background": 1.0,
    }
    class_ids = [int(c) for c in data_cfg.get("class_ids", [])] or list(range(cfg.num_classes))
    if len(class_ids) != cfg.num_classes:
        raise ExportError(f"{checkpoint}: data.class_ids lists {len(class_ids)} classes, the network {cfg.num_classes}")
    model = ckpt.build(net_name, eval_mode=True)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, cfg.crop_size, cfg.crop_size, generator=gen) * 2.0 - 1.0
    out_path = Path(out_path)
    torch_to_onnx(
        model, [x], out_path, input_names=[POSE_INPUT_NAME], output_names=list(POSE_OUTPUT_NAMES), opset=opset
    )
    report = check_parity(out_path, model, [x], rtol=rtol)
    s = cfg.crop_size
    sidecar = ModelSidecar(
        name=name or out_path.stem,
        task="pose",
        model_version=model_version,
        inputs=(TensorSpec(POSE_INPUT_NAME, (1, 1, s, s), "float32", "depth_crop", "depth_minus_median_over_scale"),),
        outputs=(
            TensorSpec(POSE_OUTPUT_NAMES[0], (1, cfg.num_classes), "float32", "class_logits", "logits"),
            TensorSpec(POSE_OUTPUT_NAMES[1], (1, 6), "float32", "rotation_6d", "allocentric_first_two_columns"),
        ),
        deploy_resolution=(s, s),
        normalisation={},
        training_config_sha256=config_sha256(ckpt.run_config),
        model_sha256=sha256_file(out_path),
        extra={
            "network": net_name,
            "network_kind": spec.kind,
            "network_config": spec.to_dict()["config"],
            "checkpoint_step": ckpt.step,
            "crop": crop,
            "num_classes": cfg.num_classes,
            "class_ids": class_ids,
            "class_names": _class_names(class_ids),
            "rotation": "allocentric_6d",
            "parity": report.as_dict(),
            "opset": opset,
        },
    )
    sidecar_path = sidecar_path_for(out_path)
    write_sidecar(sidecar, sidecar_path)
    return ExportResult(onnx_path=out_path, sidecar_path=sidecar_path, parity=report)
