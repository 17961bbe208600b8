"""One optimisation step per ARC stage (the losses of Algorithm 1); stages.py runs, logs and checkpoints them."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from dcl_arc_ros.learning.arc.attention import RhoSchedule, TauSchedule, gumbel_sigmoid, kl_sparsity
from dcl_arc_ros.learning.arc.batches import Batch
from dcl_arc_ros.learning.arc.config import ARCConfig
from dcl_arc_ros.learning.arc.depth_predictor import masked_l1
from dcl_arc_ros.learning.arc.discriminators import discriminator_loss, gan_loss
from dcl_arc_ros.learning.arc.errors import StageError
from dcl_arc_ros.learning.arc.inpainting import (
    InpaintingLossWeights,
    adversarial_loss,
    compose,
    random_hole_masks,
    reconstruction_losses,
)
from dcl_arc_ros.learning.arc.model import ARCSystem
from dcl_arc_ros.learning.arc.perceptual import PerceptualFeatures
from dcl_arc_ros.learning.arc.translator import TranslatorLossWeights
from dcl_arc_ros.learning.arc.variants import Variant


class StageRunner(Protocol):
    """One stage's optimisation: its optimizers, one step, and (optionally) images for TensorBoard."""

    domains: tuple[str, ...]  # which datasets a step draws from: "synthetic", "real"
    optimizers: dict[str, torch.optim.Optimizer]

    def step(self, step: int, batch: Batch) -> dict[str, float]: ...

    def images(self, batch: Batch) -> dict[str, torch.Tensor]: ...


def _adam(params: list[nn.Parameter], lr: float, config: ARCConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=(config.optim.beta1, config.optim.beta2))


def _params(*modules: nn.Module | None) -> list[nn.Parameter]:
    return [p for m in modules if m is not None for p in m.parameters()]


def _require(module: nn.Module | None, name: str, variant: Variant) -> nn.Module:
    if module is None:
        raise StageError(f"method {variant.name} has no module {name}")
    return module


def _f(value: torch.Tensor) -> float:
    return float(value.detach())


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class PretrainDepth:
    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        data = system.variant.depth_data
        self.domains: tuple[str, ...] = ("synthetic", "real") if data == "mix" else (data,)
        lr = system.config.optim.lr
        self.optimizers: dict[str, torch.optim.Optimizer] = {"depth": _adam(_params(system.depth), lr, system.config)}

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        parts = {}
        for domain in self.domains:  # Eq. 13: the sum of the per-domain L1 terms
            b = batch.need(domain)
            parts[f"depth_l1/{domain}"] = masked_l1(self.system.depth(b["rgb"]), b["depth"], b["valid"])
        loss = torch.stack(list(parts.values())).sum()
        logs = {k: _f(v) for k, v in parts.items()}
        _step(self.optimizers["depth"], loss)
        return {"loss": _f(loss), **logs}

    def images(self, batch: Batch) -> dict[str, torch.Tensor]:
        b = batch.need(self.domains[0])
        with torch.no_grad():
            return {"depth": depth_grid(b["depth"], self.system.depth(b["rgb"]))}


class PretrainTranslator:
    domains: tuple[str, ...] = ("synthetic", "real")

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        _require(system.translator, "T", system.variant)
        cfg = system.config
        self.weights = TranslatorLossWeights(
            cfg.translator.cycle_weight, cfg.translator.identity_weight, cfg.translator.gan_mode
        )
        assert system.translator is not None
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generators": _adam(system.translator.generator_parameters(), cfg.optim.lr, cfg),
            "discriminators": _adam(system.translator.discriminator_parameters(), cfg.optim.lr_disc, cfg),
        }

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        translator = self.system.translator
        assert translator is not None
        x_r, x_s = batch.need("real")["rgb"], batch.need("synthetic")["rgb"]
        translator.disc_real.requires_grad_(False)
        translator.disc_syn.requires_grad_(False)
        loss, parts, outputs = translator.generator_loss(x_r, x_s, self.weights)
        _step(self.optimizers["generators"], loss)
        translator.disc_real.requires_grad_(True)
        translator.disc_syn.requires_grad_(True)
        d_loss = translator.discriminator_loss(x_r, x_s, outputs, self.weights.gan_mode)
        _step(self.optimizers["discriminators"], d_loss)
        return {"loss": _f(loss), "disc": _f(d_loss), **{k: _f(v) for k, v in parts.items()}}

    def images(self, batch: Batch) -> dict[str, torch.Tensor]:
        x_r = batch.need("real")["rgb"]
        with torch.no_grad():
            return {"translation": image_grid(x_r, self.system.translate(x_r))}


