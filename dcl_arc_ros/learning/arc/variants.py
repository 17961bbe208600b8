"""The methods of ARC's Table 2, as explicit registry entries: which modules the inference path uses, which training
stages run, and what data pre-trains the depth predictor.

Baselines (depth predictor only):
    syn_only   D trained on synthetic data only
    real_only  D trained on the small real set only
    mix        D trained on both (Eq. 13 with untranslated real images)
Ablations and the full model (all pre-train D on the mix, then Algorithm 1 with the listed modules):
    arc_t      T only          D(T(x))
    arc_a      A only          D(M * x)
    arc_at     A and T         D(M * T(x))
    arc_ai     A and I         D(x~), x~ = (1 - M) * I(M * x) + M * x
    arc_full   A, T and I      D(x~) on T(x)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dcl_arc_ros.learning.arc.errors import VariantError

DepthData = Literal["synthetic", "real", "mix"]

#: Every stage in Algorithm 1 order; a variant runs a subsequence of it.
STAGE_ORDER: tuple[str, ...] = ("pretrain_D", "pretrain_T", "pretrain_A", "pretrain_I", "freeze_A", "finetune")


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    uses_translator: bool
    uses_attention: bool
    uses_inpainting: bool
    depth_data: DepthData  # what pretrain_D trains on
    stages: tuple[str, ...]

    def __post_init__(self) -> None:
        order = [s for s in STAGE_ORDER if s in self.stages]
        if list(self.stages) != order or len(set(self.stages)) != len(self.stages):
            raise ValueError(f"variant {self.name}: stages {self.stages} must follow {STAGE_ORDER} without repeats")

    @property
    def modules(self) -> tuple[str, ...]:
        """The inference path's modules, in order of application."""
        flags = (("T", self.uses_translator), ("A", self.uses_attention), ("I", self.uses_inpainting), ("D", True))
        return tuple(name for name, used in flags if used)


def _arc(name: str, description: str, *, t: bool, a: bool, i: bool) -> Variant:
    stages = ["pretrain_D"]
    stages += ["pretrain_T"] if t else []
    stages += ["pretrain_A"] if a else []
    stages += ["pretrain_I"] if i else []
    stages += ["freeze_A"] if a else []
    stages += ["finetune"]
    return Variant(name, description, t, a, i, "mix", tuple(stages))


VARIANTS: dict[str, Variant] = {
    "syn_only": Variant("syn_only", "D on synthetic data only", False, False, False, "synthetic", ("pretrain_D",)),
    "real_only": Variant("real_only", "D on the small real set only", False, False, False, "real", ("pretrain_D",)),
    "mix": Variant("mix", "D on synthetic + real (mix training)", False, False, False, "mix", ("pretrain_D",)),
    "arc_t": _arc("arc_t", "ARC with the style translator T only", t=True, a=False, i=False),
    "arc_a": _arc("arc_a", "ARC with A only (removed pixels left empty)", t=False, a=True, i=False),
    "arc_at": _arc("arc_at", "ARC with A and T (removed pixels left empty)", t=True, a=True, i=False),
    "arc_ai": _arc("arc_ai", "ARC with A and I, no translation", t=False, a=True, i=True),
    "arc_full": _arc("arc_full", "ARC: attend, remove, complete, with translation", t=True, a=True, i=True),
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise VariantError(f"unknown ARC method {name!r}; known: {sorted(VARIANTS)}") from None
