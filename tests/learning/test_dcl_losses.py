"""The differential contrastive loss, its sampler, PatchNCE, and the generator's hole head."""

from __future__ import annotations

import pytest
import torch

from dcl_arc_ros.learning.losses.dcl import DCLLossConfig, dcl_loss, sample_differentials
from dcl_arc_ros.learning.losses.patchnce import (
    FeatureProjector,
    PatchNCEConfig,
    ProjectorConfig,
    patchnce_loss,
)
from dcl_arc_ros.learning.registry import NetworkSpec

torch.set_num_threads(1)


def _scenes(n: int, size: int = 32) -> torch.Tensor:
    """Tilted planes with a few boxes in front, normalised depth units, (n, 1, size, size)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    out = []
    for seed in range(n):
        g = torch.Generator().manual_seed(seed)
        d = 0.2 + 0.3 * xx + 0.2 * yy * torch.rand(1, generator=g)
        for _ in range(3):
            y0, x0 = torch.randint(0, size - 8, (2,), generator=g).tolist()
            d[y0 : y0 + 8, x0 : x0 + 8] -= 0.5
        out.append(d)
    return torch.stack(out)[:, None]


@pytest.mark.parametrize("mode", ["gaussian", "permutation"])
def test_geometry_preserving_output_scores_lower_than_distorted(mode: str) -> None:
    torch.manual_seed(0)
    gen = NetworkSpec.from_preset("resnet_generator", "tiny").build().eval()
    layers = gen.default_feature_layers()
    head = FeatureProjector(ProjectorConfig(tuple(gen.feature_channels(layers)), units=32)).eval()
    x = _scenes(4)
    noise = 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    preserved = x + noise  # same geometry, sensor-like noise
    flipped = torch.flip(x, dims=[-1]) + noise  # geometry moved
    shifted = torch.roll(x, shifts=(5, 7), dims=(-2, -1)) + noise
    cfg = DCLLossConfig(mode=mode, num_anchors=64, num_negatives=16, sigma=2.0)

    def loss_of(y: torch.Tensor) -> float:
        with torch.no_grad():
            fs, fo = gen.encode_features(x, layers), gen.encode_features(y, layers)
            vals = [dcl_loss(fs, fo, head, cfg, generator=torch.Generator().manual_seed(k)).item() for k in range(4)]
        return sum(vals) / len(vals)

    kept = loss_of(preserved)
    assert kept < loss_of(flipped)
    assert kept < loss_of(shifted)


def test_differential_loss_ignores_a_constant_feature_offset_but_patchnce_does_not() -> None:
    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(2, 8, 12, 12, generator=g)]
    offset = 0.8 * torch.randn(1, 8, 1, 1, generator=g)
    head = FeatureProjector(ProjectorConfig((8,), use_mlp=False))  # identity + L2 norm
    cfg = DCLLossConfig(num_anchors=48, num_negatives=12, sigma=2.0)
    same = dcl_loss(fs, fs, head, cfg, generator=torch.Generator().manual_seed(1))
    moved = dcl_loss(fs, [fs[0] + offset], head, cfg, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(moved, same)
    pcfg = PatchNCEConfig(num_patches=48)
    p_same = patchnce_loss(fs, fs, head, pcfg, generator=torch.Generator().manual_seed(1))
    p_moved = patchnce_loss(fs, [fs[0] + offset], head, pcfg, generator=torch.Generator().manual_seed(1))
    assert p_moved > p_same + 1e-3


def test_gaussian_sampler_draws_partners_near_anchors_and_masks_collisions() -> None:
    cfg = DCLLossConfig(mode="gaussian", num_anchors=400, num_negatives=8, sigma=1.5)
    s = sample_differentials(20, 30, cfg, generator=torch.Generator().manual_seed(0))
    assert s.negatives is not None and s.negative_mask is not None
    ay, ax = s.anchors // 30, s.anchors % 30
    py, px = s.partners // 30, s.partners % 30
    dist = ((ay - py) ** 2 + (ax - px) ** 2).float().sqrt()
    assert dist.max() <= 6 * cfg.sigma  # reflected Gaussian offsets stay local
    assert dist.mean() < 3 * cfg.sigma
    assert (s.partners[s.anchor_mask] != s.anchors[s.anchor_mask]).all()
    assert s.anchor_mask.float().mean() > 0.9
    hits_j = s.negatives == s.partners[:, None]
    assert not (s.negative_mask & hits_j).any()
    assert int(s.anchors.max()) < 600 and int(s.negatives.max()) < 600 and int(s.negatives.min()) >= 0


def test_permutation_sampler_matches_the_official_scheme() -> None:
    cfg = DCLLossConfig(mode="permutation", num_anchors=50)
    s = sample_differentials(10, 10, cfg, generator=torch.Generator().manual_seed(0))
    assert s.negatives is None
    assert len(set(s.anchors.tolist())) == 50 and len(set(s.partners.tolist())) == 50
    assert not torch.equal(s.anchors, s.partners)


def test_hole_head_outputs_exact_holes_and_passes_gradients() -> None:
    x = torch.rand(2, 1, 16, 16) * 2 - 1
    all_holes = NetworkSpec.from_preset("resnet_generator", "tiny", hole_bias_init=50.0).build()
    assert torch.all(all_holes(x) == -1.0)
    no_holes = NetworkSpec.from_preset("resnet_generator", "tiny", hole_bias_init=-50.0).build()
    parts = no_holes.forward_parts(x)
    assert torch.equal(parts.output, parts.depth)

    gen = NetworkSpec.from_preset("resnet_generator", "tiny", hole_bias_init=0.0).build()
    out = gen.forward_parts(x)
    assert out.hole_logit is not None
    is_hole = out.hole_logit > 0
    assert is_hole.any() and (~is_hole).any()
    assert torch.all(out.output[is_hole] == -1.0)  # exactly 0 m in the holes, while training too
    out.output.mean().backward()
    head = gen.head[-1]
    assert head.bias.grad is not None and head.bias.grad[1].abs() > 0  # straight-through reaches the hole logit


@pytest.mark.parametrize("mode", ["lsgan", "vanilla"])
def test_gan_losses_prefer_the_right_side(mode: str) -> None:
    from dcl_arc_ros.learning.losses.gan import GANLoss, discriminator_loss

    gan = GANLoss(mode)  # type: ignore[arg-type]
    confident_real = torch.full((2, 1, 4, 4), 1.0 if mode == "lsgan" else 8.0)
    confident_fake = torch.full((2, 1, 4, 4), 0.0 if mode == "lsgan" else -8.0)
    assert gan(confident_real, True) < 1e-3 < gan(confident_real, False)
    good = discriminator_loss(gan, confident_real, confident_fake)
    bad = discriminator_loss(gan, confident_fake, confident_real)
    assert good < 1e-3 < bad


def test_metric_anchor_ignores_pixel_noise_and_holes_but_sees_a_shift() -> None:
    from dcl_arc_ros.learning.trainers.dcl import metric_anchor_loss

    src = _scenes(2) - 0.2
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2 - 1).float() * 0.05
    noisy = src + checker  # zero-mean within every 8x8 block
    holed = noisy.clone()
    holed[..., ::5, ::3] = -1.0  # holes are left out of both block means
    assert metric_anchor_loss(noisy, src, -1.0, 8) < 1e-5
    assert metric_anchor_loss(holed, src, -1.0, 8) < 0.02
    assert metric_anchor_loss(src + 0.2, src, -1.0, 8) == pytest.approx(0.2, abs=1e-4)
