"""Bare DDS hop: how many 640x480 32FC1 frames at 30 Hz arrive between two processes, and how late.

Every configuration runs in a fresh subscriber process and a fresh publisher process (``benchmarks._dds_peer``), each
with its own environment, for:

- what each side loads (the "placement"): Fast DDS ``defaults`` on both; the shipped profile on the publisher
  (``profile_pub``), the subscriber (``profile_sub``) or ``profile_both``; and, for comparison only,
  ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` on ``large_data_pub``, ``large_data_sub`` or ``large_data_both``;
- the QoS on both sides: ``best_effort`` (sensor data, what camera drivers use) and ``reliable``.

Latency is the subscriber's wall clock in its callback minus the header stamp the publisher set just before
``publish`` (one machine, one clock). A user's own profile or ``FASTDDS_BUILTIN_TRANSPORTS`` is removed from both sides
so the table means what it says. Pairs that never discover each other are recorded with ``matched: false``.

Discovery uses ``ROS_AUTOMATIC_DISCOVERY_RANGE`` from the environment, else ``SUBNET`` (the ROS 2 default, what a robot
runs with). The range changes how rmw_fastrtps sets up transports, so results are written per range:
``dds_hop.json`` for SUBNET, ``dds_hop_<range>.json`` otherwise.

    python -m benchmarks.dds_hop --out benchmarks/results [--frames 300] [--only profile_pub/best_effort,...]
        [--discovery-range SUBNET|LOCALHOST]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from dcl_arc_ros.dds import BUILTIN_TRANSPORTS_ENV_VAR, PROFILE_ENV_VARS, dds_environment, profile_path

REPO_ROOT = Path(__file__).resolve().parents[1]
PEER_MODULE = "benchmarks._dds_peer"
RESULT_FILE = "dds_hop.json"

SideSetup = Literal["defaults", "profile", "large_data"]
"""What one process loads: nothing, the shipped profile, or Fast DDS 3's LARGE_DATA builtin transports."""

PLACEMENTS: dict[str, tuple[SideSetup, SideSetup]] = {
    # name: (publisher, subscriber)
    "defaults": ("defaults", "defaults"),
    "profile_pub": ("profile", "defaults"),
    "profile_sub": ("defaults", "profile"),
    "profile_both": ("profile", "profile"),
    "large_data_pub": ("large_data", "defaults"),
    "large_data_sub": ("defaults", "large_data"),
    "large_data_both": ("large_data", "large_data"),
}
QOS_NAMES: tuple[str, ...] = ("best_effort", "reliable")
DISCOVERY_RANGES: tuple[str, ...] = ("SUBNET", "LOCALHOST")


@dataclass(frozen=True)
class HopConfig:
    placement: str
    qos: str

    @property
    def name(self) -> str:
        return f"{self.placement}/{self.qos}"

    @property
    def publisher_setup(self) -> SideSetup:
        return PLACEMENTS[self.placement][0]

    @property
    def subscriber_setup(self) -> SideSetup:
        return PLACEMENTS[self.placement][1]


CONFIGS: dict[str, HopConfig] = {
    config.name: config for config in (HopConfig(p, q) for p in PLACEMENTS for q in QOS_NAMES)
}


@dataclass(frozen=True)
class HopSettings:
    frames: int = 300
    rate_hz: float = 30.0
    width: int = 640
    height: int = 480
    match_timeout_s: float = 10.0


@dataclass
class HopResult:
    name: str
    placement: str
    qos: str
    publisher_setup: str
    subscriber_setup: str
    matched: bool
    published: int
    delivered: int
    delivered_fraction: float
    corrupt: int  # frames that arrived with the wrong encoding, size or content (not counted as delivered)
    latency_ms: dict[str, float] | None
    publisher_rate_hz: float
    match_wait_s: float
    wall_s: float


class HopError(RuntimeError):
    """A peer process failed; the message names the configuration and quotes the peer's stderr."""


