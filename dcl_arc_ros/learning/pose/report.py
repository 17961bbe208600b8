"""Writes the pose results: ``pose.json`` (the rows table + details), ``pose.md`` and two figures.

The JSON's ``rows`` hold exactly the five table metrics per method with their ``_std`` (spread over seeds); the rest
(object groups, end-to-end numbers, per-run values, timings, config) sits beside it. The Markdown is generated from
the same dictionary, so no number in it is typed by hand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcl_arc_ros.core.pose_pipeline import allocentric_to_egocentric
from dcl_arc_ros.learning.pose.metrics import chance_rotation_error
from dcl_arc_ros.learning.pose.trainer import PoseSample

__all__ = ["TABLE_METRICS", "verdict", "write_pose_report"]

TABLE_METRICS: tuple[str, ...] = ("rot_mean_deg", "rot_median_deg", "rot_15", "rot_30", "class_acc")
_LOWER_IS_BETTER = {"rot_mean_deg", "rot_median_deg"}
_LABELS = {
    "rot_mean_deg": "rot. mean (deg)",
    "rot_median_deg": "rot. median (deg)",
    "rot_15": "< 15 deg",
    "rot_30": "< 30 deg",
    "class_acc": "class acc.",
}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating | np.integer):
        return _json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def table_rows(rows: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Only the table metrics and their ``_std``, in a fixed order."""
    return {m: {k: float(r[k]) for name in TABLE_METRICS for k in (name, f"{name}_std")} for m, r in rows.items()}


