"""The pose experiment: symmetry-aware errors, per-object synthesis windows, and one tiny end-to-end run."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from dcl_arc_ros.learning.errors import ConfigError
from dcl_arc_ros.learning.experiments.pose import PoseExperimentConfig, run_pose_experiment
from dcl_arc_ros.learning.pose.metrics import (
    canonical_rotation,
    chance_rotation_error,
    equivalent_rotations,
    order_box_axes,
    rotation_summary,
    symmetric_rotation_error,
    symmetry_group,
)
from dcl_arc_ros.learning.pose.posenet import PoseNetConfig
from dcl_arc_ros.learning.pose.report import TABLE_METRICS, verdict
from dcl_arc_ros.learning.pose.toy_data import ToyPoseFrames
from dcl_arc_ros.learning.pose.trainer import PoseDataConfig, build_pose_samples, open_pose_frames
from dcl_arc_ros.learning.trainers.dcl import DCL_PRESETS, DataConfig, ToyDepthDataset, config_for_method, make_task
from dcl_arc_ros.learning.trainers.loop import LoopConfig, run_training, seed_everything
from dcl_arc_ros.sim.generate import main as generate

torch.set_num_threads(1)


def _rot(axis: str, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_symmetric_error_forgives_exactly_the_symmetries() -> None:
    rng = np.random.default_rng(0)
    gt = _random_rotation(rng)
    half_turns = [gt @ _rot(a, math.pi) for a in "xyz"]
    assert np.allclose(symmetric_rotation_error(np.stack(half_turns), np.stack([gt] * 3), "box"), 0.0, atol=1e-6)
    # the plain error of the same predictions is 180 degrees: the symmetry is what made them right
    assert np.allclose(symmetric_rotation_error(np.stack(half_turns), np.stack([gt] * 3), "none"), math.pi, atol=1e-6)
    # a box turned 90 degrees about a face axis is not the same box (its sides differ): 90 degrees of error
    assert symmetric_rotation_error(gt @ _rot("z", math.pi / 2), gt, "box")[0] == pytest.approx(math.pi / 2)
    # cylinders: any turn about the axis and the axis flip are free; a tilt of the axis is not
    spun = gt @ _rot("z", 1.234)
    flipped = gt @ _rot("x", math.pi) @ _rot("z", 0.4)
    tilted = gt @ _rot("x", math.radians(20.0))
    err = symmetric_rotation_error(np.stack([spun, flipped, tilted]), np.stack([gt] * 3), "cylinder")
    assert np.allclose(np.degrees(err), [0.0, 0.0, 20.0], atol=1e-5)
    assert np.isnan(symmetric_rotation_error(tilted, gt, "sphere")[0])
    with pytest.raises(ValueError, match="unknown symmetry"):
        symmetric_rotation_error(gt, gt, "cone")


@pytest.mark.parametrize("kind", ["box", "cylinder", "sphere"])
def test_canonical_targets_are_equivalent_and_shared_by_the_whole_class(kind: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        gt = _random_rotation(rng)
        if kind == "box":
            variants = [gt @ _rot(a, math.pi) for a in "xyz"]
        else:
            variants = [gt @ _rot("z", float(rng.uniform(0, 6.3))), gt @ _rot("x", math.pi) @ _rot("z", 0.7)]
        canon = canonical_rotation(gt, kind)
        assert np.allclose(canon.T @ canon, np.eye(3), atol=1e-9) and np.linalg.det(canon) == pytest.approx(1.0)
        if kind != "sphere":  # the canonical member is one of the right answers ...
            assert symmetric_rotation_error(canon, gt, kind)[0] == pytest.approx(0.0, abs=1e-6)
        for v in variants:  # ... and every equivalent ground truth gives the same one
            assert np.allclose(canonical_rotation(v, kind), canon, atol=1e-6)
    other = _random_rotation(rng)
    assert np.array_equal(canonical_rotation(other, "none"), other)


@pytest.mark.parametrize(("kind", "members"), [("none", 1), ("sphere", 1), ("box", 4), ("cylinder", 48)])
def test_equivalent_rotations_are_exactly_the_symmetry_class(kind: str, members: int) -> None:
    group = symmetry_group(kind, axial_steps=24)
    assert group.shape == (members, 3, 3)
    assert np.allclose(group[0], np.eye(3))
    rng = np.random.default_rng(2)
    gt = _random_rotation(rng)
    targets = equivalent_rotations(gt, kind, size=48)
    assert targets.shape == (48, 3, 3)
    for r in targets:  # proper rotations, each a right answer by the metric's own definition
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-9) and np.linalg.det(r) == pytest.approx(1.0)
        if kind != "sphere":
            assert symmetric_rotation_error(r, gt, kind)[0] == pytest.approx(0.0, abs=1e-6)
    distinct = {tuple(np.round(r, 6).ravel()) for r in targets}
    assert len(distinct) == members  # the padding repeats members, adds no new rotation
    if kind == "cylinder":  # any turn about the axis, flipped or not, is within half a step (7.5 deg) of a member
        for angle in rng.uniform(0.0, 2 * math.pi, size=10):
            for flip in (np.eye(3), _rot("x", math.pi)):
                variant = gt @ flip @ _rot("z", float(angle))
                nearest = symmetric_rotation_error(targets, np.stack([variant] * 48), "none").min()
                assert math.degrees(nearest) <= 7.5 + 1e-6
    with pytest.raises(ValueError, match="more than size"):
        equivalent_rotations(gt, "box", size=3)
    with pytest.raises(ValueError, match="unknown symmetry"):
        symmetry_group("cone")


def _box_surface(half: np.ndarray, rotation: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera-frame points on the faces of a box with half-extents ``half`` placed at (rotation, t)."""
    local = rng.uniform(-1.0, 1.0, size=(3000, 3)) * half
    face = rng.integers(0, 3, size=len(local))
    local[np.arange(len(local)), face] = np.sign(rng.uniform(-1, 1, size=len(local))) * half[face]
    return local @ rotation.T + t


