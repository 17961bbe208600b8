"""depth_cleaner across processes: frames lost and latency at 640x480, 30 Hz, against a bare DDS hop in the same run.

Target: no frame lost, and p95 latency through depth_cleaner (identity model) at most 1.5x the p95 of a bare
publisher -> subscriber hop measured at the same time, on this 2-core machine.

Phase ``depth_cleaner``: ``dcl-arc-perception --only depth_cleaner`` with the identity affine ONNX model at 640x480.
One publisher process sends 32FC1 depth at 30 Hz on /camera/depth/image_rect_raw (best effort, like a camera
driver) for ``--seconds``; two subscriber processes record arrival time minus header stamp (the publisher stamps the
wall clock just before ``publish``; the node copies the header):

- ``bare``: the raw topic itself (best effort): one DDS hop;
- ``path``: /dcl_arc/depth/cleaned (reliable, the node's output QoS): hop + depth_cleaner + hop.

Phase ``relay`` (context for the ratio): the same, with a bare rclpy relay (subscribe, republish the same message,
no conversion, no model) instead of depth_cleaner, so ``path`` there is two DDS hops with nothing in between. The
node's own cost is the difference between the two phases' ``path`` numbers.

Every process loads the shipped Fast DDS profile (as the README asks of camera drivers). Publisher and subscribers
are ``benchmarks._dds_peer``.

    python -m benchmarks.depth_cleaner_graph --out benchmarks/results [--seconds 60] [--phases depth_cleaner,relay]
        [--param depth_cleaner.threads=1 --tag threads1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dcl_arc_ros.dds import dds_environment, describe_dds_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_FILE = "depth_cleaner_graph.json"
PEER = "benchmarks._dds_peer"
RATE_HZ = 30.0
HEIGHT, WIDTH = 480, 640
TARGET_P95_RATIO = 1.5
START_TIMEOUT_S = 120.0
PHASES: dict[str, tuple[str, str]] = {
    # phase: (input topic, output topic)
    "depth_cleaner": ("/camera/depth/image_rect_raw", "/dcl_arc/depth/cleaned"),
    "relay": ("/bench/relay/in", "/bench/relay/out"),
}


# --- the bare relay (runs as `python -m benchmarks.depth_cleaner_graph --relay IN OUT`) ------------------------------


def run_relay(in_topic: str, out_topic: str) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from dcl_arc_ros.ros.qos import qos_profile

    rclpy.init()
    node = Node("bench_relay")
    publisher = node.create_publisher(Image, out_topic, qos_profile("reliable"))
    node.create_subscription(Image, in_topic, publisher.publish, qos_profile("sensor_data"))
    print("listening on", in_topic, flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# --- orchestration ---------------------------------------------------------------------------------------------------


def benchmark_environment(base: Mapping[str, str]) -> dict[str, str]:
    env = dds_environment(base)
    env.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(101, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def _wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before printing {text!r}:\n{path.read_text()}")
        time.sleep(0.1)
    raise TimeoutError(f"no {text!r} after {timeout} s:\n{path.read_text(errors='replace')[-3000:]}")


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def _latency(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    ms = np.asarray(values, dtype=np.float64)
    return {
        "median": round(float(np.median(ms)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "max": round(float(ms.max()), 3),
    }


def run_phase(
    phase: str, seconds: float, model: Path, env: dict[str, str], work: Path, node_params: Sequence[str] = ()
) -> dict[str, Any]:
    in_topic, out_topic = PHASES[phase]
    frames = round(seconds * RATE_HZ)
    logs = {name: work / f"{phase}_{name}.log" for name in ("server", "bare", "path", "publisher")}
    results = {name: work / f"{phase}_{name}.json" for name in ("bare", "path", "publisher")}
    if phase == "depth_cleaner":
        server_cmd = [
            sys.executable, "-m", "dcl_arc_ros.runner", "--only", "depth_cleaner",
            "--param", f"depth_cleaner.model={model}", "--param", "depth_cleaner.log_stats_period_s=10.0",
        ]  # fmt: skip
        for text in node_params:
            server_cmd += ["--param", text]
    else:
        server_cmd = [sys.executable, "-m", "benchmarks.depth_cleaner_graph", "--relay", in_topic, out_topic]
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(cmd: list[str], log: Path, stdin: int | None = None) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                cmd, env=env, cwd=REPO_ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=stdin, start_new_session=True
            )
        processes.append(proc)
        return proc

    def subscriber(name: str, topic: str, qos: str) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", PEER, "subscribe", "--topic", topic, "--qos", qos, "--frames", str(frames),
            "--timeout", str(seconds + START_TIMEOUT_S), "--result", str(results[name]),
        ]  # fmt: skip
        return spawn(cmd, logs[name], stdin=subprocess.PIPE)

    try:
        server = spawn(server_cmd, logs["server"])
        _wait_for_text(logs["server"], "listening on", server, START_TIMEOUT_S)
        bare = subscriber("bare", in_topic, "best_effort")
        path = subscriber("path", out_topic, "reliable")
        for name, proc in (("bare", bare), ("path", path)):
            _wait_for_text(logs[name], "ready", proc, START_TIMEOUT_S)
        publisher = spawn(
            [
                sys.executable, "-m", PEER, "publish", "--topic", in_topic, "--qos", "best_effort",
                "--frames", str(frames), "--rate", str(RATE_HZ), "--settle", "3", "--linger", "2",
                "--result", str(results["publisher"]),
            ],
            logs["publisher"],
        )  # fmt: skip
        with tqdm(total=round(seconds + 5), desc=f"{phase}", unit="s") as progress:
            while publisher.poll() is None:
                time.sleep(1.0)
                progress.update(1)
        if publisher.returncode != 0:
            raise RuntimeError(f"publisher failed ({publisher.returncode}):\n{logs['publisher'].read_text()}")
        for proc in (bare, path):
            assert proc.stdin is not None
            try:
                proc.stdin.write(b"stop\n")
                proc.stdin.close()
            except BrokenPipeError:
                pass  # it already had every frame
            proc.wait(timeout=60)
    finally:
        for proc in reversed(processes):
            _stop_group(proc)

    pub = json.loads(results["publisher"].read_text())
    received = {name: json.loads(results[name].read_text()) for name in ("bare", "path")}
    published = int(pub["published"])
    summary: dict[str, Any] = {"phase": phase, "published": published, "publisher_rate_hz": pub["achieved_rate_hz"]}
    for name, report in received.items():
        unique = set(report["indices"])
        summary[name] = {
            "topic": in_topic if name == "bare" else out_topic,
            "delivered": len(unique),
            "lost": published - len(unique),
            "latency_ms": _latency(report["latencies_ms"]),
        }
    bare_p95 = (summary["bare"]["latency_ms"] or {}).get("p95")
    path_p95 = (summary["path"]["latency_ms"] or {}).get("p95")
    summary["p95_ratio_path_to_bare"] = round(path_p95 / bare_p95, 3) if bare_p95 and path_p95 else None
    if phase == "depth_cleaner":
        stats = [line for line in logs["server"].read_text(errors="replace").splitlines() if "stats:" in line]
        summary["node_last_stats_line"] = stats[-1].split("stats:", 1)[1].strip() if stats else None
    return summary


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="results folder")
    parser.add_argument("--seconds", type=float, default=60.0, help="publishing time per phase")
    parser.add_argument("--phases", default="depth_cleaner,relay", help=f"comma-separated subset of {list(PHASES)}")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NODE.NAME=VALUE",
        help="extra depth_cleaner parameter for the runner, e.g. depth_cleaner.threads=1; repeatable",
    )
    parser.add_argument("--tag", default="", help="write depth_cleaner_graph_<tag>.json (e.g. for a --param variant)")
    parser.add_argument("--relay", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.relay:
        return run_relay(*args.relay)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise SystemExit(f"unknown phase(s) {unknown}; choose from {list(PHASES)}")
    from dcl_arc_ros.inference.reference_models import write_affine_depth_model

    env = benchmark_environment(os.environ)
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="depth_cleaner_graph_") as folder:
        work = Path(folder)
        model = work / "identity.onnx"
        write_affine_depth_model(model, scale=1.0, offset=0.0, height=HEIGHT, width=WIDTH, name="identity")
        results = [run_phase(phase, args.seconds, model, env, work, args.param) for phase in phases]
    by_phase = {r["phase"]: r for r in results}
    cleaner = by_phase.get("depth_cleaner")
    verdict = None
    if cleaner is not None:
        ratio = cleaner["p95_ratio_path_to_bare"]
        verdict = {
            "no_frame_lost": cleaner["path"]["lost"] == 0,
            "p95_within_1_5x_bare": ratio is not None and ratio <= TARGET_P95_RATIO,
        }
    result = {
        "benchmark": "depth_cleaner_graph",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target": f"no frame lost; p95 latency through depth_cleaner <= {TARGET_P95_RATIO}x the bare hop's p95",
        "settings": {
            "seconds": args.seconds,
            "rate_hz": RATE_HZ,
            "width": WIDTH,
            "height": HEIGHT,
            "input": "32FC1, best effort (sensor data QoS)",
            "output_qos": "reliable",
            "model": "identity affine ONNX, fill_holes true",
            "node_parameters": list(args.param),
            # repo-relative: results must not carry the measuring machine's paths
            "dds": describe_dds_environment(env).replace(f"{REPO_ROOT}/", ""),
            "ros_automatic_discovery_range": env["ROS_AUTOMATIC_DISCOVERY_RANGE"],
            "cpu_count": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "latency": "subscriber wall clock in its callback minus the header stamp set just before publish",
        },
        "phases": results,
        "verdict": verdict,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / (f"depth_cleaner_graph_{args.tag}.json" if args.tag else RESULT_FILE)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for r in results:
        print(
            f"{r['phase']}: published {r['published']}; bare hop lost {r['bare']['lost']}, p95 "
            f"{(r['bare']['latency_ms'] or {}).get('p95')} ms; path lost {r['path']['lost']}, p95 "
            f"{(r['path']['latency_ms'] or {}).get('p95')} ms; ratio {r['p95_ratio_path_to_bare']}"
        )
    print(f"verdict: {verdict}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