def _fmt(value: float, std: float, metric: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if metric.endswith("_deg"):
        return f"{value:.1f} ± {std:.1f}"
    return f"{100 * value:.1f} ± {100 * std:.1f} %"


def _table(rows: Mapping[str, Mapping[str, float]], extra: Sequence[tuple[str, str]] = ()) -> list[str]:
    head = ["method", *[_LABELS[m] for m in TABLE_METRICS], *[label for _, label in extra]]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for method, r in rows.items():
        cells = [_fmt(r.get(m, float("nan")), r.get(f"{m}_std", 0.0), m) for m in TABLE_METRICS]
        cells += [f"{r.get(key, float('nan')):.0f}" for key, _ in extra]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def verdict(
    rows: Mapping[str, Mapping[str, float]], method: str = "dcl", others: Sequence[str] = ("clean", "empirical")
) -> list[str]:
    """Per metric: does ``method`` beat each of ``others``, and by more than the two seed spreads added?"""
    if method not in rows:
        return [f"- `{method}` has no results, so the claim cannot be tested."]
    out = []
    for metric in TABLE_METRICS:
        parts = []
        for other in others:
            if other not in rows:
                continue
            a, b = rows[method][metric], rows[other][metric]
            spread = rows[method][f"{metric}_std"] + rows[other][f"{metric}_std"]
            better = a < b if metric in _LOWER_IS_BETTER else a > b
            clear = abs(a - b) > spread
            word = ("better" if better else "worse") if a != b else "equal"
            parts.append(f"{word} than {other}{' (beyond the seed spread)' if clear else ' (within the seed spread)'}")
        out.append(f"- {_LABELS[metric]}: `{method}` is " + "; ".join(parts) + ".")
    return out


def _draw_axes(ax: Any, k: Any, rotation: np.ndarray, t: np.ndarray, length: float) -> None:
    colours = ("#e41a1c", "#4daf4a", "#377eb8")
    u0, v0, _ = k.project(np.asarray(t, dtype=np.float64))
    for i, c in enumerate(colours):
        u1, v1, _ = k.project(np.asarray(t, dtype=np.float64) + length * rotation[:, i])
        if np.all(np.isfinite([u0, v0, u1, v1])):
            ax.plot([u0, u1], [v0, v1], color=c, linewidth=2)


def plot_frames(
    test: Sequence[PoseSample],
    frames: Any,
    result: Mapping[str, np.ndarray],
    path: Path,
    *,
    method: str,
    n_frames: int = 3,
    axis_m: float = 0.04,
) -> None:
    """Ground-truth axes (left) and predicted axes (right) on the sensor depth of a few test frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_frame: dict[int, list[int]] = {}
    for i, s in enumerate(test):
        by_frame.setdefault(s.frame, []).append(i)
    chosen = sorted(by_frame, key=lambda f: -len(by_frame[f]))[:n_frames]
    fig, axes = plt.subplots(len(chosen), 2, figsize=(10, 3.8 * len(chosen)), squeeze=False)
    for row, f in enumerate(sorted(chosen)):
        rec = frames[f]
        k = rec.intrinsics
        for col, title in enumerate(("ground truth", f"{method} prediction (sensor depth, GT-mask crops)")):
            ax = axes[row, col]
            lo, hi = np.nanpercentile(rec.depth, [2, 98])  # a few far or stray readings must not set the scale
            ax.imshow(rec.depth, cmap="viridis", vmin=lo, vmax=hi)
            ax.set_title(f"test frame {f}: {title}", fontsize=9)
            ax.axis("off")
            for i in by_frame[f]:
                s = test[i]
                if col == 0:
                    pose = {int(r[0]): p for r, p in zip(rec.object_info, rec.object_poses, strict=True)}[s.instance_id]
                    _draw_axes(ax, k, pose[:3, :3], pose[:3, 3], axis_m)
                else:
                    r = allocentric_to_egocentric(result["pred_rot"][i], s.translation_est)
                    _draw_axes(ax, k, r, s.translation_est, axis_m)
                    err = result["rot_sym_deg"][i]
                    label = "sym" if not np.isfinite(err) else f"{err:.0f}°"
                    ok = "" if s.class_id < 0 else (" ✓" if result["correct"][i] else " ✗")
                    ax.text(s.box[0], s.box[1] - 2, label + ok, color="white", fontsize=7)
            ax.set_xlim(-0.5, k.width - 0.5)  # axes of objects at the border must not widen the view
            ax.set_ylim(k.height - 0.5, -0.5)
    fig.suptitle("x red, y green, z blue; label: symmetry-aware rotation error, class right/wrong (✓/✗)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_metrics(rows: Mapping[str, Mapping[str, float]], e2e: Mapping[str, Mapping[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(rows)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    keys = ("rot_15", "rot_30", "class_acc")
    width = 0.8 / len(keys)
    x = np.arange(len(methods))
    for j, key in enumerate(keys):
        vals = [100 * rows[m][key] for m in methods]
        errs = [100 * rows[m][f"{key}_std"] for m in methods]
        a1.bar(x + (j - 1) * width, vals, width, yerr=errs, capsize=3, label=_LABELS[key])
    a1.set_xticks(x, methods)
    a1.set_ylabel("% of test objects (GT-mask crops)")
    a1.legend(fontsize=8)
    a1.set_title("higher is better (error bars: std over seeds)", fontsize=9)
    for j, (key, src) in enumerate((("rot_median_deg", rows), ("rot_median_deg", e2e))):
        vals = [src[m][key] if m in src else np.nan for m in methods]
        errs = [src[m][f"{key}_std"] if m in src else 0 for m in methods]
        a2.bar(
            x + (j - 0.5) * 0.4,
            vals,
            0.4,
            yerr=errs,
            capsize=3,
            label="GT-mask crops" if j == 0 else "RANSAC proposals (matched)",
        )
    a2.set_xticks(x, methods)
    a2.set_ylabel("median symmetry-aware rotation error (deg)")
    a2.legend(fontsize=8)
    a2.set_title("lower is better", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_pose_report(
    report: Mapping[str, Any],
    results: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    test: Sequence[PoseSample],
    test_frames: Any,
    out_dir: Path,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = dict(report)
    payload["rows"] = table_rows(report["rows"])
    payload["details"] = {"rows_full": report["rows"]}
    (out_dir / "pose.json").write_text(json.dumps(_json_safe(payload), indent=2) + "\n", encoding="utf-8")
    shown = "dcl" if "dcl" in results else next(iter(results), None)
    if shown is not None and test:
        plot_frames(
            test,
            test_frames,
            results[shown][0],
            out_dir / "pose_frames.png",
            method=f"{shown} seed {report['runs'][shown][0]['seed']}",
        )
    if report["rows"]:
        plot_metrics(report["rows"], report.get("end_to_end", {}), out_dir / "pose_metrics.png")
    (out_dir / "pose.md").write_text("\n".join(markdown(report)) + "\n", encoding="utf-8")


def _loss_text(cfg: Mapping[str, Any]) -> list[str]:
    """What the rotation labels, loss and augmentation of this run were, in words."""
    if cfg.get("rotation_loss", "mse") == "symmetric_min_mse":
        text = (
            "The rotation loss (`rotation_loss: symmetric_min_mse`) is MSE on the 6D form against the closest of "
            "the object's equivalent rotations, the same minimum the error takes (cylinders: turns about the axis "
            "every 15 deg, with and without the flip); spheres add no rotation loss. No target jumps between nearby "
            "views, unlike a single canonical target."
        )
    elif cfg.get("symmetric_targets", False):
        text = (
            "The rotation loss (`rotation_loss: mse`) is plain MSE on the 6D form; with `symmetric_targets` its "
            "target for a symmetric primitive is one canonical member of the symmetry group, which jumps where "
            "equivalent rotations swap places: one reason box and cylinder rotations are hard to learn."
        )
    else:
        text = "The rotation loss (`rotation_loss: mse`) is plain MSE on the 6D form against the raw ground truth."
    if cfg.get("order_box_axes", False):
        text += (
            " Box axes are ordered by the extent seen along them (`order_box_axes`: x the longest), in training and "
            "test labels alike: the catalogue draws a box's three sides independently, so its own axis labels are "
            "arbitrary and cannot be learned."
        )
    if cfg.get("augment_turn_deg", 0.0) > 0.0:
        text += (
            f" Each training crop is turned in the image plane by a random angle within "
            f"+-{cfg['augment_turn_deg']:g} deg, its targets with it (`augment_turn_deg`)."
        )
    return [text]


def markdown(report: Mapping[str, Any]) -> list[str]:
    cfg = report["config"]
    ds = report["dataset"]
    t = report["timings_s"]
    seeds = ", ".join(str(s) for s in cfg["seeds"])
    net = cfg["network"]
    lines = [
        "# Object pose from depth: training on clean, empirical and DCL-synthesized depth",
        "",
        "Generated by `python training/evaluate_pose.py --config training/configs/pose_experiment.yaml` "
        "(`dcl_arc_ros/learning/experiments/pose.py`); every number below comes from `pose.json`.",
        "",
        "## Set-up",
        "",
        f"- Training frames: `{', '.join(cfg['train_paths'])}` ({ds['train_frames']} frames); the network sees "
        "object crops cut from ground-truth masks with the deployed crop code, in one of three depth domains: "
        "`clean` (rendered depth), `empirical` (the bags' empirical sensor model), `dcl` (the DCL generator of the "
        "same seed applied to the clean depth, one window per object with "
        f"{cfg['synthesis_context_px']} px of context).",
        f"- `dcl_finetuned`: the `dcl` model trained further for {cfg['finetune_steps']} steps (lr "
        f"{cfg['finetune_lr']}) on the sensor-depth crops of {100 * cfg['finetune_fraction']:.0f}% of the frames of "
        f"`{', '.join(cfg['finetune_paths'])}` (a seeded choice per seed).",
        f"- Test: `{', '.join(cfg['test_paths'])}` ({ds['test_frames']} frames, {ds['test_objects']} objects with "
        f"visible fraction >= {cfg['min_visible_fraction']}), **sensor depth** (active stereo, real-like scenes).",
        f"- Network: PoseNet, {net['crop_size']}x{net['crop_size']} crops, stem {net['stem_channels']}, stages "
        f"{net['stage_channels']}, {net['blocks_per_stage']} block(s) per stage, {ds['vocabulary']} classes (the "
        f"catalogue classes present in the training crops); {cfg['steps']} steps of batch {cfg['batch_size']}, Adam "
        f"lr {cfg['lr']}; seeds {seeds}. Values are mean ± sample standard deviation over seeds.",
        "",
        "## Results on ground-truth-mask crops (objects of trained classes)",
        "",
        "Rotation errors are symmetry-aware (see below) and cover the trained-class objects except spheres; class "
        "accuracy covers all trained-class objects.",
        "",
        *_table(report["rows"], (("n_objects", "objects"), ("n_rot", "with rotation"))),
        "",
        "### The claim: DCL-synthesized training beats clean and empirical on the real-like domain",
        "",
        *verdict(report["rows"]),
        "",
    ]
    if report.get("groups"):
        lines += [
            "## Split by object group",
            "",
            "`trained`: the class occurs in the training crops (the table above). `seen_untrained`: seen split of the "
            "catalogue, but no object of the class was drawn in the training scenes. `novel`: the held-out split "
            "(novel `random_urdfs` classes and the real-like distractors). The network has never seen the mesh frame "
            "of an untrained class, so rotation errors there are expected to be near chance (about 126 deg mean for "
            "uniformly random rotations); class accuracy is undefined for them.",
            "",
            "| method | group | objects | rot. mean (deg) | rot. median (deg) | < 15 deg | < 30 deg |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method, groups in report["groups"].items():
            for g, r in groups.items():
                lines.append(
                    f"| {method} | {g} | {r['n_objects']:.0f} | "
                    + " | ".join(
                        _fmt(r[m], r[f"{m}_std"], m) for m in ("rot_mean_deg", "rot_median_deg", "rot_15", "rot_30")
                    )
                    + " |"
                )
        lines.append("")
    if report.get("by_symmetry"):
        lines += [
            "## Split by symmetry (objects of trained classes)",
            "",
            "`box` and `cylinder` are the symmetric primitives (errors symmetry-aware, see below); `none` is every "
            "other object, scored with the plain geodesic error. A network that learned nothing (random rotations) "
            "has a median error of "
            + ", ".join(f"{chance_rotation_error(k):.0f} deg ({k})" for k in ("box", "cylinder", "none"))
            + ".",
            "",
            "| method | symmetry | objects | rot. mean (deg) | rot. median (deg) | < 15 deg | < 30 deg | class acc. |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method, kinds in report["by_symmetry"].items():
            for kind, r in kinds.items():
                metrics = ("rot_mean_deg", "rot_median_deg", "rot_15", "rot_30", "class_acc")
                lines.append(
                    f"| {method} | {kind} | {r['n_objects']:.0f} | "
                    + " | ".join(_fmt(r[m], r[f"{m}_std"], m) for m in metrics)
                    + " |"
                )
        lines.append("")
    if report.get("end_to_end"):
        ps = report["proposal_stats"]
        lines += [
            "## End to end: depth-only RANSAC proposals",
            "",
            f"The deployed proposals (`core.proposals.propose_objects`, default parameters) on the test sensor depth: "
            f"{ps['proposals']:.0f} proposals for {ps['ground_truth_objects']:.0f} ground-truth objects; "
            f"{ps['matched']:.0f} match an object (mask IoU >= {cfg['proposal_iou']}): recall "
            f"{100 * ps['recall']:.1f} %, precision {100 * ps['precision']:.1f} %. Pose metrics on the matched "
            "proposals of trained classes:",
            "",
            *_table(report["end_to_end"], (("n_objects", "objects"),)),
            "",
        ]
    lines += [
        "## Symmetric objects",
        "",
        "The primitives are symmetric, so the error is the distance to the closest equivalent ground truth, "
        "min over the object's proper symmetries S of d(R_pred, R_gt S): boxes use the D2 group (identity and 180-deg "
        "turns about each face axis; the catalogue draws three independent side lengths, so that is the group every "
        "box has), cylinders the angle between the predicted and true axis lines (any turn about the axis and its "
        "flip are equivalent), and spheres have no rotation error (excluded from the rotation columns, kept for "
        "class accuracy). Other objects are treated as asymmetric. The plain geodesic median, which ignores "
        "symmetry, is in `pose.json` (`details.rows_full.*.rot_plain_median_deg`) for comparison.",
        "",
        *_loss_text(cfg),
        "",
        "## Time",
        "",
        f"One thread on a 2-core machine shared with other jobs; total **{t['total'] / 60:.1f} min**."
        + (
            " The networks were reused from an earlier call into the same `out_dir` (see Notes), so the training"
            " time of those runs is not in this total."
            if any(run.get("reused") for seeds in report.get("runs", {}).values() for run in seeds)
            else ""
        ),
        "",
        "| piece | seconds |",
        "| --- | --- |",
        *[f"| {k} | {v:.1f} |" for k, v in t.items()],
        "",
        f"Scale: a small, CPU-sized run ({cfg['steps']} steps of batch {cfg['batch_size']} on "
        f"{ds.get('train_crops_clean', 0)} training crops, {net['crop_size']} px crops), far from the paper's. The "
        "issue allows 4 h for this file; raising `steps`, the crop size and the network in the config scales it up.",
        "",
    ]
    if report.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in report["notes"]], ""]
    lines += ["![test frames](pose_frames.png)", "", "![metrics](pose_metrics.png)"]
    return lines
