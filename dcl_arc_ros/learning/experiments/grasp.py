"""DCL Table IV on our data: GG-CNN trained on clean, empirical and DCL-synthesized depth, tested on real-like scans.

For every seed and method a GG-CNN is trained on the synthetic training bags, its input depth made from their clean
depth by the method (``clean``, ``empirical``, ``dcl``: :mod:`dcl_arc_ros.learning.frame_source`); ``dcl_finetuned``
starts from the seed's ``dcl`` network and is fine-tuned on a seeded 10% of the real-like training bags (their sensor
depth). Every network is then tested on the held-out real-like bags' SENSOR depth against their ground-truth grasp
rectangles.

Test protocol (one object is one trial, as one Cornell image is one trial):

1. every labelled object with at least one ground-truth grasp and ``min_object_px`` visible pixels is a trial;
2. the network sees a ``crop_size`` square of sensor depth centred on the object's visible pixels (shifted to fit the
   image), prepared exactly as the deployed node prepares depth (:func:`~dcl_arc_ros.core.grasp_pipeline.
   prepare_ggcnn_input`: holes filled, minus the mean, clipped);
3. the maps are decoded by the node's decoder (:func:`~dcl_arc_ros.core.grasps.decode_grasp_maps`, GG-CNN's sigmas and
   peak distance scaled to the frame scale) and the peaks are taken *on that object* (its instance mask, dilated by
   ``mask_dilation_px``): the question is where to grasp this object, not which object to pick;
4. the top-1 and top-3 peaks are matched against that object's ground-truth rectangles with
   :func:`~dcl_arc_ros.core.grasps.grasp_metrics`: the Cornell rule (IoU > 0.25 and angle within 30 degrees) and the
   DCL paper's rule (IoU > 0.5; with the top 3, as the paper reports it);
5. trials are split by the ``novel`` flag of ``/ground_truth/poses/info`` (classes held out of the synthetic set).

A reference row decodes the ground-truth maps themselves through the same steps: the protocol's ceiling.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from dcl_arc_ros.core.grasp_pipeline import prepare_ggcnn_input
from dcl_arc_ros.core.grasps import (
    GraspDecodeParams,
    decode_grasp_maps,
    detect_grasp_rects,
    grasp_metrics,
    rect_corners,
    rects_from_labels,
)
from dcl_arc_ros.learning.config import OptimConfig, to_dict
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.frame_source import FrameSubset, ResizedFrames, SynthesizedFrames
from dcl_arc_ros.learning.grasp.ggcnn import GGCNN_PRESETS, GGCNNConfig
from dcl_arc_ros.learning.grasp.trainer import (
    SAMPLE_MAP_KEYS,
    GraspDataConfig,
    GraspSampleAdapter,
    GraspTask,
    GraspTrainConfig,
)
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything

__all__ = [
    "METHODS",
    "METRICS",
    "GraspExperimentConfig",
    "GraspTrial",
    "evaluate_trials",
    "load_trials",
    "run_grasp_experiment",
    "summarise",
]

#: The rows of the results table, in order.
METHODS: tuple[str, ...] = ("clean", "empirical", "dcl", "dcl_finetuned")
#: The columns: (name, split, rule_topk). ``seen``/``novel`` are the Cornell rule at top 1.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("seen", "seen", "cornell_top1"),
    ("novel", "novel", "cornell_top1"),
    ("seen_top3", "seen", "cornell_top3"),
    ("novel_top3", "novel", "cornell_top3"),
    ("seen_iou50", "seen", "iou50_top3"),
    ("novel_iou50", "novel", "iou50_top3"),
)
#: Also recorded (outside ``rows``): the IoU > 0.5 rule at top 1.
EXTRA_METRICS: tuple[tuple[str, str, str], ...] = (
    ("seen_iou50_top1", "seen", "iou50_top1"),
    ("novel_iou50_top1", "novel", "iou50_top1"),
)
TRIAL_KEYS: tuple[str, ...] = ("cornell_top1", "cornell_top3", "iou50_top1", "iou50_top3")


@dataclass(frozen=True)
class GraspExperimentConfig:
    """Everything that defines the experiment (recorded in the results JSON)."""

    syn_train: tuple[str, ...] = ("outputs/data/syn_train",)
    real_train: tuple[str, ...] = ("outputs/data/real_train",)
    real_test: tuple[str, ...] = ("outputs/data/real_test",)
    seeds: tuple[int, ...] = (0, 1)
    methods: tuple[str, ...] = METHODS
    #: file whose content is the seed's DCL generator checkpoint; ``{seed}`` is replaced
    dcl_done: str = "outputs/experiments/dcl/synth/dcl/seed_{seed}/DONE"
    dcl_wait_s: float = 0.0  # wait this long for a missing DCL generator before leaving its rows out
    frame_scale: float = 0.5  # every frame (train and test) is resized by this factor (after synthesis)
    train_fraction: float = 0.5  # of the synthetic frames, drawn per seed (the same for every method)
    finetune_fraction: float = 0.1  # of the real-like training frames, drawn per seed
    network: GGCNNConfig = field(default_factory=lambda: GGCNN_PRESETS["deploy"])
    crop_size: int = 96  # network input side = crop side, in frame_scale pixels
    steps: int = 3000  # 400 in the first runs, which were far from converged (docs/results/grasp.md)
    finetune_steps: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    finetune_lr: float = 3e-4
    min_object_px: int = 60  # visible pixels (frame_scale pixels) an object needs to be a trial
    mask_dilation_px: int = 3
    top_k: int = 3

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"unknown grasp experiment methods {unknown}; expected some of {list(METHODS)}")
        if "dcl_finetuned" in self.methods and "dcl" not in self.methods:
            raise ConfigError("dcl_finetuned starts from the dcl network: keep 'dcl' in methods")
        if not self.seeds:
            raise ConfigError("the grasp experiment needs at least one seed")

    def decode_params(self) -> GraspDecodeParams:
        """GG-CNN's published decoding (sigmas 2/2/1, peaks 20 px apart at full resolution) at ``frame_scale``."""
        s = self.frame_scale
        return GraspDecodeParams(
            quality_sigma=2.0 * s,
            angle_sigma=2.0 * s,
            width_sigma=1.0 * s,
            min_distance=max(1, round(20 * s)),
            threshold=-1e3,  # peaks on the object's mask are ranked, not thresholded (off-mask is far below)
            max_grasps=self.top_k,
            exclude_border=False,
        )

    def train_config(self, method: str, seed: int, *, checkpoint: str = "", init: str = "") -> GraspTrainConfig:
        """The run config of one network (what its checkpoint records)."""
        finetune = method == "dcl_finetuned"
        data = GraspDataConfig(
            source="bags",
            paths=self.real_train if finetune else self.syn_train,
            depth_from="sensor",
            synthesis="none" if finetune else method,
            synthesis_checkpoint="" if finetune else checkpoint,
            in_memory=True,
            frame_fraction=self.finetune_fraction if finetune else self.train_fraction,
            frame_scale=self.frame_scale,
            input_size=self.crop_size,
            crop_size=self.crop_size,
            crop_centre="grasp",
        )
        loop = LoopConfig(
            max_steps=self.finetune_steps if finetune else self.steps,
            batch_size=self.batch_size,
            seed=seed,
            log_every=25,
            image_every=10**6,
            checkpoint_every=10**6,
        )
        lr = self.finetune_lr if finetune else self.lr
        return GraspTrainConfig(
            network="ggcnn",
            init_checkpoint=init,
            ggcnn=self.network,
            optim=OptimConfig(lr=lr, beta1=0.9, beta2=0.999),
            loop=loop,
            data=data,
        )