class PretrainAttention:
    domains: tuple[str, ...] = ("real",)

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        attention = _require(system.attention, "A", system.variant)
        a = system.config.attention
        system.depth.requires_grad_(False)  # D and T are fixed while A is trained
        if system.translator is not None:
            system.translator.requires_grad_(False)
        self.tau = TauSchedule(a.tau_start, a.tau_end, total_steps)
        self.rho = RhoSchedule(a.rho, a.rho_initial, a.rho_initial_fraction, total_steps)
        lr = system.config.optim.lr
        self.optimizers: dict[str, torch.optim.Optimizer] = {"attention": _adam(_params(attention), lr, system.config)}

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        system, a = self.system, self.system.config.attention
        assert system.attention is not None
        b = batch.need("real")
        with torch.no_grad():  # T is fixed
            translated = system.translate(b["rgb"])
        tau, rho = self.tau(step), self.rho(step)
        logits = system.attention.logits(b["rgb"])
        mask = gumbel_sigmoid(logits, tau, noise=a.noise)
        masked = translated * mask
        kl = kl_sparsity(mask, rho)
        loss = a.kl_weight * kl
        # The KL sees the noisy soft mask; inference uses the noise-free hard one. With the paper's single Gumbel
        # sample the two differ (a pixel with logit 0 is kept 63% of the time in training), so log both.
        hard_mean = (logits.detach() > 0).float().mean()
        logs = {"kl": _f(kl), "tau": tau, "rho": rho, "mask_mean": _f(mask.mean()), "hard_mask_mean": _f(hard_mean)}
        if a.depth_weight > 0:
            depth = masked_l1(system.depth(masked), b["depth"], b["valid"])  # D fixed: only A's optimizer steps
            loss = loss + a.depth_weight * depth
            logs["depth_l1/real"] = _f(depth)
        if a.adv_weight > 0 and system.translator is not None:
            adv = gan_loss(system.translator.disc_syn(masked), True, system.config.translator.gan_mode)
            loss = loss + a.adv_weight * adv
            logs["adv"] = _f(adv)
        _step(self.optimizers["attention"], loss)
        return {"loss": _f(loss), **logs}

    def images(self, batch: Batch) -> dict[str, torch.Tensor]:
        assert self.system.attention is not None
        x_r = batch.need("real")["rgb"]
        with torch.no_grad():
            mask = self.system.attention.hard_mask(x_r)
            return {"mask": image_grid(x_r, mask.expand_as(x_r) * 2 - 1, self.system.translate(x_r) * mask)}


class PretrainInpainting:
    domains: tuple[str, ...] = ("synthetic", "real")

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        cfg = system.config
        inpainting = _require(system.inpainting, "I", system.variant)
        p, i = cfg.perceptual, cfg.inpainting
        self.perceptual = PerceptualFeatures(
            p.layers, weights_path=p.weights_path or None, seed=p.seed, width_scale=p.width_scale
        ).to(cfg.device)
        system.provenance["perceptual"] = self.perceptual.describe()
        self.weights = InpaintingLossWeights(
            i.rec_weight, i.perceptual_weight, i.style_weight, i.adv_weight, i.gan_mode
        )
        self.generator = torch.Generator().manual_seed(cfg.seed + 4242)
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "inpainting": _adam(_params(inpainting), cfg.optim.lr, cfg),
            "discriminator": _adam(_params(system.disc_inpaint), cfg.optim.lr_disc, cfg),
        }

    def _holes(self, like: torch.Tensor) -> torch.Tensor:
        i = self.system.config.inpainting
        b, _, h, w = like.shape
        return random_hole_masks(
            b,
            h,
            w,
            fraction_min=i.hole_fraction_min,
            fraction_max=i.hole_fraction_max,
            holes=i.holes_per_image,
            generator=self.generator,
            device=like.device,
        )

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        system = self.system
        inpainting, disc = system.inpainting, system.disc_inpaint
        assert inpainting is not None and disc is not None
        x_s, x_r = batch.need("synthetic")["rgb"], batch.need("real")["rgb"]
        with torch.no_grad():  # T and A are fixed
            translated = system.translate(x_r)
            keep = system.keep_mask(x_r)
        targets = torch.cat([x_s, translated])
        holes = self._holes(targets)
        rec_loss, parts = reconstruction_losses(inpainting(targets, holes), targets, self.perceptual, self.weights)
        loss = rec_loss
        completed = compose(translated, keep, inpainting(translated, keep))
        if self.weights.adv > 0:
            disc.requires_grad_(False)
            adv = adversarial_loss(disc, completed, self.weights)
            disc.requires_grad_(True)
            loss = loss + self.weights.adv * adv
            parts["adv"] = adv
        _step(self.optimizers["inpainting"], loss)
        d_loss = discriminator_loss(disc, x_s, completed, self.weights.gan_mode)
        _step(self.optimizers["discriminator"], d_loss)
        return {"loss": _f(loss), "disc": _f(d_loss), **{k: _f(v) for k, v in parts.items()}}

    def images(self, batch: Batch) -> dict[str, torch.Tensor]:
        assert self.system.inpainting is not None
        x_s = batch.need("synthetic")["rgb"]
        with torch.no_grad():
            holes = self._holes(x_s)
            return {"inpainting": image_grid(x_s, x_s * holes, self.system.inpainting.complete(x_s, holes))}


