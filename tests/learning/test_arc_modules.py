"""ARC modules and losses: the Gumbel-sigmoid mask and its KL sparsity, Eq. 3, random holes, perceptual features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcl_arc_ros.learning.arc.attention import (
    AttentionModule,
    RhoSchedule,
    TauSchedule,
    gumbel_sigmoid,
    hard_mask_from_logits,
    kl_sparsity,
)
from dcl_arc_ros.learning.arc.depth_predictor import DepthPredictor, DepthRange, masked_l1
from dcl_arc_ros.learning.arc.errors import PerceptualWeightsError
from dcl_arc_ros.learning.arc.inpainting import InpaintingModule, compose, random_hole_masks
from dcl_arc_ros.learning.arc.perceptual import VGG16_LAYERS, PerceptualFeatures, gram_matrix, vgg16_features
from dcl_arc_ros.learning.arc.translator import StyleTranslator, TranslatorLossWeights


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.mark.parametrize("rho", [0.6, 0.85])
def test_gumbel_mask_mean_follows_rho_under_kl(rho: float) -> None:
    """A trained on the KL term alone, from an init that keeps ~98%, moves the mean of its sampled mask to rho."""
    attention = AttentionModule(ngf=4, n_down=1, n_blocks=1, init_keep_logit=4.0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        start = gumbel_sigmoid(attention.logits(x), 0.5).mean().item()
    assert start > 0.95
    optimizer = torch.optim.Adam(attention.parameters(), lr=0.05)
    for _ in range(60):
        loss = kl_sparsity(gumbel_sigmoid(attention.logits(x), 0.5), rho)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        means = [gumbel_sigmoid(attention.logits(x), 0.5).mean().item() for _ in range(20)]
    assert abs(sum(means) / len(means) - rho) < 0.05


def test_kl_sparsity_is_zero_at_rho_and_positive_elsewhere() -> None:
    mask = torch.zeros(2, 1, 10, 10)
    mask[:, :, :, :7] = 1.0  # 70% kept
    assert kl_sparsity(mask, 0.7).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_sparsity(mask, 0.9).item() > 0.01
    assert kl_sparsity(mask, 0.5).item() > 0.01
    assert torch.isfinite(kl_sparsity(torch.ones(1, 1, 4, 4), 0.85))  # clamped away from the pole at mean = 1


def test_inference_mask_is_exactly_binary_and_thresholds_at_half() -> None:
    attention = AttentionModule(ngf=4, n_down=1, n_blocks=1, init_keep_logit=0.0)
    torch.nn.init.normal_(attention.net.head[-1].weight, std=1.0)  # a non-trivial spread of logits around 0
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        logits = attention.logits(x)
        mask = attention.hard_mask(x)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(mask, (torch.sigmoid(logits / 0.05) > 0.5).float())  # tau at test time does not matter


def test_training_mask_is_soft_and_nearly_binary_at_low_temperature() -> None:
    logits = torch.randn(1, 1, 64, 64)
    hot, cold = gumbel_sigmoid(logits, 0.9), gumbel_sigmoid(logits, 0.05)

    def near_binary(m: torch.Tensor) -> float:
        return ((m < 0.01) | (m > 0.99)).float().mean().item()

    assert near_binary(cold) > 0.8
    assert near_binary(hot) < 0.3
    assert torch.equal(hard_mask_from_logits(logits), (logits > 0).float())


def test_tau_and_rho_schedules() -> None:
    tau = TauSchedule(0.9, 0.05, 11)
    assert tau(0) == pytest.approx(0.9) and tau(10) == pytest.approx(0.05) and tau(5) == pytest.approx(0.475)
    assert tau(100) == pytest.approx(0.05)
    rho = RhoSchedule(rho=0.85, rho_initial=0.99, initial_fraction=0.5, steps=10)
    assert [rho(s) for s in (0, 4, 5, 9)] == [0.99, 0.99, 0.85, 0.85]


def test_composition_leaves_kept_pixels_unchanged() -> None:
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    mask = random_hole_masks(2, 16, 16, fraction_min=0.2, fraction_max=0.4, generator=torch.Generator().manual_seed(1))
    inpainting = InpaintingModule(ngf=4, n_down=1, n_blocks=1)
    with torch.no_grad():
        filled = inpainting(x, mask)
        completed = inpainting.complete(x, mask)
    kept = mask.expand_as(x) == 1
    assert torch.equal(completed[kept], x[kept])
    assert torch.allclose(completed[~kept], filled[~kept])
    assert torch.equal(compose(x, torch.ones_like(mask), filled), x)


def test_inpainting_sees_the_mask_not_the_removed_pixels() -> None:
    inpainting = InpaintingModule(ngf=4, n_down=1, n_blocks=1)
    mask = torch.ones(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 0
    x1 = torch.rand(1, 3, 16, 16)
    x2 = x1.clone()
    x2[..., 4:12, 4:12] = -x1[..., 4:12, 4:12]  # differ only where removed
    with torch.no_grad():
        assert torch.equal(inpainting(x1, mask), inpainting(x2, mask))


def test_random_hole_masks_are_binary_and_remove_a_bounded_share() -> None:
    masks = random_hole_masks(
        64, 32, 32, fraction_min=0.1, fraction_max=0.3, holes=3, generator=torch.Generator().manual_seed(0)
    )
    assert masks.shape == (64, 1, 32, 32)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    removed = 1 - masks.flatten(1).mean(1)
    assert removed.min().item() > 0.0
    assert removed.max().item() <= 0.3 + 0.05  # nominal area bound (pixel rounding)


def test_depth_range_round_trip_and_masked_l1() -> None:
    rng = DepthRange(0.0, 10.0)
    depth = torch.tensor([[0.0, 2.5, 10.0, 12.0, float("nan")]])
    unit = rng.to_unit(depth)
    assert torch.allclose(unit, torch.tensor([[-1.0, -0.5, 1.0, 1.0, -1.0]]))
    assert torch.allclose(rng.to_metres(unit[:, :3]), depth[:, :3])
    assert rng.valid(depth).tolist() == [[0.0, 1.0, 1.0, 1.0, 0.0]]
    pred, target = torch.zeros(1, 4), torch.tensor([[1.0, 2.0, 100.0, 100.0]])
    assert masked_l1(pred, target, torch.tensor([[1.0, 1.0, 0.0, 0.0]])).item() == pytest.approx(1.5)
    assert masked_l1(pred, target, torch.zeros(1, 4)).item() == 0.0
    assert DepthPredictor(ngf=4, levels=2)(torch.zeros(1, 3, 16, 16)).abs().max().item() <= 1.0


def test_translator_losses_have_the_paper_terms() -> None:
    translator = StyleTranslator(ngf=4, ndf=4, n_down=1, n_blocks=1, disc_layers=2)
    x_r, x_s = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    total, parts, outputs = translator.generator_loss(x_r, x_s, TranslatorLossWeights(10.0, 5.0, "lsgan"))
    assert set(parts) == {"cycle", "identity", "adv"}
    assert total.item() == pytest.approx((10 * parts["cycle"] + 5 * parts["identity"] + parts["adv"]).item(), rel=1e-5)
    _, parts_no_id, _ = translator.generator_loss(x_r, x_s, TranslatorLossWeights(10.0, 0.0, "lsgan"))
    assert "identity" not in parts_no_id
    d_loss = translator.discriminator_loss(x_r, x_s, outputs, "lsgan")
    d_loss.backward()
    assert translator.g_r2s.head[-1].weight.grad is None  # the discriminator step never reaches the generators


def test_perceptual_substitute_is_deterministic_and_recorded() -> None:
    a = PerceptualFeatures(("relu1_2", "relu2_2"), seed=3, width_scale=0.25)
    b = PerceptualFeatures(("relu2_2", "relu1_2"), seed=3, width_scale=0.25)
    c = PerceptualFeatures(("relu1_2", "relu2_2"), seed=4, width_scale=0.25)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    fa, fb, fc = a(x), b(x), c(x)
    assert [f.shape[1] for f in fa] == [16, 32] and fa[1].shape[-1] == 8
    assert all(torch.equal(u, v) for u, v in zip(fa, fb, strict=True))
    assert not torch.equal(fa[0], fc[0])
    assert a.describe() == {"kind": "random_vgg16", "seed": 3, "width_scale": 0.25, "layers": ["relu1_2", "relu2_2"]}
    assert not any(p.requires_grad for p in a.parameters())


def test_perceptual_loads_torchvision_layout_weights_from_a_local_file(tmp_path: Path) -> None:
    reference = vgg16_features(VGG16_LAYERS["relu2_2"])
    for p in reference.parameters():
        torch.nn.init.normal_(p)
    state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full vgg16 state_dict has more than features
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    features = PerceptualFeatures(("relu1_2", "relu2_2"), weights_path=path)
    assert torch.equal(features.features[0].weight, reference[0].weight)
    assert torch.equal(features.features[7].bias, reference[7].bias)
    described = features.describe()
    assert described["kind"] == "vgg16_file" and len(described["sha256"]) == 64

    torch.save({"features.0.weight": reference[0].weight}, tmp_path / "partial.pth")
    with pytest.raises(PerceptualWeightsError, match=r"partial\.pth"):
        PerceptualFeatures(("relu1_2",), weights_path=tmp_path / "partial.pth")
    with pytest.raises(PerceptualWeightsError, match=r"missing\.pth"):
        PerceptualFeatures(("relu1_2",), weights_path=tmp_path / "missing.pth")


def test_gram_matrix_matches_its_definition() -> None:
    f = torch.randn(2, 5, 4, 3)
    expected = torch.einsum("bchw,bdhw->bcd", f, f) / (5 * 4 * 3)
    assert torch.allclose(gram_matrix(f), expected, atol=1e-6)
