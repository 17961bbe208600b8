"""Algorithm 1 (training by modular coordinate descent) as named, resumable, checkpointed stages.

    pretrain_D   D on the variant's depth data (synthetic, real or both; Eq. 13 with untranslated real images)
    pretrain_T   T by CycleGAN (Eq. 10-12): G_r2s, G_s2r and both domain discriminators
    pretrain_A   A only, with D and T fixed, in the real -> synthetic direction only (appendix, Fig. 9):
                 depth L1 of D(M * T(x_r)) + KL(rho || mean M) + adversarial (T's synthetic discriminator)
    pretrain_I   I by self-supervised completion of random holes (Eq. 4-9) on synthetic and translated real images;
                 the adversarial term sees translated real images completed under A's hard mask (Fig. 10)
    freeze_A     A fixed from here on, hard binary masks, no KL term (no optimisation steps)
    finetune     N rounds (5) of: Eq. 14, optimise I, D, T on real + synthetic depth L1; then Eq. 15, optimise D on
                 real depth L1 (no adversarial terms)

Each stage writes ``<out>/<stage>/checkpoint.pt``: the whole system, the optimizers, the step, the resolved config,
the method, the perceptual-feature source and a ``completed`` flag; it is resumed from there. A stage starts from the
modules trained by the earlier completed stages of the method; ``STAGES[name].requires`` lists the stages whose
modules it cannot do without, and it refuses to start without them. TensorBoard logs go to ``<out>/<stage>/tb``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from dcl_arc_ros.learning.arc.attention import RhoSchedule, TauSchedule, gumbel_sigmoid, kl_sparsity
from dcl_arc_ros.learning.arc.config import ARCConfig, config_from_mapping, to_dict
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
from dcl_arc_ros.learning.arc.model import ARCInference, ARCSystem
from dcl_arc_ros.learning.arc.perceptual import PerceptualFeatures
from dcl_arc_ros.learning.arc.translator import TranslatorLossWeights
from dcl_arc_ros.learning.arc.variants import STAGE_ORDER, Variant, get_variant

CHECKPOINT_FORMAT = "dcl_arc_ros.arc_stage/1"
Tensors = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------------------- data


@dataclass
class ARCData:
    """The two training sets; samples are dicts with "rgb" [0, 1], "depth" metres (0 = invalid), "valid"."""

    synthetic: Dataset[Tensors] | None
    real: Dataset[Tensors] | None


@dataclass
class Batch:
    """Network-ready tensors: "rgb" in [-1, 1], "depth" in [-1, 1] units, "valid" in {0, 1}; None if not drawn."""

    synthetic: Tensors | None
    real: Tensors | None

    def need(self, domain: str) -> Tensors:
        value = getattr(self, domain)
        if value is None:
            raise StageError(f"this stage needs {domain} data, but no {domain} dataset was given")
        return value


class StepBatchSampler(Sampler[list[int]]):
    """Endless shuffled batches whose order depends only on (seed, batch index): a resumed stage sees the same data.

    Epoch e is a permutation drawn from seed + e; the last incomplete batch of an epoch is dropped.
    """

    def __init__(self, length: int, batch_size: int, seed: int, start_batch: int = 0) -> None:
        if length < 1:
            raise StageError("an ARC training dataset is empty")
        self.length, self.batch_size = length, min(batch_size, length)
        self.seed, self.start_batch = seed, start_batch

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = self.length // self.batch_size
        epoch, offset = divmod(self.start_batch, per_epoch)
        while True:
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
            for b in range(offset, per_epoch):
                yield order[b * self.batch_size : (b + 1) * self.batch_size]
            epoch, offset = epoch + 1, 0


def _infinite(dataset: Dataset[Tensors], batch_size: int, seed: int, start: int, workers: int) -> Iterator[Tensors]:
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start)  # type: ignore[arg-type]
    yield from DataLoader(dataset, batch_sampler=sampler, num_workers=workers)


def _prepare(sample: Tensors, system: ARCSystem) -> Tensors:
    """Resize to the config resolution when needed, scale RGB to [-1, 1], depth to network units, mask invalid."""
    m = system.config.model
    rgb, depth = sample["rgb"].float(), sample["depth"].float()
    valid = sample.get("valid", torch.ones_like(depth)).float() * system.depth_range.valid(depth)
    if rgb.shape[-2:] != (m.height, m.width):
        rgb = F.interpolate(rgb, size=(m.height, m.width), mode="bilinear", align_corners=False, antialias=True)
        depth = F.interpolate(depth, size=(m.height, m.width), mode="nearest")
        valid = F.interpolate(valid, size=(m.height, m.width), mode="nearest")
    device = torch.device(system.config.device)
    return {
        "rgb": (rgb * 2.0 - 1.0).to(device),
        "depth": system.depth_range.to_unit(depth).to(device),
        "valid": valid.to(device),
    }


# ------------------------------------------------------------------------------------------------------ runners


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
        self.domains = ("synthetic", "real") if data == "mix" else (data,)
        self.optimizers = {"depth": _adam(_params(system.depth), system.config.optim.lr, system.config)}

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        logs: dict[str, float] = {}
        loss = torch.zeros(())
        for domain in self.domains:
            b = batch.need(domain)
            part = masked_l1(self.system.depth(b["rgb"]), b["depth"], b["valid"])
            logs[f"depth_l1/{domain}"] = _f(part)
            loss = loss + part
        _step(self.optimizers["depth"], loss)
        return {"loss": _f(loss), **logs}

    def images(self, batch: Batch) -> dict[str, torch.Tensor]:
        b = batch.need(self.domains[0])
        with torch.no_grad():
            return {"depth": _depth_grid(b["depth"], self.system.depth(b["rgb"]))}


class PretrainTranslator:
    domains = ("synthetic", "real")

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        _require(system.translator, "T", system.variant)
        cfg = system.config
        self.weights = TranslatorLossWeights(
            cfg.translator.cycle_weight, cfg.translator.identity_weight, cfg.translator.gan_mode
        )
        assert system.translator is not None
        self.optimizers = {
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
            return {"translation": _image_grid(x_r, self.system.translate(x_r))}


class PretrainAttention:
    domains = ("real",)

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        attention = _require(system.attention, "A", system.variant)
        a = system.config.attention
        system.depth.requires_grad_(False)  # D and T are fixed while A is trained
        if system.translator is not None:
            system.translator.requires_grad_(False)
        self.tau = TauSchedule(a.tau_start, a.tau_end, total_steps)
        self.rho = RhoSchedule(a.rho, a.rho_initial, a.rho_initial_fraction, total_steps)
        self.optimizers = {"attention": _adam(_params(attention), system.config.optim.lr, system.config)}

    def step(self, step: int, batch: Batch) -> dict[str, float]:
        system, a = self.system, self.system.config.attention
        assert system.attention is not None
        b = batch.need("real")
        with torch.no_grad():  # T is fixed
            translated = system.translate(b["rgb"])
        tau, rho = self.tau(step), self.rho(step)
        mask = gumbel_sigmoid(system.attention.logits(b["rgb"]), tau, noise=a.noise)
        masked = translated * mask
        kl = kl_sparsity(mask, rho)
        loss = a.kl_weight * kl
        logs = {"kl": _f(kl), "tau": tau, "rho": rho, "mask_mean": _f(mask.mean())}
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
            return {"mask": _image_grid(x_r, mask.expand_as(x_r) * 2 - 1, self.system.translate(x_r) * mask)}


class PretrainInpainting:
    domains = ("synthetic", "real")

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
        self.optimizers = {
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
            return {"inpainting": _image_grid(x_s, x_s * holes, self.system.inpainting.complete(x_s, holes))}


class FreezeAttention:
    """No optimisation: A becomes fixed, hard-masked, and loses its KL term."""

    domains = ("real",)

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

    domains = ("synthetic", "real")

    def __init__(self, system: ARCSystem, total_steps: int) -> None:
        self.system = system
        if system.attention is not None and not bool(system.attention_frozen):
            raise StageError("finetune needs A frozen first: run the freeze_A stage")
        s, cfg = system.config.schedule, system.config
        self.eq14_steps, self.eq15_steps = s.eq14_steps, s.eq15_steps
        generator = system.translator.g_r2s if system.translator is not None else None
        self.optimizers = {
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
                "declutter": _image_grid(real["rgb"], mask.expand_as(decluttered) * 2 - 1, decluttered),
                "depth": _depth_grid(real["depth"], self.system.depth(decluttered)),
            }


# ------------------------------------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class StageSpec:
    name: str
    description: str
    trains: tuple[str, ...]  # ARCSystem attributes (modules / buffers) whose state this stage produces
    requires: tuple[str, ...]  # stages that must be complete first (when the method runs them)
    runner: Callable[[ARCSystem, int], StageRunner]
    steps: Callable[[ARCConfig], int]


STAGES: dict[str, StageSpec] = {
    "pretrain_D": StageSpec(
        "pretrain_D", "D on the method's depth data", ("depth",), (), PretrainDepth,
        lambda c: c.schedule.pretrain_d_steps,
    ),
    "pretrain_T": StageSpec(
        "pretrain_T", "T by CycleGAN", ("translator",), (), PretrainTranslator,
        lambda c: c.schedule.pretrain_t_steps,
    ),
    "pretrain_A": StageSpec(
        "pretrain_A", "A with D and T fixed (real -> synthetic only)", ("attention",), ("pretrain_D", "pretrain_T"),
        PretrainAttention, lambda c: c.schedule.pretrain_a_steps,
    ),
    "pretrain_I": StageSpec(
        "pretrain_I", "I self-supervised on random holes + adversarial", ("inpainting", "disc_inpaint"),
        ("pretrain_T", "pretrain_A"), PretrainInpainting, lambda c: c.schedule.pretrain_i_steps,
    ),
    "freeze_A": StageSpec(
        "freeze_A", "fix A, hard masks, drop the KL term", ("attention", "attention_frozen"), ("pretrain_A",),
        FreezeAttention, lambda c: 0,
    ),
    "finetune": StageSpec(
        "finetune", "alternate Eq. 14 (I, D, T) and Eq. 15 (D) for N rounds",
        ("depth", "inpainting", "translator"),
        ("pretrain_D", "pretrain_T", "pretrain_A", "pretrain_I", "freeze_A"), Finetune,
        lambda c: c.schedule.finetune_rounds * (c.schedule.eq14_steps + c.schedule.eq15_steps),
    ),
}  # fmt: skip
assert tuple(STAGES) == STAGE_ORDER


@dataclass
class StageResult:
    stage: str
    checkpoint: Path
    steps_run: int  # optimisation steps run in this call (0 when it was already complete)
    total_steps: int
    completed: bool
    history: list[dict[str, float]] = field(default_factory=list)  # one log dict per step run in this call


def stage_checkpoint_path(out_dir: str | Path, stage: str) -> Path:
    return Path(out_dir) / stage / "checkpoint.pt"


def build_system(config: ARCConfig, variant: Variant) -> ARCSystem:
    """A freshly initialised system (deterministic in ``config.seed``)."""
    torch.manual_seed(config.seed)
    return ARCSystem(config, variant).to(config.device)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise StageError(f"{path}: no such stage checkpoint") from None
    except Exception as exc:  # corrupt / truncated file
        raise StageError(f"{path}: unreadable stage checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise StageError(f"{path}: not an ARC stage checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    return state


def load_system(path: str | Path) -> ARCSystem:
    """Rebuild a system from a stage checkpoint alone (its saved config and method), weights loaded."""
    state = read_checkpoint(path)
    config = config_from_mapping(state["config"], str(path))
    system = build_system(config, get_variant(state["method"]))
    system.load_state_dict(state["system"])
    system.provenance.update(state.get("provenance", {}))
    return system


def load_inference(path: str | Path) -> ARCInference:
    """The exportable inference path of a (final) stage checkpoint."""
    return ARCInference.from_system(load_system(path))


def _load_modules(system: ARCSystem, state_dict: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> None:
    own = system.state_dict()
    chosen = {k: v for k, v in state_dict.items() if k.split(".")[0] in prefixes and k in own}
    own.update(chosen)
    system.load_state_dict(own)


def _save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _assert_same_config(state: dict[str, Any], config: ARCConfig, variant: Variant, path: Path) -> None:
    if state.get("method") != variant.name:
        raise StageError(f"{path}: checkpoint is for method {state.get('method')!r}, not {variant.name!r}")
    saved, now = _flatten(state["config"]), _flatten(to_dict(config))
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if changed:
        raise StageError(f"{path}: resumed with a different config; changed keys: {changed[:8]}")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def run_stage(
    name: str,
    config: ARCConfig,
    variant: Variant,
    data: ARCData,
    out_dir: str | Path,
    *,
    resume: bool = True,
    max_steps: int | None = None,
    progress: bool = True,
    tensorboard: bool = True,
) -> StageResult:
    """Run (or resume, or skip if complete) one stage of ``variant``; returns what happened.

    ``max_steps`` stops after that many optimisation steps in this call (the checkpoint then says not completed),
    which is how tests and time-boxed jobs interrupt a stage. With ``resume=False`` an existing checkpoint of this
    stage is an error rather than silently overwritten.
    """
    if name not in STAGES:
        raise StageError(f"unknown ARC stage {name!r}; known: {list(STAGES)}")
    if name not in variant.stages:
        raise StageError(f"method {variant.name} does not run stage {name}; its stages: {list(variant.stages)}")
    spec = STAGES[name]
    out_dir = Path(out_dir)
    path = stage_checkpoint_path(out_dir, name)
    total = spec.steps(config)
    system = build_system(config, variant)
    state: dict[str, Any] | None = None
    if path.exists():
        if not resume:
            raise StageError(f"{path} exists; resume it, or choose another output directory")
        state = read_checkpoint(path)
        _assert_same_config(state, config, variant, path)
        system.load_state_dict(state["system"])
        system.provenance.update(state.get("provenance", {}))
        if state["completed"]:
            return StageResult(name, path, 0, total, True)
    else:
        _start_from_earlier_stages(system, name, variant, out_dir)
    if name == "freeze_A":
        freeze_attention(system)
    elif system.attention is not None and bool(system.attention_frozen):
        system.attention.requires_grad_(False)
    runner = spec.runner(system, total)
    start = 0
    if state is not None:
        start = int(state["step"])
        for key, opt in runner.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(config.seed + STAGE_ORDER.index(name) + 1)
    return _loop(name, runner, system, data, path, start, total, max_steps, progress, tensorboard)


def _start_from_earlier_stages(system: ARCSystem, name: str, variant: Variant, out_dir: Path) -> None:
    earlier = variant.stages[: variant.stages.index(name)]
    done: list[str] = []
    for stage in earlier:
        path = stage_checkpoint_path(out_dir, stage)
        if not path.exists():
            continue
        state = read_checkpoint(path)
        if not state["completed"]:
            continue
        _load_modules(system, state["system"], STAGES[stage].trains)
        system.provenance.update(state.get("provenance", {}))
        done.append(stage)
    missing = [s for s in STAGES[name].requires if s in variant.stages and s not in done]
    if missing:
        raise StageError(
            f"stage {name} of method {variant.name} needs the completed stage(s) {missing} under {out_dir}; "
            "run them first"
        )


def _loop(
    name: str,
    runner: StageRunner,
    system: ARCSystem,
    data: ARCData,
    path: Path,
    start: int,
    total: int,
    max_steps: int | None,
    progress: bool,
    tensorboard: bool,
) -> StageResult:
    config = system.config
    s = config.schedule
    end = total if max_steps is None else min(total, start + max_steps)
    writer = _writer(path.parent / "tb") if tensorboard and end > start else None
    iterators = {
        domain: _infinite(_dataset(data, domain), s.batch_size, config.seed + 7919 * i, start, config.data.num_workers)
        for i, domain in enumerate(runner.domains)
    } if end > start else {}  # fmt: skip
    history: list[dict[str, float]] = []
    system.train()
    step = start
    with tqdm(total=total, initial=start, desc=f"{system.variant.name}/{name}", disable=not progress) as bar:
        for step in range(start, end):
            batch = Batch(synthetic=None, real=None)
            for domain, iterator in iterators.items():
                setattr(batch, domain, _prepare(next(iterator), system))
            logs = runner.step(step, batch)
            history.append(logs)
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
            if writer is not None and (step % s.log_every == 0 or step == end - 1):
                for key, value in logs.items():
                    writer.add_scalar(f"{name}/{key}", value, step)
            if writer is not None and s.image_every > 0 and step % s.image_every == 0:
                system.eval()
                for key, grid in runner.images(_head(batch, s.grid_samples)).items():
                    writer.add_image(f"{name}/{key}", grid, step)
                system.train()
            if s.checkpoint_every > 0 and (step + 1) % s.checkpoint_every == 0 and step + 1 < end:
                _save(path, _payload(name, system, runner, step + 1, total))
    if writer is not None:
        writer.close()
    completed = end >= total
    _save(path, _payload(name, system, runner, end, total))
    return StageResult(name, path, end - start, total, completed, history)


def _payload(name: str, system: ARCSystem, runner: StageRunner, step: int, total: int) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "stage": name,
        "method": system.variant.name,
        "config": to_dict(system.config),
        "step": step,
        "total_steps": total,
        "completed": step >= total,
        "system": system.state_dict(),
        "optimizers": {k: opt.state_dict() for k, opt in runner.optimizers.items()},
        "provenance": dict(system.provenance),
        "rng": torch.get_rng_state(),
    }


def run_method(
    config: ARCConfig,
    variant: Variant,
    data: ARCData,
    out_dir: str | Path,
    *,
    stage: str = "all",
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
) -> list[StageResult]:
    """Run one stage by name, or ``"all"`` of the method's stages in order (complete ones are skipped on resume)."""
    names = variant.stages if stage == "all" else (stage,)
    return [
        run_stage(n, config, variant, data, out_dir, resume=resume, progress=progress, tensorboard=tensorboard)
        for n in names
    ]