class FreezeAttention:
    """No optimisation: A becomes fixed, hard-masked, and loses its KL term."""

    domains: tuple[str, ...] = ("real",)

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        _require(system.attention, "A", system.variant)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        raise StageError("freeze_A has no optimisation steps")

    def images(self, batch: Batch) -> dict[str, torch.Tensor]:
        return {}


def freeze_attention(system: ARCSystem) -> None:
    if system.attention is not None:
        system.attention.requires_grad_(False)
    system.attention_frozen.fill_(True)


class Finetune:
    """Algorithm 1's loop: rounds of (Eq. 14 for ``eq14_steps``, then Eq. 15 for ``eq15_steps``)."""

    domains: tuple[str, ...] = ("synthetic", "real")

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        if system.attention is not None and not bool(system.attention_frozen):
            raise StageError("finetune needs A frozen first: run the freeze_A stage")
        s, cfg = system.config.schedule, system.config
        self.eq14_steps, self.eq15_steps = s.eq14_steps, s.eq15_steps
        generator = system.translator.g_r2s if system.translator is not None else None
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "eq14": _adam(_params(system.inpainting, system.depth, generator), cfg.optim.lr, cfg),
            "eq15": _adam(_params(system.depth), cfg.optim.lr, cfg),
        }

    def phase(self, step: int) -> tuple[int, str]:
        """(round index, "eq14" or "eq15") of a global finetune step."""
        period = self.eq14_steps + self.eq15_steps
        return step // period, "eq14" if step % period < self.eq14_steps else "eq15"

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        system = self.system
        round_index, phase = self.phase(step)
        real = batch.need("real")
        with torch.set_grad_enabled(phase == "eq14"):  # Eq. 15 optimises D only: no graph through T and I
            decluttered, mask = system.declutter(real["rgb"])
        real_l1 = masked_l1(system.depth(decluttered), real["depth"], real["valid"])
        logs = {"round": float(round_index), f"{phase}/depth_l1/real": _f(real_l1), "mask_mean": _f(mask.mean())}
        loss = real_l1
        if phase == "eq14":
            syn = batch.need("synthetic")
            syn_l1 = masked_l1(system.depth(syn["rgb"]), syn["depth"], syn["valid"])
            logs["eq14/depth_l1/synthetic"] = _f(syn_l1)
            loss = loss + syn_l1
        _step(self.optimizers[phase], loss)
        return {"loss": _f(loss), f"loss/{phase}": _f(loss), **logs}

    def images(self, batch: Batch) -> dict[str, torch.Tensor]:
        real = batch.need("real")
        with torch.no_grad():
            decluttered, mask = self.system.declutter(real["rgb"])
            return {
                "declutter": image_grid(real["rgb"], mask.expand_as(decluttered) * 2 - 1, decluttered),
                "depth": depth_grid(real["depth"], self.system.depth(decluttered)),
            }


def image_grid(*rows: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], each (B, 3, H, W): one row per argument, samples side by side -> (3, rows*H, B*W) [0, 1]."""
    return torch.cat([torch.cat(list(r.detach().cpu()), dim=-1) for r in rows], dim=-2).add(1).mul(0.5).clamp(0, 1)


def depth_grid(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    return image_grid(target.expand(-1, 3, -1, -1), prediction.expand(-1, 3, -1, -1))
