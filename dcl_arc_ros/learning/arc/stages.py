"""Algorithm 1 (training by modular coordinate descent) as named, resumable, checkpointed stages.

    pretrain_D   D on the variant's depth data (synthetic, real or both; Eq. 13 with untranslated real images)
    pretrain_T   T by CycleGAN (Eq. 10-12): G_r2s, G_s2r and both domain discriminators
    pretrain_A   A only, with D and T fixed, in the real -> synthetic direction only (appendix, Fig. 9):
                 depth L1 of D(M * T(x_r)) + KL(rho || mean M) + adversarial (T's synthetic discriminator).
                 The cycle reconstruction G_s2r(M * T(x_r)) ~ x_r is not used for A: it penalises every removal
                 and would only fight the KL target. Without T (arc_a, arc_ai) there is no adversarial term.
    pretrain_I   I by self-supervised completion of random holes (Eq. 4-9) on synthetic and translated real images;
                 the adversarial term sees translated real images completed under A's hard mask (Fig. 10)
    freeze_A     A fixed from here on, hard binary masks, no KL term (no optimisation steps)
    finetune     N rounds (5) of: Eq. 14, optimise I, D, T on real + synthetic depth L1; then Eq. 15, optimise D on
                 real depth L1 (no adversarial terms)

The optimisation step of each stage lives in runners.py and the data plumbing in batches.py; this module runs them.
Each stage writes ``<out>/<stage>/checkpoint.pt``: the whole system, the optimizers, the step, the resolved config,
the method, the perceptual-feature source and a ``completed`` flag; it is resumed from there. A stage starts from the
modules trained by the earlier completed stages of the method; ``STAGES[name].requires`` lists the stages whose
modules it cannot do without, and it refuses to start without them. TensorBoard logs go to ``<out>/<stage>/tb``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from dcl_arc_ros.learning.arc.batches import (
    ARCData,
    Batch,
    dataset_for,
    head_of_batch,
    infinite_batches,
    prepare_batch,
)
from dcl_arc_ros.learning.arc.config import ARCConfig, config_from_mapping, to_dict
from dcl_arc_ros.learning.arc.errors import StageError
from dcl_arc_ros.learning.arc.model import ARCInference, ARCSystem
from dcl_arc_ros.learning.arc.runners import (
    Finetune,
    FreezeAttention,
    PretrainAttention,
    PretrainDepth,
    PretrainInpainting,
    PretrainTranslator,
    StageRunner,
    freeze_attention,
)
from dcl_arc_ros.learning.arc.variants import STAGE_ORDER, Variant, get_variant

CHECKPOINT_FORMAT = "dcl_arc_ros.arc_stage/1"


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
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data only
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
    _load_state(system, state["system"], Path(path))
    system.provenance.update(state.get("provenance", {}))
    return system


def load_inference(path: str | Path) -> ARCInference:
    """The exportable inference path of a (final) stage checkpoint."""
    return ARCInference.from_system(load_system(path))


def _load_state(system: ARCSystem, state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    try:
        system.load_state_dict(state_dict)
    except RuntimeError as exc:  # another architecture than the config builds
        raise StageError(f"{path}: its weights do not fit the configured networks: {exc}") from exc


def _load_modules(
    system: ARCSystem, state_dict: Mapping[str, torch.Tensor], prefixes: tuple[str, ...], path: Path
) -> None:
    own = system.state_dict()
    chosen = {k: v for k, v in state_dict.items() if k.split(".")[0] in prefixes and k in own}
    own.update(chosen)
    _load_state(system, own, path)


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
        _load_state(system, state["system"], path)
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
        _load_modules(system, state["system"], STAGES[stage].trains, path)
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
    iterators = {}
    if end > start:
        for i, domain in enumerate(runner.domains):
            seed = config.seed + 7919 * i  # each domain has its own shuffle stream
            dataset = dataset_for(data, domain)
            iterators[domain] = infinite_batches(dataset, s.batch_size, seed, start, config.data.num_workers)
    history: list[dict[str, float]] = []
    system.train()
    step = start
    with tqdm(total=total, initial=start, desc=f"{system.variant.name}/{name}", disable=not progress) as bar:
        for step in range(start, end):
            batch = Batch(synthetic=None, real=None)
            for domain, iterator in iterators.items():
                setattr(batch, domain, prepare_batch(next(iterator), system))
            logs = runner.step(step, batch)
            history.append(logs)
            bar.update(1)
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
            if writer is not None and (step % s.log_every == 0 or step == end - 1):
                for key, value in logs.items():
                    writer.add_scalar(f"{name}/{key}", value, step)
            if writer is not None and s.image_every > 0 and step % s.image_every == 0:
                system.eval()
                for key, grid in runner.images(head_of_batch(batch, s.grid_samples)).items():
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
    max_steps: int | None = None,
) -> list[StageResult]:
    """Run one stage by name, or ``"all"`` of the method's stages in order (complete ones are skipped on resume).

    ``max_steps`` bounds the optimisation steps of this call; the run stops at the first stage left unfinished
    (its checkpoint resumes it later), so a time-boxed job never starts a stage without its prerequisites.
    """
    names = variant.stages if stage == "all" else (stage,)
    results: list[StageResult] = []
    budget = max_steps
    for name in names:
        result = run_stage(
            name, config, variant, data, out_dir, resume=resume, max_steps=budget, progress=progress,
            tensorboard=tensorboard,
        )  # fmt: skip
        results.append(result)
        if budget is not None:
            budget -= result.steps_run
        if not result.completed:
            break
    return results


def final_checkpoint(out_dir: str | Path, variant: Variant) -> Path:
    """The checkpoint holding the method's finished system (its last stage)."""
    return stage_checkpoint_path(out_dir, variant.stages[-1])


def _writer(log_dir: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter  # lazy: tensorboard is a training-only dependency

    return SummaryWriter(log_dir=str(log_dir))
