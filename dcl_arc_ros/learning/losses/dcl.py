"""The differential contrastive loss of DCL (Shen et al., RA-L 2022, Section III-B).

For an encoder layer l with features f (of the input d_s) and f^ (of the output G(d_s)), and locations i, j, k:

* query    = P(f^_i - f^_j)   (the output's differential; P = MLP head + L2 normalisation)
* positive = P(f_i - f_j)     (the same pair (i, j) on the input)
* negatives= P(f_i - f_k), k != j, in the same image

and InfoNCE with temperature tau (0.07). The paper's printed denominator pairs the positive differential with the
negatives; we follow its Eq. (4), where each negative pairs the query with f_i - f_k, and note the difference here.
Keys (the input side) are detached after projection, as CUT does, so the head learns through the queries.

Two sampling modes behind ``DCLLossConfig.mode``:

``"gaussian"`` (the paper's wording)
    ``num_anchors`` anchors i uniformly on the feature map. For each one, ``1 + num_negatives`` offsets are drawn
    from an isotropic Gaussian of std ``sigma`` feature-map pixels, rounded, with (0, 0) replaced by a unit step and
    reflected at the borders. The first offset gives j and the rest give the k. Negatives that land on j or on i, and
    anchors whose j lands on i, are masked out.
``"permutation"`` (the official code)
    i and j are two independent random permutations of the locations (``num_anchors`` each). The negatives of pair
    n are the other sampled differentials f_{i_m} - f_{j_m}, m != n, of the same image: PatchNCE over differentials.

The same locations are used for every image of the batch and for both maps. The loss is the mean over layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.losses.patchnce import Projector, gather_locations, info_nce, info_nce_shared

SamplingMode = Literal["gaussian", "permutation"]

__all__ = ["DCLLossConfig", "DifferentialSample", "SamplingMode", "dcl_loss", "sample_differentials"]


@dataclass(frozen=True)
class DCLLossConfig:
    mode: SamplingMode = "gaussian"
    num_anchors: int = 256
    num_negatives: int = 32  # gaussian mode only; permutation mode uses num_anchors - 1
    sigma: float = 3.0  # feature-map pixels, gaussian mode only
    tau: float = 0.07

    def __post_init__(self) -> None:
        if self.num_anchors < 2 or self.num_negatives < 1 or self.sigma <= 0 or self.tau <= 0:
            raise ConfigError(
                f"DCLLossConfig needs num_anchors >= 2, num_negatives >= 1, sigma > 0, tau > 0, got {self}"
            )


@dataclass(frozen=True)
class DifferentialSample:
    """Flat indices into an (H, W) map. ``negatives`` is None in permutation mode (shared negatives)."""

    anchors: torch.Tensor  # (N,)
    partners: torch.Tensor  # (N,)
    negatives: torch.Tensor | None  # (N, K)
    negative_mask: torch.Tensor | None  # (N, K) bool
    anchor_mask: torch.Tensor  # (N,) bool: False where j == i (a degenerate, zero differential)


def _reflect(coord: torch.Tensor, size: int) -> torch.Tensor:
    if size == 1:
        return torch.zeros_like(coord)
    period = 2 * (size - 1)
    c = coord.remainder(period)
    return torch.where(c >= size, period - c, c)


def sample_differentials(
    height: int, width: int, cfg: DCLLossConfig, *, generator: torch.Generator | None = None
) -> DifferentialSample:
    """Sample anchors, partners and negatives on an (height, width) feature map (see the module docstring)."""
    hw = height * width
    if hw < 2:
        raise ValueError(f"a {height}x{width} feature map has no pairs of locations")
    n = min(cfg.num_anchors, hw)
    if cfg.mode == "permutation":
        anchors = torch.randperm(hw, generator=generator)[:n]
        partners = torch.randperm(hw, generator=generator)[:n]
        return DifferentialSample(anchors, partners, None, None, anchors != partners)
    anchors = torch.randperm(hw, generator=generator)[:n]
    ay, ax = anchors // width, anchors % width
    k = cfg.num_negatives
    offsets = torch.round(torch.randn(n, 1 + k, 2, generator=generator) * cfg.sigma).long()
    zero = (offsets == 0).all(-1)
    step = torch.where(torch.rand(n, 1 + k, generator=generator) < 0.5, -1, 1)
    offsets[..., 1] = torch.where(zero, step, offsets[..., 1])
    py = _reflect(ay[:, None] + offsets[..., 0], height)
    px = _reflect(ax[:, None] + offsets[..., 1], width)
    flat = py * width + px  # (N, 1 + K)
    partners, negatives = flat[:, 0], flat[:, 1:]
    negative_mask = (negatives != partners[:, None]) & (negatives != anchors[:, None])
    anchor_mask = (partners != anchors) & negative_mask.any(dim=1)
    return DifferentialSample(anchors, partners, negatives, negative_mask, anchor_mask)


def dcl_loss(
    feats_src: Sequence[torch.Tensor],
    feats_out: Sequence[torch.Tensor],
    project: Projector,
    cfg: DCLLossConfig,
    *,
    generator: torch.Generator | None = None,
    project_keys: Projector | None = None,
) -> torch.Tensor:
    """L_dc: mean over layers of the differential InfoNCE between input (keys) and output (queries) features.

    Keys (positives and negatives) are detached after projection, so they are projected under ``torch.no_grad``:
    the same values, but autograd no longer records (and back-propagates zeros through) the head for the
    ``B * N * (1 + K)`` key vectors, which dominated the step time. ``project_keys`` (default ``project``) lets a
    trainer project keys with the unwrapped head, so a DDP-wrapped ``project`` still runs exactly once per step.
    """
    if len(feats_src) != len(feats_out) or not feats_src:
        raise ValueError(f"need matching non-empty feature lists, got {len(feats_src)} and {len(feats_out)}")
    samples: list[DifferentialSample] = []
    query_blocks: list[torch.Tensor] = []
    key_blocks: list[torch.Tensor] = []
    sizes: list[tuple[int, int, int]] = []
    for fs, fo in zip(feats_src, feats_out, strict=True):
        if fs.shape != fo.shape:
            raise ValueError(f"input/output features differ in shape: {tuple(fs.shape)} vs {tuple(fo.shape)}")
        s = sample_differentials(fs.shape[-2], fs.shape[-1], cfg, generator=generator)
        dev = fs.device
        i, j = s.anchors.to(dev), s.partners.to(dev)
        query = gather_locations(fo, i) - gather_locations(fo, j)
        with torch.no_grad():
            # The partner and the negatives in one gather: column 0 is j, columns 1.. are the k.
            others = j[:, None] if s.negatives is None else torch.cat([j[:, None], s.negatives.to(dev)], dim=1)
            diffs = gather_locations(fs, i).unsqueeze(2) - gather_locations(fs, others)  # (B, N, 1 + K, C)
        samples.append(s)
        query_blocks.append(query.flatten(0, 1))
        key_blocks.append(diffs.flatten(0, 2))
        sizes.append((fs.shape[0], query.shape[1], others.shape[1] - 1))
    projected_q = project(query_blocks)  # one call for every layer (the only one autograd records)
    with torch.no_grad():
        projected_k = (project_keys or project)(key_blocks)
    total = feats_src[0].new_zeros(())
    for s, pq_flat, pk_flat, (b, n, k) in zip(samples, projected_q, projected_k, sizes, strict=True):
        d = pq_flat.shape[-1]
        pq = pq_flat.reshape(b, n, d)
        pk = pk_flat.reshape(b, n, 1 + k, d)
        pp = pk[:, :, 0]
        mask = s.anchor_mask.to(pq.device)
        if s.negatives is None:
            # Official-code mode: the other sampled differentials are the negatives. Degenerate (i == j) pairs are
            # rare; their rows still take part, like in the reference implementation.
            total = total + info_nce_shared(pq, pp, cfg.tau)
        else:
            pn = pk[:, :, 1:]
            neg_mask = s.negative_mask.to(pq.device) if s.negative_mask is not None else None
            total = total + info_nce(pq, pp, pn, cfg.tau, negative_mask=neg_mask, query_mask=mask)
    return total / len(feats_src)
