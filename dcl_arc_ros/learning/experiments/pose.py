"""The pose experiment (DCL Section IV-E): a pose network trained on clean, empirical and DCL-synthesized depth of the
synthetic training bags (plus the DCL model fine-tuned on 10% of the real-like training frames), scored on the
held-out real-like test frames' *sensor* depth. Driven by ``training/evaluate_pose.py``; writes
``docs/results/pose.{md,json}`` and ``pose_frames.png`` / ``pose_metrics.png``.

Protocol (each piece is timed and the times go into the JSON):

1. crops: every object of the training frames with enough visible pixels becomes one crop, cut from its ground-truth
   mask by the deployed crop code (:mod:`dcl_arc_ros.learning.pose.trainer`), once per depth domain:
   ``clean`` = the rendered depth, ``empirical`` = the bags' empirical sensor depth (the generator of the synthetic
   bags), ``dcl`` = the DCL generator of the same seed applied to the clean depth (one window per object);
2. vocabulary: the network classifies the catalogue classes that occur in the training crops (``class_ids``); a test
   object of any other class cannot be classified right, so class accuracy is measured on in-vocabulary objects, and
   the rotation of out-of-vocabulary objects (whose mesh frame the network has never seen) is reported separately;
3. training: one run per method and seed with the shared loop (checkpoints, TensorBoard); ``dcl_finetuned`` starts
   from that seed's ``dcl`` weights and trains on the sensor-depth crops of ``finetune_fraction`` of the real-like
   training frames (a seeded choice of frames). A finished run of the same training config in ``out_dir`` is
   reused, not trained again (:func:`finished_run`; the report's notes say so), so a rerun after a change to the
   evaluation only scores the networks again;
4. evaluation on the test frames' sensor depth: (a) ground-truth-mask crops, the main table; (b) end to end, the
   depth-only RANSAC proposals of :func:`dcl_arc_ros.core.proposals.propose_objects` matched to ground-truth objects
   by mask IoU, with the proposals' recall and precision;
5. rotation error: symmetry-aware (:mod:`dcl_arc_ros.learning.pose.metrics`; spheres have none), in degrees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.core.errors import DepthError
from dcl_arc_ros.core.pose_pipeline import (
    egocentric_to_allocentric,
    prepare_pose_input,
    rotation_from_6d,
    translation_from_depth,
)
from dcl_arc_ros.core.proposals import ProposalParams, match_to_instances, propose_objects
from dcl_arc_ros.learning.config import OptimConfig, to_dict
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.pose.metrics import rotation_summary, symmetric_rotation_error, symmetry_of
from dcl_arc_ros.learning.pose.posenet import PoseNet, PoseNetConfig
from dcl_arc_ros.learning.pose.trainer import (
    PoseCropDataset,
    PoseDataConfig,
    PoseSample,
    PoseTask,
    PoseTrainConfig,
    RotationLoss,
    build_pose_samples,
    labelled_rotation,
    open_pose_frames,
)
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything

__all__ = [
    "METHODS",
    "METRICS",
    "PoseExperimentConfig",
    "evaluate_samples",
    "run_pose_experiment",
]

METHODS: tuple[str, ...] = ("clean", "empirical", "dcl", "dcl_finetuned")
METRICS: tuple[str, ...] = ("rot_mean_deg", "rot_median_deg", "rot_15", "rot_30", "class_acc")
#: Object groups of the split table: in the training vocabulary, seen split but never drawn in training, novel split.
GROUPS: tuple[str, ...] = ("trained", "seen_untrained", "novel")
#: Symmetries of the by-symmetry table (trained classes; spheres have no rotation error).
SYMMETRY_KINDS: tuple[str, ...] = ("box", "cylinder", "none")


@dataclass(frozen=True)
class PoseExperimentConfig:
    """Everything one results file depends on (recorded in the JSON)."""

    train_paths: tuple[str, ...] = ("outputs/data/syn_train",)
    finetune_paths: tuple[str, ...] = ("outputs/data/real_train",)
    test_paths: tuple[str, ...] = ("outputs/data/real_test",)
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1)
    # the DCL generator of seed s: a DONE file holding the checkpoint path ({seed} is replaced)
    dcl_done: str = "outputs/experiments/dcl/synth/dcl/seed_{seed}/DONE"
    network: PoseNetConfig = field(
        default_factory=lambda: PoseNetConfig(crop_size=32, stem_channels=16, stage_channels=(16, 32, 64))
    )
    margin: float = 0.2
    depth_scale_m: float = 0.15
    min_visible_fraction: float = 0.3
    min_pixels: int = 60
    symmetric_targets: bool = True
    order_box_axes: bool = True  # PoseDataConfig.order_box_axes
    synthesis_context_px: int = 32
    steps: int = 600
    batch_size: int = 32
    lr: float = 0.002
    rotation_weight: float = 1.0
    rotation_loss: RotationLoss = "mse"  # PoseTrainConfig.rotation_loss
    augment_turn_deg: float = 0.0  # PoseTrainConfig.augment_turn_deg
    finetune_fraction: float = 0.1
    finetune_steps: int = 150
    finetune_lr: float = 0.0005
    proposals: bool = True
    proposal_iou: float = 0.5  # a proposal matches a ground-truth object when their masks overlap this much
    out_dir: str = "outputs/experiments/pose"
    results_dir: str = "docs/results"
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"unknown pose methods {unknown}; expected a subset of {list(METHODS)}")
        if "dcl_finetuned" in self.methods and "dcl" not in self.methods:
            raise ConfigError("dcl_finetuned starts from the dcl model: list dcl too")
        if not self.seeds or not 0 < self.finetune_fraction <= 1 or self.steps < 1 or self.finetune_steps < 1:
            raise ConfigError(f"need seeds, 0 < finetune_fraction <= 1 and positive steps: {self}")

    def data(self, paths: Sequence[str], **changes: Any) -> PoseDataConfig:
        base = PoseDataConfig(
            paths=tuple(paths),
            crop_size=self.network.crop_size,
            margin=self.margin,
            depth_scale_m=self.depth_scale_m,
            min_visible_fraction=self.min_visible_fraction,
            min_pixels=self.min_pixels,
            symmetric_targets=self.symmetric_targets,
            order_box_axes=self.order_box_axes,
            synthesis_context_px=self.synthesis_context_px,
            in_memory=True,
        )
        return dataclasses.replace(base, **changes)


# ----------------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------------


def _relabel(samples: Sequence[PoseSample], vocab: Sequence[int], *, unknown: int | None) -> list[PoseSample]:
    """Network class indices from catalogue ids (``unknown`` for classes outside ``vocab``; None drops them)."""
    index = {c: i for i, c in enumerate(vocab)}
    out = []
    for s in samples:
        label = index.get(s.catalogue_id, unknown)
        if label is not None:
            out.append(dataclasses.replace(s, class_id=label))
    return out


def dcl_checkpoint(cfg: PoseExperimentConfig, seed: int) -> Path | None:
    """The DCL generator checkpoint of ``seed`` (None while its DONE file is missing)."""
    done = Path(cfg.dcl_done.format(seed=seed))
    if not done.is_file():
        return None
    text = done.read_text(encoding="utf-8").strip()
    path = Path(text.splitlines()[0].strip()) if text else None
    if path is None or not path.is_file():
        raise DatasetError(f"{done} does not name an existing checkpoint (it says {text!r})")
    try:  # recorded configs name it relative to the working directory (the repository), not by a machine path
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def proposal_samples(
    frames: Any, cfg: PoseDataConfig, vocab: Sequence[int], *, iou: float, params: ProposalParams | None = None
) -> tuple[list[PoseSample], dict[str, float]]:
    """End-to-end crops: depth-only proposals of each frame's sensor depth, each matched to the ground-truth object
    its mask overlaps most (IoU >= ``iou``, one proposal per object); and the proposals' recall/precision."""
    p = params or ProposalParams()
    index = {c: i for i, c in enumerate(vocab)}
    out: list[PoseSample] = []
    n_props = n_matched = n_gt = 0
    for f in range(len(frames)):
        rec = frames[f]
        k: Intrinsics = rec.intrinsics
        rows = {int(r[0]): r for r in rec.object_info}
        poses = {int(r[0]): pose for r, pose in zip(rec.object_info, rec.object_poses, strict=True)}
        targets = {i for i, r in rows.items() if r[3] >= cfg.min_visible_fraction and (rec.instances == i).any()}
        n_gt += len(targets)
        try:
            crops = propose_objects(rec.depth, k, p)
        except DepthError:  # a frame without enough depth for a plane has no proposals; its objects still count
            crops = []
        n_props += len(crops)
        for c, best in match_to_instances(crops, rec.instances, targets, iou=iou).items():
            prepared = prepare_pose_input(crops[c], cfg.crop_params())
            if prepared is None:
                continue
            n_matched += 1
            row = rows[best]
            t = translation_from_depth(prepared.centre_uv, prepared.depth_m, k)
            cat = int(row[1])
            r_cam = labelled_rotation(
                poses[best],
                cat,
                cfg,
                depth_m=rec.depth_clean if rec.depth_clean is not None else rec.depth,
                instances=rec.instances,
                instance_id=best,
                intrinsics=k,
            )
            out.append(
                PoseSample(
                    best,
                    prepared.image,
                    index.get(cat, -1),
                    egocentric_to_allocentric(r_cam, t),
                    r_cam,
                    t,
                    bool(row[2]),
                    cat,
                    crops[c].box,
                    f,
                )
            )
    stats = {
        "proposals": float(n_props),
        "ground_truth_objects": float(n_gt),
        "matched": float(n_matched),
        "recall": n_matched / n_gt if n_gt else float("nan"),
        "precision": n_matched / n_props if n_props else float("nan"),
    }
    return out, stats