def test_box_axes_ordered_by_extent_make_relabelled_boxes_agree() -> None:
    rng = np.random.default_rng(7)
    t = np.array([0.05, -0.02, 0.7])
    for _ in range(10):
        r = _random_rotation(rng)
        # The same physical box, labelled two ways: (3, 5, 8) cm at R, and (5, 3, 8) cm at R turned 90 deg about z.
        a = order_box_axes(r, t, _box_surface(np.array([0.015, 0.025, 0.04]), r, t, rng))
        r2 = r @ _rot("z", math.pi / 2)
        b = order_box_axes(r2, t, _box_surface(np.array([0.025, 0.015, 0.04]), r2, t, rng))
        # as labelled they are 90 degrees apart even with D2; ordered by extent they are one answer
        assert math.degrees(symmetric_rotation_error(r2, r, "box")[0]) == pytest.approx(90.0, abs=1e-6)
        assert symmetric_rotation_error(a, b, "box")[0] == pytest.approx(0.0, abs=1e-6)
        assert np.linalg.det(a) == pytest.approx(1.0)
        # x is the longest edge (8 cm, the labelled z axis), z the shortest (3 cm, the labelled x axis)
        assert abs(float(a[:, 0] @ r[:, 2])) == pytest.approx(1.0)
        assert abs(float(a[:, 2] @ r[:, 0])) == pytest.approx(1.0)
    assert np.array_equal(order_box_axes(r, t, np.zeros((0, 3))), r)  # no points: unchanged


def test_chance_levels_follow_the_symmetry() -> None:
    # Analytic anchors: a random axis line is within 60 deg of another half the time (|cos| is uniform); without
    # symmetry the median geodesic angle of uniform rotations is about 2.3 rad; D2 lies in between.
    assert chance_rotation_error("cylinder") == pytest.approx(60.0, abs=2.0)
    assert chance_rotation_error("none") == pytest.approx(131.8, abs=3.0)
    assert chance_rotation_error("cylinder") < chance_rotation_error("box") < chance_rotation_error("none")
    assert math.isnan(chance_rotation_error("sphere"))
    assert chance_rotation_error("box") == chance_rotation_error("box")  # seeded: the same number every time