# --------------------------------------------------------------------------------------------------------------------
# Test trials
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # holds arrays
class GraspTrial:
    """One object of one test frame: the crop the network sees and the object's ground truth in crop pixels."""

    frame: int
    instance_id: int
    class_id: int
    novel: bool
    x0: int  # crop origin in the (scaled) frame
    y0: int
    depth: np.ndarray  # (S, S) sensor depth, metres, NaN = no reading
    mask: np.ndarray  # (S, S) bool, the object's dilated instance mask
    gt: np.ndarray  # (G, 6) ground-truth rectangles in crop pixels (cx, cy, angle, width, length, quality)
    gt_maps: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # quality, cos2, sin2, width (px) crops


def _test_topics() -> list[str]:
    from dcl_arc_ros.data import bags

    return [
        bags.DEPTH_IMAGE,
        bags.DEPTH_INFO,
        bags.GT_INSTANCES,
        bags.GT_POSES_INFO,
        bags.GT_GRASPS_INFO,
        bags.GT_GRASP_QUALITY,
        bags.GT_GRASP_COS2,
        bags.GT_GRASP_SIN2,
        bags.GT_GRASP_WIDTH,
    ]


def load_trials(paths: Sequence[str], cfg: GraspExperimentConfig) -> tuple[list[GraspTrial], list[np.ndarray]]:
    """The test trials of the bags at ``paths`` and the frames' sensor depth (scaled), for drawing."""
    from dcl_arc_ros.data.bag_index import BagIndex

    frames = ResizedFrames(BagIndex(list(paths), topics=_test_topics()), cfg.frame_scale)
    kernel = np.ones((2 * cfg.mask_dilation_px + 1,) * 2, np.uint8)
    side = cfg.crop_size
    trials: list[GraspTrial] = []
    depths: list[np.ndarray] = []
    for f in range(len(frames)):
        rec = frames[f]
        if rec.depth is None or rec.instances is None or rec.object_info is None or rec.grasp_info is None:
            raise DatasetError(f"test frame {rec.source!r} lacks sensor depth, instances or object/grasp labels")
        maps = (rec.grasp_quality, rec.grasp_cos2, rec.grasp_sin2, rec.grasp_width)
        if any(m is None for m in maps):
            raise DatasetError(f"test frame {rec.source!r} lacks the dense grasp maps")
        depths.append(rec.depth)
        h, w = rec.depth.shape
        if side > min(h, w):
            raise ConfigError(f"crop_size {side} is larger than the {w}x{h} test frames (after frame_scale)")
        for row in rec.object_info:
            inst, cls, novel = int(row[0]), int(row[1]), bool(row[2] > 0.5)
            visible = rec.instances == inst
            rects = rec.grasp_info[np.rint(rec.grasp_info[:, 6]).astype(int) == inst]
            if int(visible.sum()) < cfg.min_object_px or rects.shape[0] == 0:
                continue
            vv, uu = np.nonzero(visible)
            x0 = int(np.clip(round(uu.mean()) - side // 2, 0, w - side))
            y0 = int(np.clip(round(vv.mean()) - side // 2, 0, h - side))
            gt = rects_from_labels(rects[:, :5])
            gt[:, 0] -= x0
            gt[:, 1] -= y0
            inside = (gt[:, 0] >= 0) & (gt[:, 0] < side) & (gt[:, 1] >= 0) & (gt[:, 1] < side)
            if not inside.any():
                continue
            window = (slice(y0, y0 + side), slice(x0, x0 + side))
            mask = cv2.dilate(visible[window].astype(np.uint8), kernel) > 0
            q, c, sn, wd = (np.ascontiguousarray(np.nan_to_num(m[window], nan=0.0), np.float32) for m in maps)  # type: ignore[index]
            depth = np.ascontiguousarray(rec.depth[window])
            trials.append(GraspTrial(f, inst, cls, novel, x0, y0, depth, mask, gt[inside], (q, c, sn, wd)))
    return trials, depths


# --------------------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------------------

#: (1, 1, S, S) prepared input -> the four raw maps (quality, cos2, sin2, width / width_scale), each (S, S)
MapsFn = Callable[[np.ndarray, GraspTrial], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def network_maps(net: nn.Module) -> MapsFn:
    """A trained GG-CNN as a :data:`MapsFn` (eval mode, no gradients)."""
    net = net.eval()

    def run(x: np.ndarray, trial: GraspTrial) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            out = net(torch.from_numpy(x))
        q, c, s, w = (o[0, 0].numpy() for o in out)
        return q, c, s, w

    return run


def ground_truth_maps(width_scale_px: float) -> MapsFn:
    """The trial's own ground-truth maps (the protocol's ceiling: a network that learned them exactly)."""

    def run(x: np.ndarray, trial: GraspTrial) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        q, c, s, w = trial.gt_maps
        return q, c, s, w / np.float32(width_scale_px)

    return run


def predict_trial(maps_fn: MapsFn, trial: GraspTrial, params: GraspDecodeParams) -> np.ndarray:
    """The top ``params.max_grasps`` rectangles on the trial's object, crop pixels, best first ((N, 6))."""
    x = prepare_ggcnn_input(trial.depth, trial.depth.shape)
    if x is None:
        return np.zeros((0, 6))
    q, c, s, w = maps_fn(x, trial)
    maps = decode_grasp_maps(q, c, s, w, params)
    quality = np.where(trial.mask, maps.quality, np.float32(-1e4))
    return detect_grasp_rects(dataclasses.replace(maps, quality=quality), params)


def evaluate_trials(maps_fn: MapsFn, trials: Iterable[GraspTrial], params: GraspDecodeParams) -> list[dict[str, Any]]:
    """One row per trial: the success of every rule and k, and the predicted rectangles (crop pixels)."""
    rows = []
    for t in trials:
        pred = predict_trial(maps_fn, t, params)
        hits = grasp_metrics(pred, t.gt, top_ks=(1, 3), rules=("cornell", "iou50"))
        rows.append(
            {"frame": t.frame, "instance_id": t.instance_id, "novel": t.novel, **hits, "pred": pred.round(2).tolist()}
        )
    return rows


def split_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Success rates of one network's trial rows under every metric name of :data:`METRICS` and extras."""
    out: dict[str, float] = {}
    for name, split, key in (*METRICS, *EXTRA_METRICS):
        chosen = [bool(r[key]) for r in rows if bool(r["novel"]) == (split == "novel")]
        out[name] = float(np.mean(chosen)) if chosen else float("nan")
    return out


def summarise(per_seed: Mapping[str, Mapping[int, Mapping[str, float]]]) -> tuple[dict, dict]:
    """``{method: {seed: rates}}`` -> (rows, extra_rows): the mean over seeds and its spread (sample std, ddof 1;
    0 with one seed) for :data:`METRICS`, and the same for :data:`EXTRA_METRICS`."""
    rows: dict[str, dict[str, float]] = {}
    extra: dict[str, dict[str, float]] = {}
    for method, seeds in per_seed.items():
        for target, names in ((rows, METRICS), (extra, EXTRA_METRICS)):
            entry: dict[str, float] = {}
            for name, _, _ in names:
                values = np.array([seeds[s][name] for s in sorted(seeds)], dtype=np.float64)
                entry[name] = float(np.mean(values))
                entry[f"{name}_std"] = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
            target[method] = entry
    return rows, extra


# --------------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------------


class _TrainFrames:
    """Decoded full-resolution training frames, shared by every method and seed (decoding a bag frame costs more than
    a training step of this network). :meth:`frames` composes the same steps as
    :func:`~dcl_arc_ros.learning.frame_source.open_frame_records` for the run's data config: the seeded subset,
    synthesis at full resolution, the ``frame_scale`` resize, and a cache of the final frames."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], Any] = {}

    def frames(self, data: GraspDataConfig, seed: int) -> Any:
        from dcl_arc_ros.data import torch_datasets

        keys = ["depth", "intrinsics", *SAMPLE_MAP_KEYS.values()]
        if data.synthesizes:
            keys.append("depth_clean")
        tag = (*data.paths, data.read_depth_from)
        if tag not in self._cache:
            topics = torch_datasets.topics_for_keys(keys, depth_from=data.read_depth_from)
            source = torch_datasets.SOURCES[data.source](*data.paths, topics=topics)
            self._cache[tag] = torch_datasets.InMemoryFrames(source)
        frames = self._cache[tag]
        if data.frame_fraction < 1.0:
            frames = FrameSubset.fraction(frames, data.frame_fraction, seed=seed)
        if data.synthesizes:
            frames = SynthesizedFrames(frames, data.synthesis, checkpoint=data.synthesis_checkpoint, seed=seed)
        if data.frame_scale != 1.0:
            frames = ResizedFrames(frames, data.frame_scale)
        return torch_datasets.InMemoryFrames(frames)


def _relative(path: str, repo: Path) -> str:
    """``path`` relative to the repository when it is inside it (results never record machine paths)."""
    p, root = Path(path).resolve(), repo.resolve()
    return str(p.relative_to(root)) if p.is_relative_to(root) else p.name


def _dcl_checkpoint(cfg: GraspExperimentConfig, seed: int, repo: Path, log: Callable[[str], None]) -> str | None:
    done = repo / cfg.dcl_done.format(seed=seed)
    deadline = time.monotonic() + cfg.dcl_wait_s
    announced = False
    while not done.is_file():
        if time.monotonic() >= deadline:
            return None
        if not announced:
            log(f"waiting up to {cfg.dcl_wait_s:.0f} s for {cfg.dcl_done.format(seed=seed)}")
            announced = True
        time.sleep(min(30.0, max(1.0, deadline - time.monotonic())))
    text = done.read_text(encoding="utf-8").strip().splitlines()
    if not text:
        raise ConfigError(f"{done} is empty; it should hold the generator checkpoint path")
    path = Path(text[0].strip())
    path = path if path.is_absolute() else repo / path
    if not path.is_file():
        raise ConfigError(f"{done} names {path}, which does not exist")
    return _relative(str(path), repo) if path.resolve().is_relative_to(repo.resolve()) else str(path)


def _train_one(
    cfg: GraspExperimentConfig,
    train_cfg: GraspTrainConfig,
    frames: Any,
    out_dir: Path,
    *,
    progress: bool,
) -> tuple[GraspTask, dict[str, float]]:
    from dcl_arc_ros.data.torch_datasets import FrameDataset

    timings: dict[str, float] = {}
    data = train_cfg.data
    t0 = time.perf_counter()
    for i in range(len(frames)):  # decode (first use), synthesize and resize every frame once, timed apart
        frames[i]
    timings["frames_s"] = time.perf_counter() - t0
    keys = ("depth", *SAMPLE_MAP_KEYS.values())
    dataset = GraspSampleAdapter(
        FrameDataset(frames, keys=keys),
        data,
        train=True,
        width_scale_px=train_cfg.width_scale_px,
        seed=train_cfg.loop.seed,
    )
    seed_everything(train_cfg.loop.seed)
    task = GraspTask(train_cfg)
    loop = dataclasses.replace(train_cfg.loop, progress=progress)
    t0 = time.perf_counter()
    result = run_training(task, {"train": dataset}, loop, out_dir, run_config=train_cfg)
    timings["train_s"] = time.perf_counter() - t0
    losses = [h["loss"] for h in result.history]
    timings["loss_first"] = float(np.mean(losses[:10])) if losses else float("nan")
    timings["loss_last"] = float(np.mean(losses[-10:])) if losses else float("nan")
    return task, timings


# --------------------------------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------------------------------


def run_grasp_experiment(
    cfg: GraspExperimentConfig,
    out_dir: Path,
    *,
    repo: Path = Path("."),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train and test every (method, seed); returns the results payload (see :func:`write_results`).

    Networks land in ``out_dir/<method>/seed_<s>/`` (checkpoints, TensorBoard, ``trials.json``). A run whose
    ``trials.json`` exists is not trained again, so an interrupted experiment continues where it stopped.
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    params = cfg.decode_params()
    timings: dict[str, Any] = {"runs": {}}
    t0 = time.perf_counter()
    trials, test_depths = load_trials([str(repo / p) for p in cfg.real_test], cfg)
    timings["load_test_s"] = time.perf_counter() - t0
    n_novel = sum(t.novel for t in trials)
    log(f"{len(trials)} test objects ({len(trials) - n_novel} seen, {n_novel} novel) in {len(test_depths)} frames")
    t0 = time.perf_counter()
    oracle = evaluate_trials(ground_truth_maps(cfg.network.width_scale_px), trials, params)
    timings["oracle_eval_s"] = time.perf_counter() - t0

    pool = _TrainFrames()
    per_seed: dict[str, dict[int, dict[str, float]]] = {}
    trial_rows: dict[str, dict[int, list[dict[str, Any]]]] = {}
    missing: dict[str, str] = {}
    order = [m for m in METHODS if m in cfg.methods]
    # clean and empirical first for every seed: they do not wait for the DCL generators
    plan = [(m, s) for m in order if m in ("clean", "empirical") for s in cfg.seeds]
    plan += [(m, s) for s in cfg.seeds for m in order if m in ("dcl", "dcl_finetuned")]
    dcl_ckpts: dict[int, str | None] = {}
    for method, seed in plan:
        run_dir = out_dir / method / f"seed_{seed}"
        init = ""
        gen = ""
        if method == "dcl":
            if seed not in dcl_ckpts:
                dcl_ckpts[seed] = _dcl_checkpoint(cfg, seed, repo, log)
            if dcl_ckpts[seed] is None:
                missing[method] = f"no DCL generator for seed {seed} ({cfg.dcl_done.format(seed=seed)} missing)"
                continue
            gen = str(dcl_ckpts[seed])
        if method == "dcl_finetuned":
            init_path = out_dir / "dcl" / f"seed_{seed}" / "checkpoints" / "latest.pt"
            if not init_path.is_file():
                missing[method] = f"no dcl network for seed {seed} to fine-tune"
                continue
            init = str(init_path)
        train_cfg = cfg.train_config(method, seed, checkpoint=gen, init=init)
        done = run_dir / "trials.json"
        if done.is_file():
            saved = json.loads(done.read_text(encoding="utf-8"))
            if saved["config"] != to_dict(train_cfg):
                raise ConfigError(f"{done} was trained with another config; use another output folder")
            rows, run_t = saved["trials"], saved["timings"]
            log(f"{method} seed {seed}: reusing {done}")
        else:
            data = dataclasses.replace(train_cfg.data, paths=tuple(str(repo / p) for p in train_cfg.data.paths))
            frames = pool.frames(data, seed)
            log(f"{method} seed {seed}: training {train_cfg.loop.max_steps} steps on {len(frames)} frames")
            task, run_t = _train_one(cfg, train_cfg, frames, run_dir, progress=progress)
            t0 = time.perf_counter()
            rows = evaluate_trials(network_maps(task.net), trials, params)
            run_t["eval_s"] = time.perf_counter() - t0
            run_t["train_frames"] = len(frames)
            done.write_text(
                json.dumps({"config": to_dict(train_cfg), "timings": run_t, "trials": rows}) + "\n", encoding="utf-8"
            )
        rates = split_rates(rows)
        log(f"{method} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
        per_seed.setdefault(method, {})[seed] = rates
        trial_rows.setdefault(method, {})[seed] = rows
        timings["runs"][f"{method}/seed_{seed}"] = run_t
    rows_out, extra = summarise(per_seed)
    timings["total_s"] = time.perf_counter() - started
    counts = {"seen": len(trials) - n_novel, "novel": n_novel, "frames": len(test_depths)}
    return {
        "rows": rows_out,
        "extra_rows": extra,
        "reference_rows": {"ground_truth_maps": split_rates(oracle)},
        "per_seed": per_seed,
        "trials": counts,
        "missing": missing,
        "dcl_generators": {str(s): _relative(p, repo) for s, p in dcl_ckpts.items() if p is not None},
        "timings_s": timings,
        "config": to_dict(cfg),
        "_trial_rows": trial_rows,
        "_trials": trials,
        "_test_depths": test_depths,
    }


# --------------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------------

_LABELS = {
    "seen": "seen, top-1",
    "novel": "novel, top-1",
    "seen_top3": "seen, top-3",
    "novel_top3": "novel, top-3",
    "seen_iou50": "seen, IoU>0.5 top-3",
    "novel_iou50": "novel, IoU>0.5 top-3",
}


def _fmt(entry: Mapping[str, float], name: str) -> str:
    mean = entry.get(name, float("nan"))
    if math.isnan(mean):
        return "n/a"
    std = entry.get(f"{name}_std")
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if std is not None else f"{100 * mean:.1f}"


def markdown_table(payload: Mapping[str, Any]) -> str:
    """The results table (percent, mean ± sample std over seeds) plus the reference row."""
    names = [m[0] for m in METRICS]
    head = "| method | " + " | ".join(_LABELS[n] for n in names) + " |"
    lines = [head, "|" + " --- |" * (len(names) + 1)]
    for method in METHODS:
        if method in payload["rows"]:
            lines.append(f"| {method} | " + " | ".join(_fmt(payload["rows"][method], n) for n in names) + " |")
    for name, entry in payload["reference_rows"].items():
        lines.append(f"| *{name}* | " + " | ".join(_fmt(entry, n) for n in names) + " |")
    return "\n".join(lines) + "\n"


def public_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able part (keys starting with ``_`` hold arrays for the figures)."""
    return {k: v for k, v in payload.items() if not k.startswith("_")}


def save_bar_plot(payload: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m[0] for m in METRICS]
    methods = [m for m in METHODS if m in payload["rows"]]
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(names))
    for i, method in enumerate(methods):
        entry = payload["rows"][method]
        means = [100 * entry[n] for n in names]
        stds = [100 * entry[f"{n}_std"] for n in names]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=method)
    ref = payload["reference_rows"].get("ground_truth_maps")
    if ref:
        ax.scatter(x, [100 * ref[n] for n in names], marker="_", s=600, color="k", label="ground-truth maps", zorder=5)
    ax.set_xticks(x, [_LABELS[n] for n in names], fontsize=8)
    ax.set_ylabel("grasp success (%)")
    ax.set_ylim(0, 112)  # headroom: the legend sits above the 100 % line, not on the ceiling markers
    seeds = len(payload["config"]["seeds"])
    ax.set_title(f"GG-CNN on real-like sensor depth, by training depth (mean ± std over {seeds} seeds)")
    ax.legend(fontsize=8, ncol=5, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_examples(payload: Mapping[str, Any], path: Path, *, frames: Sequence[int] = (0, 1), seed: int = 0) -> None:
    """Sensor depth of a few test frames with every trial's ground truth (green) and each method's top-1 grasp
    (red when it succeeds under the Cornell rule, orange when not), seed ``seed``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials: list[GraspTrial] = payload["_trials"]
    depths: list[np.ndarray] = payload["_test_depths"]
    methods = [m for m in METHODS if m in payload["_trial_rows"] and seed in payload["_trial_rows"][m]]
    frames = [f for f in frames if f < len(depths)]
    if not methods or not frames:
        return
    fig, axes = plt.subplots(len(frames), len(methods), figsize=(3.6 * len(methods), 2.9 * len(frames)), squeeze=False)
    for r, f in enumerate(frames):
        for c, method in enumerate(methods):
            ax = axes[r][c]
            d = depths[f]
            ax.imshow(
                np.nan_to_num(d, nan=0.0),
                cmap="gray",
                vmin=np.nanmin(d) if np.isfinite(d).any() else 0,
                vmax=np.nanmax(d) if np.isfinite(d).any() else 1,
            )
            rows = payload["_trial_rows"][method][seed]
            for t, row in zip(trials, rows, strict=True):
                if t.frame != f:
                    continue
                for gt in t.gt:
                    g = gt.copy()
                    g[0] += t.x0
                    g[1] += t.y0
                    poly = rect_corners(g[None])[0]
                    ax.fill(poly[:, 0], poly[:, 1], fill=False, ec="lime", lw=0.6)
                pred = np.asarray(row["pred"], dtype=np.float64).reshape(-1, 6)
                if pred.shape[0]:
                    p = pred[0].copy()
                    p[0] += t.x0
                    p[1] += t.y0
                    poly = rect_corners(p[None])[0]
                    colour = "red" if row["cornell_top1"] else "orange"
                    ax.fill(poly[:, 0], poly[:, 1], fill=False, ec=colour, lw=1.6)
                    ax.text(p[0], p[1], "N" if t.novel else "S", color="cyan", fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{method} (seed {seed})", fontsize=9)
    fig.suptitle(
        "real-like test frames, sensor depth: ground truth (green), top-1 grasp (red = Cornell success, "
        "orange = miss); S/N = seen/novel object",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(payload: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """``out``.json (the public payload), ``out``.table.md, ``out``.png (bars) and ``out``_examples.png."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = {
        "json": out.with_suffix(".json"),
        "table": out.with_name(out.name + ".table.md"),
        "bars": out.with_suffix(".png"),
        "examples": out.with_name(out.name + "_examples.png"),
    }
    written["json"].write_text(json.dumps(public_payload(payload), indent=1, sort_keys=False) + "\n", encoding="utf-8")
    written["table"].write_text(markdown_table(payload), encoding="utf-8")
    save_bar_plot(payload, written["bars"])
    save_examples(payload, written["examples"], seed=min(payload["config"]["seeds"]))
    return written
