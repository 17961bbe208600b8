"""training/evaluate_arc.py end to end on tiny toy runs: every row, the JSON schema, reuse, and exact stage sharing."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from dcl_arc_ros.evaluation.arc_figures import draw_examples, example_frames
from dcl_arc_ros.learning.arc.batches import ARCData
from dcl_arc_ros.learning.arc.config import ARCConfig, DatasetConfig, load_config
from dcl_arc_ros.learning.arc.stages import read_checkpoint, run_stage, stage_checkpoint_path
from dcl_arc_ros.learning.arc.variants import get_variant
from dcl_arc_ros.learning.experiments.arc import (
    METHODS,
    METRICS,
    FrameTensors,
    RunEvaluation,
    TensorFrames,
    evaluate_cached,
    load_frames,
    mask_split,
    stage_key,
    train_run,
)

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "training" / "configs" / "arc_tiny.yaml"
STEPS = [
    "schedule.pretrain_d_steps=3", "schedule.pretrain_t_steps=2", "schedule.pretrain_a_steps=2",
    "schedule.pretrain_i_steps=2", "schedule.finetune_rounds=1", "schedule.eq14_steps=1", "schedule.eq15_steps=1",
    "schedule.image_every=0", "data.synthetic.size=8", "data.real.size=4", "model.height=16", "model.width=16",
    "model.depth_levels=2",
]  # fmt: skip


def _argv(tmp: Path) -> list[str]:
    argv = ["--config", str(TINY), "--out", str(tmp / "out"), "--results", str(tmp / "results"), "--test-kind", "toy",
            "--test", "", "--seeds", "0", "1", "--rho", "0.85", "0.9", "--no-middlebury", "--no-progress",
            "--examples", "2"]  # fmt: skip
    for item in STEPS:
        argv += ["--set", item]
    return argv


@pytest.fixture(scope="module")
def evaluated(
    tmp_path_factory: pytest.TempPathFactory, load_script: Callable[[str], ModuleType]
) -> tuple[Path, dict[str, Any], Any]:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("arc_eval")
    script = load_script("training/evaluate_arc.py")
    assert script.main(_argv(tmp)) == 0
    return tmp, json.loads((tmp / "results" / "arc.json").read_text()), script


@pytest.mark.slow
def test_every_row_metric_and_section_is_written(evaluated: tuple[Path, dict[str, Any], Any]) -> None:
    tmp, results, _ = evaluated
    assert set(results["rows"]) == set(METHODS)
    for row in results["rows"].values():
        for metric in METRICS:
            assert math.isfinite(row[metric]) and math.isfinite(row[f"{metric}_std"])
        assert 0.0 <= row["delta1"] <= row["delta2"] <= row["delta3"] <= 1.0
    # Two seeds of different weights give a spread; it is a sample std, so it is >= 0 and not all exactly 0.
    assert any(row["absrel_std"] > 0 for row in results["rows"].values())
    assert results["mask_split"]["mask_source"] == "arc_full"
    for method in METHODS:
        split = results["mask_split"][method]
        assert set(split) == {"inside", "outside", "seeds_with_removal"}
        assert set(METRICS) <= set(split["outside"]) and 0 <= split["seeds_with_removal"] <= 2
    assert set(results["rho_sweep"]) == {"0.85", "0.9"}
    for point in results["rho_sweep"].values():
        assert 0.0 <= point["keep_fraction"] <= 1.0 and math.isfinite(point["absrel"])
    gain = results["per_sample_gain"]
    assert len(gain["absrel_gain"]) == gain["frames"] > 0
    assert results["middlebury"] == {}  # skipped on request
    timings = results["timings_s"]
    assert {"data_load", "main_rows_train", "rho_sweep_train", "runs"} <= set(timings)
    assert len(timings["runs"]) == 2 * len(METHODS) + 1  # rho 0.85 is the main arc_full seed-0 run
    for name in ("arc.md", "arc_rho_sweep.png", "arc_per_sample_gain.png", "arc_examples.png"):
        assert (tmp / "results" / name).stat().st_size > 0
    text = (tmp / "results" / "arc.md").read_text()
    assert "arc_full beats mix on AbsRel and delta1" in text and "arc_at beats arc_t" in text


@pytest.mark.slow
def test_rerun_reuses_finished_runs(evaluated: tuple[Path, dict[str, Any], Any]) -> None:
    tmp, first, script = evaluated
    eval_file = tmp / "out" / "runs" / "arc_full" / "seed0" / "eval.json"
    before = eval_file.stat().st_mtime_ns
    assert script.main(_argv(tmp)) == 0
    second = json.loads((tmp / "results" / "arc.json").read_text())
    assert eval_file.stat().st_mtime_ns == before  # evaluation read back, not recomputed
    assert second["rows"] == first["rows"]
    sources = {s["source"] for run in second["timings_s"]["runs"].values() for s in run["stages"].values()}
    assert "ran" not in sources  # nothing trained again


def test_stage_keys_share_exactly_what_is_the_same_computation() -> None:
    config = load_config(TINY, STEPS)
    key = {m: {s: stage_key(s, get_variant(m), config) for s in get_variant(m).stages} for m in METHODS}
    assert key["mix"]["pretrain_D"] == key["arc_full"]["pretrain_D"] == key["arc_a"]["pretrain_D"]
    assert key["syn_only"]["pretrain_D"] != key["mix"]["pretrain_D"] != key["real_only"]["pretrain_D"]
    assert key["arc_t"]["pretrain_T"] == key["arc_full"]["pretrain_T"]
    assert key["arc_at"]["pretrain_A"] == key["arc_full"]["pretrain_A"] != key["arc_a"]["pretrain_A"]
    assert key["arc_ai"]["pretrain_I"] != key["arc_full"]["pretrain_I"]
    assert key["arc_full"]["finetune"] is None and key["arc_full"]["freeze_A"] is None
    other_rho = load_config(TINY, [*STEPS, "attention.rho=0.7"])
    assert stage_key("pretrain_D", get_variant("arc_full"), other_rho) == key["arc_full"]["pretrain_D"]
    assert stage_key("pretrain_A", get_variant("arc_full"), other_rho) != key["arc_full"]["pretrain_A"]
    other_seed = load_config(TINY, [*STEPS, "seed=3"])
    assert stage_key("pretrain_D", get_variant("mix"), other_seed) != key["mix"]["pretrain_D"]


def _data(config: ARCConfig) -> ARCData:
    return ARCData(
        synthetic=TensorFrames(load_frames(config.data.synthetic, config, "synthetic")),
        real=TensorFrames(load_frames(config.data.real, config, "real")),
    )


def test_a_shared_stage_equals_running_it_in_the_other_method(tmp_path: Path) -> None:
    """The premise of sharing: arc_full's pretrain_D / T / A computed alone equal the ones mix and arc_at produce."""
    torch.set_num_threads(1)
    config = load_config(TINY, STEPS)
    data = _data(config)
    store = tmp_path / "stages"
    train_run(config, get_variant("mix"), data, tmp_path / "mix", store, progress=False)
    train_run(config, get_variant("arc_at"), data, tmp_path / "arc_at", store, progress=False)
    full = get_variant("arc_full")
    for stage in ("pretrain_D", "pretrain_T", "pretrain_A"):
        run_stage(stage, config, full, data, tmp_path / "alone", progress=False, tensorboard=False)
    alone = {
        s: read_checkpoint(stage_checkpoint_path(tmp_path / "alone", s))["system"]
        for s in ("pretrain_D", "pretrain_T", "pretrain_A")
    }
    shared = {
        "pretrain_D": read_checkpoint(stage_checkpoint_path(tmp_path / "mix", "pretrain_D"))["system"],
        "pretrain_T": read_checkpoint(stage_checkpoint_path(tmp_path / "arc_at", "pretrain_T"))["system"],
        "pretrain_A": read_checkpoint(stage_checkpoint_path(tmp_path / "arc_at", "pretrain_A"))["system"],
    }
    for stage, prefix in (("pretrain_D", "depth."), ("pretrain_T", "translator."), ("pretrain_A", "attention.")):
        names = [k for k in alone[stage] if k.startswith(prefix)]
        assert names
        for name in names:
            assert torch.equal(alone[stage][name], shared[stage][name]), f"{stage}: {name} differs"
    # And arc_at really took D and T from the store instead of training them again.
    logs = {s.stage: s.source for s in train_run(config, full, data, tmp_path / "full", store, progress=False)}
    assert logs["pretrain_D"].startswith("shared:") and logs["pretrain_A"].startswith("shared:")
    assert logs["pretrain_I"] == "ran" and logs["finetune"] == "ran"


