"""The ARC system (every trainable module a method uses) and its single-graph inference path.

``ARCSystem`` holds the modules a ``Variant`` needs (D always; T, A, I and I's discriminator when used) and is what
the stage checkpoints store. ``ARCInference`` is the deploy path as ONE module for export:

    rgb -> T -> (A's hard mask on the input, Eq. 14) -> I's completion (Eq. 3) -> D -> (depth, mask, decluttered)

Modules a variant does not use are identities: no T -> the input; no A -> an all-ones mask; A without I -> M * T(x).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcl_arc_ros.core.arc_pipeline import DEPTH_OUTPUT, IMAGE_OUTPUT, MASK_OUTPUT, RGB_INPUT, ARCNormalisation
from dcl_arc_ros.learning.arc.attention import AttentionModule, hard_mask_from_logits
from dcl_arc_ros.learning.arc.config import ARCConfig, config_sha256, to_dict
from dcl_arc_ros.learning.arc.depth_predictor import DepthPredictor, DepthRange
from dcl_arc_ros.learning.arc.discriminators import PatchDiscriminator
from dcl_arc_ros.learning.arc.inpainting import InpaintingModule, compose
from dcl_arc_ros.learning.arc.translator import StyleTranslator
from dcl_arc_ros.learning.arc.variants import Variant


class ARCSystem(nn.Module):
    """All trainable modules of one ARC method."""

    def __init__(self, config: ARCConfig, variant: Variant) -> None:
        super().__init__()
        m = config.model
        self.config = config
        self.variant = variant
        self.depth_range = DepthRange(m.depth_min_m, m.depth_max_m)
        self.depth = DepthPredictor(ngf=m.depth_ngf, levels=m.depth_levels)
        self.translator: StyleTranslator | None = None
        self.attention: AttentionModule | None = None
        self.inpainting: InpaintingModule | None = None
        self.disc_inpaint: PatchDiscriminator | None = None
        if variant.uses_translator:
            self.translator = StyleTranslator(
                ngf=m.ngf, ndf=m.ndf, n_down=m.n_downsampling, n_blocks=m.translator_blocks, disc_layers=m.disc_layers
            )
        if variant.uses_attention:
            self.attention = AttentionModule(
                ngf=m.attention_ngf,
                n_down=m.n_downsampling,
                n_blocks=m.attention_blocks,
                init_keep_logit=config.attention.init_keep_logit,
            )
        if variant.uses_inpainting:
            self.inpainting = InpaintingModule(ngf=m.ngf, n_down=m.n_downsampling, n_blocks=m.inpainting_blocks)
            self.disc_inpaint = PatchDiscriminator(3, ndf=m.ndf, n_layers=m.disc_layers)
        # Set by the freeze_A stage: from then on A is fixed and only its hard mask is used (the KL term is gone).
        self.register_buffer("attention_frozen", torch.zeros((), dtype=torch.bool))

    def translate(self, x_real: torch.Tensor) -> torch.Tensor:
        return self.translator(x_real) if self.translator is not None else x_real

    def keep_mask(self, x_real: torch.Tensor) -> torch.Tensor:
        """A's hard mask of the (untranslated) real image, or all ones without A."""
        if self.attention is None:
            return torch.ones_like(x_real[:, :1])
        return self.attention.hard_mask(x_real)

    def remove_and_complete(self, translated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 3 with I, or plain removal M * x without I."""
        if self.inpainting is not None:
            return self.inpainting.complete(translated, mask)
        return translated * mask if self.attention is not None else translated

    def declutter(self, x_real: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x_real -> (x~, M): the image D sees for a real input, and the mask used (the hard mask by default)."""
        mask = self.keep_mask(x_real) if mask is None else mask
        return self.remove_and_complete(self.translate(x_real), mask), mask


class ARCInference(nn.Module):
    """The whole inference path as one graph: ``forward(rgb) -> (depth, mask, decluttered)``, all in network units."""

    input_names: tuple[str, ...] = (RGB_INPUT,)
    output_names: tuple[str, ...] = (DEPTH_OUTPUT, MASK_OUTPUT, IMAGE_OUTPUT)

    def __init__(
        self,
        depth: DepthPredictor,
        translator: nn.Module | None = None,
        attention: AttentionModule | None = None,
        inpainting: InpaintingModule | None = None,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.translator = translator
        self.attention = attention
        self.inpainting = inpainting

    @classmethod
    def from_system(cls, system: ARCSystem) -> ARCInference:
        translator = system.translator.g_r2s if system.translator is not None else None
        return cls(system.depth, translator, system.attention, system.inpainting).eval()

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        translated = self.translator(rgb) if self.translator is not None else rgb
        if self.attention is not None:
            mask = hard_mask_from_logits(self.attention.logits(rgb))
        else:
            mask = torch.ones_like(rgb[:, :1])
        if self.inpainting is not None:
            decluttered = compose(translated, mask, self.inpainting(translated, mask))
        elif self.attention is not None:
            decluttered = translated * mask
        else:
            decluttered = translated
        return self.depth(decluttered), mask, decluttered


@dataclass(frozen=True)
class ExportDescription:
    """What a sidecar for an exported ARC model says (kept as plain data; export.py turns it into a ModelSidecar)."""

    name: str
    task: str
    deploy_resolution: tuple[int, int]
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    normalisation: dict[str, Any]
    training_config_sha256: str
    extra: dict[str, Any]


def describe_export(config: ARCConfig, variant: Variant, *, extra: dict[str, Any] | None = None) -> ExportDescription:
    """The sidecar fields of an ARCInference exported at the config's resolution."""
    h, w = config.model.height, config.model.width
    norm = ARCNormalisation(depth_min_m=config.model.depth_min_m, depth_max_m=config.model.depth_max_m)
    return ExportDescription(
        name=f"arc_{variant.name}" if not variant.name.startswith("arc") else variant.name,
        task="rgb_to_depth",
        deploy_resolution=(h, w),
        inputs=({"name": RGB_INPUT, "shape": (1, 3, h, w), "dtype": "float32", "semantic": "rgb", "units": "[-1, 1]"},),
        outputs=(
            {"name": DEPTH_OUTPUT, "shape": (1, 1, h, w), "dtype": "float32", "semantic": "depth", "units": "[-1, 1]"},
            {"name": MASK_OUTPUT, "shape": (1, 1, h, w), "dtype": "float32", "semantic": "keep_mask", "units": "{0,1}"},
            {"name": IMAGE_OUTPUT, "shape": (1, 3, h, w), "dtype": "float32", "semantic": "rgb", "units": "[-1, 1]"},
        ),
        normalisation=norm.to_sidecar(),
        training_config_sha256=config_sha256(config),
        extra={"method": variant.name, "modules": list(variant.modules), "config": to_dict(config), **(extra or {})},
    )


def export_onnx(model: ARCInference, path: str | Path, height: int, width: int, *, opset: int = 18) -> Path:
    """Export ``model`` at a static (1, 3, height, width) input with the torch.export-based exporter."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.zeros(1, 3, height, width)
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=list(model.input_names),
            output_names=list(model.output_names),
            opset_version=opset,
            verbose=False,
        )
    assert program is not None
    program.save(str(path))
    return path