def test_rotation_summary_ignores_spheres() -> None:
    s = rotation_summary(np.array([10.0, 20.0, 40.0, np.nan]))
    assert s["n_rot"] == 3
    assert s["rot_mean_deg"] == pytest.approx(70.0 / 3)
    assert s["rot_median_deg"] == pytest.approx(20.0)
    assert s["rot_15"] == pytest.approx(1 / 3) and s["rot_30"] == pytest.approx(2 / 3)


def test_object_windows_reproduce_whole_frame_crops() -> None:
    """With the identity synthesizer (``clean``), the per-object windows give exactly the whole-frame clean crops."""
    frames = ToyPoseFrames(4, seed=3)
    base = PoseDataConfig(source="toy", crop_size=32, min_pixels=20, synthesis_context_px=8)
    whole = build_pose_samples(frames, dataclasses.replace(base, depth_from="clean"), progress=False)
    windowed = build_pose_samples(frames, dataclasses.replace(base, synthesis="clean"), progress=False)
    assert len(whole) == len(windowed) > 0
    key = lambda s: (s.frame, s.instance_id)  # noqa: E731 - the two paths list a frame's objects in different orders
    for a, b in zip(sorted(whole, key=key), sorted(windowed, key=key), strict=True):
        assert (a.frame, a.instance_id, a.box) == (b.frame, b.instance_id, b.box)
        assert np.array_equal(a.image, b.image)
        assert np.allclose(a.translation_est, b.translation_est)
        assert np.allclose(a.rotation_allo, b.rotation_allo)


def test_unknown_classes_are_kept_only_when_asked() -> None:
    frames = ToyPoseFrames(6, seed=1)
    cfg = PoseDataConfig(source="toy", crop_size=32, min_pixels=20, class_ids=(1,))
    kept = build_pose_samples(frames, cfg, unknown_class=-1, progress=False)
    dropped = build_pose_samples(frames, cfg, progress=False)
    assert {s.catalogue_id for s in kept} == {0, 1}  # both toy classes occur in these frames
    assert all((s.class_id == 0) == (s.catalogue_id == 1) for s in kept)
    assert all(s.class_id == -1 for s in kept if s.catalogue_id == 0)
    assert len(dropped) == sum(s.catalogue_id == 1 for s in kept)


def test_verdict_reads_direction_and_spread() -> None:
    row = {m: 0.5 for m in TABLE_METRICS} | {f"{m}_std": 0.01 for m in TABLE_METRICS}
    better = dict(row, rot_median_deg=0.2, rot_15=0.9)
    lines = verdict({"dcl": better, "clean": row})
    assert "better than clean (beyond" in next(line for line in lines if "median" in line)
    assert "better than clean (beyond" in next(line for line in lines if "< 15" in line)
    assert "equal" in next(line for line in lines if "class" in line)
    assert "cannot be tested" in verdict({"clean": row})[0]


def test_config_checks_methods() -> None:
    with pytest.raises(ConfigError, match="unknown pose methods"):
        PoseExperimentConfig(methods=("clean", "gan"))
    with pytest.raises(ConfigError, match="dcl_finetuned"):
        PoseExperimentConfig(methods=("clean", "dcl_finetuned"))


