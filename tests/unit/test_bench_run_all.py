"""The benchmark driver: registry, "not available" modules, crash reporting, summary.json (fake benchmarks only)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

FAKES = {
    "fake_bench_ok": """
        import json, pathlib
        def main(argv):
            out = pathlib.Path(argv[argv.index("--out") + 1])
            (out / "fake_ok.json").write_text(json.dumps({"value": 1}))
            return 0
    """,
    "fake_bench_crash": """
        def main(argv):
            raise RuntimeError("boom in the fake benchmark")
    """,
    "fake_bench_status": """
        def main(argv):
            return 3
    """,
}


@pytest.fixture()
def run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for name, source in FAKES.items():
        (fakes / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.syspath_prepend(str(fakes))
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    return importlib.import_module("benchmarks.run_all")


def test_registry_names_the_planned_benchmarks(run_all: ModuleType) -> None:
    assert run_all.BENCHMARKS["dds_hop"] == "benchmarks.dds_hop"
    planned = {"dds_hop", "node_overhead", "depth_cleaner_graph", "sim_fps", "grasp_postprocess"}
    assert planned <= set(run_all.BENCHMARKS)
    # Every registered benchmark is a module that exists (a typo would make `make bench` skip it silently).
    missing = [name for name, module in run_all.BENCHMARKS.items() if importlib.util.find_spec(module) is None]
    assert missing == []


def test_missing_module_is_not_available(run_all: ModuleType, tmp_path: Path) -> None:
    outcome = run_all.run_benchmark("later", "benchmarks.not_written_yet_xyz", tmp_path)
    assert outcome.status == "not available" and "benchmarks.not_written_yet_xyz" in outcome.error


def test_ok_benchmark_lists_only_its_own_outputs(run_all: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "written_by_an_earlier_benchmark.json").write_text("{}", encoding="utf-8")
    outcome = run_all.run_benchmark("ok", "fake_bench_ok", tmp_path)
    assert outcome.status == "ok", outcome.error
    assert outcome.outputs == ["fake_ok.json"]


@pytest.mark.parametrize(("module", "fragment"), [("fake_bench_crash", "boom"), ("fake_bench_status", "returned 3")])
def test_failures_are_reported(run_all: ModuleType, tmp_path: Path, module: str, fragment: str) -> None:
    outcome = run_all.run_benchmark("bad", module, tmp_path)
    assert outcome.status == "failed" and fragment in outcome.error


def test_main_writes_summary_and_fails_when_a_benchmark_crashes(
    run_all: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = {"ok": "fake_bench_ok", "crash": "fake_bench_crash", "later": "benchmarks.not_written_yet_xyz"}
    monkeypatch.setattr(run_all, "BENCHMARKS", registry)
    assert run_all.main(["--out", str(tmp_path)]) == 1
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert {b["name"]: b["status"] for b in summary["benchmarks"]} == {
        "ok": "ok",
        "crash": "failed",
        "later": "not available",
    }
    assert run_all.main(["--out", str(tmp_path), "--only", "ok,later"]) == 0


def test_unknown_only_name_is_an_error(run_all: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no_such_bench"):
        run_all.main(["--out", str(tmp_path), "--only", "no_such_bench"])
