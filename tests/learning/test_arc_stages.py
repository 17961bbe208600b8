"""ARC training by modular coordinate descent: every tiny stage lowers its loss, stages resume, prerequisites hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from dcl_arc_ros.learning.arc.batches import ARCData
from dcl_arc_ros.learning.arc.config import ARCConfig, DatasetConfig, config_from_mapping
from dcl_arc_ros.learning.arc.datasets import build_arc_data, build_dataset
from dcl_arc_ros.learning.arc.errors import ARCConfigError, StageError, VariantError
from dcl_arc_ros.learning.arc.model import ARCInference
from dcl_arc_ros.learning.arc.runners import Finetune
from dcl_arc_ros.learning.arc.stages import (
    STAGES,
    build_system,
    load_inference,
    read_checkpoint,
    run_method,
    run_stage,
    stage_checkpoint_path,
)
from dcl_arc_ros.learning.arc.toy_data import ToySceneDataset
from dcl_arc_ros.learning.arc.variants import STAGE_ORDER, VARIANTS, get_variant

REPO = Path(__file__).resolve().parents[2]
H, W = 32, 48


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def tiny_config(attention: dict[str, Any] | None = None, /, **schedule: int) -> ARCConfig:
    steps = {
        "pretrain_d_steps": 15,
        "pretrain_t_steps": 15,
        "pretrain_a_steps": 15,
        "pretrain_i_steps": 15,
        "finetune_rounds": 2,
        "eq14_steps": 6,
        "eq15_steps": 4,
    }
    steps.update(schedule)
    return config_from_mapping({
        "model": {"height": H, "width": W, "ngf": 8, "ndf": 8, "translator_blocks": 1, "inpainting_blocks": 1,
                  "attention_ngf": 4, "attention_blocks": 1, "depth_ngf": 8, "depth_levels": 3, "disc_layers": 2},
        # A stationary objective for A: one rho, one temperature, and an init far from rho so the KL has work to do.
        "attention": {"rho": 0.7, "rho_initial_fraction": 0.0, "tau_start": 0.5, "tau_end": 0.5,
                      "init_keep_logit": 3.0, **(attention or {})},
        "perceptual": {"width_scale": 0.125},
        "optim": {"lr": 2e-3, "lr_disc": 2e-3},
        "schedule": {"batch_size": 4, "checkpoint_every": 0, "image_every": 0, **steps},
    })  # fmt: skip


def tiny_data() -> ARCData:
    # one batch per domain, so every step sees the same images (in shuffled order) and losses are comparable
    return ARCData(ToySceneDataset(4, H, W, domain="synthetic"), ToySceneDataset(4, H, W, domain="real"))


ONE_STEP = {"pretrain_d_steps": 1, "pretrain_t_steps": 1, "pretrain_a_steps": 1, "pretrain_i_steps": 1}


def run_through(
    stage: str, config: ARCConfig, out: Path, method: str = "arc_full", earlier_config: ARCConfig | None = None
) -> list[dict[str, float]]:
    """Run the stages before ``stage`` for one step each (they only provide initial modules), then ``stage``."""
    variant = get_variant(method)
    earlier = variant.stages[: variant.stages.index(stage)]
    for name in earlier:
        cfg = earlier_config or tiny_config(**ONE_STEP)
        run_stage(name, cfg, variant, tiny_data(), out, progress=False, tensorboard=False)
    return run_stage(stage, config, variant, tiny_data(), out, progress=False, tensorboard=False).history


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


@pytest.mark.parametrize("stage", ["pretrain_D", "pretrain_T", "pretrain_A", "pretrain_I"])
def test_each_pretraining_stage_lowers_its_loss(stage: str, tmp_path: Path) -> None:
    losses = [logs["loss"] for logs in run_through(stage, tiny_config(), tmp_path)]
    assert len(losses) == 15
    assert mean(losses[-3:]) < 0.9 * mean(losses[:3]), losses


def test_pretrain_a_keeps_d_and_t_fixed_and_moves_the_mask_towards_rho(tmp_path: Path) -> None:
    history = run_through("pretrain_A", tiny_config(pretrain_a_steps=8), tmp_path)
    before = read_checkpoint(stage_checkpoint_path(tmp_path, "pretrain_T"))["system"]
    after = read_checkpoint(stage_checkpoint_path(tmp_path, "pretrain_A"))["system"]
    for key in before:
        if key.startswith(("depth.", "translator.")):
            assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("attention."))
    assert abs(history[-1]["mask_mean"] - 0.7) < abs(history[0]["mask_mean"] - 0.7)


def test_finetune_alternates_eq14_and_eq15_and_lowers_both(tmp_path: Path) -> None:
    config = tiny_config(finetune_rounds=3, eq14_steps=3, eq15_steps=2)
    history = run_through("finetune", config, tmp_path)
    phases = ["eq14" if "loss/eq14" in h else "eq15" for h in history]
    assert phases == (["eq14"] * 3 + ["eq15"] * 2) * 3
    eq14 = [h["loss/eq14"] for h in history if "loss/eq14" in h]
    eq15 = [h["loss/eq15"] for h in history if "loss/eq15" in h]
    assert mean(eq14[-3:]) < mean(eq14[:3]) and mean(eq15[-2:]) < mean(eq15[:2])
    assert [h["round"] for h in history][::5] == [0.0, 1.0, 2.0]


def test_eq15_optimises_only_d(tmp_path: Path) -> None:
    config = tiny_config(eq14_steps=1, eq15_steps=2, finetune_rounds=1)
    run_through("freeze_A", tiny_config(**ONE_STEP), tmp_path)
    variant = get_variant("arc_full")
    # Give the frozen A spatially varying logits around 0, so it removes pixels and I's completion reaches D.
    frozen_path = stage_checkpoint_path(tmp_path, "freeze_A")
    frozen = read_checkpoint(frozen_path)
    head = [k for k in frozen["system"] if k.startswith("attention.net.head.") and k.endswith(".weight")]
    assert len(head) == 1
    frozen["system"][head[0]] = torch.randn_like(frozen["system"][head[0]])
    frozen["system"][head[0].replace("weight", "bias")].zero_()
    torch.save(frozen, frozen_path)
    before = frozen["system"]
    result = run_stage(
        "finetune", config, variant, tiny_data(), tmp_path, max_steps=1, progress=False, tensorboard=False
    )  # the Eq. 14 step
    mid = read_checkpoint(result.checkpoint)["system"]
    run_stage("finetune", config, variant, tiny_data(), tmp_path, progress=False, tensorboard=False)  # two Eq. 15
    after = read_checkpoint(result.checkpoint)["system"]
    changed_14 = {k.split(".")[0] for k in before if not torch.equal(before[k], mid[k])}
    changed_15 = {k.split(".")[0] for k in mid if not torch.equal(mid[k], after[k])}
    assert 0.05 < result.history[0]["mask_mean"] < 0.95  # A removed pixels in the Eq. 14 step
    assert changed_14 == {"depth", "inpainting", "translator"}  # I, D and T (G_r2s only: see below)
    assert changed_15 == {"depth"}
    assert all(torch.equal(before[k], mid[k]) for k in before if k.startswith(("attention.", "translator.g_s2r")))


def test_finetune_phase_map() -> None:
    config = tiny_config(eq14_steps=3, eq15_steps=2)
    system = build_system(config, get_variant("arc_t"))  # no A, so no freeze needed
    finetune = Finetune(system, 10)
    assert [finetune.phase(s) for s in (0, 2, 3, 4, 5, 8)] == [
        (0, "eq14"),
        (0, "eq14"),
        (0, "eq15"),
        (0, "eq15"),
        (1, "eq14"),
        (1, "eq15"),
    ]


def test_interrupted_stage_resumes_to_the_same_weights(tmp_path: Path) -> None:
    config, variant = tiny_config(pretrain_d_steps=8), get_variant("mix")
    straight = run_stage("pretrain_D", config, variant, tiny_data(), tmp_path / "a", progress=False, tensorboard=False)
    first = run_stage(
        "pretrain_D", config, variant, tiny_data(), tmp_path / "b", max_steps=3, progress=False, tensorboard=False
    )
    state = read_checkpoint(first.checkpoint)
    assert (first.steps_run, first.completed, state["step"], state["completed"]) == (3, False, 3, False)
    second = run_stage("pretrain_D", config, variant, tiny_data(), tmp_path / "b", progress=False, tensorboard=False)
    assert (second.steps_run, second.completed) == (5, True)
    a = read_checkpoint(straight.checkpoint)
    b = read_checkpoint(second.checkpoint)
    assert b["optimizers"]["depth"]["state"][0]["step"].item() == 8  # Adam state came back with the weights
    for key, value in a["system"].items():
        assert torch.allclose(value, b["system"][key], atol=1e-5), key
    again = run_stage("pretrain_D", config, variant, tiny_data(), tmp_path / "b", progress=False, tensorboard=False)
    assert (again.steps_run, again.completed) == (0, True)


def test_resume_refuses_a_changed_config_and_overwriting(tmp_path: Path) -> None:
    variant = get_variant("mix")
    run_stage(
        "pretrain_D", tiny_config(pretrain_d_steps=2), variant, tiny_data(), tmp_path, progress=False, tensorboard=False
    )
    with pytest.raises(StageError, match="pretrain_d_steps"):
        run_stage("pretrain_D", tiny_config(pretrain_d_steps=3), variant, tiny_data(), tmp_path, progress=False)
    with pytest.raises(StageError, match="exists"):
        run_stage(
            "pretrain_D", tiny_config(pretrain_d_steps=2), variant, tiny_data(), tmp_path, resume=False, progress=False
        )


def test_a_stage_refuses_to_start_without_its_prerequisites(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"pretrain_D.*pretrain_T"):
        run_stage("pretrain_A", tiny_config(), get_variant("arc_full"), tiny_data(), tmp_path, progress=False)
    with pytest.raises(StageError, match="does not run stage"):
        run_stage("pretrain_T", tiny_config(), get_variant("arc_a"), tiny_data(), tmp_path, progress=False)


def test_independent_pretraining_stages_run_alone(tmp_path: Path) -> None:
    result = run_stage(
        "pretrain_T",
        tiny_config(pretrain_t_steps=2),
        get_variant("arc_full"),
        tiny_data(),
        tmp_path,
        progress=False,
        tensorboard=False,
    )
    assert result.completed and not stage_checkpoint_path(tmp_path, "pretrain_D").exists()


def test_dataset_registry_builds_both_domains_and_names_unknown_kinds() -> None:
    config = config_from_mapping(
        {
            "model": {"height": H, "width": W},
            "data": {
                "synthetic": {"kind": "toy", "size": 5},
                "real": {"kind": "toy", "size": 2, "options": {"domain": "real"}},
            },
        }
    )
    data = build_arc_data(config)
    assert data.synthetic is not None and data.real is not None
    assert (len(data.synthetic), len(data.real)) == (5, 2)  # type: ignore[arg-type]
    sample = data.real[0]
    assert sample["rgb"].shape == (3, H, W) and sample["depth"].shape == sample["valid"].shape == (1, H, W)
    assert 0.0 < sample["valid"].mean().item() < 1.0  # the real-like domain has missing readings
    middlebury = build_dataset(DatasetConfig(kind="middlebury"), config, "real")  # real stereo GT, shipped by skimage
    assert middlebury[0]["rgb"].shape == (3, H, W) and middlebury[0]["depth"].max().item() > 2.0
    with pytest.raises(ARCConfigError, match=r"data\.real\.kind = 'nope'"):
        build_dataset(DatasetConfig(kind="nope"), config, "real")


def test_variants_registry_matches_the_paper_rows() -> None:
    assert set(VARIANTS) == {"syn_only", "real_only", "mix", "arc_t", "arc_a", "arc_at", "arc_ai", "arc_full"}
    assert VARIANTS["arc_full"].stages == STAGE_ORDER == tuple(STAGES)
    assert VARIANTS["arc_full"].modules == ("T", "A", "I", "D")
    assert VARIANTS["arc_at"].modules == ("T", "A", "D") and "pretrain_I" not in VARIANTS["arc_at"].stages
    assert VARIANTS["arc_ai"].modules == ("A", "I", "D") and "pretrain_T" not in VARIANTS["arc_ai"].stages
    assert [VARIANTS[n].depth_data for n in ("syn_only", "real_only", "mix")] == ["synthetic", "real", "mix"]
    with pytest.raises(VariantError, match="arc_typo"):
        get_variant("arc_typo")


@pytest.mark.parametrize("method", sorted(VARIANTS))
def test_every_method_has_a_single_graph_inference_path(method: str) -> None:
    system = build_system(tiny_config(), get_variant(method))
    model = ARCInference.from_system(system)
    rgb = torch.rand(1, 3, H, W) * 2 - 1
    with torch.no_grad():
        depth, mask, decluttered = model(rgb)
    assert depth.shape == (1, 1, H, W) and mask.shape == (1, 1, H, W) and decluttered.shape == (1, 3, H, W)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    if not get_variant(method).uses_translator and not get_variant(method).uses_attention:
        assert torch.equal(decluttered, rgb) and torch.equal(mask, torch.ones_like(mask))


def test_baseline_trains_end_to_end_and_rebuilds_from_its_checkpoint(tmp_path: Path) -> None:
    results = run_method(
        tiny_config(pretrain_d_steps=3), get_variant("real_only"), tiny_data(), tmp_path, progress=False
    )
    assert [r.stage for r in results] == ["pretrain_D"] and results[0].completed
    assert list((tmp_path / "pretrain_D" / "tb").iterdir())  # TensorBoard events were written
    model = load_inference(results[0].checkpoint)
    assert model.translator is None and model.attention is None and model.inpainting is None


def test_full_method_records_the_perceptual_source(tmp_path: Path) -> None:
    config = tiny_config(
        pretrain_d_steps=1,
        pretrain_t_steps=1,
        pretrain_a_steps=1,
        pretrain_i_steps=1,
        finetune_rounds=1,
        eq14_steps=1,
        eq15_steps=1,
    )
    results = run_method(config, get_variant("arc_full"), tiny_data(), tmp_path, progress=False, tensorboard=False)
    assert [r.stage for r in results] == list(STAGE_ORDER) and all(r.completed for r in results)
    final = read_checkpoint(results[-1].checkpoint)
    assert final["provenance"]["perceptual"]["kind"] == "random_vgg16"
    assert bool(final["system"]["attention_frozen"])


def test_train_arc_cli_runs_a_method_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], load_script: Callable[[str], ModuleType]
) -> None:
    cli = load_script("training/train_arc.py")
    config = str(REPO / "training" / "configs" / "arc_tiny.yaml")
    out = tmp_path / "mix"
    assert (
        cli.main(
            [
                "--config",
                config,
                "--method",
                "mix",
                "--out",
                str(out),
                "--no-progress",
                "--set",
                "schedule.pretrain_d_steps=2",
            ]
        )
        == 0
    )
    assert read_checkpoint(stage_checkpoint_path(out, "pretrain_D"))["completed"]
    assert cli.main(["--method", "mix", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "0 steps run" in capsys.readouterr().out
    assert cli.main(["--config", config, "--method", "mix", "--out", str(out), "--no-progress"]) == 2
    assert (
        cli.main(
            [
                "--config",
                config,
                "--method",
                "mix",
                "--stage",
                "finetune",
                "--out",
                str(tmp_path / "x"),
                "--no-progress",
            ]
        )
        == 2
    )


def test_a_checkpoint_that_does_not_fit_the_config_is_named(tmp_path: Path) -> None:
    variant = get_variant("mix")
    run_stage(
        "pretrain_D",
        tiny_config(pretrain_d_steps=1),
        variant,
        tiny_data(),
        tmp_path / "run",
        progress=False,
        tensorboard=False,
    )
    path = stage_checkpoint_path(tmp_path / "run", "pretrain_D")
    state = read_checkpoint(path)
    state["config"]["model"]["depth_ngf"] = 4  # the file now claims another architecture than its weights
    torch.save(state, path)
    with pytest.raises(StageError, match=r"pretrain_D.*do not fit"):
        load_inference(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(StageError, match="unreadable"):
        read_checkpoint(path)


def test_a_time_boxed_method_run_stops_at_the_unfinished_stage_and_resumes(tmp_path: Path) -> None:
    config = tiny_config(pretrain_d_steps=2, pretrain_t_steps=3, finetune_rounds=1, eq14_steps=1, eq15_steps=1)
    variant = get_variant("arc_t")
    first = run_method(config, variant, tiny_data(), tmp_path, max_steps=4, progress=False, tensorboard=False)
    assert [(r.stage, r.steps_run, r.completed) for r in first] == [("pretrain_D", 2, True), ("pretrain_T", 2, False)]
    rest = run_method(config, variant, tiny_data(), tmp_path, resume=True, progress=False, tensorboard=False)
    assert [(r.stage, r.steps_run, r.completed) for r in rest] == [
        ("pretrain_D", 0, True),
        ("pretrain_T", 1, True),
        ("finetune", 2, True),
    ]