@pytest.fixture(scope="module")
def bags_and_generator(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("pose_exp")
    for name, seed, sensor in (("train", 3, "empirical"), ("test", 4, "active_stereo")):
        args = [
            "--out",
            str(root / name),
            "--scenes",
            "2",
            "--frames-per-scene",
            "2",
            "--sensor",
            sensor,
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
    seed_everything(0)
    dcl = config_for_method(DCL_PRESETS["tiny"], "dcl")
    dcl = dataclasses.replace(dcl, data=DataConfig(), loop=LoopConfig(max_steps=1, batch_size=2, progress=False))
    data = {"source": ToyDepthDataset(4, seed=1), "real": ToyDepthDataset(4, seed=2, real_like=True)}
    ckpt = run_training(make_task(dcl), data, dcl.loop, root / "dcl", run_config=dcl).last_checkpoint
    assert ckpt is not None
    for seed in (0, 1):
        done = root / "dcl" / f"seed_{seed}" / "DONE"
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(f"{ckpt}\n", encoding="utf-8")
    return root / "train", root / "test", root / "dcl" / "seed_{seed}" / "DONE"


def test_dcl_windows_change_the_depth(bags_and_generator: tuple[Path, Path, Path]) -> None:
    train, _, done = bags_and_generator
    ckpt = Path(str(done).format(seed=0)).read_text(encoding="utf-8").strip()
    base = PoseDataConfig(paths=(str(train),), crop_size=32, min_pixels=20, min_visible_fraction=0.0, in_memory=True)
    from dcl_arc_ros.data import bags

    frames = open_pose_frames(base, extra_topics=[bags.GT_DEPTH])
    clean = build_pose_samples(frames, dataclasses.replace(base, depth_from="clean"), progress=False)
    dcl = build_pose_samples(
        frames, dataclasses.replace(base, synthesis="dcl", synthesis_checkpoint=ckpt), progress=False
    )
    assert clean and dcl
    by_key = {(s.frame, s.instance_id): s for s in clean}
    pairs = [(by_key[(s.frame, s.instance_id)], s) for s in dcl if (s.frame, s.instance_id) in by_key]
    assert pairs
    assert any(not np.array_equal(a.image, b.image) for a, b in pairs)  # an untrained generator changes the depth
    assert all(np.allclose(a.rotation_cam, b.rotation_cam) for a, b in pairs)  # ... but not the labels


@pytest.mark.slow
def test_tiny_experiment_writes_the_results_table(bags_and_generator: tuple[Path, Path, Path], tmp_path: Path) -> None:
    train, test, done = bags_and_generator
    cfg = PoseExperimentConfig(
        train_paths=(str(train),),
        finetune_paths=(str(test),),
        test_paths=(str(test),),
        seeds=(0, 1),
        dcl_done=str(done),
        network=PoseNetConfig(crop_size=16, stem_channels=4, stage_channels=(4, 8)),
        min_pixels=20,
        min_visible_fraction=0.0,
        steps=3,
        batch_size=4,
        finetune_fraction=0.5,
        finetune_steps=2,
        out_dir=str(tmp_path / "runs"),
        results_dir=str(tmp_path / "results"),
        progress=False,
    )
    report = run_pose_experiment(cfg)
    data = json.loads((tmp_path / "results" / "pose.json").read_text(encoding="utf-8"))
    assert set(data["rows"]) == {"clean", "empirical", "dcl", "dcl_finetuned"}
    expected = {k for m in TABLE_METRICS for k in (m, f"{m}_std")}
    for row in data["rows"].values():
        assert set(row) == expected
    assert len(report["runs"]["dcl_finetuned"]) == 2  # both seeds ran
    assert data["timings_s"]["total"] > 0
    assert (tmp_path / "results" / "pose_metrics.png").stat().st_size > 0
    md = (tmp_path / "results" / "pose.md").read_text(encoding="utf-8")
    assert "| dcl_finetuned |" in md
    # The by-symmetry split covers exactly the trained-class objects that have a rotation error (all but spheres).
    for method, kinds in data["by_symmetry"].items():
        assert set(kinds) == {"box", "cylinder", "none"}
        full = data["details"]["rows_full"][method]
        assert sum(k["n_objects"] for k in kinds.values()) == pytest.approx(full["n_rot"])
    assert "## Split by symmetry" in md and "`rotation_loss: mse`" in md and "learned nothing" in md
    # the fine-tuned run started from the dcl weights of the same seed
    from dcl_arc_ros.learning.checkpoint import load_checkpoint

    ft = load_checkpoint(report["runs"]["dcl_finetuned"][0]["checkpoint"])
    assert ft.run_config["init_from"] == report["runs"]["dcl"][0]["checkpoint"]

    # A second call into the same out_dir (say after a change to the evaluation) reuses every finished network
    # and scores them the same; a changed training setting trains again.
    stamps = {p: p.stat().st_mtime_ns for p in Path(cfg.out_dir).rglob("step_*.pt")}
    again = run_pose_experiment(dataclasses.replace(cfg, results_dir=str(tmp_path / "again")))
    assert sum("reused the finished run" in n for n in again["notes"]) == 8  # 4 methods x 2 seeds
    assert "training time of those runs is not in this total" in (tmp_path / "again" / "pose.md").read_text()
    assert {p: p.stat().st_mtime_ns for p in Path(cfg.out_dir).rglob("step_*.pt")} == stamps
    assert again["rows"]["dcl"]["rot_median_deg"] == pytest.approx(report["rows"]["dcl"]["rot_median_deg"])
    changed = run_pose_experiment(dataclasses.replace(cfg, steps=4, methods=("clean",), seeds=(0,)), write=False)
    assert not any("reused" in n for n in changed["notes"])
    assert load_checkpoint(changed["runs"]["clean"][0]["checkpoint"]).step == 4


SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pose_estimator.onnx"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped pose model in models/")
def test_shipped_pose_model_runs_through_onnxruntime_in_the_pipeline() -> None:
    pytest.importorskip("onnxruntime")
    from dcl_arc_ros.core.pose_pipeline import PosePipeline
    from dcl_arc_ros.core.proposals import ProposalParams, crops_from_labels
    from dcl_arc_ros.inference.backends import load_model

    model = load_model(SHIPPED)
    sc = model.sidecar
    assert sc.task == "pose" and sc.model_version == "0.4.0"
    logits_width = next(t for t in sc.outputs if t.semantic == "class_logits").shape[-1]
    assert sc.extra["num_classes"] == logits_width == len(sc.extra["class_ids"]) == len(sc.extra["class_names"])
    assert {1000, 1001, 1002} <= set(sc.extra["class_ids"])  # the primitives are in the vocabulary
    pipeline = PosePipeline(model)
    assert pipeline.class_ids == tuple(sc.extra["class_ids"])
    frame = ToyPoseFrames(1, seed=0)[0]
    params = ProposalParams(min_pixels=20, max_pixels=10**6, min_extent_m=0.0, max_extent_m=10.0)
    crops = crops_from_labels(frame.instances, frame.depth, frame.intrinsics, params)
    poses = pipeline.poses_for_crops(crops, frame.intrinsics)
    assert len(poses) == len(crops) == 2
    for pose in poses:
        assert pose.class_id in sc.extra["class_ids"]
        assert 0.0 < pose.confidence <= 1.0
        assert np.allclose(pose.rotation.T @ pose.rotation, np.eye(3), atol=1e-6)


@pytest.mark.slow
def test_primitives_probe_reports_test_train_fit_and_references(
    tmp_path: Path, load_script: Callable[[str], ModuleType]
) -> None:
    bags = {}
    for name, seed, sensor in (("train", 3, "empirical"), ("test", 5, "active_stereo")):
        bags[name] = tmp_path / name
        args = ["--out", str(bags[name]), "--scenes", "4", "--frames-per-scene", "1", "--sensor", sensor]
        assert generate([*args, "--seed", str(seed), "--width", "160", "--height", "120", "--no-progress"]) == 0
    config = tmp_path / "pose.yaml"
    config.write_text(
        "network: {crop_size: 16, stem_channels: 4, stage_channels: [4, 8]}\nmin_pixels: 20\n"
        "min_visible_fraction: 0.0\nbatch_size: 4\n",
        encoding="utf-8",
    )
    probe = load_script("training/probe_pose_primitives.py")
    out = tmp_path / "probe.json"
    args = ["--config", str(config), "--train", str(bags["train"]), "--test", str(bags["test"]), "--steps", "3"]
    assert probe.main([*args, "--out-dir", str(tmp_path / "run"), "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["settings"]["train_crops"] > 0 and result["settings"]["rotation_loss"] == "symmetric_min_mse"
    assert set(result["test"]) == set(result["train_fit"]) == {"box", "cylinder"}
    assert result["train_fit"]["box"]["n_objects"] > 0  # seed 3 draws boxes
    assert result["chance_median_deg"]["cylinder"] == pytest.approx(60.0, abs=2.0)
    # the depth alone reveals a box's axes: the geometric reference beats chance
    assert result["geometric_box"]["n"] > 0
    assert result["geometric_box"]["median_deg"] < result["chance_median_deg"]["box"]
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
    # training data without any primitive is a clear error naming the folder, not a traceback
    empty = ["--config", str(config), "--train", str(tmp_path / "nowhere"), "--no-progress"]
    assert probe.main([*empty, "--out-dir", str(tmp_path / "run2")]) == 2