def final_checkpoint(out_dir: str | Path, variant: Variant) -> Path:
    """The checkpoint holding the method's finished system (its last stage)."""
    return stage_checkpoint_path(out_dir, variant.stages[-1])


# ------------------------------------------------------------------------------------------------------ helpers


def _dataset(data: ARCData, domain: str) -> Dataset[Tensors]:
    dataset = getattr(data, domain)
    if dataset is None:
        raise StageError(f"this stage needs a {domain} dataset, but none was given")
    return dataset


def _head(batch: Batch, n: int) -> Batch:
    def cut(t: Tensors | None) -> Tensors | None:
        return None if t is None else {k: v[:n] for k, v in t.items()}

    return Batch(synthetic=cut(batch.synthetic), real=cut(batch.real))


def _image_grid(*rows: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], each (B, 3, H, W): one row per argument, samples side by side -> (3, rows*H, B*W) [0, 1]."""
    return torch.cat([torch.cat(list(r.detach().cpu()), dim=-1) for r in rows], dim=-2).add(1).mul(0.5).clamp(0, 1)


def _depth_grid(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    return _image_grid(target.expand(-1, 3, -1, -1), prediction.expand(-1, 3, -1, -1))


def _writer(log_dir: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard is a training-only dependency

    return SummaryWriter(log_dir=str(log_dir))
