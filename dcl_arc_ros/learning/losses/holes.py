"""A prior on how many holes a synthesizer cuts and where in the camera: P(hole | viewing ray), matched to real data.

Not part of the DCL paper. The adversarial term alone decides badly how many holes to cut: in 200-step probes it drove
generators to 0 % or 100 % holes (``docs/results/dcl.md``). This prior matches one statistic of the two unpaired
sets, the hole rate, per bin of the viewing ray ``((u - cx) / fx, (v - cy) / fy)``. With one bin it is the global hole
fraction. With several bins along x it also says that an active-stereo camera's invalid band lies on one side of the
image, which a crop cannot show and which a discriminator learns slowly.

The real rates are counted over every real batch seen so far, because one batch of crops covers only a few bins. The
synthesized rate per bin is the straight-through hole indicator (the holes the generator really cuts, with the
sigmoid's gradient), so a logit just under the threshold does not count as half a hole.
"""

from __future__ import annotations

import torch

__all__ = ["HoleRatePrior"]


class HoleRatePrior:
    """Running real hole rates per ray bin, and the loss of a synthesized batch against them.

    ``bins`` is (bins along x, bins along y) over ray coordinates in ``[-extent, extent]`` (rays outside fall into the
    outermost bins). The counts are not checkpointed: after a resume they are gathered again from the real batches.
    """

    def __init__(self, bins: tuple[int, int] = (1, 1), extent: float = 1.0) -> None:
        nx, ny = int(bins[0]), int(bins[1])
        if nx < 1 or ny < 1 or not extent > 0:
            raise ValueError(f"HoleRatePrior needs bins >= 1 and extent > 0, got bins={bins} extent={extent}")
        self.bins, self.extent = (nx, ny), float(extent)
        self.holes = torch.zeros(nx * ny, dtype=torch.float64)
        self.pixels = torch.zeros(nx * ny, dtype=torch.float64)

    @property
    def n_bins(self) -> int:
        return self.bins[0] * self.bins[1]

    def _index(self, like: torch.Tensor, rays: torch.Tensor | None) -> torch.Tensor:
        """The bin of every pixel of ``like`` (B, 1, H, W), flattened."""
        if self.n_bins == 1:
            return torch.zeros(like.numel(), dtype=torch.long, device=like.device)
        if rays is None or rays.shape[0] != like.shape[0] or rays.shape[-2:] != like.shape[-2:]:
            got = None if rays is None else tuple(rays.shape)
            raise ValueError(f"a per-bin hole rate needs the rays (B, 2, H, W) of {tuple(like.shape)}, got {got}")
        nx, ny = self.bins
        cells = ((rays / self.extent + 1.0) * 0.5).clamp(0.0, 1.0 - 1e-6)
        ix = (cells[:, 0] * nx).long()
        iy = (cells[:, 1] * ny).long()
        return (iy * nx + ix).reshape(-1)

    def observe(self, real: torch.Tensor, hole_value: float, rays: torch.Tensor | None = None) -> None:
        """Add a real batch (B, 1, H, W, normalised; holes = ``hole_value``) to the counts."""
        idx = self._index(real, rays).cpu()
        holes = (real <= hole_value + 1e-6).reshape(-1).to(torch.float64).cpu()
        self.holes += torch.bincount(idx, weights=holes, minlength=self.n_bins)
        self.pixels += torch.bincount(idx, minlength=self.n_bins).to(torch.float64)

    def real_rates(self) -> torch.Tensor:
        """The real hole rate of every bin (NaN where no real pixel has been seen)."""
        return torch.where(
            self.pixels > 0, self.holes / self.pixels.clamp_min(1.0), torch.full_like(self.holes, torch.nan)
        )

    def loss(self, hole_logit: torch.Tensor, rays: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel-weighted mean over bins of (synthesized rate - real rate)^2, over bins both sides have seen."""
        soft = torch.sigmoid(hole_logit)
        hard = (soft > 0.5).to(soft.dtype)
        cut = (hard + soft - soft.detach()).reshape(-1)
        idx = self._index(hole_logit, rays)
        n = self.n_bins
        fake_sum = torch.zeros(n, dtype=cut.dtype, device=cut.device).index_add(0, idx, cut)
        fake_n = torch.bincount(idx, minlength=n).to(cut.dtype)
        target = self.real_rates().to(device=cut.device, dtype=cut.dtype)
        both = (fake_n > 0) & torch.isfinite(target)
        if not bool(both.any()):
            return cut.sum() * 0.0
        rate = fake_sum[both] / fake_n[both]
        weight = fake_n[both] / fake_n[both].sum()
        return (weight * (rate - target[both]) ** 2).sum()
