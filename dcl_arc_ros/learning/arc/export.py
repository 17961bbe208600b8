"""Export a trained ARC method's whole inference path (T -> A's hard mask -> I -> D) as ONE ONNX graph + sidecar.

    result = export_arc_checkpoint(Path("runs/arc_full/finetune/checkpoint.pt"), Path("models/arc.onnx"))
    # -> models/arc.onnx + models/arc.json; result.parity (ONNX Runtime vs PyTorch), result.mask_parity

The graph runs at the training resolution (``model.height`` x ``model.width`` of the saved config): the attention
and depth networks are fully convolutional, but the sidecar fixes one static deploy size (TensorRT prefers it).
Parity is the shared rule of dcl_arc_ros.learning.export (max relative error over every output, ONNX Runtime CPU)
plus an exact check of the binary mask wherever A's logit is farther than ``mask_margin`` from the 0.5 threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcl_arc_ros.core.arc_pipeline import (
    DEPTH_OUTPUT,
    DEPTH_SEMANTIC,
    IMAGE_OUTPUT,
    MASK_OUTPUT,
    MASK_SEMANTIC,
    RGB_INPUT,
    RGB_SEMANTIC,
    ARCNormalisation,
)
from dcl_arc_ros.core.sidecar import (
    ModelSidecar,
    TensorSpec,
    config_sha256,
    sha256_file,
    sidecar_path_for,
    write_sidecar,
)
from dcl_arc_ros.learning.arc.config import ARCConfig, to_dict
from dcl_arc_ros.learning.arc.model import ARCInference
from dcl_arc_ros.learning.arc.stages import load_system, read_checkpoint
from dcl_arc_ros.learning.arc.variants import Variant
from dcl_arc_ros.learning.errors import ParityError
from dcl_arc_ros.learning.export import DEFAULT_OPSET, ParityReport, check_parity, torch_to_onnx


@dataclass(frozen=True)
class MaskParity:
    pixels: int
    near_threshold: int  # pixels whose logit is within the margin of 0 (either answer is legitimate there)
    mismatched_away_from_threshold: int  # must be 0
    margin: float


@dataclass(frozen=True)
class ARCExportResult:
    onnx_path: Path
    sidecar_path: Path
    parity: ParityReport
    mask_parity: MaskParity


def arc_sidecar(
    config: ARCConfig,
    variant: Variant,
    onnx_path: Path,
    *,
    name: str,
    model_version: str = "1.0.0",
    extra: dict[str, Any] | None = None,
) -> ModelSidecar:
    """The sidecar of an exported ARCInference (tensor meanings, normalisation, deploy size, config hash)."""
    h, w = config.model.height, config.model.width
    norm = ARCNormalisation(depth_min_m=config.model.depth_min_m, depth_max_m=config.model.depth_max_m)
    return ModelSidecar(
        name=name,
        task="rgb_to_depth",
        model_version=model_version,
        inputs=(TensorSpec(RGB_INPUT, (1, 3, h, w), "float32", RGB_SEMANTIC, "normalised"),),
        outputs=(
            TensorSpec(DEPTH_OUTPUT, (1, 1, h, w), "float32", DEPTH_SEMANTIC, "normalised"),
            TensorSpec(MASK_OUTPUT, (1, 1, h, w), "float32", MASK_SEMANTIC, "1 = kept, 0 = removed"),
            TensorSpec(IMAGE_OUTPUT, (1, 3, h, w), "float32", RGB_SEMANTIC, "normalised"),
        ),
        deploy_resolution=(h, w),
        normalisation=norm.to_sidecar(),
        training_config_sha256=config_sha256(to_dict(config)),
        model_sha256=sha256_file(onnx_path),
        extra={"method": variant.name, "modules": list(variant.modules), "config": to_dict(config), **(extra or {})},
    )


def check_mask_parity(onnx_path: Path, model: ARCInference, rgb: torch.Tensor, *, margin: float = 1e-3) -> MaskParity:
    """Compare the ONNX mask with A's logits: identical wherever |logit| > margin."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    if MASK_OUTPUT not in names:
        raise ParityError(f"{onnx_path}: no output {MASK_OUTPUT!r}; outputs are {names}")
    onnx_mask = session.run([MASK_OUTPUT], {RGB_INPUT: rgb.numpy().astype(np.float32)})[0]
    with torch.no_grad():
        if model.attention is not None:
            logits = model.attention.logits(rgb).numpy()
        else:
            logits = np.full(onnx_mask.shape, np.inf, dtype=np.float32)  # no A: every pixel kept, far from 0
    want = (logits > 0).astype(np.float32)
    away = np.abs(logits) > margin
    return MaskParity(
        pixels=int(want.size),
        near_threshold=int((~away).sum()),
        mismatched_away_from_threshold=int(((onnx_mask != want) & away).sum()),
        margin=margin,
    )


def export_arc(
    model: ARCInference,
    config: ARCConfig,
    variant: Variant,
    out_path: Path | str,
    *,
    rtol: float = 1e-4,
    seed: int = 0,
    opset: int = DEFAULT_OPSET,
    model_version: str = "1.0.0",
    name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> ARCExportResult:
    """Export ``model`` at the config's resolution, check parity on a random input, write the sidecar."""
    out_path = Path(out_path)
    model = model.eval()
    h, w = config.model.height, config.model.width
    rgb = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2.0 - 1.0
    torch_to_onnx(model, (rgb,), out_path, input_names=model.input_names, output_names=model.output_names, opset=opset)
    report = check_parity(out_path, model, (rgb,), rtol=rtol, raise_on_failure=False)
    mask = check_mask_parity(out_path, model, rgb)
    if mask.mismatched_away_from_threshold:
        raise ParityError(
            f"{out_path}: {mask.mismatched_away_from_threshold} mask pixels differ from PyTorch away from the threshold"
        )
    if not report.ok:
        raise ParityError(
            f"{out_path}: ONNX/torch relative error {report.max_rel:.3g} exceeds rtol {rtol:g} "
            f"({mask.near_threshold} mask pixels lie within {mask.margin} of the threshold)"
        )
    info = {"parity": report.as_dict(), "mask_parity": asdict(mask), "opset": opset, **(extra or {})}
    sidecar = arc_sidecar(
        config, variant, out_path, name=name or out_path.stem, model_version=model_version, extra=info
    )
    sidecar_path = sidecar_path_for(out_path)
    write_sidecar(sidecar, sidecar_path)
    return ARCExportResult(out_path, sidecar_path, report, mask)


def export_arc_checkpoint(checkpoint: Path | str, out_path: Path | str, **options: Any) -> ARCExportResult:
    """Rebuild the method from a stage checkpoint alone (normally its last stage) and export it."""
    state = read_checkpoint(checkpoint)
    system = load_system(checkpoint)
    extra = {
        **system.provenance,  # e.g. which perceptual features trained I
        "checkpoint_stage": state["stage"],
        "checkpoint_step": state["step"],
        "checkpoint_completed": state["completed"],
        **options.pop("extra", {}),
    }
    return export_arc(ARCInference.from_system(system), system.config, system.variant, out_path, extra=extra, **options)
