"""The DCL paper evaluation: Table I (depth enhancement) and Table II (normals), plus the real-sensor realism check.

    python training/evaluate_dcl.py                                  # both parts, writes docs/results/dcl.*
    python training/evaluate_dcl.py --parts table --seeds 0 1        # the table only
    python training/evaluate_dcl.py --parts realism                  # the realism check only
    python training/evaluate_dcl.py --set synth_steps=20 --set task_steps=10 --out /elsewhere/dcl   # a smoke run

Rows, seeds, sizes and data: see dcl_arc_ros/learning/experiments/dcl.py and training/configs/dcl_eval.yaml,
enhancer_eval.yaml, normals_eval.yaml. Finished runs under --workdir are reused (a generator with a DONE file, a
row/seed with a result.json), so an interrupted evaluation continues where it stopped.

Writes <out>.json ({"rows": {METHOD: {METRIC: mean, METRIC_std: spread}}, "realism": {...}, ...}), <out>.md and
<out>_examples.png, <out>_metrics.png. A part that is not run keeps its previous entry in <out>.json. The text
between the analysis markers of an existing <out>.md is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcl_arc_ros.learning.config import apply_overrides, from_dict, to_dict
from dcl_arc_ros.learning.experiments.dcl import (
    ROWS,
    SYNTH_ROWS,
    DCLExperimentConfig,
    TableData,
    row_dir,
    run_dcl_table,
)

PARTS = ("table", "realism")
ANALYSIS_START, ANALYSIS_END = "<!-- analysis -->", "<!-- /analysis -->"
LABELS = {
    "clean": "clean",
    "empirical": "empirical",
    "cut": "CUT",
    "cyclegan": "CycleGAN",
    "dcl": "DCL",
    "dcl_rgb": "DCL w/ rgb",
    "supervised_real": "supervised on real-like",
    "dcl_finetuned": "DCL + 10% real-like",
}


# ------------------------------------------------------------------------------------------------------- report


def _pm(row: dict[str, float], key: str, scale: float = 1.0, digits: int = 1) -> str:
    mean, std = row.get(key, float("nan")) * scale, row.get(f"{key}_std", float("nan")) * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def table_markdown(payload: dict[str, Any]) -> str:
    """Table I and Table II (mean ± sample std across seeds) plus the synthesis statistics, as markdown."""
    rows: dict[str, dict[str, float]] = payload["rows"]
    lines = [
        "| method | RMSE (mm) | MAE (mm) | PSNR (dB) | SSIM | normal mean (deg) | normal median (deg) "
        "| < 11.25 | < 22.5 | < 30 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ROWS:
        if name not in rows:
            continue
        m = rows[name]
        lines.append(
            f"| {LABELS[name]} | {_pm(m, 'rmse', 1000)} | {_pm(m, 'mae', 1000)} | {_pm(m, 'psnr', 1, 2)} "
            f"| {_pm(m, 'ssim', 1, 4)} | {_pm(m, 'normal_mean_deg')} | {_pm(m, 'normal_median_deg')} "
            f"| {_pm(m, 'normal_11', 100)}% | {_pm(m, 'normal_22', 100)}% | {_pm(m, 'normal_30', 100)}% |"
        )
    refs = payload.get("references", {})
    if refs:
        lines += [
            "",
            "References without a network, on the same test frames (no seeds):",
            "",
            "| input | RMSE (mm) | MAE (mm) | PSNR (dB) | SSIM | coverage |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, m in refs.items():
            lines.append(
                f"| {name} | {m['rmse'] * 1000:.1f} | {m['mae'] * 1000:.1f} | {m['psnr']:.2f} | {m['ssim']:.4f} "
                f"| {m['coverage']:.1%} |"
            )
    synth = payload.get("synthesis", {})
    if synth:
        real = payload.get("real_train_sensor", {})
        lines += [
            "",
            "What each synthesis method made of the clean training frames (mean ± std across seeds), "
            "against the real-like training sensor depth:",
            "",
            "| synthesis | hole fraction | mean abs change (mm) | mean signed change (mm) |",
            "| --- | --- | --- | --- |",
        ]
        if real:
            lines.append(
                f"| real-like sensor (target) | {real['hole_fraction']:.1%} | {real['mean_abs_shift_m'] * 1000:.1f} "
                f"| {real['mean_shift_m'] * 1000:+.1f} |"
            )
        for name in SYNTH_ROWS:
            if name in synth:
                s = synth[name]
                lines.append(
                    f"| {LABELS[name]} | {_pm(s, 'hole_fraction', 100)}% | {_pm(s, 'mean_abs_shift_m', 1000, 2)} "
                    f"| {_pm(s, 'mean_shift_m', 1000, 2)} |"
                )
    return "\n".join(lines) + "\n"


def timings_markdown(payload: dict[str, Any]) -> str:
    """Wall time per row (summed over seeds) and piece, in minutes."""
    wall: dict[str, float] = payload.get("wall_s", {})
    pieces = ("generator_train", "synthesize", "cleaner_train", "normals_train", "evaluate")
    lines = ["| row | " + " | ".join(pieces) + " |", "| --- |" + " --- |" * len(pieces)]
    for name in ROWS:
        cells = []
        for piece in pieces:
            values = [v for k, v in wall.items() if k.startswith(f"{name}/") and k.endswith(f"/{piece}")]
            cells.append(f"{sum(values) / 60:.1f}" if values else "")
        if any(cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    pieces_total = sum(v for k, v in wall.items() if "/" in k) + wall.get("load_data", 0.0)
    lines.append("")
    lines.append(f"Every piece together (what a run from scratch costs): {pieces_total / 60:.1f} min.")
    lines.append(
        f"Loading the frames: {wall.get('load_data', float('nan')) / 60:.1f} min. "
        f"This invocation of the table part: {wall.get('table_total_this_run', float('nan')) / 60:.1f} min "
        "(reused runs count with the time they took when they ran, in the table above, not here)."
    )
    realism = payload.get("realism", {})
    if isinstance(realism, dict) and "timings_s" in realism:
        lines.append(f"Realism check: {json.dumps(realism['timings_s'])} s.")
    return "\n".join(lines) + "\n"


def realism_markdown(realism: dict[str, Any], stem: str) -> str:
    """The realism check's per-domain statistics (computed by dcl_arc_ros.learning.experiments.realism)."""

    def cell(value: Any, scale: float = 1.0, fmt: str = ".1f") -> str:
        return "n/a" if value is None else f"{value * scale:{fmt}}"

    lines = [
        "| domain | frames | hole fraction (%) | holes within 3 px of a depth edge (%) | noise std, median (mm) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in realism.get("table", {}).items():
        noise = row.get("noise", {}).get("overall_median_std_m")
        lines.append(
            f"| {name} | {row.get('frames')} | {cell(row.get('hole_fraction'), 100)} "
            f"| {cell(row.get('edge_hole_share'), 100)} | {cell(noise, 1000, '.3f')} |"
        )
    closer = realism.get("closer_to_real", {})
    lines += [
        "",
        f"Closer to the real SR300 depth, per statistic: {json.dumps(closer)}. Details: `{stem}_realism.md` and "
        f"`{stem}_realism.png` (written by `python -m dcl_arc_ros.learning.experiments.realism`); all numbers are "
        f"under `realism` in `{stem}.json`.",
    ]
    return "\n".join(lines)


def markdown_report(payload: dict[str, Any], old_md: str, stem: str) -> str:
    """The whole results page; the analysis section of ``old_md`` (between the markers) is kept."""
    analysis = f"{ANALYSIS_START}\n(analysis not written yet)\n{ANALYSIS_END}"
    if ANALYSIS_START in old_md and ANALYSIS_END in old_md:
        analysis = old_md[old_md.index(ANALYSIS_START) : old_md.index(ANALYSIS_END) + len(ANALYSIS_END)]
    frames = payload.get("frames", {})
    res = payload.get("resolution", ["?", "?"])
    realism = payload.get("realism", {})
    if isinstance(realism, dict) and "error" in realism:
        realism_text = f"Not in this file: {realism['error']}."
    else:
        realism_text = realism_markdown(realism, stem)
    return (
        "# DCL evaluation: depth enhancement (Table I) and surface normals (Table II)\n\n"
        "Generated by `training/evaluate_dcl.py` (tables, figures, JSON); only the analysis section is written by "
        "hand.\n\n"
        "Reproduce everything (finished runs under `outputs/experiments/dcl` are reused; delete them to start over): "
        "`python training/evaluate_dcl.py`. Only the table: `python training/evaluate_dcl.py --parts table`. "
        f"This page was last written by `{payload.get('command', '')}`.\n\n"
        f"Seeds {payload.get('seeds')}; test: {frames.get('real_test')} real-like active-stereo frames "
        f"({res[1]}x{res[0]}), sensor depth in, ground-truth clean depth and normals as targets; PSNR peak = "
        f"{payload.get('psnr_peak_m')} m; metrics over every ground-truth pixel (the cleaners fill holes). "
        f"Synthetic training frames per method: {frames.get('synthetic')}; real-like training pairs: "
        f"{frames.get('real_train')}.\n\n"
        "## Tables I and II (mean ± sample std across seeds)\n\n"
        + table_markdown(payload)
        + f"\n![examples]({stem}_examples.png)\n\n![metrics]({stem}_metrics.png)\n\n"
        "## Analysis\n\n" + analysis + "\n\n"
        "## Wall time (minutes, one CPU thread, on a shared machine)\n\n"
        + timings_markdown(payload)
        + "\n## Realism check (real SR300 frames)\n\n"
        + realism_text
        + "\n"
    )


def _depth_limits(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([a[a > 0].ravel() for a in arrays if (a > 0).any()])
    return float(np.percentile(values, 2)), float(np.percentile(values, 98))


def save_examples_png(payload: dict[str, Any], data: TableData, cfg: DCLExperimentConfig, path: Path) -> Path:
    """Top: one clean synthetic frame as each method synthesizes it, and a real-like sensor frame (holes black).
    Bottom: one test frame, its sensor input, ground truth and what each row's cleaner (first seed) made of it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synth: dict[str, np.ndarray] = data.examples.get("synth", {})
    clean = data.syn.depth_clean[0, 0].numpy()
    real = data.real_train.depth[0, 0].numpy()
    top = [("clean source", clean), *[(LABELS[k], v) for k, v in synth.items()], ("real-like sensor", real)]
    cleaned: list[tuple[str, np.ndarray]] = []
    for name in ROWS:
        f = row_dir(cfg, name, cfg.seeds[0]) / "cleaned_examples.npy"
        if name in payload["rows"] and f.is_file():
            cleaned.append((LABELS[name], np.load(f)[0]))
    truth = data.test.depth_clean[0, 0].numpy()
    bottom = [("test sensor input", data.test.depth[0, 0].numpy()), ("ground truth", truth), *cleaned]
    ncol = max(len(top), len(bottom))
    fig, axes = plt.subplots(2, ncol, figsize=(2.6 * ncol, 5.0), squeeze=False)
    lo, hi = _depth_limits(clean)
    tlo, thi = _depth_limits(truth)
    cmap = matplotlib.colormaps["turbo"].copy()
    cmap.set_bad("black")
    rlo, rhi = _depth_limits(real)
    for ax, (title, img) in zip(axes[0], top, strict=False):
        vmin, vmax = (rlo, rhi) if title == "real-like sensor" else (lo, hi)  # another scene: its own range
        ax.imshow(np.where(img > 0, img, np.nan), cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(f"{title}\nholes {np.mean(img <= 0):.1%}", fontsize=8)
    for ax, (title, img) in zip(axes[1], bottom, strict=False):
        ax.imshow(np.where(img > 0, img, np.nan), cmap=cmap, vmin=tlo, vmax=thi)
        valid = truth > 0
        rmse = (
            float(np.sqrt(np.mean((img[valid] - truth[valid]) ** 2)))
            if title.startswith(("clean", "emp", "CUT", "Cycle", "DCL", "sup"))
            else None
        )
        ax.set_title(title + (f"\nRMSE {rmse * 1000:.1f} mm" if rmse is not None else ""), fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def save_metrics_png(payload: dict[str, Any], path: Path) -> Path:
    """Bars (mean ± std across seeds) of RMSE, MAE and the mean normal angle per row; hole fraction per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in ROWS if r in payload["rows"]]
    panels = [("rmse", "RMSE (mm)", 1000.0), ("mae", "MAE (mm)", 1000.0), ("normal_mean_deg", "normal mean (deg)", 1.0)]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    x = np.arange(len(rows))
    for ax, (key, title, scale) in zip(axes[:3], panels, strict=True):
        means = [payload["rows"][r][key] * scale for r in rows]
        stds = [payload["rows"][r][f"{key}_std"] * scale for r in rows]
        colours = ["tab:red" if r.startswith("dcl") else "tab:blue" for r in rows]
        ax.bar(x, means, yerr=stds, color=colours, capsize=3)
        ax.set_xticks(x, [LABELS[r] for r in rows], rotation=45, ha="right", fontsize=8)
        if key != "normal_mean_deg":
            ax.set_yscale("log")  # a collapsed baseline can be 100x worse than the rest
            for pos, mean in zip(x, means, strict=True):
                ax.text(pos, mean, f"{mean:.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_title(title + ("" if key == "normal_mean_deg" else ", log scale"))
    synth = payload.get("synthesis", {})
    names = [r for r in SYNTH_ROWS if r in synth]
    holes = [synth[r]["hole_fraction"] * 100 for r in names]
    axes[3].bar(np.arange(len(names)), holes, yerr=[synth[r]["hole_fraction_std"] * 100 for r in names], capsize=3)
    real = payload.get("real_train_sensor", {})
    if real:
        axes[3].axhline(real["hole_fraction"] * 100, color="k", ls="--", label="real-like sensor")
        axes[3].legend(fontsize=8)
    axes[3].set_xticks(np.arange(len(names)), [LABELS[r] for r in names], rotation=45, ha="right", fontsize=8)
    axes[3].set_title("hole fraction of the synthesized training depth (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="table,realism", help="comma-separated: table, realism")
    parser.add_argument("--out", type=Path, default=Path("docs/results/dcl"), help="output path without extension")
    parser.add_argument("--workdir", type=Path, default=None, help="run directories (default outputs/experiments/dcl)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=None)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a DCLExperimentConfig field, e.g. --set synth_frames=24 (repeatable)",
    )
    parser.add_argument("--realism-steps", type=int, default=None, help="override the realism check's DCL steps")
    parser.add_argument("--realism-seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = [p for p in args.parts if p not in PARTS]
    if bad or not args.parts:
        parser.error(f"--parts takes a comma-separated subset of {list(PARTS)}, got {bad or args.parts}")
    return args


def experiment_config(args: argparse.Namespace) -> DCLExperimentConfig:
    raw = to_dict(DCLExperimentConfig())
    raw = apply_overrides(raw, args.overrides)
    if args.workdir is not None:
        raw["workdir"] = str(args.workdir)
    if args.seeds is not None:
        raw["seeds"] = list(args.seeds)
    if args.rows is not None:
        raw["rows"] = list(args.rows)
    if args.no_progress:
        raw["progress"] = False
    return from_dict(DCLExperimentConfig, raw, source="evaluate_dcl")


def run_realism(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The realism check's dict, or an ``error`` entry saying why it could not run (never made-up numbers)."""
    try:
        from dcl_arc_ros.learning.experiments.realism import run_realism_check
    except ImportError as exc:
        message = f"the realism check is not available: {exc}"
        print(f"evaluate_dcl: {message}", file=sys.stderr)
        return {"error": message}
    start = time.perf_counter()
    try:
        result = dict(
            run_realism_check(workdir, seed=args.realism_seed, steps=args.realism_steps, progress=not args.no_progress)
        )
    except Exception as exc:
        message = f"the realism check failed: {type(exc).__name__}: {exc}"
        print(f"evaluate_dcl: {message}", file=sys.stderr)
        return {"error": message}
    result.setdefault("wall_s_total", round(time.perf_counter() - start, 2))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = experiment_config(args)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_suffix(".json")
    previous: dict[str, Any] = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {}
    payload: dict[str, Any] = dict(previous)
    data = None
    command = "python training/evaluate_dcl.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def write_partial(table: dict[str, Any]) -> None:
        """After every row and seed: the JSON and the page so far (figures at the end)."""
        partial = {**payload, **table, "command": command.strip()}
        json_path.write_text(json.dumps(partial, indent=1, default=float) + "\n", encoding="utf-8")
        md_path = out.with_suffix(".md")
        old_md = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
        md_path.write_text(markdown_report(partial, old_md, out.name), encoding="utf-8")

    if "table" in args.parts:
        table, data = run_dcl_table(cfg, on_result=write_partial)
        payload.update(table)
    if "realism" in args.parts:
        payload["realism"] = run_realism(args, Path(cfg.workdir).parent / "realism")
    payload.setdefault("realism", {"error": "the realism part has not been run (--parts realism)"})
    payload["command"] = command.strip()
    json_path.write_text(json.dumps(payload, indent=1, default=float) + "\n", encoding="utf-8")
    if "rows" in payload:
        figures = {}
        if data is not None:
            figures["examples"] = save_examples_png(payload, data, cfg, out.with_name(out.name + "_examples.png"))
        figures["metrics"] = save_metrics_png(payload, out.with_name(out.name + "_metrics.png"))
        md_path = out.with_suffix(".md")
        old_md = md_path.read_text(encoding="utf-8") if md_path.is_file() else ""
        md_path.write_text(markdown_report(payload, old_md, out.name), encoding="utf-8")
        print(md_path.read_text(encoding="utf-8"))
    print(f"evaluate_dcl: wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
