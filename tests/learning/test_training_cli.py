"""The helpers every training CLI shares: config source, overrides, run guards, error exit."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from dcl_arc_ros.learning.arc.errors import ARCError
from dcl_arc_ros.learning.cli import (
    LATEST_CHECKPOINT,
    config_source,
    ensure_new_run,
    load_run_config,
    loss_note,
    raw_config,
    run_cli,
    training_parser,
)
from dcl_arc_ros.learning.errors import ConfigError, LearningError

REPO = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    return training_parser("doc").parse_args(list(argv))


def test_config_source_prefers_config_then_the_saved_one_when_resuming(tmp_path: Path) -> None:
    given = tmp_path / "given.yaml"
    assert config_source(parse("--config", str(given), "--out", str(tmp_path))) == given
    with pytest.raises(LearningError, match=r"--config is required \(no .*config\.yaml"):
        config_source(parse("--out", str(tmp_path), "--resume"))
    (tmp_path / "config.yaml").write_text("a: 1\n")
    assert config_source(parse("--out", str(tmp_path), "--resume")) == tmp_path / "config.yaml"
    with pytest.raises(ARCError):
        config_source(parse("--out", str(tmp_path)), error=ARCError)


def test_raw_config_applies_set_then_extra_then_no_progress(tmp_path: Path) -> None:
    source = tmp_path / "c.yaml"
    source.write_text("loop: {max_steps: 10, progress: true}\nname: a\n")
    args = parse("--out", str(tmp_path), "--set", "loop.max_steps=3", "--set", "name=b", "--no-progress")
    raw = raw_config(source, args, ["name=c"])
    assert raw == {"loop": {"max_steps": 3, "progress": False}, "name": "c"}
    assert raw_config(source, parse("--out", str(tmp_path)))["loop"]["progress"] is True


def test_ensure_new_run_refuses_an_existing_run_unless_resuming(tmp_path: Path) -> None:
    ensure_new_run(tmp_path, resume=False)
    (tmp_path / LATEST_CHECKPOINT).parent.mkdir(parents=True)
    (tmp_path / LATEST_CHECKPOINT).write_bytes(b"")
    with pytest.raises(LearningError, match="already holds a run; pass --resume"):
        ensure_new_run(tmp_path, resume=False)
    ensure_new_run(tmp_path, resume=True)


def test_run_cli_turns_the_error_into_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> int:
        raise LearningError("bad value 7 in x.yaml")

    assert run_cli("train_x", fail) == 2
    assert "train_x: error: bad value 7 in x.yaml" in capsys.readouterr().err
    assert run_cli("train_x", lambda: 0) == 0
    with pytest.raises(LearningError):  # only the CLI's own error class is turned into an exit status
        run_cli("train_arc", fail, error=ARCError)


def test_loss_note() -> None:
    assert loss_note([]) == ""
    assert loss_note([{"loss": 0.5}, {"loss": 0.123456}]) == ", last loss 0.1235"


@dataclass(frozen=True)
class Loop:
    max_steps: int = 10
    progress: bool = True


@dataclass(frozen=True)
class Run:
    loop: Loop = field(default_factory=Loop)
    name: str = "a"


def test_load_run_config_fills_defaults_and_names_the_file(tmp_path: Path) -> None:
    source = tmp_path / "run.yaml"
    source.write_text("name: b\n")
    cfg = load_run_config(Run, parse("--config", str(source), "--out", str(tmp_path), "--set", "loop.max_steps=3"))
    assert cfg == Run(loop=Loop(max_steps=3), name="b")
    source.write_text("unknown: 1\n")
    with pytest.raises(ConfigError, match=r"run\.yaml"):
        load_run_config(Run, parse("--config", str(source), "--out", str(tmp_path)))


def test_train_grasp_cli_trains_refuses_to_overwrite_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], load_script: Callable[[str], ModuleType]
) -> None:
    train_grasp = load_script("training/train_grasp.py")
    config = str(REPO / "training" / "configs" / "grasp_tiny.yaml")
    out = str(tmp_path / "run")
    first = [
        "--config",
        config,
        "--out",
        out,
        "--no-progress",
        "--set",
        "loop.max_steps=1",
        "--set",
        "data.toy_frames=4",
    ]
    assert train_grasp.main(first) == 0
    assert train_grasp.main(first) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert train_grasp.main(["--out", out, "--resume", "--no-progress", "--set", "loop.max_steps=2"]) == 0
    assert "train_grasp: 2 steps" in capsys.readouterr().out
