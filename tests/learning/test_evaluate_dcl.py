"""The DCL table orchestrator end to end on tiny generated bags: every row, the JSON schema, reuse of finished runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch

from dcl_arc_ros.learning.experiments.dcl import METRICS, ROWS, FrameSet, synthesis_stats
from dcl_arc_ros.sim.generate import main as generate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dcl_bags")
    out = {}
    for name, family, sensor, seed in (
        ("syn", "synthetic", "empirical", 3),
        ("real", "real_like", "active_stereo", 5),
        ("test", "real_like", "active_stereo", 9),
    ):
        out[name] = root / name
        args = ["--out", str(out[name]), "--scenes", "1", "--frames-per-scene", "3", "--family", family]
        args += ["--sensor", sensor, "--seed", str(seed), "--renderer", "toy", "--width", "64", "--height", "48"]
        assert generate([*args, "--no-progress"]) == 0
    return out


def test_synthesis_stats_count_new_holes_and_the_depth_change() -> None:
    clean = torch.full((1, 1, 4, 5), 2.0)
    clean[..., 0, 0] = 0.0  # no ground truth there: neither a hole nor a change
    synth = clean + 0.01
    synth[..., 1, :] = 0.0  # 5 holes out of 19 pixels with ground truth
    stats = synthesis_stats(synth, clean)
    assert stats["hole_fraction"] == pytest.approx(5 / 19)
    assert stats["mean_shift_m"] == pytest.approx(0.01, abs=1e-6)
    assert stats["mean_abs_shift_m"] == pytest.approx(0.01, abs=1e-6)


def test_downsampling_keeps_holes_as_holes() -> None:
    depth = torch.ones(1, 1, 4, 4)
    depth[..., 0, 0] = 0.0
    frames = FrameSet(depth=depth, depth_clean=torch.ones(1, 1, 4, 4), normals=torch.zeros(1, 3, 4, 4))
    half = frames.downsample(2)
    assert half.depth.shape == (1, 1, 2, 2)
    assert half.depth[0, 0, 0, 0] == 0.0 and half.depth[0, 0, 1, 1] == 1.0


def test_realism_part_reports_a_missing_module_instead_of_numbers(
    monkeypatch: pytest.MonkeyPatch, load_script: Callable[[str], ModuleType]
) -> None:
    script = load_script("training/evaluate_dcl.py")
    monkeypatch.setitem(sys.modules, "dcl_arc_ros.learning.experiments.realism", None)  # import fails
    args = script.parse_args(["--parts", "realism"])
    result = script.run_realism(args, Path("unused"))
    assert set(result) == {"error"} and "not available" in result["error"]


@pytest.mark.slow
def test_every_row_is_produced_with_spreads_and_finished_runs_are_reused(
    bags: dict[str, Path], tmp_path: Path, load_script: Callable[[str], ModuleType]
) -> None:
    script = load_script("training/evaluate_dcl.py")
    out = tmp_path / "results" / "dcl"
    argv = ["--parts", "table", "--out", str(out), "--workdir", str(tmp_path / "work"), "--no-progress"]
    argv += [f"--set=syn_train={bags['syn']}", f"--set=real_train={bags['real']}", f"--set=real_test={bags['test']}"]
    argv += ["--set=synth_steps=2", "--set=task_steps=2", "--set=finetune_steps=1", "--set=downsample=1"]
    assert script.main(argv) == 0

    payload = json.loads(out.with_suffix(".json").read_text())
    assert set(payload["rows"]) == set(ROWS)
    for row in ROWS:
        for metric in METRICS:
            assert f"{metric}_std" in payload["rows"][row], (row, metric)
            assert isinstance(payload["rows"][row][metric], float)
    assert payload["rows"]["clean"]["rmse"] > 0
    assert "error" in payload["realism"]  # the realism part was not run: said, not faked
    assert set(payload["synthesis"]) == {"clean", "empirical", "cut", "cyclegan", "dcl", "dcl_rgb"}
    assert payload["synthesis"]["clean"]["hole_fraction"] == 0.0
    assert any(key.endswith("/generator_train") for key in payload["wall_s"])
    assert out.with_suffix(".md").read_text().count("± ") > 8 * 9
    assert out.with_name("dcl_examples.png").stat().st_size > 0 and out.with_name("dcl_metrics.png").is_file()

    # A generator with a DONE file is reused (the file names its checkpoint), and so is a finished row.
    done = tmp_path / "work" / "synth" / "dcl" / "seed_0" / "DONE"
    ckpt = Path(done.read_text().strip())
    result_file = tmp_path / "work" / "rows" / "dcl" / "seed_0" / "result.json"
    stamps = (ckpt.stat().st_mtime_ns, result_file.stat().st_mtime_ns)
    md = out.with_suffix(".md")
    md.write_text(md.read_text().replace("(analysis not written yet)", "hand-written words"))
    assert script.main(argv) == 0
    assert (ckpt.stat().st_mtime_ns, result_file.stat().st_mtime_ns) == stamps
    again = json.loads(out.with_suffix(".json").read_text())
    assert again["rows"] == payload["rows"]
    assert "hand-written words" in md.read_text()  # the analysis section survives a rerun
