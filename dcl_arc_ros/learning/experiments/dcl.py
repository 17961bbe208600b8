"""The DCL paper evaluation (Table I depth enhancement, Table II normals) at a scale one CPU thread can carry.

For every synthesis row (``clean``, ``empirical``, ``cut``, ``cyclegan``, ``dcl``, ``dcl_rgb``) and seed:

1. the trained methods train a generator unpaired (source = CLEAN depth of the synthetic scenes, real = SENSOR
   depth of the real-like training scenes; no pairing is used), from ``training/configs/dcl_eval.yaml``;
2. the synthesis method turns the clean depth of a fixed subset of the synthetic frames into a training set;
3. the SAME cleaner (``training/configs/enhancer_eval.yaml``) and the SAME small normal estimator
   (``training/configs/normals_eval.yaml``) are trained on (synthesized depth, clean depth / ground-truth normals);
4. both are scored on the held-out real-like test frames: sensor depth in, ground-truth depth and normals as targets.

Two reference rows: ``supervised_real`` (trained on the real-like training pairs, sensor -> clean) and
``dcl_finetuned`` (the ``dcl`` cleaner / normal net of the same seed fine-tuned on ``finetune_fraction`` of the
real-like training pairs).

Run directories live under ``workdir`` (``outputs/experiments/dcl`` by default): ``synth/<method>/seed_<s>/`` for
generators (a ``DONE`` file holding the checkpoint path marks a finished one: it is reused, never retrained), and
``rows/<row>/seed_<s>/result.json`` for a finished row (reused as well). Every piece records its wall time.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dcl_arc_ros.core.metrics import depth_enhancement_metrics, mean_and_spread, mean_metrics, normal_metrics
from dcl_arc_ros.learning.config import load_yaml
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.nets.blocks import denormalise_depth, normalise_depth
from dcl_arc_ros.learning.trainers.dcl import (
    TRAINED_METHODS,
    DCLTrainConfig,
    load_dcl_config,
    make_synthesizer,
    make_task,
    open_unpaired_datasets,
)
from dcl_arc_ros.learning.trainers.enhancer import EnhancerConfig, EnhancerTask, load_enhancer_config
from dcl_arc_ros.learning.trainers.loop import run_training, seed_everything

SYNTH_ROWS: tuple[str, ...] = ("clean", "empirical", "cut", "cyclegan", "dcl", "dcl_rgb")
ROWS: tuple[str, ...] = (*SYNTH_ROWS, "supervised_real", "dcl_finetuned")
# The order rows are run in: the rows of the claim (DCL against clean, empirical and CUT) first, the costliest last.
RUN_ORDER: tuple[str, ...] = (
    "clean",
    "empirical",
    "dcl",
    "cut",
    "supervised_real",
    "dcl_finetuned",
    "dcl_rgb",
    "cyclegan",
)
DEPTH_METRICS: tuple[str, ...] = ("rmse", "mae", "psnr", "ssim")
NORMAL_METRICS: tuple[str, ...] = (
    "normal_mean_deg",
    "normal_median_deg",
    "normal_11",
    "normal_22",
    "normal_30",
)
METRICS: tuple[str, ...] = (*DEPTH_METRICS, *NORMAL_METRICS)
SYNTH_STATS: tuple[str, ...] = ("hole_fraction", "mean_abs_shift_m", "mean_shift_m")

__all__ = [
    "METRICS",
    "ROWS",
    "DCLExperimentConfig",
    "FrameSet",
    "PairCrops",
    "assemble",
    "load_frames",
    "run_dcl_table",
    "synthesis_stats",
]


@dataclass(frozen=True)
class DCLExperimentConfig:
    """What the table runs. Paths are repo-relative (or absolute); ``*_frames`` = 0 means every frame."""

    rows: tuple[str, ...] = RUN_ORDER
    seeds: tuple[int, ...] = (0, 1)
    synth_config: str = "training/configs/dcl_eval.yaml"
    cleaner_config: str = "training/configs/enhancer_eval.yaml"
    normals_config: str = "training/configs/normals_eval.yaml"
    syn_train: str = "outputs/data/syn_train"
    real_train: str = "outputs/data/real_train"
    real_test: str = "outputs/data/real_test"
    workdir: str = "outputs/experiments/dcl"
    synth_frames: int = 40  # synthetic frames (evenly spaced) each method turns into its training set
    real_train_frames: int = 0
    test_frames: int = 0
    downsample: int = 2  # cleaner / normal net pairs and test frames at 1/downsample (nearest: holes stay holes)
    finetune_fraction: float = 0.1
    finetune_steps: int = 50
    synth_steps: int = 0  # > 0 overrides the generators' loop.max_steps (tests)
    task_steps: int = 0  # > 0 overrides the cleaner's and normal net's loop.max_steps (tests)
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown:
            raise ConfigError(f"unknown rows {unknown}; rows: {list(ROWS)}")
        if "dcl_finetuned" in self.rows and "dcl" not in self.rows:
            raise ConfigError("row dcl_finetuned fine-tunes the dcl row's networks: include 'dcl' in rows")
        if not self.seeds:
            raise ConfigError("give at least one seed")
        if not 0.0 < self.finetune_fraction <= 1.0:
            raise ConfigError(f"finetune_fraction must be in (0, 1], got {self.finetune_fraction}")


# ------------------------------------------------------------------------------------------------------ timing


class Timings:
    """Wall time of every named piece, in seconds (reused pieces keep the time they took when they ran)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 2)