def test_a_run_directory_of_another_config_is_recomputed_not_reused(tmp_path: Path) -> None:
    """An earlier call with other settings (same method, seed and step counts) must not stand in for this config."""
    torch.set_num_threads(1)
    first, second = load_config(TINY, STEPS), load_config(TINY, [*STEPS, "optim.lr=0.01"])
    mix, run, store = get_variant("mix"), tmp_path / "runs" / "mix", tmp_path / "stages"
    test = load_frames(DatasetConfig(kind="toy", split="test", options={"domain": "real"}), first, "test")
    train_run(first, mix, _data(first), run, store, progress=False)
    before = evaluate_cached(run, mix, test).depth_m
    logs = train_run(second, mix, _data(second), run, store, progress=False)
    assert [log.source for log in logs] == ["ran"]
    checkpoint = read_checkpoint(stage_checkpoint_path(run, "pretrain_D"))
    assert checkpoint["config"]["optim"]["lr"] == 0.01
    after = evaluate_cached(run, mix, test).depth_m  # same stage and step count: only the config stamp differs
    assert not np.array_equal(before, after)


def test_examples_figure_is_drawn_without_torch_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, h, w = 3, 12, 16
    truth = rng.uniform(0.5, 1.5, (n, h, w)).astype(np.float32)
    truth[:, 0, :] = np.nan  # no ground truth: drawn black, not an error
    out = draw_examples(
        rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8),
        rng.random((n, h, w)) > 0.2,
        rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8),
        truth + 0.1,
        truth,
        tmp_path / "ex.png",
        baseline_depth=truth - 0.1,
    )
    assert out.stat().st_size > 1000
    assert example_frames(48, 4) == [0, 16, 31, 47]
    assert example_frames(2, 5) == [0, 1]


