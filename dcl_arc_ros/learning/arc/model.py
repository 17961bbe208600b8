"""The ARC system (every trainable module a method uses) and its single-graph inference path.

``ARCSystem`` holds the modules a ``Variant`` needs (D always; T, A, I and I's discriminator when used) and is what
the stage checkpoints store. ``ARCInference`` is the deploy path as ONE module for export:

    rgb -> T -> (A's hard mask on the input, Eq. 14) -> I's completion (Eq. 3) -> D -> (depth, mask, decluttered)

Modules a variant does not use are identities: no T -> the input; no A -> an all-ones mask; A without I -> M * T(x).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dcl_arc_ros.core.arc_pipeline import DEPTH_OUTPUT, IMAGE_OUTPUT, MASK_OUTPUT, RGB_INPUT
from dcl_arc_ros.learning.arc.attention import AttentionModule, hard_mask_from_logits
from dcl_arc_ros.learning.arc.config import ARCConfig
from dcl_arc_ros.learning.arc.depth_predictor import DepthPredictor, DepthRange
from dcl_arc_ros.learning.arc.discriminators import patch_discriminator
from dcl_arc_ros.learning.arc.inpainting import InpaintingModule, compose
from dcl_arc_ros.learning.arc.translator import StyleTranslator
from dcl_arc_ros.learning.arc.variants import Variant
from dcl_arc_ros.learning.nets.patchgan import PatchGAN


class ARCSystem(nn.Module):
    """All trainable modules of one ARC method."""

    attention_frozen: torch.Tensor

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
        self.disc_inpaint: PatchGAN | None = None
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
            self.disc_inpaint = patch_discriminator(3, ndf=m.ndf, n_layers=m.disc_layers)
        # Facts about how the modules were trained that results must state (e.g. the perceptual-feature source).
        self.provenance: dict[str, Any] = {}
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