# -------------------------------------------------------------------------------------------------------- data


@dataclass
class FrameSet:
    """Whole frames in memory: metric depth (N, 1, H, W) with 0 = no reading, and whatever else the set has."""

    depth: torch.Tensor  # the input side (sensor depth, or clean depth for a synthesis source)
    depth_clean: torch.Tensor
    normals: torch.Tensor  # (N, 3, H, W), 0 where unknown
    rgb: torch.Tensor | None = None  # (N, 3, H, W) uint8 (kept small)
    intrinsics: torch.Tensor | None = None  # (N, 4)

    def __len__(self) -> int:
        return int(self.depth.shape[0])

    def downsample(self, factor: int) -> FrameSet:
        """Every ``factor``-th pixel (nearest): holes stay holes and no depth is averaged across edges."""
        if factor <= 1:
            return self
        pick = (..., slice(None, None, factor), slice(None, None, factor))
        return FrameSet(
            depth=self.depth[pick].contiguous(),
            depth_clean=self.depth_clean[pick].contiguous(),
            normals=self.normals[pick].contiguous(),
            rgb=None if self.rgb is None else self.rgb[pick].contiguous(),
            intrinsics=None if self.intrinsics is None else self.intrinsics / factor,
        )

    def subset(self, index: Sequence[int]) -> FrameSet:
        idx = torch.as_tensor(list(index), dtype=torch.long)
        return FrameSet(
            depth=self.depth[idx],
            depth_clean=self.depth_clean[idx],
            normals=self.normals[idx],
            rgb=None if self.rgb is None else self.rgb[idx],
            intrinsics=None if self.intrinsics is None else self.intrinsics[idx],
        )


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` indices spread over ``range(total)`` (all of them when ``count`` is 0 or too large)."""
    if count <= 0 or count >= total:
        return list(range(total))
    return sorted({round(i) for i in np.linspace(0, total - 1, count)})


def load_frames(
    path: str | Path, *, depth_from: str, frames: int = 0, rgb: bool = False, progress: bool = False
) -> FrameSet:
    """Decode ``frames`` evenly spaced frames of a bag folder (depth, ground truth, normals, intrinsics[, rgb])."""
    from dcl_arc_ros.data.torch_datasets import build_dataset  # lazy: bag readers only for real runs

    keys = ["depth", "depth_clean", "normals", "intrinsics", *(["rgb"] if rgb else [])]
    ds = build_dataset("bags", str(path), keys=tuple(keys), depth_from=depth_from)
    index = evenly_spaced(len(ds), frames)
    if not index:
        raise DatasetError(f"{path}: no frames")
    from tqdm.auto import tqdm

    samples = [ds[i] for i in tqdm(index, desc=f"load {Path(path).name}", disable=not progress)]
    return FrameSet(
        depth=torch.stack([s["depth"] for s in samples]),
        depth_clean=torch.stack([s["depth_clean"] for s in samples]),
        normals=torch.stack([s["normals"] for s in samples]),
        rgb=torch.stack([(s["rgb"] * 255.0).round().to(torch.uint8) for s in samples]) if rgb else None,
        intrinsics=torch.stack([s["intrinsics"] for s in samples]),
    )


class PairCrops(Dataset):
    """Random crops of (input depth, clean depth, normals) pairs held in memory; one epoch = ``repeats`` x frames.

    Crops are drawn with torch's global generator, which the training loop seeds per run and step.
    """

    def __init__(self, frames: FrameSet, crop: tuple[int, int], *, repeats: int = 8) -> None:
        height, width = int(frames.depth.shape[-2]), int(frames.depth.shape[-1])
        self.crop_h = min(crop[0], height) if crop[0] > 0 else height
        self.crop_w = min(crop[1], width) if crop[1] > 0 else width
        self.frames, self.repeats, self.height, self.width = frames, max(1, repeats), height, width

    def __len__(self) -> int:
        return len(self.frames) * self.repeats

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i = index % len(self.frames)
        y0 = int(torch.randint(0, self.height - self.crop_h + 1, ()))
        x0 = int(torch.randint(0, self.width - self.crop_w + 1, ()))
        window = (..., slice(y0, y0 + self.crop_h), slice(x0, x0 + self.crop_w))
        return {
            "depth": self.frames.depth[i][window],
            "depth_clean": self.frames.depth_clean[i][window],
            "normals": self.frames.normals[i][window],
        }


# --------------------------------------------------------------------------------------------------- synthesis


def synthesis_stats(synth: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Hole fraction (of pixels the clean depth has) and the mean (absolute) depth change where both have depth."""
    has = clean > 0
    both = has & (synth > 0)
    diff = (synth - clean)[both].double()
    return {
        "hole_fraction": float((has & (synth <= 0)).sum() / has.sum().clamp_min(1)),
        "mean_abs_shift_m": float(diff.abs().mean()) if diff.numel() else float("nan"),
        "mean_shift_m": float(diff.mean()) if diff.numel() else float("nan"),
    }


def synthesize_set(method: str, frames: FrameSet, *, checkpoint: Path | None, seed: int) -> torch.Tensor:
    """The synthesized depth (N, 1, H, W) of every clean frame, one frame at a time (whole frames)."""
    synth = make_synthesizer(method, checkpoint=checkpoint, seed=seed)
    out = []
    with torch.no_grad():
        for i in range(len(frames)):
            clean = frames.depth_clean[i : i + 1]
            rgb = None if frames.rgb is None else frames.rgb[i : i + 1].float() / 255.0
            intr = None if frames.intrinsics is None else frames.intrinsics[i : i + 1]
            out.append(synth(clean, rgb, intrinsics=intr).float())
    return torch.cat(out)


def _synth_config(cfg: DCLExperimentConfig, method: str, seed: int) -> DCLTrainConfig:
    raw = dict(load_yaml(Path(cfg.synth_config)))
    base = load_dcl_config(raw, source=cfg.synth_config, method=method)
    data = dataclasses.replace(
        base.data,
        source_kind="bags",
        source_paths=(cfg.syn_train,),
        source_depth_from="clean",
        real_kind="bags",
        real_paths=(cfg.real_train,),
        real_depth_from="sensor",
    )
    loop = dataclasses.replace(
        base.loop, seed=seed, progress=cfg.progress, max_steps=cfg.synth_steps or base.loop.max_steps
    )
    return dataclasses.replace(base, data=data, loop=loop)


def generator_dir(cfg: DCLExperimentConfig, method: str, seed: int) -> Path:
    return Path(cfg.workdir) / "synth" / method / f"seed_{seed}"


def ensure_generator(cfg: DCLExperimentConfig, method: str, seed: int) -> tuple[Path, float, bool]:
    """Train (or reuse) a generator; returns (checkpoint, wall seconds, reused). ``DONE`` holds the checkpoint."""
    out = generator_dir(cfg, method, seed)
    done = out / "DONE"
    wall_file = out / "wall_time.json"
    if done.is_file():
        ckpt = Path(done.read_text(encoding="utf-8").strip())
        if not ckpt.is_file():
            raise DatasetError(f"{done} names {ckpt}, which does not exist")
        seconds = json.loads(wall_file.read_text())["seconds"] if wall_file.is_file() else float("nan")
        return ckpt, float(seconds), True
    train_cfg = _synth_config(cfg, method, seed)
    start = time.perf_counter()
    seed_everything(train_cfg.loop.seed)
    task = make_task(train_cfg)
    datasets = open_unpaired_datasets(
        train_cfg.data,
        use_rgb=method == "dcl_rgb",
        seed=train_cfg.loop.seed,
        with_rays=train_cfg.generator.ray_channels > 0,
    )
    result = run_training(task, datasets, train_cfg.loop, out, run_config=train_cfg, resume=True)
    seconds = time.perf_counter() - start
    if result.last_checkpoint is None:
        raise DatasetError(f"generator run {out} ended without a checkpoint")
    ckpt = (out / "checkpoints" / "latest.pt").resolve()
    wall_file.write_text(json.dumps({"seconds": round(seconds, 2), "steps": result.step}) + "\n", encoding="utf-8")
    done.write_text(f"{ckpt}\n", encoding="utf-8")
    return ckpt, seconds, False


# ------------------------------------------------------------------------------------------- cleaner / normals


def _task_config(path: str, seed: int, cfg: DCLExperimentConfig, *, steps: int = 0, init: str = "") -> EnhancerConfig:
    base = load_enhancer_config(dict(load_yaml(Path(path))), source=path)
    loop = dataclasses.replace(
        base.loop, seed=seed, progress=cfg.progress, max_steps=steps or cfg.task_steps or base.loop.max_steps
    )
    return dataclasses.replace(base, synthesis="paired", synthesis_checkpoint="", init_checkpoint=init, loop=loop)


def _crop_of(task_cfg: EnhancerConfig) -> tuple[int, int]:
    return task_cfg.data.crop_height, task_cfg.data.crop_width


def train_net(task_cfg: EnhancerConfig, frames: FrameSet, out: Path) -> Path:
    """Train the cleaner (target depth) or the normal net (target normals) on in-memory pairs; its checkpoint."""
    seed_everything(task_cfg.loop.seed)
    task = EnhancerTask(task_cfg)
    data = PairCrops(frames, _crop_of(task_cfg), repeats=max(1, 64 // max(len(frames), 1)))
    result = run_training(task, {"train": data}, task_cfg.loop, out, run_config=task_cfg, resume=True)
    if result.last_checkpoint is None:
        raise DatasetError(f"run {out} ended without a checkpoint")
    return out / "checkpoints" / "latest.pt"


@torch.no_grad()
def _predict(net: torch.nn.Module, depth_m: torch.Tensor, task_cfg: EnhancerConfig) -> torch.Tensor:
    net.eval()
    x = normalise_depth(depth_m, task_cfg.data.depth_range)
    y = net(x)
    return denormalise_depth(y, task_cfg.data.depth_range) if task_cfg.target == "depth" else y


def evaluate_net(
    ckpt: Path, task_cfg: EnhancerConfig, test: FrameSet, *, keep: int = 0
) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean metrics over the test frames (sensor depth in) and the first ``keep`` predictions (for figures)."""
    from dcl_arc_ros.learning.checkpoint import load_checkpoint

    net = load_checkpoint(ckpt).build("cleaner")
    rows: list[dict[str, float]] = []
    kept: list[np.ndarray] = []
    max_m = task_cfg.data.depth_range.max_m
    for i in range(len(test)):
        pred = _predict(net, test.depth[i : i + 1], task_cfg)[0]
        if task_cfg.target == "depth":
            truth = test.depth_clean[i, 0].numpy()
            p = pred[0].numpy()
            truth_nan = np.where(truth > 0, truth, np.nan)
            rows.append(depth_enhancement_metrics(p, truth_nan, max_depth_m=max_m))
        else:
            truth_n = test.normals[i].permute(1, 2, 0).numpy()
            p = pred.permute(1, 2, 0).numpy()
            rows.append(normal_metrics(p, truth_n, mask=np.linalg.norm(truth_n, axis=-1) > 0.5))
        if len(kept) < keep:
            kept.append(p)
    return mean_metrics(rows), kept


def reference_scores(test: FrameSet, max_m: float) -> dict[str, dict[str, float]]:
    """The raw sensor depth (on its readings) and nearest-reading hole filling, scored like the cleaners."""
    from dcl_arc_ros.core.depth import fill_holes

    rows: dict[str, list[dict[str, float]]] = {"sensor_input": [], "nearest_fill": []}
    for i in range(len(test)):
        truth = test.depth_clean[i, 0].numpy()
        truth_nan = np.where(truth > 0, truth, np.nan)
        sensor = test.depth[i, 0].numpy()
        sensor_nan = np.where(sensor > 0, sensor, np.nan).astype(np.float32)
        rows["sensor_input"].append(depth_enhancement_metrics(sensor_nan, truth_nan, max_depth_m=max_m))
        rows["nearest_fill"].append(depth_enhancement_metrics(fill_holes(sensor_nan), truth_nan, max_depth_m=max_m))
    return {name: mean_metrics(r) for name, r in rows.items()}


# ---------------------------------------------------------------------------------------------------- the table


@dataclass
class TableData:
    syn: FrameSet
    real_train: FrameSet
    test: FrameSet
    examples: dict[str, Any] = field(default_factory=dict)  # figures: synthesized crops and cleaned test frames


def row_dir(cfg: DCLExperimentConfig, row: str, seed: int) -> Path:
    return Path(cfg.workdir) / "rows" / row / f"seed_{seed}"


def _finetune_frames(real_train: FrameSet, fraction: float, seed: int) -> FrameSet:
    n = max(1, round(fraction * len(real_train)))
    gen = torch.Generator().manual_seed(10_007 + seed)
    return real_train.subset(sorted(torch.randperm(len(real_train), generator=gen)[:n].tolist()))


def run_row(cfg: DCLExperimentConfig, row: str, seed: int, data: TableData, timings: Timings) -> dict[str, Any]:
    """One row for one seed (reused when its result.json exists): synthesis, cleaner, normal net, scores."""
    out = row_dir(cfg, row, seed)
    result_file = out / "result.json"
    if result_file.is_file():
        return dict(json.loads(result_file.read_text(encoding="utf-8")))
    out.mkdir(parents=True, exist_ok=True)
    wall: dict[str, float] = {}
    info: dict[str, Any] = {"row": row, "seed": seed}
    init_cleaner = init_normals = ""
    if row in SYNTH_ROWS:
        checkpoint = None
        if row in TRAINED_METHODS:
            checkpoint, seconds, reused = ensure_generator(cfg, row, seed)
            wall["generator_train"] = round(seconds, 2)
            info["generator"] = {"checkpoint": str(checkpoint), "reused": reused}
        start = time.perf_counter()
        synth = synthesize_set(row, data.syn, checkpoint=checkpoint, seed=seed)
        wall["synthesize"] = round(time.perf_counter() - start, 2)
        train_frames = dataclasses.replace(data.syn, depth=synth, rgb=None).downsample(cfg.downsample)
        info["synthesis"] = synthesis_stats(synth, data.syn.depth_clean)
        info["train_frames"] = len(train_frames)
        if seed == cfg.seeds[0]:
            data.examples.setdefault("synth", {})[row] = synth[0, 0].numpy().copy()
    elif row == "supervised_real":
        train_frames = data.real_train
        info["train_frames"] = len(train_frames)
    else:  # dcl_finetuned
        dcl_result = run_row(cfg, "dcl", seed, data, timings)
        init_cleaner, init_normals = dcl_result["checkpoints"]["cleaner"], dcl_result["checkpoints"]["normals"]
        train_frames = _finetune_frames(data.real_train, cfg.finetune_fraction, seed)
        info["train_frames"] = len(train_frames)
    steps = cfg.finetune_steps if row == "dcl_finetuned" else 0
    cleaner_cfg = _task_config(cfg.cleaner_config, seed, cfg, steps=steps, init=init_cleaner)
    normals_cfg = _task_config(cfg.normals_config, seed, cfg, steps=steps, init=init_normals)
    if cleaner_cfg.target != "depth" or normals_cfg.target != "normals":
        raise ConfigError("cleaner_config must have target depth and normals_config target normals")
    start = time.perf_counter()
    cleaner_ckpt = train_net(cleaner_cfg, train_frames, out / "cleaner")
    wall["cleaner_train"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    normals_ckpt = train_net(normals_cfg, train_frames, out / "normals")
    wall["normals_train"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    keep = 2 if seed == cfg.seeds[0] else 0
    depth_scores, cleaned = evaluate_net(cleaner_ckpt, cleaner_cfg, data.test, keep=keep)
    normal_scores, _ = evaluate_net(normals_ckpt, normals_cfg, data.test)
    wall["evaluate"] = round(time.perf_counter() - start, 2)
    metrics = {k: depth_scores[k] for k in DEPTH_METRICS} | {k: normal_scores[k] for k in NORMAL_METRICS}
    metrics["coverage"] = depth_scores.get("coverage", float("nan"))
    info.update(
        {
            "metrics": metrics,
            "wall_s": wall,
            "checkpoints": {"cleaner": str(cleaner_ckpt.resolve()), "normals": str(normals_ckpt.resolve())},
        }
    )
    if cleaned:
        np.save(out / "cleaned_examples.npy", np.stack(cleaned))
    result_file.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    for name, seconds in wall.items():
        timings.seconds[f"{row}/seed_{seed}/{name}"] = seconds
    return info


def assemble(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Per-seed results -> ``rows`` (mean and ``_std`` across seeds), ``synthesis`` stats and per-seed values."""
    rows: dict[str, dict[str, float]] = {}
    synthesis: dict[str, dict[str, float]] = {}
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    for row, runs in results.items():
        rows[row] = mean_and_spread([{k: float(r["metrics"][k]) for k in METRICS} for r in runs])
        per_seed[row] = {f"seed_{r['seed']}": {k: float(r["metrics"][k]) for k in METRICS} for r in runs}
        stats = [r["synthesis"] for r in runs if "synthesis" in r]
        if stats:
            synthesis[row] = mean_and_spread([{k: float(s[k]) for k in SYNTH_STATS} for s in stats])
    return {"rows": rows, "synthesis": synthesis, "per_seed": per_seed}


def run_dcl_table(
    cfg: DCLExperimentConfig, *, on_result: Callable[[dict[str, Any]], None] | None = None
) -> tuple[dict[str, Any], TableData]:
    """Every row for every seed; returns the JSON-able table dict and the loaded data (with figure examples).

    ``on_result`` gets the table so far after every finished row and seed (to write partial results).
    """
    timings = Timings()
    start = time.perf_counter()
    if "dcl" in cfg.rows:  # first: other experiments wait for the DCL generators (their DONE files)
        for seed in cfg.seeds:
            ensure_generator(cfg, "dcl", seed)
    with timings.time("load_data"):
        need_rgb = "dcl_rgb" in cfg.rows
        syn = load_frames(
            cfg.syn_train, depth_from="clean", frames=cfg.synth_frames, rgb=need_rgb, progress=cfg.progress
        )
        real_train = load_frames(
            cfg.real_train, depth_from="sensor", frames=cfg.real_train_frames, progress=cfg.progress
        )
        test = load_frames(cfg.real_test, depth_from="sensor", frames=cfg.test_frames, progress=cfg.progress)
        real_stats = synthesis_stats(real_train.depth, real_train.depth_clean)  # at full resolution
        real_train = real_train.downsample(cfg.downsample)
        test = test.downsample(cfg.downsample)
    data = TableData(syn=syn, real_train=real_train, test=test)
    cleaner_cfg = _task_config(cfg.cleaner_config, cfg.seeds[0], cfg)
    references = reference_scores(test, cleaner_cfg.data.depth_range.max_m)
    results: dict[str, list[dict[str, Any]]] = {}
    table: dict[str, Any] = {}
    for row in cfg.rows:
        for seed in cfg.seeds:
            results.setdefault(row, []).append(run_row(cfg, row, seed, data, timings))
            table = _table(cfg, results, data, real_stats, references, timings, start)
            if on_result is not None:
                on_result(table)
    return table, data


def _table(
    cfg: DCLExperimentConfig,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    data: TableData,
    real_stats: Mapping[str, float],
    references: Mapping[str, Any],
    timings: Timings,
    start: float,
) -> dict[str, Any]:
    cleaner_cfg = _task_config(cfg.cleaner_config, cfg.seeds[0], cfg)
    syn, real_train, test = data.syn, data.real_train, data.test
    table = assemble(results)
    wall = {
        f"{r['row']}/seed_{r['seed']}/{k}": v for runs in results.values() for r in runs for k, v in r["wall_s"].items()
    }
    table.update(
        {
            "real_train_sensor": dict(real_stats),
            "references": dict(references),
            "seeds": list(cfg.seeds),
            "frames": {"synthetic": len(syn), "real_train": len(real_train), "real_test": len(test)},
            "resolution": [int(test.depth.shape[-2]), int(test.depth.shape[-1])],
            "synthesis_resolution": [int(syn.depth.shape[-2]), int(syn.depth.shape[-1])],
            "psnr_peak_m": cleaner_cfg.data.depth_range.max_m,
            "wall_s": {
                "load_data": timings.seconds["load_data"],
                **wall,
                "table_total_this_run": round(time.perf_counter() - start, 2),
            },
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
        }
    )
    return table
