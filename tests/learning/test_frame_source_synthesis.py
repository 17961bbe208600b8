"""FrameSourceConfig.synthesis: the network's input depth synthesized from the frames' clean depth (grasp trainer)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from dcl_arc_ros.data.torch_datasets import build_dataset
from dcl_arc_ros.learning.errors import ConfigError, DatasetError
from dcl_arc_ros.learning.frame_source import FrameSourceConfig, open_frame_dataset, open_frame_records
from dcl_arc_ros.learning.grasp.trainer import GraspDataConfig, GraspSampleAdapter, GraspTrainConfig, open_grasp_frames
from dcl_arc_ros.learning.trainers.dcl import DCL_PRESETS, DataConfig, config_for_method, make_task
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything
from dcl_arc_ros.sim.generate import main as generate

torch.set_num_threads(1)
KEYS = ("depth", "valid", "grasp_quality")


@pytest.fixture(scope="module")
def bag_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bags")
    args = [
        "--out",
        str(out),
        "--scenes",
        "1",
        "--frames-per-scene",
        "3",
        "--sensor",
        "active_stereo",
        "--seed",
        "3",
        "--renderer",
        "toy",
        "--width",
        "96",
        "--height",
        "72",
        "--no-progress",
    ]
    assert generate(args) == 0
    return out


def _cfg(bag_dir: Path, **changes: object) -> FrameSourceConfig:
    return dataclasses.replace(FrameSourceConfig(paths=(str(bag_dir),)), **changes)


def _depths(cfg: FrameSourceConfig, seed: int = 0, order: tuple[int, ...] = (0, 1, 2)) -> dict[int, torch.Tensor]:
    ds = open_frame_dataset(cfg, KEYS, seed=seed)
    return {i: ds[i]["depth"] for i in order}


def test_default_keeps_the_depth_from_behaviour(bag_dir: Path) -> None:
    for depth_from in ("sensor", "clean"):
        ours = open_frame_dataset(_cfg(bag_dir, depth_from=depth_from), KEYS)
        ref = build_dataset("bags", str(bag_dir), depth_from=depth_from, keys=KEYS)
        assert len(ours) == len(ref) == 3
        for i in range(3):
            assert torch.equal(ours[i]["depth"], ref[i]["depth"])
    sensor = build_dataset("bags", str(bag_dir), keys=KEYS)[0]["depth"]
    clean = build_dataset("bags", str(bag_dir), depth_from="clean", keys=KEYS)[0]["depth"]
    assert not torch.equal(sensor, clean)  # the two domains differ, so the comparisons above mean something


def test_clean_synthesis_equals_the_clean_depth_whatever_depth_from_says(bag_dir: Path) -> None:
    clean = build_dataset("bags", str(bag_dir), depth_from="clean", keys=KEYS)
    synth = open_frame_dataset(_cfg(bag_dir, synthesis="clean", depth_from="sensor"), KEYS)
    for i in range(3):
        assert torch.equal(synth[i]["depth"], clean[i]["depth"])
        assert torch.equal(synth[i]["valid"], clean[i]["valid"])


def test_empirical_synthesis_is_a_fixed_function_of_seed_and_frame(bag_dir: Path) -> None:
    cfg = _cfg(bag_dir, synthesis="empirical")
    clean = build_dataset("bags", str(bag_dir), depth_from="clean", keys=KEYS)
    forward = _depths(cfg, seed=1)
    backward = _depths(cfg, seed=1, order=(2, 1, 0))
    other_seed = _depths(cfg, seed=2)
    cached = _depths(dataclasses.replace(cfg, in_memory=True), seed=1)
    for i in range(3):
        assert torch.equal(forward[i], backward[i])  # access order does not matter
        assert torch.equal(forward[i], cached[i])
        assert not torch.equal(forward[i], clean[i]["depth"])  # noise and holes were added ...
        valid_clean = clean[i]["depth"] > 0
        both = valid_clean & (forward[i] > 0)
        assert both.sum() > 0.5 * valid_clean.sum()  # ... to the same scene
        err = (forward[i] - clean[i]["depth"])[both].abs().median()
        assert float(err) < 0.05
    assert any(not torch.equal(forward[i], other_seed[i]) for i in range(3))


def test_in_memory_synthesis_runs_once_per_frame(bag_dir: Path) -> None:
    frames = open_frame_records(_cfg(bag_dir, synthesis="empirical", in_memory=True), KEYS, seed=0)
    first = frames[1]
    assert frames[1] is first
    assert frames[-2] is first
    assert first.depth is not None and first.depth_clean is not None
    assert not np.array_equal(np.nan_to_num(first.depth), np.nan_to_num(first.depth_clean))


def test_trained_synthesis_uses_the_generator_checkpoint(bag_dir: Path, tmp_path: Path) -> None:
    seed_everything(0)
    dcl = config_for_method(DCL_PRESETS["tiny"], "dcl")
    dcl = dataclasses.replace(dcl, data=DataConfig(), loop=LoopConfig(max_steps=1, batch_size=2, progress=False))
    from dcl_arc_ros.learning.trainers.dcl import ToyDepthDataset

    data = {"source": ToyDepthDataset(4, seed=1), "real": ToyDepthDataset(4, seed=2, real_like=True)}
    ckpt = run_training(make_task(dcl), data, dcl.loop, tmp_path, run_config=dcl).last_checkpoint
    assert ckpt is not None
    ds = open_frame_dataset(_cfg(bag_dir, synthesis="dcl", synthesis_checkpoint=str(ckpt)), KEYS)
    clean = build_dataset("bags", str(bag_dir), depth_from="clean", keys=KEYS)
    out = ds[0]["depth"]
    assert out.shape == clean[0]["depth"].shape
    assert not torch.equal(out, clean[0]["depth"])  # an untrained generator does not return its input


def test_config_validation_names_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not one of"):
        FrameSourceConfig(synthesis="gan")
    with pytest.raises(ConfigError, match="synthesis_checkpoint"):
        FrameSourceConfig(synthesis="dcl")
    with pytest.raises(ConfigError, match="no checkpoint"):
        FrameSourceConfig(synthesis="empirical", synthesis_checkpoint="x.pt")
    with pytest.raises(ConfigError, match="synthesis_checkpoint"):
        GraspDataConfig(synthesis="dcl")  # the trainers' data configs keep the check
    assert FrameSourceConfig(synthesis="clean").read_depth_from == "clean"
    assert FrameSourceConfig().read_depth_from == "sensor"
    toy = GraspTrainConfig(data=GraspDataConfig(source="toy", synthesis="empirical"))
    with pytest.raises(ConfigError, match="toy"):
        open_grasp_frames(toy)
    with pytest.raises(DatasetError, match="unknown data source"):
        open_frame_records(FrameSourceConfig(source="nowhere"))


def test_grasp_trainer_sees_synthesized_depth(bag_dir: Path) -> None:
    data = GraspDataConfig(paths=(str(bag_dir),), input_size=48, crop_size=64, flip=False)
    sensor_cfg = GraspTrainConfig(data=data)
    synth_cfg = GraspTrainConfig(data=dataclasses.replace(data, synthesis="empirical"))
    clean_cfg = GraspTrainConfig(data=dataclasses.replace(data, synthesis="clean"))
    inputs = {}
    for name, cfg in (("sensor", sensor_cfg), ("empirical", synth_cfg), ("clean", clean_cfg)):
        adapter = GraspSampleAdapter(open_grasp_frames(cfg), cfg.data, train=False)
        sample = adapter[0]
        assert sample["input"].shape == (1, 48, 48)
        inputs[name] = sample
    assert not torch.equal(inputs["empirical"]["input"], inputs["clean"]["input"])
    assert not torch.equal(inputs["empirical"]["input"], inputs["sensor"]["input"])
    for key in ("quality", "cos2", "sin2", "width"):  # the labels come from the same frame either way
        assert torch.equal(inputs["empirical"][key], inputs["sensor"][key])


def test_fraction_and_scale_pick_and_shrink_frames_before_synthesis(bag_dir: Path) -> None:
    cfg = _cfg(bag_dir, frame_fraction=0.5, frame_scale=0.5, synthesis="empirical", in_memory=True)
    frames = open_frame_records(cfg, KEYS, seed=4)
    full = open_frame_records(_cfg(bag_dir))
    assert len(frames) == 2  # round(0.5 * 3)
    again = open_frame_records(cfg, KEYS, seed=4)
    assert [r.stamp_ns for r in (frames[0], frames[1])] == [r.stamp_ns for r in (again[0], again[1])]
    assert {r.stamp_ns for r in (frames[0], frames[1])} <= {full[i].stamp_ns for i in range(3)}
    small, big = frames[0], next(full[i] for i in range(3) if full[i].stamp_ns == frames[0].stamp_ns)
    assert small.depth is not None and small.depth.shape == (36, 48)
    assert small.intrinsics is not None and big.intrinsics is not None
    assert small.intrinsics.fx == pytest.approx(big.intrinsics.fx / 2)
    assert small.grasp_quality is not None and small.grasp_quality.shape == (36, 48)
    with pytest.raises(ConfigError, match="frame_fraction"):
        FrameSourceConfig(frame_fraction=0.0)
    with pytest.raises(ConfigError, match="frame_scale"):
        FrameSourceConfig(frame_scale=2.0)


def test_init_checkpoint_starts_from_the_given_weights(bag_dir: Path, tmp_path: Path) -> None:
    from dcl_arc_ros.learning.grasp.ggcnn import GGCNN_PRESETS
    from dcl_arc_ros.learning.grasp.trainer import GraspTask

    seed_everything(0)
    data = GraspDataConfig(paths=(str(bag_dir),), input_size=48, crop_size=48)
    loop = LoopConfig(max_steps=2, batch_size=2, progress=False)
    cfg = GraspTrainConfig(ggcnn=GGCNN_PRESETS["tiny"], data=data, loop=loop)
    frames = GraspSampleAdapter(open_grasp_frames(cfg), data, train=True)
    ckpt = run_training(GraspTask(cfg), {"train": frames}, loop, tmp_path / "a", run_config=cfg).last_checkpoint
    assert ckpt is not None
    trained = GraspTask(dataclasses.replace(cfg, init_checkpoint=str(ckpt))).net.state_dict()
    fresh = GraspTask(dataclasses.replace(cfg, loop=dataclasses.replace(loop, seed=9))).net.state_dict()
    from dcl_arc_ros.learning.checkpoint import load_checkpoint

    saved = load_checkpoint(ckpt).state_dicts["ggcnn"]
    assert all(torch.equal(trained[k], saved[k]) for k in saved)
    assert not all(torch.equal(fresh[k], saved[k]) for k in saved)
    other = dataclasses.replace(cfg, ggcnn=GGCNN_PRESETS["deploy"], init_checkpoint=str(ckpt))
    with pytest.raises(ConfigError, match="differs"):
        GraspTask(other)


def test_grasp_centred_crops_hold_more_grasp_pixels_than_random_ones(bag_dir: Path) -> None:
    data = GraspDataConfig(paths=(str(bag_dir),), input_size=24, crop_size=24, flip=False)
    frames = open_grasp_frames(GraspTrainConfig(data=data))
    totals = {}
    for centre in ("random", "grasp"):
        adapter = GraspSampleAdapter(frames, dataclasses.replace(data, crop_centre=centre), train=True)
        torch.manual_seed(0)
        totals[centre] = sum(float((adapter[i % 3]["quality"] > 0).float().mean()) for i in range(30))
    assert totals["grasp"] > totals["random"]
    with pytest.raises(ConfigError):
        from dcl_arc_ros.learning.config import from_dict

        from_dict(GraspDataConfig, {"crop_centre": "middle"}, source="t")