def test_mask_split_compares_inside_and_outside_over_the_same_seeds() -> None:
    """Seed 1's arc_full removes nothing: it has no inside, so it must not enter the outside average either."""
    n, h, w = 2, 4, 4
    truth = torch.ones(n, 1, h, w)
    test = FrameTensors(torch.zeros(n, 3, h, w), truth, torch.ones(n, 1, h, w))
    keep = np.ones((n, h, w), dtype=bool)
    keep[:, :, :2] = False  # seed 0 removes the left half

    def run(depth: float, kept: np.ndarray) -> RunEvaluation:
        return RunEvaluation([], np.full((n, h, w), depth, np.float32), kept, np.zeros((n, h, w, 3), np.uint8), 0.0)

    evals = {
        "arc_full": {0: run(1.5, keep), 1: run(1.1, np.ones_like(keep))},
        "mix": {0: run(1.2, np.ones_like(keep)), 1: run(3.0, np.ones_like(keep))},
    }
    split = mask_split(evals, test, max_depth_m=10.0)
    assert split["mix"]["seeds_with_removal"] == 1
    assert split["mix"]["inside"]["absrel"] == pytest.approx(0.2)
    assert split["mix"]["outside"]["absrel"] == pytest.approx(0.2)  # seed 1's 2.0 left out
    assert split["arc_full"]["outside"]["absrel"] == pytest.approx(0.5)
