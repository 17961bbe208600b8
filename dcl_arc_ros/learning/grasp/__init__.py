"""GG-CNN grasp networks: models, loss and trainer. Importing this package registers the network kinds
``ggcnn`` and ``ggcnn2`` (for checkpoints) and their export kinds (for ONNX + sidecar)."""

from __future__ import annotations

from dcl_arc_ros.learning.export import EXPORTABLE_KINDS, ExportKind, TensorDecl, register_export_kind
from dcl_arc_ros.learning.grasp.ggcnn import (
    GGCNN,
    GGCNN2,
    GGCNN2_PRESETS,
    GGCNN_PRESETS,
    GGCNN2Config,
    GGCNNConfig,
    build_ggcnn,
    build_ggcnn2,
)
from dcl_arc_ros.learning.registry import MODEL_KINDS, ModelKind, register_model_kind

__all__ = ["GGCNN", "GGCNN2", "GGCNN_NORMALISATION", "GGCNN2Config", "GGCNNConfig"]

#: Sidecar normalisation of GG-CNN's depth input: minus the crop's mean, clipped to [-clip, clip]. The sidecar
#: validator does not know this kind yet, so exports leave it out of ``normalisation`` and name it in the tensor's
#: ``units`` instead; the grasp pipeline accepts both.
GGCNN_NORMALISATION = {"kind": "mean_subtract_clip", "clip": 1.0}

_GRASP_OUTPUTS = (
    TensorDecl("quality", 1, "grasp_quality", "unit"),
    TensorDecl("cos2", 1, "grasp_cos2", "unit"),
    TensorDecl("sin2", 1, "grasp_sin2", "unit"),
    TensorDecl("width", 1, "grasp_width", "px_over_width_scale"),
)


def _inputs(cfg: object, _rng: object) -> tuple[TensorDecl, ...]:
    return (TensorDecl("depth", 1, "depth", "metres_minus_mean_clipped"),)


def _outputs(cfg: object, _rng: object) -> tuple[TensorDecl, ...]:
    return _GRASP_OUTPUTS


if "ggcnn" not in MODEL_KINDS:
    register_model_kind("ggcnn", ModelKind(GGCNNConfig, build_ggcnn, GGCNN_PRESETS, "GG-CNN grasp maps"))
if "ggcnn2" not in MODEL_KINDS:
    register_model_kind("ggcnn2", ModelKind(GGCNN2Config, build_ggcnn2, GGCNN2_PRESETS, "GG-CNN2 grasp maps"))
for _name in ("ggcnn", "ggcnn2"):
    if _name not in EXPORTABLE_KINDS:
        register_export_kind(
            _name, ExportKind(task="grasp_maps", inputs=_inputs, outputs=_outputs, size_multiple=lambda cfg: 1)
        )
