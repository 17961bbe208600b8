"""dcl-arc-perception's command line, run as a subprocess: listing, selection and configuration errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcl_arc_ros.ros.params import DEPTH_CLEANER

pytestmark = pytest.mark.graph


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dcl_arc_ros.runner", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_list_params_prints_every_parameter_with_its_description() -> None:
    result = run("--list-params")
    assert result.returncode == 0, result.stderr
    for spec in DEPTH_CLEANER.params:
        assert spec.name in result.stdout
    assert "range [0.0, 1.0]" in result.stdout


def test_dry_run_prints_the_node_commands(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")  # only its existence is checked before start-up
    result = run("--only", "depth_cleaner", "--param", f"depth_cleaner.model={model}", "--param",
                 "depth_cleaner.fill_holes=false", "--dry-run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert "-m dcl_arc_ros.ros.depth_cleaner --ros-args -r __node:=depth_cleaner" in line
    assert f"model:={model}" in line and "fill_holes:=false" in line


def test_nothing_runnable_is_an_error_that_says_why(tmp_path: Path) -> None:
    config = tmp_path / "graph.yaml"
    config.write_text(yaml.safe_dump({"depth_cleaner": {"ros__parameters": {"model": str(tmp_path / "none.onnx")}}}))
    result = run("--config", str(config))
    assert result.returncode == 3
    assert "none.onnx does not exist" in result.stderr and "nothing to run" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--only", "teleporter"), "teleporter"),
        (("--param", "depth_cleaner.sync_slop_s=9"), "sync_slop_s = 9.0 is out of range"),
        (("--param", "fill_holes=false"), "NODE.NAME=VALUE"),
    ],
)
def test_configuration_errors_exit_2_naming_the_value(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
