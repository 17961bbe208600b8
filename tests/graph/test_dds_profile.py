"""Cross-process: the shipped Fast DDS profile on the publisher lets best-effort 640x480 32FC1 frames through.

Runs the bare-hop benchmark's peers (real rclpy, two fresh processes per configuration) with a handful of frames.
The subprocesses inherit ROS_DOMAIN_ID and ROS_AUTOMATIC_DISCOVERY_RANGE from the test environment (tests/conftest.py).
Fast DDS defaults on both sides are run too and reported, but their loss is not asserted: it varies from run to run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.graph, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PROFILE = REPO_ROOT / "config" / "fastdds_profile.xml"
FRAMES = 30


@pytest.fixture(scope="module")
def hop_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("dds_hop")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    command = [
        sys.executable, "-m", "benchmarks.dds_hop", "--out", str(out), "--frames", str(FRAMES),
        "--profile", str(SHIPPED_PROFILE), "--only", "profile_pub/best_effort,defaults/best_effort",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"dds_hop failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    (result_file,) = out.glob("dds_hop*.json")  # named after the discovery range
    summary = json.loads(result_file.read_text(encoding="utf-8"))
    assert summary["settings"]["ros_automatic_discovery_range"] == os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    print(result.stdout)
    return {run["name"]: run for run in summary["results"]}


def test_profile_on_publisher_delivers_best_effort_frames_to_a_default_subscriber(
    hop_results: dict[str, dict[str, Any]],
) -> None:
    run = hop_results["profile_pub/best_effort"]
    assert (run["publisher_setup"], run["subscriber_setup"]) == ("profile", "defaults")
    assert run["matched"] and run["published"] == FRAMES
    assert run["delivered"] >= int(0.9 * FRAMES), f"only {run['delivered']}/{FRAMES} frames arrived: {run}"
    assert run["corrupt"] == 0, f"{run['corrupt']} frames arrived with wrong content: {run}"
    latency = run["latency_ms"]
    assert latency is not None and 0.0 < latency["median"] <= latency["p95"] <= latency["max"]


def test_defaults_run_is_recorded(hop_results: dict[str, dict[str, Any]]) -> None:
    run = hop_results["defaults/best_effort"]
    assert (run["publisher_setup"], run["subscriber_setup"]) == ("defaults", "defaults")
    assert run["matched"] and run["published"] == FRAMES
    assert 0 <= run["delivered"] <= FRAMES
