"""The grasp experiment end to end on tiny generated bags, and its per-object protocol on known maps."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.experiments.grasp import (
    METHODS,
    METRICS,
    GraspExperimentConfig,
    evaluate_trials,
    ground_truth_maps,
    load_trials,
    run_grasp_experiment,
    split_rates,
    summarise,
    write_results,
)
from dcl_arc_ros.learning.grasp.ggcnn import GGCNN_PRESETS
from dcl_arc_ros.learning.trainers.dcl import DCL_PRESETS, DataConfig, ToyDepthDataset, config_for_method, make_task
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything
from dcl_arc_ros.sim.generate import main as generate

torch.set_num_threads(1)


def _bags(out: Path, seed: int, sensor: str, family: str) -> None:
    args = [
        "--out",
        str(out),
        "--scenes",
        "2",
        "--frames-per-scene",
        "2",
        "--sensor",
        sensor,
        "--family",
        family,
        "--seed",
        str(seed),
        "--renderer",
        "toy",
        "--width",
        "160",
        "--height",
        "120",
        "--no-progress",
    ]
    assert generate(args) == 0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grasp_data")
    _bags(root / "syn", 1, "empirical", "synthetic")
    _bags(root / "real_train", 2, "active_stereo", "real_like")
    _bags(root / "real_test", 3, "active_stereo", "real_like")
    return root


def _cfg(data: Path, **changes: object) -> GraspExperimentConfig:
    base = GraspExperimentConfig(
        syn_train=(str(data / "syn"),),
        real_train=(str(data / "real_train"),),
        real_test=(str(data / "real_test"),),
        seeds=(0, 1),
        methods=("clean", "empirical"),
        frame_scale=0.5,
        train_fraction=1.0,
        finetune_fraction=0.5,
        network=GGCNN_PRESETS["tiny"],
        crop_size=48,
        steps=3,
        finetune_steps=2,
        batch_size=2,
        min_object_px=20,
    )
    return dataclasses.replace(base, **changes)


def test_ground_truth_maps_find_ground_truth_grasps_and_noise_does_not(data: Path) -> None:
    cfg = _cfg(data)
    trials, depths = load_trials(cfg.real_test, cfg)
    assert len(depths) == 4 and trials
    for t in trials:
        assert t.depth.shape == t.mask.shape == (48, 48) and t.mask.any()
        assert t.gt.shape[1] == 6 and (t.gt[:, :2] >= 0).all() and (t.gt[:, :2] < 48).all()
    params = cfg.decode_params()
    oracle = split_rates(evaluate_trials(ground_truth_maps(150.0), trials, params))
    assert oracle["seen_top3"] >= 0.6  # the labels decoded by the node's decoder match the labels (rects are tiny here)

    rng = np.random.default_rng(0)

    def noise(x: np.ndarray, trial: object) -> tuple[np.ndarray, ...]:
        s = x.shape[-1]
        return tuple(rng.normal(size=(s, s)).astype(np.float32) for _ in range(4))  # type: ignore[return-value]

    rows = evaluate_trials(noise, trials, params)
    assert all(len(r["pred"]) <= 3 for r in rows)
    assert split_rates(rows)["seen_top3"] < oracle["seen_top3"]


def test_summarise_takes_mean_and_sample_spread_over_seeds() -> None:
    per_seed = {"clean": {0: {n: 0.2 for n, _, _ in METRICS}, 1: {n: 0.6 for n, _, _ in METRICS}}}
    for s in (0, 1):
        per_seed["clean"][s].update({"seen_iou50_top1": 0.0, "novel_iou50_top1": 0.0})
    rows, extra = summarise(per_seed)
    assert rows["clean"]["seen"] == pytest.approx(0.4)
    assert rows["clean"]["seen_std"] == pytest.approx(np.std([0.2, 0.6], ddof=1))
    assert set(rows["clean"]) == {n for n, _, _ in METRICS} | {f"{n}_std" for n, _, _ in METRICS}
    assert extra["clean"]["seen_iou50_top1"] == 0.0


def test_experiment_writes_the_results_files_and_reuses_finished_runs(data: Path, tmp_path: Path) -> None:
    # a tiny DCL generator for both seeds, announced the way the DCL experiment does (a DONE file naming it)
    seed_everything(0)
    dcl = config_for_method(DCL_PRESETS["tiny"], "dcl")
    dcl = dataclasses.replace(dcl, data=DataConfig(), loop=LoopConfig(max_steps=1, batch_size=2, progress=False))
    toy = {"source": ToyDepthDataset(4, seed=1), "real": ToyDepthDataset(4, seed=2, real_like=True)}
    ckpt = run_training(make_task(dcl), toy, dcl.loop, tmp_path / "gen", run_config=dcl).last_checkpoint
    for s in (0, 1):
        done = tmp_path / "dcl" / f"seed_{s}" / "DONE"
        done.parent.mkdir(parents=True)
        done.write_text(f"{ckpt}\n", encoding="utf-8")
    cfg = _cfg(data, methods=METHODS, dcl_done=str(tmp_path / "dcl" / "seed_{seed}" / "DONE"))
    payload = run_grasp_experiment(cfg, tmp_path / "runs", progress=False, log=lambda _: None)
    assert set(payload["rows"]) == set(METHODS)
    for method in METHODS:
        for name, _, _ in METRICS:
            entry = payload["rows"][method]
            assert name in entry and f"{name}_std" in entry
            assert np.isnan(entry[name]) or 0.0 <= entry[name] <= 1.0
    assert payload["trials"]["seen"] > 0
    assert "dcl_finetuned/seed_1" in payload["timings_s"]["runs"]
    out = write_results(payload, tmp_path / "results" / "grasp")
    saved = json.loads(out["json"].read_text(encoding="utf-8"))
    assert set(saved["rows"]) == set(METHODS) and "timings_s" in saved and "config" in saved
    assert out["bars"].stat().st_size > 1000 and out["examples"].stat().st_size > 1000
    assert "| dcl_finetuned |" in out["table"].read_text(encoding="utf-8")
    # the fine-tuned network started from the dcl one and saw the real-like frames
    run = json.loads((tmp_path / "runs" / "dcl_finetuned" / "seed_0" / "trials.json").read_text(encoding="utf-8"))
    assert run["config"]["init_checkpoint"].endswith("dcl/seed_0/checkpoints/latest.pt")
    assert run["config"]["data"]["synthesis"] == "none" and run["timings"]["train_frames"] == 2
    # a second call reuses every finished run and gives the same numbers
    again = run_grasp_experiment(cfg, tmp_path / "runs", progress=False, log=lambda _: None)
    assert json.dumps(again["rows"], sort_keys=True) == json.dumps(payload["rows"], sort_keys=True)  # NaN-safe


def test_missing_dcl_generator_leaves_its_rows_out(data: Path, tmp_path: Path) -> None:
    cfg = _cfg(data, methods=("clean", "dcl", "dcl_finetuned"), seeds=(0,), dcl_done=str(tmp_path / "none_{seed}"))
    payload = run_grasp_experiment(cfg, tmp_path / "runs", progress=False, log=lambda _: None)
    assert set(payload["rows"]) == {"clean"}
    assert set(payload["missing"]) == {"dcl", "dcl_finetuned"}
    with pytest.raises(ConfigError, match="dcl_finetuned"):
        GraspExperimentConfig(methods=("clean", "dcl_finetuned"))


def test_deploy_config_is_the_experiments_clean_seed_0_run() -> None:
    from dcl_arc_ros.learning.config import from_dict, load_yaml, to_dict
    from dcl_arc_ros.learning.grasp.trainer import GraspTrainConfig

    repo = Path(__file__).resolve().parents[2]
    shipped = from_dict(GraspTrainConfig, load_yaml(repo / "training/configs/grasp_deploy.yaml"), source="deploy")
    assert to_dict(shipped) == to_dict(GraspExperimentConfig().train_config("clean", 0))
