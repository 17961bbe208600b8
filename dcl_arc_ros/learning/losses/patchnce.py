"""CUT's PatchNCE loss, and the pieces it shares with the differential loss (:mod:`.dcl`).

Shared pieces:

* :class:`FeatureProjector`: one 2-layer MLP (``units`` wide, 128 in the papers) per encoder layer, then L2
  normalisation. It is a network of its own (registry kind ``feature_projector``), trained with the generator and
  saved in checkpoints; a trainer may freeze it. Its ``forward`` takes every layer's vectors at once, so one training
  step calls it exactly once (what DistributedDataParallel expects).
* :func:`gather_locations`: pick feature vectors at flat spatial indices, the same indices for every image.
* :func:`info_nce_shared`: InfoNCE where the negatives of query n are the keys m != n of the same image.
* :func:`info_nce`: InfoNCE with explicit per-query negatives and a validity mask.

PatchNCE (CUT): for each layer, sample ``num_patches`` locations; the query is the output's feature at location i,
its positive the input's feature at i and its negatives the input's features at the other sampled locations of the
same image. Keys (the input side) are detached after projection, as in CUT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcl_arc_ros.learning.errors import ConfigError

__all__ = [
    "PRESETS",
    "FeatureProjector",
    "PatchNCEConfig",
    "ProjectorConfig",
    "gather_locations",
    "info_nce",
    "info_nce_shared",
    "patchnce_loss",
]

Projector = Callable[[list[torch.Tensor]], list[torch.Tensor]]


@dataclass(frozen=True)
class ProjectorConfig:
    """``in_channels`` per feature layer; ``use_mlp=False`` only L2-normalises (CUT's ``netF=sample``)."""

    in_channels: tuple[int, ...] = (1,)
    units: int = 128
    use_mlp: bool = True

    def __post_init__(self) -> None:
        if not self.in_channels or min(self.in_channels) < 1 or self.units < 1:
            raise ConfigError(f"ProjectorConfig needs in_channels >= 1 and units >= 1, got {self}")


PRESETS: dict[str, ProjectorConfig] = {"default": ProjectorConfig()}


class FeatureProjector(nn.Module):
    """Per-layer 2-layer MLP + L2 normalisation."""

    def __init__(self, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mlps = nn.ModuleList(
            [
                nn.Sequential(nn.Linear(c, cfg.units), nn.ReLU(inplace=True), nn.Linear(cfg.units, cfg.units))
                if cfg.use_mlp
                else nn.Identity()
                for c in cfg.in_channels
            ]
        )
        for mlp in self.mlps:
            for m in mlp.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, 0.02)  # CUT's init_type "normal", gain 0.02
                    nn.init.zeros_(m.bias)

    def forward(self, per_layer: list[torch.Tensor]) -> list[torch.Tensor]:
        """``per_layer[l]`` is (..., C_l); returns unit vectors (..., units) (or (..., C_l) without the MLP)."""
        if len(per_layer) != len(self.mlps):
            raise ValueError(f"projector built for {len(self.mlps)} layers got {len(per_layer)}")
        return [F.normalize(mlp(x), dim=-1, eps=1e-7) for mlp, x in zip(self.mlps, per_layer, strict=True)]


def build_feature_projector(cfg: ProjectorConfig) -> FeatureProjector:
    return FeatureProjector(cfg)


def gather_locations(feat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features at flat indices ``index`` (any shape S) -> (B, *S, C)."""
    b, c = feat.shape[:2]
    flat = feat.flatten(2).transpose(1, 2)  # (B, HW, C)
    picked = flat[:, index.reshape(-1)]  # (B, prod(S), C)
    return picked.reshape(b, *index.shape, c)


def info_nce_shared(query: torch.Tensor, key: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE per image: query n's positive is key n, its negatives the keys m != n. Shapes (B, N, D)."""
    logits = torch.bmm(query, key.transpose(1, 2)) / tau  # (B, N, N)
    target = torch.arange(query.shape[1], device=query.device).expand(query.shape[0], -1)
    return F.cross_entropy(logits.flatten(0, 1), target.reshape(-1))


def info_nce(
    query: torch.Tensor,
    positive: torch.Tensor,
    negatives: torch.Tensor,
    tau: float,
    *,
    negative_mask: torch.Tensor | None = None,
    query_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE with explicit negatives.

    query, positive: (B, N, D); negatives: (B, N, K, D); negative_mask: (N, K) bool, False drops a negative;
    query_mask: (N,) bool, False drops a query from the mean.
    """
    pos = (query * positive).sum(-1, keepdim=True) / tau  # (B, N, 1)
    neg = torch.einsum("bnd,bnkd->bnk", query, negatives) / tau  # (B, N, K)
    if negative_mask is not None:
        neg = neg.masked_fill(~negative_mask.unsqueeze(0), float("-inf"))
    logits = torch.cat([pos, neg], dim=-1)
    per_query = -F.log_softmax(logits, dim=-1)[..., 0]  # (B, N)
    if query_mask is None:
        return per_query.mean()
    weight = query_mask.to(per_query.dtype).unsqueeze(0).expand_as(per_query)
    return (per_query * weight).sum() / weight.sum().clamp_min(1.0)


@dataclass(frozen=True)
class PatchNCEConfig:
    num_patches: int = 256
    tau: float = 0.07

    def __post_init__(self) -> None:
        if self.num_patches < 2 or self.tau <= 0:
            raise ConfigError(f"PatchNCEConfig needs num_patches >= 2 and tau > 0, got {self}")


def patchnce_loss(
    feats_src: Sequence[torch.Tensor],
    feats_out: Sequence[torch.Tensor],
    project: Projector,
    cfg: PatchNCEConfig,
    *,
    generator: torch.Generator | None = None,
    project_keys: Projector | None = None,
) -> torch.Tensor:
    """Mean over layers of CUT's PatchNCE between input features (keys) and output features (queries).

    Keys are detached after projection (as in CUT), so they are projected under ``torch.no_grad`` with
    ``project_keys`` (default ``project``): same values, no autograd work for them.
    """
    if len(feats_src) != len(feats_out) or not feats_src:
        raise ValueError(f"need matching non-empty feature lists, got {len(feats_src)} and {len(feats_out)}")
    queries, keys = [], []
    for fs, fo in zip(feats_src, feats_out, strict=True):
        hw = fs.shape[-2] * fs.shape[-1]
        n = min(cfg.num_patches, hw)
        idx = torch.randperm(hw, generator=generator)[:n].to(fs.device)
        queries.append(gather_locations(fo, idx))
        keys.append(gather_locations(fs, idx))
    projected_q = project(queries)  # the one call autograd records
    with torch.no_grad():
        projected_k = (project_keys or project)([k.detach() for k in keys])
    total = feats_src[0].new_zeros(())
    for pq, pk in zip(projected_q, projected_k, strict=True):
        total = total + info_nce_shared(pq, pk, cfg.tau)
    return total / len(feats_src)
