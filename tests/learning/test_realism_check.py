"""A tiny end-to-end DCL realism check on the real SR300 castel frames (a few steps of a small generator).

Needs the castel frames (``make real-data``; skipped with the reason when they are missing). The synthetic source is
a two-frame set generated for the test with the fast toy renderer, so the check runs on a clean clone too.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

import pytest

from dcl_arc_ros.data.real import castel_available, castel_dir
from dcl_arc_ros.learning.experiments import realism as experiment
from dcl_arc_ros.learning.nets.resnet_generator import ResnetGeneratorConfig

CFG, OPTS = experiment.load_realism_config()


@pytest.fixture(scope="module")
def synthetic_bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clean-depth frames of the synthetic family (toy renderer: well under a second)."""
    from dcl_arc_ros.sim.generate import main as generate

    out = tmp_path_factory.mktemp("syn")
    args = ["--out", str(out), "--scenes", "2", "--frames-per-scene", "1", "--sensor", "empirical"]
    assert generate([*args, "--family", "synthetic", "--seed", "3", "--renderer", "toy", "--no-progress"]) == 0
    return out


def test_entry_point_signature_is_the_one_evaluate_dcl_calls() -> None:
    sig = inspect.signature(experiment.run_realism_check)
    assert list(sig.parameters) == ["workdir", "seed", "steps", "progress"]
    assert sig.parameters["seed"].kind is inspect.Parameter.KEYWORD_ONLY
    assert (sig.parameters["seed"].default, sig.parameters["steps"].default, sig.parameters["progress"].default) == (
        0,
        None,
        True,
    )


def test_shipped_config_trains_dcl_on_castel() -> None:
    assert CFG.method == "dcl"
    assert CFG.data.real_kind == "castel" and CFG.data.source_depth_from == "clean"
    assert (CFG.weights.dc, CFG.weights.idt, CFG.weights.metric) == (1.5, 1.0, 0.0)  # the paper's loss


@pytest.mark.slow
@pytest.mark.skipif(
    not castel_available(), reason=f"SR300 castel frames not installed under {castel_dir()} (run `make real-data`)"
)
def test_tiny_realism_run(tmp_path: Path, synthetic_bags: Path) -> None:
    cfg = dataclasses.replace(CFG, generator=ResnetGeneratorConfig(ngf=8, n_blocks=1))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, crop_height=32, crop_width=32))
    paths = (str(synthetic_bags),)
    opts = dataclasses.replace(OPTS, source_paths=paths, eval_paths=paths, eval_frames=1, real_frames=3)
    result = experiment.run_realism(cfg, opts, tmp_path, seed=1, steps=2, progress=False)

    json.dumps(result, allow_nan=False)  # JSON-able, NaN written as null
    assert set(result) >= {"table", "figure", "timings_s", "config"}
    table = result["table"]
    assert set(table) == set(experiment.DOMAINS)
    assert 0.3 < table["real"]["hole_fraction"] < 0.6  # the SR300 leaves ~44% of the castel pixels empty
    assert table["clean"]["hole_fraction"] == 0.0
    assert table["empirical"]["hole_fraction"] > 0.0
    assert table["real"]["noise"]["windows"] > 100
    assert result["config"]["steps"] == 2 and result["config"]["real_frames"] == 3
    assert 0.2 < result["config"]["source_scale"] < 0.8  # castel is seen from closer than the synthetic scenes
    assert (tmp_path / "realism.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "dcl" / "checkpoints").is_dir()
    report = experiment.markdown_report(result)
    for name in experiment.DOMAINS:
        assert f"| {name} |" in report