def strip_dds_overrides(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` without the variables that change Fast DDS transports, so each side starts from the defaults."""
    return {k: v for k, v in base.items() if k not in (*PROFILE_ENV_VARS, BUILTIN_TRANSPORTS_ENV_VAR)}


def benchmark_environment(base: Mapping[str, str], discovery_range: str) -> dict[str, str]:
    """The environment both peers share: Fast DDS, the given discovery range, a domain of its own unless chosen."""
    env = strip_dds_overrides(base)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery_range
    env.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def side_environment(shared: Mapping[str, str], setup: SideSetup, *, profile: Path) -> dict[str, str]:
    if setup == "profile":
        return dds_environment(shared, profile=profile)
    env = dict(shared)
    if setup == "large_data":
        env[BUILTIN_TRANSPORTS_ENV_VAR] = "LARGE_DATA"
    return env


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float] | None:
    if not latencies_ms:
        return None
    values = np.asarray(latencies_ms, dtype=np.float64)
    return {
        "median": round(float(np.median(values)), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "min": round(float(values.min()), 3),
        "max": round(float(values.max()), 3),
    }


def _peer_command(role: str, config: HopConfig, settings: HopSettings, topic: str, result: Path) -> list[str]:
    return [
        sys.executable, "-m", PEER_MODULE, role,
        "--topic", topic, "--qos", config.qos, "--frames", str(settings.frames), "--rate", str(settings.rate_hz),
        "--width", str(settings.width), "--height", str(settings.height), "--result", str(result),
        "--match-timeout", str(settings.match_timeout_s),
    ]  # fmt: skip


def _read_report(path: Path, role: str, config: HopConfig, stderr_path: Path) -> dict[str, Any]:
    if not path.is_file():
        stderr = stderr_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise HopError(f"{config.name}: the {role} wrote no report {path.name}; its stderr ends with:\n{stderr}")
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report


def run_hop(
    config: HopConfig,
    settings: HopSettings,
    *,
    shared_env: Mapping[str, str],
    profile: Path,
    workdir: Path,
    topic: str,
) -> HopResult:
    """Run one configuration in a fresh subscriber + publisher pair and collect both sides' reports."""
    pub_env = side_environment(shared_env, config.publisher_setup, profile=profile)
    sub_env = side_environment(shared_env, config.subscriber_setup, profile=profile)
    tag = config.name.replace("/", "_")
    sub_json, pub_json = workdir / f"{tag}_sub.json", workdir / f"{tag}_pub.json"
    sub_err, pub_err = workdir / f"{tag}_sub.stderr", workdir / f"{tag}_pub.stderr"
    publisher_timeout = settings.match_timeout_s + settings.frames / settings.rate_hz + 90.0
    start = time.monotonic()
    with sub_err.open("wb") as sub_log, pub_err.open("wb") as pub_log:
        subscriber = subprocess.Popen(
            _peer_command("subscribe", config, settings, topic, sub_json),
            env=sub_env, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=sub_log,
        )  # fmt: skip
        try:
            publisher = subprocess.run(
                _peer_command("publish", config, settings, topic, pub_json),
                env=pub_env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=pub_log,
                timeout=publisher_timeout, check=False,
            )  # fmt: skip
            try:  # a subscriber that has every frame stops by itself
                subscriber.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                assert subscriber.stdin is not None
                subscriber.stdin.write(b"stop\n")
                subscriber.stdin.close()
                subscriber.wait(timeout=30.0)
        finally:
            if subscriber.poll() is None:
                subscriber.kill()
                subscriber.wait()
    wall = time.monotonic() - start
    if publisher.returncode != 0:
        stderr = pub_err.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise HopError(f"{config.name}: the publisher exited with {publisher.returncode}:\n{stderr}")
    pub = _read_report(pub_json, "publisher", config, pub_err)
    sub = _read_report(sub_json, "subscriber", config, sub_err)
    delivered = len(set(sub["indices"]))
    return HopResult(
        name=config.name,
        placement=config.placement,
        qos=config.qos,
        publisher_setup=config.publisher_setup,
        subscriber_setup=config.subscriber_setup,
        matched=bool(pub["matched"]),
        published=int(pub["published"]),
        delivered=delivered,
        # Out of the frames asked for: a pair that never matched delivered nothing of them.
        delivered_fraction=round(delivered / settings.frames, 4),
        corrupt=int(sub["bad_frames"]),
        latency_ms=latency_summary(sub["latencies_ms"]),
        publisher_rate_hz=round(float(pub["achieved_rate_hz"]), 2),
        match_wait_s=round(float(pub["match_wait_s"]), 3),
        wall_s=round(wall, 2),
    )


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _display_path(path: Path) -> str:
    """A path to record in results: relative to the repository when inside it, never an absolute machine path."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path.name


def result_file_name(discovery_range: str) -> str:
    """``dds_hop.json`` for the ROS 2 default range, ``dds_hop_<range>.json`` for any other."""
    return RESULT_FILE if discovery_range == "SUBNET" else f"dds_hop_{discovery_range.lower()}.json"


def format_table(results: Sequence[HopResult]) -> str:
    lines = [f"{'configuration':<28} {'delivered':>11} {'median ms':>10} {'p95 ms':>8}"]
    for r in results:
        median = f"{r.latency_ms['median']:.1f}" if r.latency_ms else "-"
        p95 = f"{r.latency_ms['p95']:.1f}" if r.latency_ms else "-"
        delivered = f"{r.delivered}/{r.published}" if r.matched else "no match"
        lines.append(f"{r.name:<28} {delivered:>11} {median:>10} {p95:>8}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Bare DDS hop of large images across two processes, per profile/QoS.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results", help="results folder")
    parser.add_argument("--frames", type=int, default=HopSettings.frames, help="frames per configuration")
    parser.add_argument("--rate", type=float, default=HopSettings.rate_hz, help="publish rate, Hz")
    parser.add_argument("--width", type=int, default=HopSettings.width)
    parser.add_argument("--height", type=int, default=HopSettings.height)
    parser.add_argument(
        "--only", default="", help=f"comma-separated configurations (default: all of {', '.join(CONFIGS)})"
    )
    parser.add_argument("--profile", type=Path, default=None, help="profile XML (default: the shipped one)")
    parser.add_argument(
        "--discovery-range",
        choices=DISCOVERY_RANGES,
        default=None,
        help="ROS_AUTOMATIC_DISCOVERY_RANGE for both peers (default: the environment's, else SUBNET)",
    )
    parser.add_argument(
        "--match-timeout", type=float, default=HopSettings.match_timeout_s, help="seconds to wait for discovery"
    )
    return parser.parse_args(argv)


def select_configs(only: str) -> list[HopConfig]:
    names = [n.strip() for n in only.split(",") if n.strip()] or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    return [CONFIGS[n] for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configs = select_configs(args.only)
    if args.frames < 1:
        raise SystemExit(f"--frames must be at least 1, got {args.frames}")
    settings = HopSettings(
        frames=args.frames,
        rate_hz=args.rate,
        width=args.width,
        height=args.height,
        match_timeout_s=args.match_timeout,
    )
    profile = (args.profile or profile_path()).resolve()
    discovery_range = args.discovery_range or os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or "SUBNET"
    shared_env = benchmark_environment(os.environ, discovery_range)
    results: list[HopResult] = []
    with tempfile.TemporaryDirectory(prefix="dds_hop_") as tmp:
        for index, config in enumerate(tqdm(configs, desc="dds_hop", unit="config")):
            topic = f"/dcl_arc_bench/dds_hop_{os.getpid()}_{index}"
            results.append(
                run_hop(config, settings, shared_env=shared_env, profile=profile, workdir=Path(tmp), topic=topic)
            )
    summary = {
        "benchmark": "dds_hop",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {
            **asdict(settings),
            "encoding": "32FC1",
            "frame_bytes": settings.width * settings.height * 4,
            "profile": _display_path(profile),
            "rmw_implementation": shared_env["RMW_IMPLEMENTATION"],
            "ros_automatic_discovery_range": shared_env["ROS_AUTOMATIC_DISCOVERY_RANGE"],
            "fastdds_version": _package_version("ros-fastdds"),
            "rmw_fastrtps_cpp_version": _package_version("ros-rmw-fastrtps-cpp"),
            "cpu_count": os.cpu_count(),
            "latency": "subscriber wall clock in the callback minus the header stamp set just before publish",
        },
        "results": [asdict(r) for r in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_file = args.out / result_file_name(discovery_range)
    out_file.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(format_table(results))
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
