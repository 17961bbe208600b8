"""The DCL real-sensor check: train DCL with real RealSense SR300 depth as the unpaired real set, then compare
synthesized, real and empirical depth on hole fraction, holes at depth edges and noise against depth.

    python -m dcl_arc_ros.learning.experiments.realism --out docs/results/dcl_realism

Domains compared (statistics of :mod:`dcl_arc_ros.evaluation.realism`, the same rules for every domain):

* ``real``: the 30 SR300 "castel" frames (Debian ``visp-images-data``; also the real set DCL trains on: the check
  asks whether synthesized depth looks like this sensor, not whether it generalises to another scene);
* ``clean``: the evaluation source frames (clean synthetic depth, scaled to the real working distance, see
  ``source_scale`` in ``training/configs/dcl_castel.yaml``);
* ``dcl``: the trained generator applied to those clean frames at full resolution;
* ``empirical``: the empirical sensor model (the paper's "Simulation" baseline) with the SR300 preset applied to the
  same clean frames.

``training/evaluate_dcl.py`` stores the dict of :func:`run_realism_check` under ``"realism"`` in
``docs/results/dcl.json``; this module's CLI writes ``docs/results/dcl_realism.{json,md,png}`` on its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dcl_arc_ros.core.camera import Intrinsics
from dcl_arc_ros.data import bags
from dcl_arc_ros.data.bag_index import BagIndex
from dcl_arc_ros.data.errors import RealDataMissingError
from dcl_arc_ros.data.real import CastelFrames, castel_available, castel_dir
from dcl_arc_ros.evaluation.realism import (
    RealismParams,
    RealismStats,
    compare_to_real,
    hole_mask,
    realism_stats,
    save_realism_figure,
)
from dcl_arc_ros.learning.config import from_dict, load_yaml, to_dict
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.trainers.dcl import DCLTrainConfig, GeneratorSynthesizer, load_dcl_config, make_task
from dcl_arc_ros.learning.trainers.loop import run_training, seed_everything

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = Path("training/configs/dcl_castel.yaml")
DOMAINS: tuple[str, ...] = ("real", "clean", "dcl", "empirical")
STAT_KEYS: tuple[str, ...] = ("hole_fraction", "edge_hole_share", "noise")


@dataclass(frozen=True)
class RealismOptions:
    """The ``realism:`` section of the config (see ``training/configs/dcl_castel.yaml``). Paths are relative to the
    repository root unless absolute."""

    source_paths: tuple[str, ...] = ()
    eval_paths: tuple[str, ...] = ()
    eval_frames: int = 12
    real_frames: int = 0  # castel frames used for the real statistics (0: all 30)
    source_scale: float = 0.0  # 0: 1st percentile of the real depth / 1st percentile of the source depth
    empirical_camera: str = "realsense_sr300"
    figure_frame: int = 0


def load_realism_config(path: Path | str = DEFAULT_CONFIG) -> tuple[DCLTrainConfig, RealismOptions]:
    """``dcl:`` (a DCL training config, as for ``training/train_dcl.py``) and ``realism:`` of the YAML file."""
    path = _resolve(path)
    raw = load_yaml(path)
    unknown = sorted(set(raw) - {"dcl", "realism"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; expected 'dcl' and 'realism'")
    cfg = load_dcl_config(raw.get("dcl", {}), source=str(path))
    if cfg.method != "dcl":
        raise ConfigError(f"{path}: the realism check trains method 'dcl', the config says {cfg.method!r}")
    opts = from_dict(RealismOptions, raw.get("realism", {}), source=str(path))
    return cfg, opts


def _resolve(path: Path | str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def repo_relative(path: Path | str) -> str:
    """``path`` relative to the repository root when it lies inside it, else relative to the working directory."""
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return Path(os.path.relpath(p)).as_posix()


class ScaledDepth(Dataset):
    """A sample dataset with ``depth`` multiplied by ``scale`` (holes stay 0): the same scene ``scale`` times the
    size, seen from ``scale`` times the distance."""

    def __init__(self, base: Dataset, scale: float) -> None:
        self.base, self.scale = base, float(scale)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = dict(self.base[index])
        sample["depth"] = sample["depth"] * self.scale
        return sample


def _eval_records(paths: Sequence[str], n: int) -> list[bags.FrameRecord]:
    index = BagIndex(
        [str(_resolve(p)) for p in paths], topics=[bags.DEPTH_IMAGE, bags.DEPTH_INFO, bags.GT_DEPTH, bags.GT_NORMALS]
    )
    if len(index) == 0:
        raise DatasetError(f"no frames in the evaluation bags {list(paths)}")
    picks = np.unique(np.linspace(0, len(index) - 1, min(n, len(index))).round().astype(int))
    records = [index[int(i)] for i in picks]
    for r in records:
        if r.depth_clean is None or r.intrinsics is None:
            raise DatasetError(f"{r.source}: evaluation frames need clean depth and camera info")
    return records


def _near_depth(frames: Sequence[np.ndarray], percentile: float = 1.0) -> float:
    """The ``percentile`` of the valid depth of ``frames`` (pooled, subsampled): where their nearest surfaces are."""
    values = np.concatenate([f[np.isfinite(f) & (f > 0)].ravel()[::7] for f in frames])
    return float(np.percentile(values, percentile))


def _empirical(clean: np.ndarray, record: bags.FrameRecord, camera: str, rng: np.random.Generator) -> np.ndarray:
    from dcl_arc_ros.sim.cameras import camera_preset
    from dcl_arc_ros.sim.sensors import SENSORS, SceneContext

    preset = camera_preset(camera)
    context = SceneContext(
        normals=record.normals,
        baseline_m=preset.baseline_m,
        depth_range_m=preset.depth_range_m,
        disparity_subpixel=preset.disparity_subpixel,
    )
    intr: Intrinsics = record.intrinsics  # type: ignore[assignment]
    return np.asarray(SENSORS["empirical"].apply(clean, intr, rng, context), dtype=np.float32)


def _synthesize(synth: GeneratorSynthesizer, clean: np.ndarray, intrinsics: Intrinsics | None) -> np.ndarray:
    x = torch.from_numpy(np.nan_to_num(clean, nan=0.0).astype(np.float32))[None, None]
    k = None if intrinsics is None else torch.tensor([[intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy]])
    out = synth(x, intrinsics=k)[0, 0].numpy()
    return np.where(out > 0, out, np.nan).astype(np.float32)


def _training_seconds(run_dir: Path, seconds: float, steps_run: int) -> float:
    """Training seconds of the run in ``run_dir`` summed over every call that trained (kept in
    ``training_time.json`` beside the checkpoints), so that a resumed or evaluation-only call still reports what
    the training cost."""
    path = run_dir / "training_time.json"
    total = float(json.loads(path.read_text(encoding="utf-8")).get("seconds", 0.0)) if path.is_file() else 0.0
    if steps_run > 0:
        total += seconds
        path.write_text(json.dumps({"seconds": round(total, 2)}) + "\n", encoding="utf-8")
    return total


def _last_logged_losses(run_dir: Path) -> dict[str, float]:
    """The last value of every ``train/*`` scalar in the run's TensorBoard logs (the loop logs means over
    ``log_every`` steps), so resumed calls report where training ended too."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        if tag.startswith("train/"):
            last = acc.Scalars(tag)[-1]
            out[tag.removeprefix("train/")] = round(float(last.value), 5)
            out["step"] = int(last.step)
    return out


def _closer(distances: Mapping[str, Mapping[str, Any]], a: str, b: str) -> dict[str, str]:
    """Per statistic, which of ``a`` and ``b`` is closer to real ("tie" / "n/a" when it cannot be said)."""
    keys = {
        "hole_fraction": "hole_fraction_abs_diff",
        "edge_hole_share": "edge_hole_share_abs_diff",
        "noise": "noise_mean_abs_log_ratio",
    }
    out = {}
    for stat, key in keys.items():
        da, db = distances[a].get(key), distances[b].get(key)
        if da is None or db is None:
            out[stat] = "n/a"
        else:
            out[stat] = a if da < db else b if db < da else "tie"
    return out


def run_realism(
    cfg: DCLTrainConfig,
    opts: RealismOptions,
    workdir: Path,
    *,
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    params: RealismParams | None = None,
) -> dict[str, Any]:
    """Train (or resume) DCL on castel + scaled synthetic clean depth in ``workdir``, then compare the domains."""
    params = params or RealismParams()
    from dcl_arc_ros.data import torch_datasets

    if not castel_available():
        raise RealDataMissingError(f"SR300 castel frames not found under {castel_dir()} (`make real-data`)")
    t_start = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    loop = dataclasses.replace(
        cfg.loop, seed=seed, progress=progress, max_steps=cfg.loop.max_steps if steps is None else int(steps)
    )
    cfg = dataclasses.replace(cfg, loop=loop)
    timings: dict[str, float] = {}

    # real statistics first: they also fix the source scale
    t0 = time.perf_counter()
    castel = CastelFrames(with_gray=False)
    n_real = len(castel) if opts.real_frames <= 0 else min(opts.real_frames, len(castel))
    real_frames: list[np.ndarray] = []
    real_intrinsics: list[Intrinsics | None] = []
    for i in np.linspace(0, len(castel) - 1, n_real).round().astype(int):
        record = castel[int(i)]
        if record.depth is None:
            raise DatasetError(f"castel frame {i} has no depth")
        real_frames.append(record.depth)
        real_intrinsics.append(record.intrinsics)
    records = _eval_records(opts.eval_paths, opts.eval_frames)
    raw_clean = [np.asarray(r.depth_clean, np.float32) for r in records]
    scale = opts.source_scale if opts.source_scale > 0 else _near_depth(real_frames) / _near_depth(raw_clean)
    clean_frames = [c * np.float32(scale) for c in raw_clean]
    timings["load_s"] = time.perf_counter() - t0

    # training
    t0 = time.perf_counter()
    seed_everything(seed)
    data = cfg.data
    crop = [torch_datasets.RandomCrop(width=data.crop_width, height=data.crop_height)] if data.crop_width else []
    keys = ("depth", "valid", *(("intrinsics",) if cfg.generator.ray_channels else ()))
    source = torch_datasets.build_dataset(
        "bags",
        *[str(_resolve(p)) for p in opts.source_paths],
        transforms=crop,
        depth_from="clean",
        keys=keys,
        in_memory=data.in_memory,
    )
    real = torch_datasets.build_dataset("castel", transforms=crop, keys=keys, in_memory=data.in_memory, with_gray=False)
    task = make_task(cfg)
    result = run_training(
        task,
        {"source": ScaledDepth(source, scale), "real": real},
        cfg.loop,
        workdir / "dcl",
        run_config=cfg,
        resume=True,
    )
    if result.last_checkpoint is None:
        raise DatasetError(f"DCL training in {workdir / 'dcl'} produced no checkpoint")
    timings["train_s"] = _training_seconds(workdir / "dcl", time.perf_counter() - t0, len(result.history))

    # synthesis
    t0 = time.perf_counter()
    synth = GeneratorSynthesizer.from_checkpoint(result.last_checkpoint, name="dcl")
    with torch.no_grad():
        dcl_frames = [_synthesize(synth, c, r.intrinsics) for c, r in zip(clean_frames, records, strict=True)]
        # Diagnostic: the generator on REAL input (what L_idt trains), to tell "cannot make holes" from "only copies
        # the holes its input already has".
        every = max(1, len(real_frames) // 5)
        sampled = zip(real_frames[::every], real_intrinsics[::every], strict=True)
        on_real = [(r, _synthesize(synth, r, k)) for r, k in sampled]
    real_in = np.concatenate([hole_mask(r).ravel() for r, _ in on_real])
    real_out = np.concatenate([hole_mask(y).ravel() for _, y in on_real])
    timings["synthesize_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    empirical_frames = [
        _empirical(c, r, opts.empirical_camera, rng) for c, r in zip(clean_frames, records, strict=True)
    ]
    timings["empirical_s"] = time.perf_counter() - t0

    # statistics
    t0 = time.perf_counter()
    frames: dict[str, list[np.ndarray]] = {
        "real": real_frames,
        "clean": clean_frames,
        "dcl": dcl_frames,
        "empirical": empirical_frames,
    }
    stats: dict[str, RealismStats] = {name: realism_stats(f, params=params) for name, f in frames.items()}
    clean_ref = {name: realism_stats(frames[name], clean_frames, params=params) for name in ("dcl", "empirical")}
    distances = compare_to_real(stats)
    bias = [np.nanmedian(d - c) for d, c in zip(dcl_frames, clean_frames, strict=True) if np.isfinite(d - c).any()]
    timings["stats_s"] = time.perf_counter() - t0

    k = min(max(opts.figure_frame, 0), len(clean_frames) - 1)
    figure = save_realism_figure(
        workdir / "realism.png",
        {
            "real (SR300 castel)": real_frames[min(k, len(real_frames) - 1)],
            "clean source": clean_frames[k],
            "DCL synthesized": dcl_frames[k],
            "empirical (SR300 preset)": empirical_frames[k],
        },
        stats,
        title=f"DCL realism check: {loop.max_steps} steps, seed {seed}",
    )
    timings["total_s"] = time.perf_counter() - t_start

    table: dict[str, Any] = {}
    for name, s in stats.items():
        row = s.to_dict()
        row.pop("params", None)
        table[name] = row
    for name, s in clean_ref.items():
        table[name]["with_clean_reference"] = {
            "edge_hole_share": s.to_dict()["edge_hole_share"],
            "noise_overall_median_std_m": s.to_dict()["noise"]["overall_median_std_m"],
            "noise_windows": s.noise.windows,
        }
    table["dcl"]["median_shift_from_clean_m"] = float(np.median(bias)) if bias else None
    table["dcl"]["on_real_input"] = {
        "frames": len(on_real),
        "input_hole_fraction": float(real_in.mean()),
        "output_hole_fraction": float(real_out.mean()),
        "input_holes_kept": float((real_in & real_out).sum() / max(1, real_in.sum())),
    }
    return {
        "table": table,
        "distance_to_real": distances,
        "closer_to_real": _closer(distances, "dcl", "empirical"),
        "figure": repo_relative(figure),
        "timings_s": {k_: round(v, 2) for k_, v in timings.items()},
        "config": {
            "dcl": to_dict(cfg),
            "realism": to_dict(opts),
            "statistics": to_dict(params),
            "source_scale": round(float(scale), 4),
            "seed": seed,
            "steps": result.step,
            "real_frames": len(real_frames),
            "eval_frames": [r.source.split("/")[-1] if "/" in r.source else r.source for r in records],
            "checkpoint": repo_relative(result.last_checkpoint),
            "last_losses": _last_logged_losses(workdir / "dcl"),
        },
    }


def run_realism_check(workdir: Path, *, seed: int = 0, steps: int | None = None, progress: bool = True) -> dict:
    """The realism check with ``training/configs/dcl_castel.yaml``: a JSON-able dict with ``table`` (per domain),
    ``figure`` (repo-relative PNG), ``timings_s`` and ``config`` (plus ``distance_to_real`` and ``closer_to_real``).

    Raises :class:`~dcl_arc_ros.data.errors.RealDataMissingError` when the castel frames are not installed.
    """
    cfg, opts = load_realism_config(DEFAULT_CONFIG)
    return run_realism(cfg, opts, Path(workdir), seed=seed, steps=steps, progress=progress)


# ------------------------------------------------------------------------------------------------ report


def _fmt(value: Any, scale: float = 1.0, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value) * scale:.{digits}f}"


def markdown_report(result: Mapping[str, Any]) -> str:
    """The results page: the table, the per-statistic verdict and the noise curves, from ``result`` alone."""
    table, dist, cfg = result["table"], result["distance_to_real"], result["config"]
    lines = [
        "# DCL realism check: synthesized vs real (RealSense SR300) vs empirical depth",
        "",
        "Generated by `python training/evaluate_realism.py --out docs/results/dcl_realism` "
        "(config `training/configs/dcl_castel.yaml`); do not edit by hand. Statistics are defined in "
        "`dcl_arc_ros/evaluation/realism.py`.",
        "",
        f"- Real: {cfg['real_frames']} SR300 castel frames (also DCL's unpaired real training set).",
        f"- DCL: {cfg['steps']} steps, seed {cfg['seed']}, generator ngf {cfg['dcl']['generator']['ngf']} / "
        f"{cfg['dcl']['generator']['n_blocks']} blocks, crops {cfg['dcl']['data']['crop_height']}x"
        f"{cfg['dcl']['data']['crop_width']}, batch {cfg['dcl']['loop']['batch_size']} (reduced from the paper's "
        "ngf 32 / 5 blocks / batch 16 to fit about 15 minutes of one CPU core).",
        f"- Source: clean synthetic depth scaled by {cfg['source_scale']} (1st percentile of the real depth / 1st "
        "percentile of the source depth: the same scenes built smaller and seen from closer, so that the nearest "
        "surfaces sit at the real sensor's nearest readings); DCL and empirical are applied to the same "
        f"{len(cfg['eval_frames'])} held-out clean frames at 640x480.",
        f"- Empirical: the empirical sensor model with the `{cfg['realism']['empirical_camera']}` preset.",
        "",
        "| domain | hole fraction | holes within 3 px of a depth edge | hole rate in the edge band | "
        "noise std, median over planar tiles (mm) | planar tiles | depth p1-p99 (m) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in DOMAINS:
        row = table[name]
        lo, hi = row["depth_range_m"]
        lines.append(
            f"| {name} | {_fmt(row['hole_fraction'])} (±{_fmt(row['hole_fraction_std'])}) | "
            f"{_fmt(row['edge_hole_share'])} | {_fmt(row['edge_band_hole_rate'])} | "
            f"{_fmt(row['noise']['overall_median_std_m'], 1000, 3)} | {row['noise']['windows']} | "
            f"{_fmt(lo, 1, 2)}-{_fmt(hi, 1, 2)} |"
        )
    lines += [
        "",
        "## Distance to real (smaller is closer)",
        "",
        "| domain | abs. diff. hole fraction | abs. diff. edge-hole share | noise: mean abs. log ratio | shared bins |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("clean", "dcl", "empirical"):
        d = dist[name]
        lines.append(
            f"| {name} | {_fmt(d['hole_fraction_abs_diff'])} | {_fmt(d['edge_hole_share_abs_diff'])} | "
            f"{_fmt(d['noise_mean_abs_log_ratio'])} | {d['noise_shared_bins']} |"
        )
    verdict = result["closer_to_real"]
    lines += ["", "Closer to real, DCL or empirical: " + ", ".join(f"{k}: **{v}**" for k, v in verdict.items()) + "."]
    not_won = [k for k, v in verdict.items() if v != "dcl"]
    if not_won:
        lines.append(f"DCL is NOT closer to real than the empirical model on: {', '.join(not_won)}.")
    lines += ["", "## Noise against depth (median std per 5 cm bin, mm; tiles per bin in brackets)", ""]
    edges = table["real"]["noise"]["bin_edges"]
    header = "| depth bin (m) | " + " | ".join(DOMAINS) + " |"
    lines += [header, "| --- " * (len(DOMAINS) + 1) + "|"]
    for b in range(len(edges) - 1):
        cells = []
        for name in DOMAINS:
            n = table[name]["noise"]["count"][b]
            v = table[name]["noise"]["median_std_m"][b]
            cells.append("" if n == 0 else f"{_fmt(v, 1000, 3)} ({n})")
        if any(cells):
            lines.append(f"| {edges[b]:.2f}-{edges[b + 1]:.2f} | " + " | ".join(cells) + " |")
    dcl_row, emp_row, real_row = table["dcl"], table["empirical"], table["real"]
    real_noise, emp_noise = real_row["noise"]["overall_median_std_m"], emp_row["noise"]["overall_median_std_m"]
    lines += [
        "",
        "## Reading the numbers",
        "",
        "- The real statistics come from the same castel frames DCL trains on (its unpaired real set): no other real "
        "SR300 recording installs from the package registries. The check asks whether the synthesized depth looks "
        "like this sensor, not whether DCL generalises to unseen real frames.",
        "- The scenes differ: castel is one object on a table, the synthetic scenes hold several objects (edge "
        f"pixels: real {_fmt(real_row['edge_pixel_fraction'])}, clean source "
        f"{_fmt(table['clean']['edge_pixel_fraction'])} of the image, found by the same rule; in the real frames some "
        "lie inside filled holes). The edge-hole share depends on how much of the hole area is large empty regions "
        "(background out of range, dark or specular surfaces) and so on the scene as well as on the sensor.",
        f"- Real SR300 noise on planar tiles is {_fmt(real_noise, 1000)} mm (median), close to its depth unit of "
        "0.125 mm: the device filters its depth. The empirical model's axial law (Nguyen et al., Kinect v1) gives "
        f"{_fmt(emp_noise, 1000)} mm; a noise curve far below the real one is as wrong as one far above, hence the "
        "log-ratio distance.",
    ]
    lines += [
        "",
        "## Checks",
        "",
        f"- Median depth shift of DCL output from its clean input: "
        f"{_fmt(dcl_row.get('median_shift_from_clean_m'), 1000, 2)} mm.",
    ]
    on_real = dcl_row.get("on_real_input")
    if on_real:
        lines.append(
            f"- The generator on {on_real['frames']} REAL frames (the identity path L_idt trains): input holes "
            f"{_fmt(on_real['input_hole_fraction'])}, output holes {_fmt(on_real['output_hole_fraction'])}, input "
            f"holes kept {_fmt(on_real['input_holes_kept'])}; on clean input it makes "
            f"{_fmt(dcl_row['hole_fraction'])}."
            + (
                " It keeps the holes it is given but makes almost none on clean depth: it has learned to copy holes, "
                "not to synthesize them."
                if on_real["input_holes_kept"] > 0.9 and dcl_row["hole_fraction"] < 0.1 * real_row["hole_fraction"]
                else ""
            )
        )
    lines += [
        "- With the clean depth as the reference for edges and planarity (possible for the synthetic domains only): "
        f"edge-hole share DCL {_fmt(dcl_row['with_clean_reference']['edge_hole_share'])}, empirical "
        f"{_fmt(emp_row['with_clean_reference']['edge_hole_share'])}; noise DCL "
        f"{_fmt(dcl_row['with_clean_reference']['noise_overall_median_std_m'], 1000)} mm, empirical "
        f"{_fmt(emp_row['with_clean_reference']['noise_overall_median_std_m'], 1000)} mm.",
        f"- Last logged training losses (means over the last logging interval): {json.dumps(cfg['last_losses'])}.",
        "",
        "## Timings (seconds, one CPU core; train_s sums every call that trained this run)",
        "",
        "| " + " | ".join(result["timings_s"]) + " |",
        "| --- " * len(result["timings_s"]) + "|",
        "| " + " | ".join(f"{v:.1f}" for v in result["timings_s"].values()) + " |",
        "",
        f"![realism]({Path(result['figure']).name})",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/results/dcl_realism"),
        help="output stem: writes <out>.json, <out>.md and <out>.png",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("outputs/experiments/realism"),
        help="training run and intermediate files (resumed when it holds a checkpoint)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--report-only", action="store_true", help="rewrite <out>.md from <out>.json (no compute)")
    args = parser.parse_args(argv)
    out = args.out
    if args.report_only:
        result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        out.with_suffix(".md").write_text(markdown_report(result), encoding="utf-8")
        print(f"realism: wrote {repo_relative(out.with_suffix('.md'))} from {repo_relative(out.with_suffix('.json'))}")
        return 0
    try:
        result = run_realism_check(args.workdir, seed=args.seed, steps=args.steps, progress=not args.no_progress)
    except (RealDataMissingError, ConfigError, DatasetError) as exc:
        print(f"realism: error: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    shutil.copyfile(args.workdir / "realism.png", png)
    result["figure"] = repo_relative(png)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown_report(result), encoding="utf-8")
    print(
        f"realism: wrote {repo_relative(out.with_suffix('.md'))}, .json and .png; closer to real: "
        f"{result['closer_to_real']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
