"""ARC's results tables on our own data: train every method over seeds, evaluate it, assemble the results.

    ARC Table 2   the methods (baselines, ablations, full) on the held-out real-like test split, over seeds
    ARC Table 4   the same metrics inside / outside the region ARC removes (arc_full's hard mask of the same seed)
    ARC Fig. 3    arc_full over the sparsity target rho (one seed)
    ARC Fig. 4    the per-sample AbsRel gain of arc_full over mix training
    sanity check  Middlebury 2014 Motorcycle (real stereo, metric ground truth): metric and scale-invariant errors

Why the pieces look the way they do:

* **Frames are decoded once.** Every dataset is read, resized to the training resolution and stacked into tensors
  before any training (:func:`load_frames`); the stages then draw batches from memory.
* **Identical stages are computed once.** Several methods run stages that are the same computation: every
  ``arc_*`` method pre-trains D exactly as ``mix`` does, ``arc_t``/``arc_at``/``arc_full`` pre-train the same T,
  ``arc_at`` and ``arc_full`` the same A. ``build_system`` seeds the networks in a fixed order (D, T, A, I) and
  ``run_stage`` seeds each stage by its name, so these stages produce the same weights whichever method runs them.
  :func:`stage_key` names a stage by what it depends on (the config sections it reads, the depth data, the upstream
  stages); a finished stage is stored once under ``<out>/stages/`` and hard-linked into every run that needs it. The
  rho sweep reuses D and T the same way (rho only enters from pretrain_A on).
* **Finished runs are reused.** A run's evaluation is stored beside its final checkpoint (``eval.json`` +
  ``eval.npz``) together with the checkpoint's step and config; a rerun trains and evaluates only what is missing.
  A stage checkpoint in a run directory that another config or method produced (an earlier ``--set``) is discarded
  and recomputed, never reused.
* **Times are recorded** per stage (``<run>/<stage>/seconds.json``) and per piece, and survive reuse.

Layout under ``out``: ``runs/<method>/seed<k>/`` (the rho sweep: ``runs/rho_<r>/seed<k>/``), ``stages/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dcl_arc_ros.core.metrics import mean_and_spread, mean_metrics, monocular_depth_metrics
from dcl_arc_ros.learning.arc.batches import ARCData
from dcl_arc_ros.learning.arc.config import ARCConfig, DatasetConfig, config_from_mapping, to_dict
from dcl_arc_ros.learning.arc.datasets import build_dataset
from dcl_arc_ros.learning.arc.model import ARCInference
from dcl_arc_ros.learning.arc.stages import (
    final_checkpoint,
    load_system,
    read_checkpoint,
    run_stage,
    stage_checkpoint_path,
)
from dcl_arc_ros.learning.arc.variants import VARIANTS, Variant, get_variant

METHODS: tuple[str, ...] = ("syn_only", "real_only", "mix", "arc_t", "arc_a", "arc_at", "arc_ai", "arc_full")
METRICS: tuple[str, ...] = ("absrel", "sqrel", "rms", "rmslog", "delta1", "delta2", "delta3")
RHO_VALUES: tuple[float, ...] = (0.7, 0.8, 0.85, 0.9, 0.95, 0.99)
#: The order runs are trained in: the deploy model (arc_full, first seed) as early as its prerequisites allow.
TRAIN_ORDER: tuple[str, ...] = ("mix", "arc_t", "arc_at", "arc_full", "syn_only", "real_only", "arc_a", "arc_ai")
EVAL_FORMAT = "dcl_arc_ros.arc_eval/1"


# ------------------------------------------------------------------------------------------------------- frames


@dataclass
class FrameTensors:
    """A whole dataset in memory at the training resolution: rgb (N, 3, H, W) [0, 1], depth metres, valid {0, 1}."""

    rgb: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor

    def __len__(self) -> int:
        return int(self.rgb.shape[0])


class TensorFrames(Dataset[dict[str, torch.Tensor]]):
    """:class:`FrameTensors` as the sample dicts the ARC stages expect."""

    def __init__(self, frames: FrameTensors) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        f = self.frames
        return {"rgb": f.rgb[index], "depth": f.depth[index], "valid": f.valid[index]}


def load_frames(spec: DatasetConfig, config: ARCConfig, domain: str) -> FrameTensors:
    """Decode every frame of ``spec`` once, resized to ``config.model`` (the ARC dataset registry does the resize)."""
    dataset = build_dataset(spec, config, domain)
    samples = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    if not samples:
        raise ValueError(f"data.{domain}: {spec.kind} {spec.root!r} has no frames")
    rgb = torch.stack([s["rgb"].float() for s in samples])
    depth = torch.stack([s["depth"].float() for s in samples])
    valid = torch.stack([s.get("valid", (s["depth"] > 0).float()).float() for s in samples])
    return FrameTensors(rgb, depth, valid)


# ---------------------------------------------------------------------------------------------- shared stages

#: Config sections a stage does NOT read (so two runs that differ only there can share the stage's result).
_IGNORED_SECTIONS: dict[str, tuple[str, ...]] = {
    "pretrain_D": ("attention", "inpainting", "perceptual", "translator"),
    "pretrain_T": ("attention", "inpainting", "perceptual"),
    "pretrain_A": ("inpainting", "perceptual"),
    "pretrain_I": (),
}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_key(stage: str, variant: Variant, config: ARCConfig) -> str | None:
    """A name for the computation ``stage`` performs in ``variant`` under ``config``; None if it is never shared.

    Two (variant, config) pairs with the same key produce the same weights for that stage (see the module docstring):
    the key covers the config sections the stage reads, the depth data D trains on, and the keys of the upstream
    stages whose modules it starts from. freeze_A (no steps) and finetune (different per method) are not shared.
    """
    if stage not in _IGNORED_SECTIONS:
        return None
    raw = to_dict(config)
    parts: dict[str, Any] = {
        "stage": stage,
        "config": {k: v for k, v in raw.items() if k not in _IGNORED_SECTIONS[stage]},
        # Module construction order (D, T, A, I from one seed) fixes the initial weights of each module.
        "modules": list(variant.modules),
    }
    if stage == "pretrain_D":
        parts["modules"] = ["D"]  # D is built first: its initial weights do not depend on the other modules
        parts["depth_data"] = variant.depth_data
    elif stage == "pretrain_T":
        parts["modules"] = ["T", "D"]  # T is built right after D
    elif stage == "pretrain_A":
        parts["upstream"] = [stage_key("pretrain_D", variant, config)]
        if variant.uses_translator:
            parts["upstream"].append(stage_key("pretrain_T", variant, config))
        parts["modules"] = [m for m in variant.modules if m != "I"]  # I is built after A
    else:  # pretrain_I
        parts["upstream"] = [stage_key(s, variant, config) for s in ("pretrain_T", "pretrain_A") if s in variant.stages]
    return f"{stage}-{_digest(parts)}"


def _completed(path: Path) -> bool:
    return path.exists() and bool(read_checkpoint(path)["completed"])


def _same_computation(path: Path, config: ARCConfig, variant: Variant) -> bool:
    """Whether the stage checkpoint at ``path`` was produced by ``variant`` under exactly ``config``."""
    state = read_checkpoint(path)
    return state.get("method") == variant.name and _digest(state["config"]) == _digest(to_dict(config))


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class StageLog:
    stage: str
    seconds: float  # wall time of the computation (also when it was done by another run and shared)
    source: str  # "ran" (now), "reused" (run by an earlier call into this run), or "shared:<key>" (another run's)


def train_run(
    config: ARCConfig,
    variant: Variant,
    data: ARCData,
    run_dir: Path,
    store: Path,
    *,
    progress: bool = True,
) -> list[StageLog]:
    """Train ``variant`` into ``run_dir``, taking finished shareable stages from ``store`` and adding new ones to it."""
    logs: list[StageLog] = []
    for stage in variant.stages:
        target = stage_checkpoint_path(run_dir, stage)
        seconds_file = target.parent / "seconds.json"
        key = stage_key(stage, variant, config)
        shared = store / key / "checkpoint.pt" if key else None
        if target.exists() and not _same_computation(target, config, variant):
            # Left by another config or method (e.g. an earlier --set): never reuse it. The later stages of this
            # run are discarded the same way when the loop reaches them, and eval.json by its config stamp.
            shutil.rmtree(target.parent)
        if _completed(target):
            record = _read_json(seconds_file) or {"seconds": float("nan")}
            source = record.get("source", "")
            logs.append(StageLog(stage, float(record["seconds"]), source if source.startswith("shared:") else "reused"))
            continue
        if shared is not None and shared.exists():
            _link(shared, target)
            record = _read_json(shared.parent / "seconds.json") or {"seconds": float("nan")}
            _write_json(seconds_file, {"seconds": record["seconds"], "source": f"shared:{key}"})
            logs.append(StageLog(stage, float(record["seconds"]), f"shared:{key}"))
            continue
        start = time.perf_counter()
        result = run_stage(stage, config, variant, data, run_dir, resume=True, progress=progress)
        seconds = time.perf_counter() - start
        if not result.completed:
            raise RuntimeError(f"{target}: stage {stage} stopped before its last step")
        _write_json(seconds_file, {"seconds": seconds, "source": "ran"})
        if shared is not None:
            _link(target, shared)
            _write_json(shared.parent / "seconds.json", {"seconds": seconds, "source": "ran", "run": str(run_dir)})
        logs.append(StageLog(stage, seconds, "ran"))
    return logs


# ------------------------------------------------------------------------------------------------- evaluation


@dataclass
class RunEvaluation:
    """One trained run on the test frames: per-frame metrics plus the maps the tables and figures need."""

    per_frame: list[dict[str, float]]
    depth_m: np.ndarray  # (N, H, W) float32 predictions, metres
    keep: np.ndarray  # (N, H, W) bool, the hard mask (True = kept; all True without A)
    decluttered: np.ndarray  # (N, H, W, 3) uint8, the image D saw
    seconds: float

    @property
    def means(self) -> dict[str, float]:
        return mean_metrics(self.per_frame)


def frame_metrics(
    pred: np.ndarray, truth: np.ndarray, max_depth_m: float, mask: np.ndarray | None = None
) -> dict[str, float]:
    """ARC's metrics on one frame over ground-truth pixels in (0, max_depth_m] (optionally inside ``mask``)."""
    return monocular_depth_metrics(pred, truth, mask=mask, max_depth_m=max_depth_m)