# ----------------------------------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------------------------------


def _comparable(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """A run config without the settings that do not change the result (progress bars)."""
    out = dict(run_config)
    out["loop"] = {k: v for k, v in dict(out.get("loop", {})).items() if k != "progress"}
    return out


def finished_run(out_dir: Path, train_cfg: PoseTrainConfig) -> Path | None:
    """The final checkpoint of a finished run of exactly ``train_cfg`` in ``out_dir``, or None.

    This is how a rerun of the experiment (say, after a change to the evaluation or the proposals) reuses the
    networks it trained before. A run left by another config is not reused; it is trained again over it. A change
    to the training code is not detected: delete ``out_dir`` to retrain after one.
    """
    from dcl_arc_ros.learning.checkpoint import load_checkpoint

    latest = out_dir / "checkpoints" / "latest.pt"
    if not latest.is_file():
        return None
    ckpt = load_checkpoint(latest)
    if ckpt.step < train_cfg.loop.max_steps or _comparable(ckpt.run_config) != _comparable(to_dict(train_cfg)):
        return None
    final = out_dir / "checkpoints" / f"step_{ckpt.step:08d}.pt"
    return final if final.is_file() else latest


def _train(
    samples: Sequence[PoseSample],
    data: PoseDataConfig,
    cfg: PoseExperimentConfig,
    out_dir: Path,
    *,
    seed: int,
    steps: int,
    lr: float,
    init_from: str = "",
) -> tuple[Path, bool]:
    """Train one network (or reuse the finished run of the same config in ``out_dir``): its checkpoint, and whether
    it was reused."""
    train_cfg = PoseTrainConfig(
        network=cfg.network,
        rotation_weight=cfg.rotation_weight,
        rotation_loss=cfg.rotation_loss,
        augment_turn_deg=cfg.augment_turn_deg,
        init_from=init_from,
        optim=OptimConfig(lr=lr, beta1=0.9, beta2=0.999),
        loop=LoopConfig(
            max_steps=steps,
            batch_size=cfg.batch_size,
            seed=seed,
            log_every=25,
            image_every=max(steps, 1),
            checkpoint_every=steps,
            keep_checkpoints=1,
            progress=cfg.progress,
        ),
        data=data,
    )
    finished = finished_run(out_dir, train_cfg)
    if finished is not None:
        return finished, True
    seed_everything(seed)
    task = PoseTask(train_cfg)
    dataset = PoseCropDataset.for_training(samples, train_cfg, num_classes=cfg.network.num_classes)
    result = run_training(task, {"train": dataset}, train_cfg.loop, out_dir, run_config=train_cfg)
    if result.last_checkpoint is None:
        raise DatasetError(f"pose training in {out_dir} wrote no checkpoint")
    return result.last_checkpoint, False


@torch.no_grad()
def predict(net: PoseNet, samples: Sequence[PoseSample], batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) class logits and (N, 3, 3) allocentric rotations of ``samples``."""
    net.eval()
    logits, rots = [], []
    for i in range(0, len(samples), batch):
        x = torch.from_numpy(np.stack([s.image for s in samples[i : i + batch]]).astype(np.float32))
        lg, r6 = net(x)
        logits.append(lg.numpy())
        rots.append(rotation_from_6d(r6.numpy().astype(np.float64)))
    if not logits:
        return np.zeros((0, net.cfg.num_classes)), np.zeros((0, 3, 3))
    return np.concatenate(logits), np.concatenate(rots)


def evaluate_samples(net: PoseNet, samples: Sequence[PoseSample], trained: set[int]) -> dict[str, np.ndarray]:
    """Per-object results: symmetry-aware and plain rotation errors (degrees), class correctness, group."""
    logits, r_pred = predict(net, samples)
    r_gt = np.stack([s.rotation_allo for s in samples]) if samples else np.zeros((0, 3, 3))
    kinds = [symmetry_of(s.catalogue_id) for s in samples]
    sym = np.degrees(symmetric_rotation_error(r_pred, r_gt, kinds)) if samples else np.zeros(0)
    plain = np.degrees(symmetric_rotation_error(r_pred, r_gt, "none")) if samples else np.zeros(0)
    labels = np.array([s.class_id for s in samples], dtype=np.int64)
    correct = (logits.argmax(axis=1) == labels) if samples else np.zeros(0, bool)
    group = np.array(
        ["trained" if s.catalogue_id in trained else ("novel" if s.novel else "seen_untrained") for s in samples]
    )
    return {
        "rot_sym_deg": sym,
        "rot_plain_deg": plain,
        "correct": correct,
        "in_vocab": labels >= 0,
        "group": group,
        "symmetry": np.array(kinds, dtype=object),
        "pred_rot": r_pred,
        "pred_class": logits.argmax(axis=1) if samples else labels,
    }


def summarise(res: Mapping[str, np.ndarray], group: str = "trained", symmetry: str | None = None) -> dict[str, float]:
    """The table's metrics on one object group (and one symmetry, if given): rotation statistics, class accuracy."""
    sel = res["group"] == group
    if symmetry is not None:
        sel &= res["symmetry"] == symmetry
    out = dict(rotation_summary(res["rot_sym_deg"][sel]))
    out["rot_plain_median_deg"] = float(np.median(res["rot_plain_deg"][sel])) if sel.any() else float("nan")
    voc = sel & res["in_vocab"]
    out["class_acc"] = float(res["correct"][voc].mean()) if voc.any() else float("nan")
    out["n_objects"] = float(sel.sum())
    return out


def _aggregate(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean over seeds and, as ``<metric>_std``, the sample standard deviation over seeds (0 for one seed)."""
    out: dict[str, float] = {}
    for key in per_seed[0]:
        vals = np.array([float(d[key]) for d in per_seed])
        out[key] = float(np.mean(vals))
        out[f"{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return out


# ----------------------------------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------------------------------


class _Timer:
    """Wall-clock seconds per named piece (``with timer("name"): ...``; repeated names add up)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(self.times.get(name, 0.0) + time.perf_counter() - t0, 2)


def _method_data(
    cfg: PoseExperimentConfig, method: str, seed: int, train_data: PoseDataConfig
) -> PoseDataConfig | None:
    """The data config of a synthetic-training method (None: dcl without its generator)."""
    if method == "clean":
        return dataclasses.replace(train_data, depth_from="clean")
    if method == "empirical":
        return train_data  # the bags' sensor depth is the empirical sensor model
    ckpt = dcl_checkpoint(cfg, seed)
    if ckpt is None:
        return None
    return dataclasses.replace(train_data, synthesis="dcl", synthesis_checkpoint=str(ckpt))


def run_pose_experiment(cfg: PoseExperimentConfig, *, write: bool = True) -> dict[str, Any]:
    """Run every method over every seed; returns (and with ``write`` saves) the results dictionary."""
    from dcl_arc_ros.data import bags
    from dcl_arc_ros.learning.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    timer = _Timer()
    t_start = time.perf_counter()
    out_root = Path(cfg.out_dir)
    notes: list[str] = []

    train_data = cfg.data(cfg.train_paths)
    frames = open_pose_frames(train_data, extra_topics=[bags.GT_DEPTH])
    with timer("crops_clean"):  # the first pass also decodes the bags (kept in memory afterwards)
        clean_crops = build_pose_samples(
            frames, dataclasses.replace(train_data, depth_from="clean"), progress=cfg.progress
        )
    vocab = sorted({s.catalogue_id for s in clean_crops})
    trained = set(vocab)
    cfg = dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, num_classes=len(vocab)))
    train_data = dataclasses.replace(train_data, class_ids=tuple(vocab))
    crops: dict[tuple[str, int], list[PoseSample]] = {}
    with timer("crops_empirical"):
        empirical_crops = _relabel(build_pose_samples(frames, train_data, progress=cfg.progress), vocab, unknown=None)
    clean_crops = _relabel(clean_crops, vocab, unknown=None)

    test_data = cfg.data(cfg.test_paths, class_ids=tuple(vocab))
    test_frames = open_pose_frames(test_data, extra_topics=[bags.GT_DEPTH])  # clean depth: box-axis labels
    with timer("crops_test"):
        test = build_pose_samples(test_frames, test_data, unknown_class=-1, progress=cfg.progress)
    e2e: list[PoseSample] = []
    e2e_stats: dict[str, float] = {}
    if cfg.proposals:
        with timer("proposals_test"):
            e2e, e2e_stats = proposal_samples(test_frames, test_data, vocab, iou=cfg.proposal_iou)

    ft_data = cfg.data(cfg.finetune_paths, class_ids=tuple(vocab), frame_fraction=cfg.finetune_fraction)

    results: dict[str, list[dict[str, np.ndarray]]] = {}
    e2e_results: dict[str, list[dict[str, np.ndarray]]] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    dataset: dict[str, Any] = {
        "train_frames": len(frames),
        "test_frames": len(test_frames),
        "test_objects": len(test),
        "test_objects_trained_classes": int(sum(s.catalogue_id in trained for s in test)),
        "vocabulary": len(vocab),
        "train_crops_clean": len(clean_crops),
        "train_crops_empirical": len(empirical_crops),
    }
    for seed in cfg.seeds:
        checkpoints: dict[str, Path] = {}
        for method in cfg.methods:
            run_dir = out_root / method / f"seed_{seed}"
            steps, lr, init = cfg.steps, cfg.lr, ""
            if method == "dcl_finetuned":
                if "dcl" not in checkpoints:
                    notes.append(f"dcl_finetuned seed {seed}: no dcl model to start from; skipped")
                    continue
                ft_frames = open_pose_frames(ft_data, seed=seed)  # the seeded frame_fraction subset
                with timer(f"crops_finetune_seed{seed}"):
                    samples = build_pose_samples(ft_frames, ft_data, progress=False)
                dataset[f"finetune_frames_seed{seed}"] = list(getattr(ft_frames.source, "indices", []))
                data = ft_data
                steps, lr, init = cfg.finetune_steps, cfg.finetune_lr, str(checkpoints["dcl"])
            else:
                maybe = _method_data(cfg, method, seed, train_data)
                if maybe is None:
                    notes.append(f"dcl seed {seed}: no generator ({cfg.dcl_done.format(seed=seed)} missing); skipped")
                    continue
                data = maybe
                if method == "clean":
                    samples = clean_crops
                elif method == "empirical":
                    samples = empirical_crops
                else:
                    with timer(f"crops_dcl_seed{seed}"):
                        samples = _relabel(
                            build_pose_samples(frames, data, seed=seed, progress=cfg.progress), vocab, unknown=None
                        )
                    dataset[f"train_crops_dcl_seed{seed}"] = len(samples)
            crops[(method, seed)] = samples
            with timer(f"train_{method}_seed{seed}"):
                ckpt_path, reused = _train(samples, data, cfg, run_dir, seed=seed, steps=steps, lr=lr, init_from=init)
            if reused:
                notes.append(f"{method} seed {seed}: reused the finished run in {run_dir}")
            checkpoints[method] = ckpt_path
            net = load_checkpoint(ckpt_path).build("posenet", eval_mode=True)
            assert isinstance(net, PoseNet)
            with timer(f"eval_{method}_seed{seed}"):
                res = evaluate_samples(net, test, trained)
                if cfg.proposals:
                    e2e_results.setdefault(method, []).append(evaluate_samples(net, e2e, trained))
            results.setdefault(method, []).append(res)
            runs.setdefault(method, []).append(
                {
                    "seed": seed,
                    "checkpoint": str(ckpt_path),
                    "reused": reused,
                    "train_crops": len(samples),
                    **summarise(res),
                }
            )

    report: dict[str, Any] = {
        "rows": {m: _aggregate([summarise(r) for r in rs]) for m, rs in results.items()},
        "groups": {m: {g: _aggregate([summarise(r, g) for r in rs]) for g in GROUPS} for m, rs in results.items()},
        "by_symmetry": {
            m: {k: _aggregate([summarise(r, symmetry=k) for r in rs]) for k in SYMMETRY_KINDS}
            for m, rs in results.items()
        },
        "end_to_end": {m: _aggregate([summarise(r) for r in rs]) for m, rs in e2e_results.items()},
        "proposal_stats": e2e_stats,
        "runs": runs,
        "dataset": dataset,
        "vocabulary": vocab,
        "notes": notes,
        "config": to_dict(cfg),
    }
    timer.times["total"] = round(time.perf_counter() - t_start, 2)
    report["timings_s"] = timer.times
    if write:
        from dcl_arc_ros.learning.pose.report import write_pose_report

        write_pose_report(report, results, test, test_frames, Path(cfg.results_dir))
    return report
