"""training/evaluate_proposals.py on a tiny generated bag: counts that add up, the page, the figure, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from dcl_arc_ros.sim.generate import main as generate


@pytest.fixture(scope="module")
def script(load_script: Callable[[str], ModuleType]) -> ModuleType:
    return load_script("training/evaluate_proposals.py")


@pytest.fixture(scope="module")
def tiny_bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proposals") / "bags"
    args = ["--out", str(root), "--scenes", "2", "--frames-per-scene", "2", "--sensor", "active_stereo"]
    args += ["--seed", "7", "--renderer", "toy", "--width", "160", "--height", "120", "--no-progress"]
    assert generate(args) == 0
    return root


def test_scores_every_row_and_writes_the_page_and_figure(script: ModuleType, tiny_bags: Path, tmp_path: Path) -> None:
    out = tmp_path / "proposals"
    assert script.main(["--bags", str(tiny_bags), "--out", str(out), "--no-progress"]) == 0
    payload = json.loads(out.with_suffix(".json").read_text())
    rows = payload["rows"]
    assert {(r["depth"], r["parameters"]) for r in rows} == {
        (depth, name) for depth in script.DEPTHS for name in script.variants()
    }
    targets = {r["targets"] for r in rows}
    assert len(targets) == 1 and targets.pop() > 0  # every row scores the same objects
    for r in rows:
        assert 0 <= r["matched"] <= min(r["targets"], r["proposals"])
        assert r["recall"] == pytest.approx(r["matched"] / r["targets"])
        assert r["ms_per_frame_median"] > 0
        assert r["largest"] <= min(5 * 4, r["proposals"]) and (r["largest"] > 0) == (r["proposals"] > 0)
        assert 0 <= r["largest_matched"] <= min(r["largest"], r["matched"])
    assert payload["settings"]["frames"] == 4
    assert payload["parameters"]["split_touching"] is True
    page = out.with_suffix(".md").read_text()
    assert page.count("| sensor |") == len(script.variants()) == 3 and "proposals.png" in page
    assert out.with_suffix(".png").stat().st_size > 1000


def test_a_folder_without_bags_is_a_clear_error(
    script: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    assert script.main(["--bags", str(empty), "--out", str(tmp_path / "p"), "--no-progress"]) == 2
    assert "nothing_here" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(
    "option, value", [("--iou", "0"), ("--iou", "1.5"), ("--min-visible", "-0.1"), ("--largest", "0")]
)
def test_bad_options_name_the_option(
    script: ModuleType, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        script.parse_args([option, value])
    assert option in capsys.readouterr().err