def predict(model: ARCInference, rgb01: torch.Tensor, depth_range: Any, batch: int = 8) -> tuple[np.ndarray, ...]:
    """rgb (N, 3, H, W) [0, 1] -> depth metres (N, H, W), keep mask (N, H, W) bool, decluttered (N, H, W, 3) uint8."""
    depths, keeps, images = [], [], []
    with torch.no_grad():
        for i in range(0, rgb01.shape[0], batch):
            depth, mask, decluttered = model(rgb01[i : i + batch] * 2.0 - 1.0)
            depths.append(depth_range.to_metres(depth)[:, 0].numpy().astype(np.float32))
            keeps.append(mask[:, 0].numpy() > 0.5)
            images.append(((decluttered.clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(depths), np.concatenate(keeps), np.concatenate(images)


def evaluate_run(checkpoint: Path, test: FrameTensors) -> RunEvaluation:
    """The run's final checkpoint on every test frame (ground truth: the clean depth), at the model's resolution."""
    start = time.perf_counter()
    system = load_system(checkpoint)
    model = ARCInference.from_system(system)
    depth, keep, images = predict(model, test.rgb, system.depth_range)
    truth = (test.depth[:, 0] * test.valid[:, 0]).numpy()
    max_m = system.config.model.depth_max_m
    per_frame = [frame_metrics(depth[i], truth[i], max_m) for i in range(len(test))]
    return RunEvaluation(per_frame, depth, keep, images, time.perf_counter() - start)


def evaluate_cached(run_dir: Path, variant: Variant, test: FrameTensors) -> RunEvaluation:
    """:func:`evaluate_run` of the run's final checkpoint, reused from ``eval.json`` + ``eval.npz`` while current."""
    checkpoint = final_checkpoint(run_dir, variant)
    state = read_checkpoint(checkpoint)
    stamp = {
        "stage": state["stage"],
        "step": int(state["step"]),
        "frames": len(test),
        "config": _digest(state["config"]),
    }
    meta, arrays = run_dir / "eval.json", run_dir / "eval.npz"
    old = _read_json(meta)
    if old is not None and old.get("format") == EVAL_FORMAT and old.get("checkpoint") == stamp and arrays.exists():
        with np.load(arrays) as npz:
            return RunEvaluation(
                old["per_frame"], npz["depth_m"], npz["keep"], npz["decluttered"], float(old["seconds"])
            )
    result = evaluate_run(checkpoint, test)
    np.savez_compressed(arrays, depth_m=result.depth_m, keep=result.keep, decluttered=result.decluttered)
    _write_json(
        meta, {"format": EVAL_FORMAT, "checkpoint": stamp, "per_frame": result.per_frame, "seconds": result.seconds}
    )
    return result


# ------------------------------------------------------------------------------------------------- Middlebury


def middlebury_scores(checkpoint: Path, rgb: np.ndarray, truth_m: np.ndarray) -> dict[str, float]:
    """One model on one real image: metric errors and scale-invariant ones, at the ground truth's resolution.

    The image is resized to the model's input (aspect not kept: the network has one static size), the prediction
    resized back bilinearly. ``si_*`` rows scale the prediction by median(truth) / median(prediction) first (the usual
    scale-invariant protocol) and ``silog`` is Eigen et al.'s scale-invariant log error (sqrt, lambda = 1).
    """
    import cv2

    system = load_system(checkpoint)
    m = system.config.model
    small = cv2.resize(rgb, (m.width, m.height), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(small.transpose(2, 0, 1).copy()).float().div(255.0)[None]
    depth, _, _ = predict(ARCInference.from_system(system), x, system.depth_range)
    pred = cv2.resize(depth[0], (truth_m.shape[1], truth_m.shape[0]), interpolation=cv2.INTER_LINEAR)
    truth = np.nan_to_num(truth_m, nan=0.0, posinf=0.0)
    metric = frame_metrics(pred, truth, m.depth_max_m)
    valid = (truth > 0) & (truth <= m.depth_max_m)
    scale = float(np.median(truth[valid]) / max(float(np.median(pred[valid])), 1e-6))
    scaled = monocular_depth_metrics(pred * scale, truth, mask=valid)  # no clip: the scaled range is not the net's
    log_diff = np.log(np.clip(pred[valid], 1e-3, None)) - np.log(truth[valid])
    silog = float(np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0)))
    return {
        **{f"metric_{k}": v for k, v in metric.items()},
        **{f"si_{k}": v for k, v in scaled.items()},
        "silog": silog,
        "median_scale": scale,
    }


# ------------------------------------------------------------------------------------------------- experiment


@dataclass
class ARCExperiment:
    """Everything one evaluation needs; ``run`` trains what is missing and returns the assembled results."""

    config: ARCConfig
    out_dir: Path
    test: DatasetConfig
    seeds: tuple[int, ...] = (0, 1)
    methods: tuple[str, ...] = METHODS
    rho_values: tuple[float, ...] = RHO_VALUES
    rho_seed: int = 0
    middlebury: bool = True
    progress: bool = True
    log: Callable[[str], None] = print
    timings: dict[str, Any] = field(default_factory=dict)

    def run_dir(self, name: str, seed: int) -> Path:
        return self.out_dir / "runs" / name / f"seed{seed}"

    def seeded(self, seed: int, **attention: float) -> ARCConfig:
        raw = to_dict(self.config)
        raw["seed"] = seed
        raw["attention"].update(attention)
        return config_from_mapping(raw, "<experiment>")

    def run(self) -> dict[str, Any]:
        total_start = time.perf_counter()
        start = time.perf_counter()
        data = ARCData(
            synthetic=TensorFrames(load_frames(self.config.data.synthetic, self.config, "synthetic")),
            real=TensorFrames(load_frames(self.config.data.real, self.config, "real")),
        )
        test = load_frames(self.test, self.config, "test")
        self.timings["data_load"] = time.perf_counter() - start
        self.log(f"frames: synthetic {len(data.synthetic)}, real {len(data.real)}, test {len(test)}")  # type: ignore[arg-type]

        store = self.out_dir / "stages"
        evals: dict[str, dict[int, RunEvaluation]] = {m: {} for m in self.methods}
        runs: dict[str, dict[str, Any]] = {}
        order = [m for m in TRAIN_ORDER if m in self.methods] + [m for m in self.methods if m not in TRAIN_ORDER]
        for seed in self.seeds:
            for method in order:
                variant = get_variant(method)
                run_dir = self.run_dir(method, seed)
                stages = train_run(self.seeded(seed), variant, data, run_dir, store, progress=self.progress)
                evals[method][seed] = evaluate_cached(run_dir, variant, test)
                runs[f"{method}/seed{seed}"] = _run_record(stages, evals[method][seed])
                self.log(f"{method}/seed{seed}: absrel {evals[method][seed].means['absrel']:.4f}")

        sweep: dict[str, Any] = {}
        for rho in self.rho_values:
            variant = get_variant("arc_full")
            config = self.seeded(self.rho_seed, rho=rho)
            main = self.seeded(self.rho_seed)
            if to_dict(config) == to_dict(main) and "arc_full" in self.methods and self.rho_seed in self.seeds:
                result = evals["arc_full"][self.rho_seed]  # the main row IS this point
            else:
                run_dir = self.run_dir(f"rho_{rho:.2f}", self.rho_seed)
                stages = train_run(config, variant, data, run_dir, store, progress=self.progress)
                result = evaluate_cached(run_dir, variant, test)
                runs[f"rho_{rho:.2f}/seed{self.rho_seed}"] = _run_record(stages, result)
            sweep[f"{rho:g}"] = {**result.means, "keep_fraction": float(result.keep.mean())}
            self.log(f"rho {rho:g}: absrel {result.means['absrel']:.4f}, kept {result.keep.mean():.3f}")
        self.timings["runs"] = runs

        results: dict[str, Any] = {
            "rows": table_rows(evals),
            "mask_split": mask_split(evals, test, self.config.model.depth_max_m),
            "rho_sweep": sweep,
            "per_sample_gain": per_sample_gain(evals, "mix", "arc_full"),
        }
        start = time.perf_counter()
        results["middlebury"] = self.middlebury_rows() if self.middlebury else {}
        self.timings["middlebury"] = time.perf_counter() - start
        self.timings.update(summarise_times(runs))
        self.timings["total_this_call"] = time.perf_counter() - total_start
        results["timings_s"] = self.timings
        results["_evals"] = evals  # for figures; dropped before writing JSON
        results["_test"] = test
        return results

    def middlebury_rows(self) -> dict[str, Any]:
        from dcl_arc_ros.data.real import middlebury_motorcycle

        record = middlebury_motorcycle()
        assert record.rgb is not None and record.depth_clean is not None
        out: dict[str, Any] = {}
        for method in self.methods:
            variant = get_variant(method)
            scores = [
                middlebury_scores(final_checkpoint(self.run_dir(method, s), variant), record.rgb, record.depth_clean)
                for s in self.seeds
            ]
            out[method] = mean_and_spread(scores)
        return out


def _run_record(stages: Sequence[StageLog], evaluation: RunEvaluation) -> dict[str, Any]:
    return {
        "stages": {s.stage: {"seconds": s.seconds, "source": s.source} for s in stages},
        "eval_seconds": evaluation.seconds,
    }


def summarise_times(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Compute actually spent, each shared stage counted once: main rows vs rho sweep, training vs evaluation."""
    out = {"main_rows_train": 0.0, "main_rows_eval": 0.0, "rho_sweep_train": 0.0, "rho_sweep_eval": 0.0}
    for name, record in runs.items():
        piece = "rho_sweep" if name.startswith("rho_") else "main_rows"
        out[f"{piece}_eval"] += float(record["eval_seconds"])
        for stage in record["stages"].values():
            if stage["source"] in ("ran", "reused"):
                out[f"{piece}_train"] += float(stage["seconds"]) if np.isfinite(stage["seconds"]) else 0.0
    return out


def table_rows(evals: Mapping[str, Mapping[int, RunEvaluation]]) -> dict[str, dict[str, float]]:
    """ARC Table 2: per method, the mean over seeds of the per-frame-averaged metrics, with the seed spread."""
    return {
        method: mean_and_spread([{k: r.means[k] for k in METRICS} for r in per_seed.values()])
        for method, per_seed in evals.items()
        if per_seed
    }


def mask_split(
    evals: Mapping[str, Mapping[int, RunEvaluation]], test: FrameTensors, max_depth_m: float
) -> dict[str, Any]:
    """ARC Table 4: every method's metrics inside / outside arc_full's removed region (same seed, same frame).

    Both sides average over the seeds whose arc_full removed something (``seeds_with_removal``), so they compare the
    same runs; ``outside`` averages over all seeds when none removed anything (then ``inside`` is NaN).
    """
    reference = evals.get("arc_full", {})
    if not reference:
        return {}
    truth = (test.depth[:, 0] * test.valid[:, 0]).numpy()
    out: dict[str, Any] = {
        "mask_source": "arc_full",
        "removed_fraction": float(np.mean([1.0 - r.keep.mean() for r in reference.values()])),
    }
    for method, per_seed in evals.items():
        inside, outside = [], []
        for seed, result in per_seed.items():
            if seed not in reference:
                continue
            removed = ~reference[seed].keep
            rows_in = [frame_metrics(result.depth_m[i], truth[i], max_depth_m, removed[i]) for i in range(len(test))]
            rows_out = [frame_metrics(result.depth_m[i], truth[i], max_depth_m, ~removed[i]) for i in range(len(test))]
            inside.append({k: v for k, v in mean_metrics(rows_in).items() if k in METRICS})
            outside.append({k: v for k, v in mean_metrics(rows_out).items() if k in METRICS})
        # A seed whose A kept every pixel has no inside. Both sides average over the seeds that removed something,
        # so that inside and outside compare the same runs (outside: all seeds when no seed removed anything).
        removal = [i for i, row in enumerate(inside) if np.isfinite(row["absrel"])]
        if outside:
            nothing = dict.fromkeys(METRICS, float("nan"))
            out[method] = {
                "inside": mean_and_spread([inside[i] for i in removal]) if removal else nothing,
                "outside": mean_and_spread([outside[i] for i in removal] if removal else outside),
                "seeds_with_removal": len(removal),
            }
    return out


def per_sample_gain(evals: Mapping[str, Mapping[int, RunEvaluation]], baseline: str, method: str) -> dict[str, Any]:
    """ARC Fig. 4: per test frame, AbsRel(baseline) - AbsRel(method) and delta1(method) - delta1(baseline), each
    averaged over the seeds both have (positive = ``method`` better)."""
    seeds = sorted(set(evals.get(baseline, {})) & set(evals.get(method, {})))
    if not seeds:
        return {}

    def per_frame(name: str, metric: str) -> np.ndarray:
        return np.mean([[row[metric] for row in evals[name][s].per_frame] for s in seeds], axis=0)

    absrel = per_frame(baseline, "absrel") - per_frame(method, "absrel")
    delta1 = per_frame(method, "delta1") - per_frame(baseline, "delta1")
    return {
        "baseline": baseline,
        "method": method,
        "seeds": seeds,
        "absrel_gain": [float(v) for v in absrel],
        "delta1_gain": [float(v) for v in delta1],
        "frames_improved_absrel": int(np.sum(absrel > 0)),
        "frames": int(absrel.size),
    }


def public_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able part of :meth:`ARCExperiment.run`'s results."""
    return {k: v for k, v in results.items() if not k.startswith("_")}


assert set(METHODS) == set(VARIANTS)
