"""Run the benchmarks (``make bench``): each one's ``main(["--out", DIR])``, then a summary table and summary.json.

    python -m benchmarks.run_all --out benchmarks/results [--only dds_hop,node_overhead]

A benchmark whose module does not exist (yet) is reported as "not available" and skipped. A benchmark that raises or
returns a non-zero status is reported as "failed", the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

BENCHMARKS: dict[str, str] = {
    "dds_hop": "benchmarks.dds_hop",
    "node_overhead": "benchmarks.node_overhead",
    "depth_cleaner_graph": "benchmarks.depth_cleaner_graph",
    "sim_fps": "benchmarks.sim_fps",
    "grasp_postprocess": "benchmarks.grasp_postprocess",
    "grasp_node": "benchmarks.grasp_node",
    "pose_node": "benchmarks.pose_node",
    "arc_node": "benchmarks.arc_node",
}
"""Benchmark name -> module with a ``main(argv: Sequence[str] | None) -> int | None``."""

SUMMARY_FILE = "summary.json"

Status = Literal["ok", "failed", "not available"]


@dataclass
class BenchOutcome:
    name: str
    module: str
    status: Status
    seconds: float = 0.0
    error: str | None = None
    outputs: list[str] = field(default_factory=list)


def _module_exists(module_path: str) -> bool:
    try:
        return importlib.util.find_spec(module_path) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _load_main(module_path: str) -> Callable[[list[str]], int | None]:
    module = importlib.import_module(module_path)
    entry = getattr(module, "main", None)
    if not callable(entry):
        raise TypeError(f"{module_path} ({module.__file__}) has no callable main(argv)")
    return entry


def _snapshot(out: Path) -> dict[str, int]:
    """File name -> modification time (ns) of the files directly in ``out``."""
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}


def _written_since(out: Path, before: dict[str, int]) -> list[str]:
    """Files in ``out`` that are new or were rewritten since ``before`` was taken."""
    after = _snapshot(out)
    return sorted(name for name, mtime in after.items() if name != SUMMARY_FILE and before.get(name) != mtime)


def run_benchmark(name: str, module_path: str, out: Path) -> BenchOutcome:
    """Run one benchmark in this process; never raises for the benchmark's own failures."""
    if not _module_exists(module_path):
        return BenchOutcome(name, module_path, "not available", error=f"module {module_path} does not exist yet")
    before = _snapshot(out)
    start = time.monotonic()
    try:
        status = _load_main(module_path)(["--out", str(out)])
    except SystemExit as exc:  # argparse errors and sys.exit() inside main
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if status != 0:
            return BenchOutcome(name, module_path, "failed", time.monotonic() - start, f"exited with {exc.code}")
    except Exception as exc:
        traceback.print_exc()
        return BenchOutcome(name, module_path, "failed", time.monotonic() - start, f"{type(exc).__name__}: {exc}")
    seconds = time.monotonic() - start
    if status not in (0, None):
        return BenchOutcome(name, module_path, "failed", seconds, f"main returned {status}")
    return BenchOutcome(name, module_path, "ok", seconds, outputs=_written_since(out, before))


def format_summary(outcomes: Sequence[BenchOutcome]) -> str:
    lines = [f"{'benchmark':<22} {'status':<14} {'seconds':>8}  outputs / error"]
    for o in outcomes:
        detail = ", ".join(o.outputs) if o.status == "ok" else (o.error or "")
        lines.append(f"{o.name:<22} {o.status:<14} {o.seconds:>8.1f}  {detail}")
    return "\n".join(lines)


def select(only: str, registry: dict[str, str]) -> dict[str, str]:
    names = [n.strip() for n in only.split(",") if n.strip()]
    if not names:
        return dict(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(registry)}")
    return {n: registry[n] for n in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the dcl_arc_ros benchmarks and write a summary.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    chosen = select(args.only, BENCHMARKS)
    args.out.mkdir(parents=True, exist_ok=True)
    outcomes: list[BenchOutcome] = []
    for name, module_path in chosen.items():
        print(f"== {name} ({module_path})", flush=True)
        outcomes.append(run_benchmark(name, module_path, args.out))
    summary = {
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "benchmarks": [asdict(o) | {"seconds": round(o.seconds, 2)} for o in outcomes],
    }
    (args.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(format_summary(outcomes))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
